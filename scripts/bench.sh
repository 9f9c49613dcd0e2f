#!/usr/bin/env bash
# Runs StreamHouse and its baselines side by side on this machine and prints
# a comparison table. Everything starts on loopback and stops at the end:
#
#   - the raw S3 server (SeaweedFS): PUT and GET at StreamHouse's object
#     size and upload concurrency;
#   - StreamHouse on the embedded default (SQLite + a local directory);
#   - StreamHouse on PostgreSQL + the same S3 server;
#   - Tansu, another Kafka-compatible broker, with its S3 storage engine on
#     the same server, when `tansu` is installed (see docs/BENCHMARKS.md).
#
# Every broker is driven by tools/streamhouse-bench (librdkafka), so they are
# measured the same way; each run prints one JSON report, kept in
# target/bench/. The table shows ratios against baselines of the same run.
#
#   scripts/bench.sh                    full run (a few minutes)
#   BENCH_RECORDS=100000 scripts/bench.sh   a smaller run
#   BENCH_SOAK_SECONDS=300 BENCH_SOAK_ONLY=1 scripts/bench.sh   the soak alone
#   BENCH_STREAMHOUSE=/path/to/streamhouse scripts/bench.sh  another build
#   BENCH_SOAK_RATE=10000                  the soak's records/s (20000)
#   BENCH_SOAK_SECONDS=300 scripts/bench.sh adds a sustained produce/consume
#                                        run that samples the server's memory
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT=$(pwd)
# shellcheck source-path=SCRIPTDIR source=lib/services.sh
source scripts/lib/services.sh
# shellcheck source-path=SCRIPTDIR source=lib/bench_agents.sh
source scripts/lib/bench_agents.sh
sh_install_cleanup_trap

