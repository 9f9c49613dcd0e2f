"""Prints the comparison table of a scripts/bench.sh run from its JSON
reports (target/bench/*.json), with the ratios the targets are stated in."""

import json
import pathlib
import sys

FLUSH_INTERVAL_MS = 50


def load(directory: pathlib.Path, name: str):
    path = directory / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def rss_max_mib(directory: pathlib.Path, name: str):
    path = directory / f"{name}-rss.txt"
    if not path.exists():
        return None
    values = [int(line) for line in path.read_text().split() if line.strip().isdigit()]
    return max(values) / 1024 if values else None


def fmt(value, spec=".1f", missing="—"):
    return missing if value is None else format(value, spec)


def main() -> None:
    directory = pathlib.Path(sys.argv[1])
    raw = load(directory, "raw-s3")
    put_mib = raw["put"]["mib_per_s"] if raw else None
    get_mib = raw["get"]["mib_per_s"] if raw else None
    put_p99 = raw["put"]["latency_ms"]["p99"] if raw else None

    rows = []
    for label, rss in [
        ("streamhouse-embedded", "embedded"),
        ("streamhouse-postgres-s3", "postgres-s3"),
        ("tansu-s3", None),
    ]:
        produce = load(directory, f"{label}-produce")
        if produce is None:
            continue
        consume = load(directory, f"{label}-consume")
        steady = load(directory, f"{label}-steady")
        e2e = load(directory, f"{label}-e2e")
        results = produce["results"]
        broker = produce.get("broker", {})
        rows.append(
            {
                "setup": label,
                "produce_mib": results["mib_per_s"],
                "vs_put": results["mib_per_s"] / put_mib if put_mib and "s3" in label else None,
                "ack_p99_max": results["ack_latency_ms"]["p99"],
                "steady_p99": steady["results"]["ack_latency_ms"]["p99"] if steady else None,
                "e2e_p99": e2e["results"]["e2e_latency_ms"]["p99"] if e2e else None,
                "e2e_ack_p99": e2e["results"]["ack_latency_ms"]["p99"] if e2e else None,
                "consume_mib": consume["results"]["mib_per_s"] if consume else None,
                "vs_get": consume["results"]["mib_per_s"] / get_mib
                if consume and get_mib and "s3" in label
                else None,
                "puts_per_s": broker.get("object_puts_per_s"),
                "commits_per_flush": broker.get("metadata_commits_per_flush"),
                "integrity": produce.get("integrity", {}).get("ok"),
                "rss": rss_max_mib(directory, rss) if rss else None,
            }
        )

    print()
    if raw:
        print(
            f"raw S3: PUT {raw['put']['mib_per_s']:.1f} MiB/s (p99 {put_p99:.1f} ms), "
            f"GET {raw['get']['mib_per_s']:.1f} MiB/s, "
            f"{raw['parameters']['object_bytes']} B objects, {raw['parameters']['concurrency']} at a time"
        )
    header = (
        "| setup | produce MiB/s | ÷ raw PUT | ack p99 at max (ms) | ack p99 at 20% (ms) "
        "| e2e p99 (ms) | e2e ÷ ack p99 | consume MiB/s | ÷ raw GET | PUTs/s | commits/flush "
        "| integrity | max RSS MiB |"
    )
    print(header)
    print("|" + "|".join(["---"] * 13) + "|")
    for r in rows:
        ratio_e2e = r["e2e_p99"] / r["e2e_ack_p99"] if r["e2e_p99"] and r["e2e_ack_p99"] else None
        print(
            f"| {r['setup']} | {fmt(r['produce_mib'])} | {fmt(r['vs_put'], '.2f')} "
            f"| {fmt(r['ack_p99_max'])} | {fmt(r['steady_p99'])} | {fmt(r['e2e_p99'])} "
            f"| {fmt(ratio_e2e, '.2f')} | {fmt(r['consume_mib'])} | {fmt(r['vs_get'], '.2f')} "
            f"| {fmt(r['puts_per_s'])} | {fmt(r['commits_per_flush'], '.2f')} "
            f"| {'ok' if r['integrity'] else ('FAILED' if r['integrity'] is False else '—')} "
            f"| {fmt(r['rss'], '.0f')} |"
        )
    if put_p99 is not None:
        print(
            f"\nsteady-load target: ack p99 ≤ flush interval ({FLUSH_INTERVAL_MS} ms) "
            f"+ 2 × PUT p99 ({2 * put_p99:.1f} ms) + commit p99"
        )
    tansu = next((r for r in rows if r["setup"] == "tansu-s3"), None)
    ours = next((r for r in rows if r["setup"] == "streamhouse-postgres-s3"), None)
    if tansu and ours:
        print(f"StreamHouse ÷ Tansu produce throughput: {ours['produce_mib'] / tansu['produce_mib']:.2f}")
    cpu_split(directory)
    idle = load(directory, "idle")
    if idle:
        print(
            f"idle agent (jobs every {idle['job_interval_ms']} ms): "
            f"{idle['object_requests']} object requests in {idle['seconds']} s"
        )
    soak = load(directory, "soak-e2e")
    if soak:
        print(
            f"\nsoak: {soak['results']['received']} records over {soak['parameters']['seconds']} s, "
            f"max RSS {fmt(rss_max_mib(directory, 'soak'), '.0f')} MiB"
        )
    storage_samples(directory / "soak-storage.txt")


