#!/usr/bin/env bash
# Compares two streamhouse binaries in one run, on the same PostgreSQL and
# S3 server: produce (acks=all) and consume from the start with
# tools/streamhouse-bench (librdkafka), alternating the binaries for
# BENCH_ROUNDS rounds so that drift of the shared machine falls on both.
#
#   scripts/bench_compare.sh BEFORE_BINARY AFTER_BINARY
#   BENCH_RECORDS=200000 BENCH_ROUNDS=2 scripts/bench_compare.sh …
#
# Prints one line per run and the median of each binary; the JSON reports
# stay in target/bench-compare/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT=$(pwd)
# shellcheck source-path=SCRIPTDIR source=lib/services.sh
source scripts/lib/services.sh
# shellcheck source-path=SCRIPTDIR source=lib/bench_agents.sh
source scripts/lib/bench_agents.sh
sh_install_cleanup_trap

[ $# -eq 2 ] || _sh_die "usage: scripts/bench_compare.sh BEFORE_BINARY AFTER_BINARY"
BEFORE=$(realpath "$1")
AFTER=$(realpath "$2")
RECORDS="${BENCH_RECORDS:-200000}"
RECORD_SIZE="${BENCH_RECORD_SIZE:-1024}"
PARTITIONS="${BENCH_PARTITIONS:-16}"
ROUNDS="${BENCH_ROUNDS:-2}"
OUT="$REPO_ROOT/target/bench-compare"
mkdir -p "$OUT"
rm -f "$OUT"/*.json

(cd tools/streamhouse-bench && cargo build --quiet --release)
BENCH="$REPO_ROOT/tools/streamhouse-bench/target/release/streamhouse-bench"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/streamhouse-compare.XXXXXX")
sh_register_cleanup_path "$WORK"
sh_ensure_postgres
sh_ensure_weed
sh_start_s3 "$WORK/s3"
sh_create_bucket streamhouse-compare
sh_at_exit stop_agents

run() {
    local label="$1" binary="$2" round="$3" database
    database=$(sh_create_database "streamhouse_compare_${label}_$round")
    STREAMHOUSE="$binary"
    start_agent "$label-$round" --metadata "$database" \
        --object-store "s3://streamhouse-compare/$label-$round"
    local kafka=${AGENT_KAFKA[-1]}
    "$BENCH" produce --brokers "$kafka" --topic bench --partitions "$PARTITIONS" \
        --record-size "$RECORD_SIZE" --records "$RECORDS" --label "$label" --verify \
        >"$OUT/$label-$round-produce.json"
    "$BENCH" consume --brokers "$kafka" --topic bench --partitions "$PARTITIONS" \
        --label "$label" >"$OUT/$label-$round-consume.json"
    stop_agents
}

for round in $(seq 1 "$ROUNDS"); do
    run before "$BEFORE" "$round"
    run after "$AFTER" "$round"
done

python3 scripts/lib/bench_pair.py "$OUT" "$ROUNDS" before after
