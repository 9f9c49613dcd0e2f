"""Prints the side-by-side table of two alternating configurations from
their JSON reports (OUT/LABEL-ROUND-produce.json and -consume.json):

    python3 scripts/lib/bench_pair.py OUT ROUNDS BASELINE OTHER

one line per run, the medians, and OTHER/BASELINE for produce and consume
(scripts/bench_compare.sh and scripts/bench_security.sh)."""

import json
import statistics
import sys


def figure(out: str, label: str, kind: str, round_: int):
    with open(f"{out}/{label}-{round_}-{kind}.json") as report:
        results = json.load(report)["results"]
    return results["mib_per_s"], results.get("ack_latency_ms", {}).get("p99")


def main(out: str, rounds: int, baseline: str, other: str) -> None:
    width = max(len(baseline), len(other)) + 8
    print(f"{'run':<{width}}{'produce MiB/s':>15}{'ack p99 ms':>12}{'consume MiB/s':>15}")
    medians = {}
    for label in (baseline, other):
        rows = []
        for r in range(1, rounds + 1):
            produce, p99 = figure(out, label, "produce", r)
            consume, _ = figure(out, label, "consume", r)
            rows.append((produce, p99, consume))
            print(f"{label + ' #' + str(r):<{width}}{produce:>15.1f}{(p99 or 0):>12.0f}{consume:>15.1f}")
        medians[label] = [statistics.median(x[i] or 0 for x in rows) for i in range(3)]
    for label, (produce, p99, consume) in medians.items():
        print(f"{label + ' median':<{width}}{produce:>15.1f}{p99:>12.0f}{consume:>15.1f}")
    b, a = medians[baseline], medians[other]
    print(f"{other}/{baseline}: produce {a[0] / b[0]:.2f}, consume {a[2] / b[2]:.2f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])
