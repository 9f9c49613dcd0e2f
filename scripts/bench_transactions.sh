#!/usr/bin/env bash
# What transactions cost: one agent on PostgreSQL + the S3 server (and one
# on the embedded default), driven by tools/streamhouse-bench (librdkafka).
# In each round, on a fresh database and prefix:
#   - an idempotent producer sends BENCH_RECORDS records (the baseline);
#   - a transactional producer sends BENCH_SMALL_TRANSACTIONS (300)
#     transactions of 100 records, then BENCH_RECORDS records as
#     transactions of 10,000 records, one transaction after the other,
#     timing each commit_transaction once its records are acknowledged
#     (EndTxn: the markers' flush commit).
# Rounds alternate the three so that drift of the shared machine falls on
# all of them.
#
#   scripts/bench_transactions.sh [BINARY]     (default: a release build)
#   BENCH_RECORDS=200000 BENCH_ROUNDS=2 scripts/bench_transactions.sh
#
# Prints one line per run and the medians; the JSON reports and the
# agents' logs stay in target/bench-transactions/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT=$(pwd)
# shellcheck source-path=SCRIPTDIR source=lib/services.sh
source scripts/lib/services.sh
# shellcheck source-path=SCRIPTDIR source=lib/bench_agents.sh
source scripts/lib/bench_agents.sh
sh_install_cleanup_trap

RECORDS="${BENCH_RECORDS:-200000}"
RECORD_SIZE="${BENCH_RECORD_SIZE:-1024}"
PARTITIONS="${BENCH_PARTITIONS:-16}"
ROUNDS="${BENCH_ROUNDS:-2}"
SMALL_TRANSACTIONS="${BENCH_SMALL_TRANSACTIONS:-300}"
OUT="$REPO_ROOT/target/bench-transactions"
mkdir -p "$OUT"
rm -f "$OUT"/*.json

if [ $# -ge 1 ]; then
    STREAMHOUSE=$(realpath "$1")
else
    cargo build --quiet --release --bin streamhouse
    STREAMHOUSE="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/streamhouse"
fi
(cd tools/streamhouse-bench && cargo build --quiet --release)
BENCH="$REPO_ROOT/tools/streamhouse-bench/target/release/streamhouse-bench"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/streamhouse-bench-transactions.XXXXXX")
sh_register_cleanup_path "$WORK"
sh_ensure_postgres
sh_ensure_weed
sh_start_s3 "$WORK/s3"
sh_create_bucket streamhouse-bench-transactions
sh_at_exit stop_agents

run() {
    local backend="$1" round="$2" name kafka metrics
    name="$backend-$round"
    if [ "$backend" = postgres-s3 ]; then
        local database
        database=$(sh_create_database "streamhouse_bench_transactions_$round")
        start_agent "$name" --metadata "$database" \
            --object-store "s3://streamhouse-bench-transactions/$name"
    else
        start_agent "$name"
    fi
    kafka=${AGENT_KAFKA[-1]}
    metrics=${AGENT_METRICS[-1]}
    local common=(--brokers "$kafka" --partitions "$PARTITIONS" --record-size "$RECORD_SIZE"
        --metrics-url "$metrics")
    "$BENCH" produce "${common[@]}" --topic idempotent --records "$RECORDS" --idempotent \
        --label "$backend idempotent" >"$OUT/$name-idempotent.json"
    "$BENCH" transactions "${common[@]}" --topic txn-100 --records-per-transaction 100 \
        --transactions "$SMALL_TRANSACTIONS" --label "$backend transactions of 100" \
        >"$OUT/$name-txn-100.json"
    "$BENCH" transactions "${common[@]}" --topic txn-10000 --records-per-transaction 10000 \
        --transactions $(((RECORDS + 9999) / 10000)) --label "$backend transactions of 10000" \
        >"$OUT/$name-txn-10000.json"
    stop_agents
    cp "$WORK/$name.log" "$OUT/"
}

for round in $(seq 1 "$ROUNDS"); do
    run postgres-s3 "$round"
    run embedded "$round"
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
from pathlib import Path
runs = {}
for path in sorted(Path(sys.argv[1]).glob("*.json")):
    report = json.loads(path.read_text())
    results = report["results"]
    label = report["setup"]["label"]
    commit = results.get("commit_latency_ms")
    line = (f"{label:38} {results['mib_per_s']:7.1f} MiB/s {results['records_per_s']:9.0f} rec/s")
    if commit:
        line += (f" {results['transactions_per_s']:7.1f} txn/s  commit p50 {commit['p50']:.1f} ms"
                 f" p99 {commit['p99']:.1f} ms")
    print(line)
    runs.setdefault(label, []).append(results)
print("\nmedians:")
for label, results in runs.items():
    mib = statistics.median(r["mib_per_s"] for r in results)
    line = f"{label:38} {mib:7.1f} MiB/s"
    if "transactions_per_s" in results[0]:
        txn = statistics.median(r["transactions_per_s"] for r in results)
        p50 = statistics.median(r["commit_latency_ms"]["p50"] for r in results)
        p99 = statistics.median(r["commit_latency_ms"]["p99"] for r in results)
        line += f" {txn:7.1f} txn/s  commit p50 {p50:.1f} ms p99 {p99:.1f} ms"
    print(line)
PY
