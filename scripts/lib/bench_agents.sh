# shellcheck shell=bash
# Starting and stopping `streamhouse serve` processes for the benchmark
# scripts. Expects STREAMHOUSE (the binary) and WORK (a scratch directory)
# to be set and scripts/lib/services.sh to be sourced.
#
#   start_agent NAME ARGS...   starts an agent on free loopback ports and
#                              waits for /ready; appends its pid, Kafka
#                              address and /metrics URL to AGENT_PIDS,
#                              AGENT_KAFKA and AGENT_METRICS
#   stop_agents                SIGTERM to every agent, then waits for them
#   joined ARRAY_NAME          the array's elements joined with commas

AGENT_PIDS=()
AGENT_KAFKA=()
AGENT_METRICS=()

start_agent() {
    local name="$1"
    shift
    local kafka_port http_port pid
    kafka_port=$(sh_free_port)
    http_port=$(sh_free_port)
    "$STREAMHOUSE" serve --data-dir "$WORK/$name" --agent-id "$name" \
        --kafka-listen "127.0.0.1:$kafka_port" --http-listen "127.0.0.1:$http_port" \
        "$@" >"$WORK/$name.log" 2>&1 &
    pid=$!
    AGENT_PIDS+=("$pid")
    AGENT_KAFKA+=("127.0.0.1:$kafka_port")
    AGENT_METRICS+=("http://127.0.0.1:$http_port/metrics")
    for _ in $(seq 1 100); do
        if curl -sf "http://127.0.0.1:$http_port/ready" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    tail -20 "$WORK/$name.log" >&2
    echo "streamhouse ($name) did not become ready" >&2
    exit 1
}

stop_agents() {
    local pid
    for pid in "${AGENT_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${AGENT_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    AGENT_PIDS=()
    AGENT_KAFKA=()
    AGENT_METRICS=()
}

joined() {
    local -n items="$1"
    local IFS=,
    echo "${items[*]}"
}
