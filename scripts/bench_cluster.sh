#!/usr/bin/env bash
# Cluster benchmarks on PostgreSQL + the S3 server (SeaweedFS), started on
# loopback and stopped at the end:
#
#   - aggregate produce throughput with 1, 2 and 3 agents sharing one
#     database and one bucket, the producer bootstrapped with all of them;
#     metadata transactions per flush summed over the agents;
#   - object PUTs per second at a fixed byte rate with 1 and with 256
#     partitions (one flush is one PUT whatever the partition count).
#
#   scripts/bench_cluster.sh
#   BENCH_RECORDS=200000 BENCH_RATE=20000 scripts/bench_cluster.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT=$(pwd)
# shellcheck source-path=SCRIPTDIR source=lib/services.sh
source scripts/lib/services.sh
# shellcheck source-path=SCRIPTDIR source=lib/bench_agents.sh
source scripts/lib/bench_agents.sh
sh_install_cleanup_trap

RECORDS="${BENCH_RECORDS:-100000}"
RECORD_SIZE="${BENCH_RECORD_SIZE:-1024}"
RATE="${BENCH_RATE:-10000}"
RATE_SECONDS="${BENCH_RATE_SECONDS:-20}"
OUT="$REPO_ROOT/target/bench"
mkdir -p "$OUT"
rm -f "$OUT"/cluster-*.json

sh_log "building streamhouse and streamhouse-bench (release)"
cargo build --quiet --release --bin streamhouse
(cd tools/streamhouse-bench && cargo build --quiet --release)
STREAMHOUSE="$REPO_ROOT/target/release/streamhouse"
BENCH="$REPO_ROOT/tools/streamhouse-bench/target/release/streamhouse-bench"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/streamhouse-bench-cluster.XXXXXX")
sh_register_cleanup_path "$WORK"
sh_at_exit stop_agents

sh_ensure_postgres
PG_URL=$(sh_create_database streamhouse_bench_cluster)
sh_ensure_weed
sh_start_s3 "$WORK/s3"
sh_create_bucket streamhouse-bench
SHARED=(--metadata "$PG_URL" --object-store "s3://streamhouse-bench/cluster")

for agents in 1 2 3; do
    for i in $(seq 1 "$agents"); do
        start_agent "agents$agents-$i" "${SHARED[@]}"
    done
    sh_log "produce $RECORDS x $RECORD_SIZE B through $agents agent(s)"
    "$BENCH" produce --brokers "$(joined AGENT_KAFKA)" --topic "cluster-$agents" --partitions 16 \
        --record-size "$RECORD_SIZE" --records "$RECORDS" --label "agents-$agents" --verify \
        --metrics-url "$(joined AGENT_METRICS)" >"$OUT/cluster-agents-$agents.json"
    stop_agents
done

start_agent rate "${SHARED[@]}"
for partitions in 1 256; do
    sh_log "$RATE records/s for $RATE_SECONDS s to $partitions partition(s)"
    "$BENCH" produce --brokers "$(joined AGENT_KAFKA)" --topic "rate-$partitions" \
        --partitions "$partitions" --record-size "$RECORD_SIZE" --rate "$RATE" \
        --seconds "$RATE_SECONDS" --label "partitions-$partitions" \
        --metrics-url "$(joined AGENT_METRICS)" >"$OUT/cluster-partitions-$partitions.json"
done
stop_agents

python3 - "$OUT" <<'PY'
import json, pathlib, sys

out = pathlib.Path(sys.argv[1])
def load(name):
    return json.loads((out / f"cluster-{name}.json").read_text())

print("| agents | produce MiB/s | records/s | commits per flush | PUTs/s | integrity |")
print("|---|---|---|---|---|---|")
for agents in (1, 2, 3):
    r = load(f"agents-{agents}")
    res, broker = r["results"], r.get("broker") or {}
    print(f"| {agents} | {res['mib_per_s']:.1f} | {res['records_per_s']:.0f} | "
          f"{broker.get('metadata_commits_per_flush', float('nan')):.2f} | "
          f"{broker.get('object_puts_per_s', float('nan')):.1f} | "
          f"{'ok' if (r.get('integrity') or {}).get('ok') else 'FAILED'} |")
print()
puts = {}
for partitions in (1, 256):
    r = load(f"partitions-{partitions}")
    broker = r.get("broker") or {}
    puts[partitions] = broker.get("object_puts_per_s", float("nan"))
    print(f"{partitions:>3} partition(s): {r['results']['mib_per_s']:.1f} MiB/s, "
          f"{puts[partitions]:.1f} PUTs/s")
print(f"PUTs/s, 256 partitions ÷ 1 partition: {puts[256] / puts[1]:.2f} (target within 0.8-1.2)")
PY