RECORDS="${BENCH_RECORDS:-500000}"
RECORD_SIZE="${BENCH_RECORD_SIZE:-1024}"
PARTITIONS="${BENCH_PARTITIONS:-16}"
E2E_RATE="${BENCH_E2E_RATE:-2000}"
E2E_SECONDS="${BENCH_E2E_SECONDS:-20}"
SOAK_SECONDS="${BENCH_SOAK_SECONDS:-0}"
SOAK_ONLY="${BENCH_SOAK_ONLY:-0}"
OUT="$REPO_ROOT/target/bench"
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*-rss.txt "$OUT"/*-storage.txt

# BENCH_STREAMHOUSE=PATH runs that binary (e.g. an earlier build, to compare
# in one sitting) instead of building this tree's.
if [ -n "${BENCH_STREAMHOUSE:-}" ]; then
    STREAMHOUSE="$BENCH_STREAMHOUSE"
    sh_log "building streamhouse-bench (release); streamhouse is $STREAMHOUSE"
else
    sh_log "building streamhouse and streamhouse-bench (release)"
    cargo build --quiet --release --bin streamhouse
    STREAMHOUSE="$REPO_ROOT/target/release/streamhouse"
fi
(cd tools/streamhouse-bench && cargo build --quiet --release)
BENCH="$REPO_ROOT/tools/streamhouse-bench/target/release/streamhouse-bench"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/streamhouse-bench.XXXXXX")
sh_register_cleanup_path "$WORK"

sh_ensure_postgres
PG_URL=$(sh_create_database streamhouse_bench)
sh_ensure_weed
sh_start_s3 "$WORK/s3"
sh_create_bucket streamhouse-bench

sh_at_exit stop_agents

# start_server NAME ARGS... : one agent; sets SERVER_PID, KAFKA and METRICS.
start_server() {
    start_agent "$@"
    SERVER_PID=${AGENT_PIDS[-1]}
    KAFKA=${AGENT_KAFKA[-1]}
    METRICS=${AGENT_METRICS[-1]}
}

stop_server() {
    stop_agents
}

# Samples the server's resident memory every second into RSS_FILE.
sample_rss() {
    local pid="$1" file="$2"
    while kill -0 "$pid" 2>/dev/null; do
        awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null >>"$file" || true
        sleep 1
    done
}

# Samples the storage gauges (segment rows, objects referenced, the most
# rows of any partition, bytes referenced) and the object files actually on
# disk under DIR every 10 s into FILE, one line per sample:
#   seconds rows objects max_rows_per_partition bytes files_on_disk disk_bytes
sample_storage() {
    local pid="$1" url="$2" dir="$3" file="$4" started=$SECONDS gauges disk
    while kill -0 "$pid" 2>/dev/null; do
        gauges=$(curl -sf "$url" 2>/dev/null | awk '
            /^streamhouse_segment_rows /                   { rows = $2 }
            /^streamhouse_segment_objects /                { objects = $2 }
            /^streamhouse_segment_rows_max_per_partition / { max = $2 }
            /^streamhouse_segment_bytes /                  { bytes = $2 }
            END { if (rows != "") print rows, objects, max, bytes }') || true
        # Garbage collection deletes files while find walks the tree.
        disk=$( (find "$dir" -name '*.bin' -printf '%s\n' 2>/dev/null || true) |
            awk '{ n++; b += $1 } END { print n + 0, b + 0 }')
        if [ -n "$gauges" ]; then
            echo "$((SECONDS - started)) $gauges $disk" >>"$file"
        fi
        sleep 10
    done
}

# CPU accounting, to show where a run's CPU went: ticks of user + system
# time of the broker, the S3 server and every PostgreSQL process, and the
# machine's busy ticks, and the wall clock. Prints
# "broker s3 postgres machine seconds".
proc_ticks() {
    local total=0 pid ticks
    for pid in "$@"; do
        ticks=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null) || continue
        total=$((total + ${ticks:-0}))
    done
    echo "$total"
}
cpu_snapshot() {
    local pg_pids
    mapfile -t pg_pids < <(pgrep -x postgres || true)
    echo "$(proc_ticks "${AGENT_PIDS[-1]}") $(proc_ticks "${SH_WEED_PID:-}")" \
        "$(proc_ticks "${pg_pids[@]}")" \
        "$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat)" "$EPOCHREALTIME"
}
# cpu_report BEFORE AFTER: CPU seconds of each, as JSON.
cpu_report() {
    python3 - "$1" "$2" "$(getconf CLK_TCK)" <<'PY'
import json, sys
before, after = ([float(x) for x in arg.split()] for arg in sys.argv[1:3])
hz = int(sys.argv[3])
broker, s3, pg, machine = ((a - b) / hz for a, b in zip(after[:4], before[:4]))
print(json.dumps({"broker": broker, "s3_server": s3, "postgres": pg,
                  "everything_else": max(0.0, machine - broker - s3 - pg), "machine": machine,
                  "wall_seconds": after[4] - before[4]}))
PY
}

# bench_broker LABEL: the produce / consume / latency runs against $KAFKA.
bench_broker() {
    local label="$1" metrics=()
    if [ -n "${METRICS:-}" ]; then
        metrics=(--metrics-url "$METRICS")
    fi
    sh_log "[$label] produce $RECORDS x ${RECORD_SIZE} B, acks=all, $PARTITIONS partitions"
    "$BENCH" produce --brokers "$KAFKA" --topic "bench-$label" --partitions "$PARTITIONS" \
        --record-size "$RECORD_SIZE" --records "$RECORDS" --label "$label" --verify \
        "${metrics[@]}" >"$OUT/$label-produce.json"
    # The same produce again without the read-back check, for where the
    # CPU goes while producing at full speed.
    local cpu_before
    cpu_before=$(cpu_snapshot)
    "$BENCH" produce --brokers "$KAFKA" --topic "bench-$label-cpu" --partitions "$PARTITIONS" \
        --record-size "$RECORD_SIZE" --records "$RECORDS" --label "$label" \
        >"$OUT/$label-produce-cpu.json"
    cpu_report "$cpu_before" "$(cpu_snapshot)" >"$OUT/$label-cpu.json"
    sh_log "[$label] consume from the start"
    "$BENCH" consume --brokers "$KAFKA" --topic "bench-$label" --partitions "$PARTITIONS" \
        --label "$label" "${metrics[@]}" >"$OUT/$label-consume.json"
    local max_rate steady
    max_rate=$(python3 -c "import json;print(int(json.load(open('$OUT/$label-produce.json'))['results']['records_per_s']))")
    steady=$((max_rate / 5))
    sh_log "[$label] steady produce at $steady records/s (20% of the maximum)"
    "$BENCH" produce --brokers "$KAFKA" --topic "bench-$label-steady" --partitions "$PARTITIONS" \
        --record-size "$RECORD_SIZE" --rate "$steady" --seconds 15 --label "$label" \
        "${metrics[@]}" >"$OUT/$label-steady.json"
    sh_log "[$label] end to end at $E2E_RATE records/s, linger 0"
    "$BENCH" e2e --brokers "$KAFKA" --topic "bench-$label-e2e" --partitions "$PARTITIONS" \
        --record-size "$RECORD_SIZE" --rate "$E2E_RATE" --seconds "$E2E_SECONDS" --linger-ms 0 \
        --label "$label" >"$OUT/$label-e2e.json"
}

# The object size StreamHouse wrote, for the raw baseline.
object_size() {
    python3 - "$OUT/$1-produce.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
broker = report.get("broker", {})
puts = broker.get("object_puts", 0)
print(int(broker.get("object_bytes_written", 0) / puts) if puts else 8 << 20)
PY
}

if [ "$SOAK_ONLY" != 1 ]; then
# --- StreamHouse, embedded default -----------------------------------------
start_server embedded
RSS_FILE="$OUT/embedded-rss.txt"
sample_rss "$SERVER_PID" "$RSS_FILE" &
bench_broker streamhouse-embedded
stop_server

# --- StreamHouse, PostgreSQL + S3 ------------------------------------------
start_server postgres-s3 --metadata "$PG_URL" --object-store "s3://streamhouse-bench/sh"
sample_rss "$SERVER_PID" "$OUT/postgres-s3-rss.txt" &
bench_broker streamhouse-postgres-s3
stop_server

# --- An idle agent makes no object requests ---------------------------------
# One agent with a second's job interval writes a little, compacts it, then
# sits idle for IDLE_SECONDS while its jobs keep running; the object-store
# request counters must not move.
object_requests() {
    curl -sf "$1" | awk '/^streamhouse_object_store_requests_total/ { n += $2 } END { print n + 0 }'
}
IDLE_SECONDS="${BENCH_IDLE_SECONDS:-60}"
IDLE_PG_URL=$(sh_create_database streamhouse_bench_idle)
start_server idle --metadata "$IDLE_PG_URL" --object-store "s3://streamhouse-bench/idle" \
    --job-interval-ms 1000 --compaction-span-ms 1000
"$BENCH" produce --brokers "$KAFKA" --topic bench-idle --partitions "$PARTITIONS" \
    --record-size "$RECORD_SIZE" --records 10000 --label idle >/dev/null
sleep 10
idle_before=$(object_requests "$METRICS")
sh_log "idle agent: counting object requests for $IDLE_SECONDS s"
sleep "$IDLE_SECONDS"
idle_after=$(object_requests "$METRICS")
echo "{\"seconds\": $IDLE_SECONDS, \"job_interval_ms\": 1000, \"object_requests\": $((idle_after - idle_before))}" \
    >"$OUT/idle.json"
stop_server

# --- The raw S3 server, at the object size StreamHouse wrote ----------------
size=$(object_size streamhouse-postgres-s3)
sh_log "raw S3: PUT and GET of $size-byte objects, 4 at a time"
"$BENCH" raw-s3 --bucket streamhouse-bench --prefix raw --object-size "$size" \
    --objects 96 --concurrency 4 >"$OUT/raw-s3.json"

# --- Tansu, when installed ---------------------------------------------------
if command -v tansu >/dev/null 2>&1; then
    tansu_port=$(sh_free_port)
    sh_log "tansu on 127.0.0.1:$tansu_port with S3 storage"
    AWS_ENDPOINT="$AWS_ENDPOINT_URL" tansu broker --listener-url "tcp://127.0.0.1:$tansu_port" \
        --advertised-listener-url "tcp://127.0.0.1:$tansu_port" \
        --storage-engine "s3://streamhouse-bench/tansu" >"$WORK/tansu.log" 2>&1 &
    AGENT_PIDS+=("$!")
    KAFKA="127.0.0.1:$tansu_port"
    METRICS=""
    sleep 3
    if bench_broker tansu-s3; then
        :
    else
        sh_log "tansu run failed; see $WORK/tansu.log"
    fi
    stop_server
else
    sh_log "tansu is not installed; skipping that baseline (cargo install --locked tansu --features postgres,dynostore)"
fi

fi

# --- Memory under a sustained load ------------------------------------------
if [ "$SOAK_SECONDS" -gt 0 ]; then
    start_server soak --cache-bytes 268435456 --gc-grace-ms 60000
    sample_rss "$SERVER_PID" "$OUT/soak-rss.txt" &
    # Two minutes of retention, so storage reaches a steady state: segment
    # rows and objects must level off while the load goes on.
    soak_http=${METRICS%/metrics}
    curl -sf -X POST "$soak_http/api/v1/topics" -H 'content-type: application/json' \
        -d "{\"name\":\"bench-soak\",\"partitions\":$PARTITIONS,\"config\":{\"retention.ms\":120000}}" \
        >/dev/null
    sample_storage "$SERVER_PID" "$METRICS" "$WORK/soak" "$OUT/soak-storage.txt" &
    sh_log "sustained produce + consume for $SOAK_SECONDS s (retention.ms=120000, GC grace 60 s)"
    "$BENCH" e2e --brokers "$KAFKA" --topic bench-soak --partitions "$PARTITIONS" \
        --record-size "$RECORD_SIZE" --rate "${BENCH_SOAK_RATE:-20000}" --seconds "$SOAK_SECONDS" \
        --label soak >"$OUT/soak-e2e.json"
    stop_server
fi

if [ "$SOAK_ONLY" = 1 ]; then
    awk '$1 > peak { peak = $1 } END { printf "soak: resident set peaked at %.0f MiB\n", peak / 1024 }' \
        "$OUT/soak-rss.txt"
else
    python3 "$REPO_ROOT/scripts/lib/bench_table.py" "$OUT"
fi