def cpu_split(directory: pathlib.Path) -> None:
    """Where the CPU went during a full-speed produce (a second run of it,
    without the read-back check): the broker, the S3 server, PostgreSQL and
    everything else (the librdkafka client and the kernel)."""
    lines = []
    for label in ("streamhouse-embedded", "streamhouse-postgres-s3", "tansu-s3"):
        cpu = load(directory, f"{label}-cpu")
        run = load(directory, f"{label}-produce-cpu")
        if not cpu or not run:
            continue
        seconds = run["results"]["seconds"]
        mib = run["results"]["mib_per_s"] * seconds
        share = lambda v: f"{v:.2f} s ({1000 * v / mib:.1f} ms/MiB)" if mib else "—"
        lines.append(
            f"| {label} | {run['results']['mib_per_s']:.1f} | {share(cpu['broker'])} "
            f"| {share(cpu['s3_server'])} | {share(cpu['postgres'])} "
            f"| {share(cpu['everything_else'])} | {100 * cpu['machine'] / (2 * cpu['wall_seconds']):.0f}% |"
        )
    if lines:
        print(
            "\n| produce, CPU split | MiB/s | broker | S3 server | PostgreSQL "
            "| everything else | machine busy (2 cores) |"
        )
        print("|---|---|---|---|---|---|---|")
        print("\n".join(lines))


def storage_samples(path: pathlib.Path) -> None:
    """Segment rows and objects during the soak: with retention on, both
    must level off rather than grow with the number of flushes."""
    if not path.exists():
        return
    samples = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) == 7:
            samples.append([float(f) for f in fields])
    if not samples:
        return
    print(
        "\n| soak second | segment rows | objects referenced | most rows in a partition "
        "| MiB referenced | object files on disk | MiB on disk |"
    )
    print("|---|---|---|---|---|---|---|")
    step = max(1, len(samples) // 10)
    shown = samples[::step]
    if shown[-1] is not samples[-1]:
        shown.append(samples[-1])
    for seconds, rows, objects, most, stored, files, disk in shown:
        print(
            f"| {seconds:.0f} | {rows:.0f} | {objects:.0f} | {most:.0f} | {stored / 1048576:.0f} "
            f"| {files:.0f} | {disk / 1048576:.0f} |"
        )
    half = samples[len(samples) // 2 :]
    print(
        f"second half of the soak: segment rows {min(s[1] for s in half):.0f}–{max(s[1] for s in half):.0f}, "
        f"objects {min(s[2] for s in half):.0f}–{max(s[2] for s in half):.0f}, "
        f"files on disk {min(s[5] for s in half):.0f}–{max(s[5] for s in half):.0f}"
    )


if __name__ == "__main__":
    main()
