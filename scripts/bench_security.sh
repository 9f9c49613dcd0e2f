#!/usr/bin/env bash
# What security costs: produce (acks=all) and consume from the start with
# tools/streamhouse-bench (librdkafka) against one binary on the same
# PostgreSQL and S3 server, once over PLAINTEXT with no authentication or
# authorizer, once over SASL_SSL (TLS 1.3, SCRAM-SHA-512) with the ACL
# authorizer on and the client's user granted its topic and group by ACLs
# (not a super user, so every request is checked). The two alternate for
# BENCH_ROUNDS rounds so that drift of the shared machine falls on both.
# Also the cost of a login: SCRAM-SHA-512 logins per second over SASL_SSL.
#
#   scripts/bench_security.sh [BINARY]     (default: a release build)
#   BENCH_RECORDS=200000 BENCH_ROUNDS=2 scripts/bench_security.sh
#
# Prints one line per run, the medians and the SASL_SSL/PLAINTEXT ratios;
# the JSON reports and the agents' logs stay in target/bench-security/.
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
OUT="$REPO_ROOT/target/bench-security"
mkdir -p "$OUT"
rm -f "$OUT"/*.json

if [ $# -ge 1 ]; then
    STREAMHOUSE=$(realpath "$1")
    STREAMCTL="$(dirname "$STREAMHOUSE")/streamctl"
else
    cargo build --quiet --release --bin streamhouse --bin streamctl
    STREAMHOUSE="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/streamhouse"
    STREAMCTL="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/streamctl"
fi
(cd tools/streamhouse-bench && cargo build --quiet --release)
BENCH="$REPO_ROOT/tools/streamhouse-bench/target/release/streamhouse-bench"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/streamhouse-bench-security.XXXXXX")
sh_register_cleanup_path "$WORK"
sh_ensure_postgres
sh_ensure_weed
sh_start_s3 "$WORK/s3"
sh_create_bucket streamhouse-bench-security
sh_at_exit stop_agents

# A throwaway CA and a server certificate for 127.0.0.1.
PKI="$WORK/pki"
mkdir -p "$PKI"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=bench-ca" -keyout "$PKI/ca.key" -out "$PKI/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$PKI/server.key" -out "$PKI/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$PKI/ext"
openssl x509 -req -in "$PKI/server.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -CAcreateserial -days 2 -extfile "$PKI/ext" -out "$PKI/server.crt" 2>/dev/null

ADMIN_PASSWORD="bench-admin-$RANDOM$RANDOM"
BENCH_PASSWORD="bench-user-$RANDOM$RANDOM"
SASL=(--client-config security.protocol=SASL_SSL --client-config sasl.mechanisms=SCRAM-SHA-512
    --client-config sasl.username=bench --client-config "sasl.password=$BENCH_PASSWORD"
    --client-config "ssl.ca.location=$PKI/ca.crt")

run() {
    local label="$1" round="$2" database kafka http
    database=$(sh_create_database "streamhouse_bench_security_${label,,}_$round")
    if [ "$label" = PLAINTEXT ]; then
        start_agent "$label-$round" --metadata "$database" \
            --object-store "s3://streamhouse-bench-security/$label-$round"
        kafka=${AGENT_KAFKA[-1]}
        "$BENCH" produce --brokers "$kafka" --topic bench --partitions "$PARTITIONS" \
            --record-size "$RECORD_SIZE" --records "$RECORDS" --label "$label" --verify \
            >"$OUT/$label-$round-produce.json"
        "$BENCH" consume --brokers "$kafka" --topic bench --partitions "$PARTITIONS" \
            --label "$label" >"$OUT/$label-$round-consume.json"
    else
        local sasl_port
        sasl_port=$(sh_free_port)
        printf '%s\n' "$ADMIN_PASSWORD" | "$STREAMHOUSE" user set admin --password-stdin \
            --metadata "$database" >/dev/null
        printf '%s\n' "$BENCH_PASSWORD" | "$STREAMHOUSE" user set bench --password-stdin \
            --metadata "$database" >/dev/null
        start_agent "$label-$round" --metadata "$database" \
            --object-store "s3://streamhouse-bench-security/$label-$round" \
            --kafka-listen "SASL_SSL://127.0.0.1:$sasl_port" \
            --tls-cert "$PKI/server.crt" --tls-key "$PKI/server.key" \
            --authorizer acl --super-users User:admin
        http=${AGENT_METRICS[-1]%/metrics}
        for operation in Create Write Read Describe; do
            STREAMCTL_USER=admin STREAMCTL_PASSWORD="$ADMIN_PASSWORD" "$STREAMCTL" --server "$http" \
                acl add --allow-principal User:bench --operation "$operation" --topic bench >/dev/null
        done
        STREAMCTL_USER=admin STREAMCTL_PASSWORD="$ADMIN_PASSWORD" "$STREAMCTL" --server "$http" \
            acl add --allow-principal User:bench --operation Read --group '*' >/dev/null
        kafka="127.0.0.1:$sasl_port"
        "$BENCH" produce --brokers "$kafka" --topic bench --partitions "$PARTITIONS" \
            --record-size "$RECORD_SIZE" --records "$RECORDS" --label "$label" --verify "${SASL[@]}" \
            >"$OUT/$label-$round-produce.json"
        "$BENCH" consume --brokers "$kafka" --topic bench --partitions "$PARTITIONS" \
            --label "$label" "${SASL[@]}" >"$OUT/$label-$round-consume.json"
        if [ "$round" = 1 ]; then
            logins "$kafka" >"$OUT/logins.json"
        fi
    fi
    stop_agents
    cp "$WORK/$label-$round.log" "$OUT/"
}

# SCRAM-SHA-512 logins over TLS from 2 client processes for 10 s: logins
# the agent counted (streamhouse_kafka_authentications_total) per second,
# and per second of the agent's CPU (utime + stime), i.e. per core.
logins() {
    "$REPO_ROOT/target/client-venv/bin/python" - "$1" "$PKI/ca.crt" "$BENCH_PASSWORD" \
        "${AGENT_PIDS[-1]}" "${AGENT_METRICS[-1]}" <<'PY'
import json, os, re, sys, time, urllib.request
from concurrent.futures import ProcessPoolExecutor
from confluent_kafka.admin import AdminClient

bootstrap, ca, password, pid, metrics_url = sys.argv[1:6]
SECONDS = 10

def loop(_):
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        admin = AdminClient({"bootstrap.servers": bootstrap, "security.protocol": "SASL_SSL",
                             "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "bench",
                             "sasl.password": password, "ssl.ca.location": ca})
        admin.list_topics(timeout=10)

def cpu_seconds():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def logins():
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    return sum(float(v) for v in re.findall(
        r'^streamhouse_kafka_authentications_total\{[^}]*result="success"[^}]*\} (\S+)$',
        text, re.M))

cpu, count, started = cpu_seconds(), logins(), time.monotonic()
with ProcessPoolExecutor(2) as pool:
    list(pool.map(loop, range(2)))
elapsed = time.monotonic() - started
cpu, count = cpu_seconds() - cpu, logins() - count
print(json.dumps({"logins": count, "seconds": elapsed, "agent_cpu_seconds": cpu,
                  "logins_per_s": count / elapsed, "logins_per_cpu_second": count / cpu}))
PY
}

for round in $(seq 1 "$ROUNDS"); do
    run PLAINTEXT "$round"
    run SASL_SSL "$round"
done

python3 scripts/lib/bench_pair.py "$OUT" "$ROUNDS" PLAINTEXT SASL_SSL
python3 - "$OUT/logins.json" <<'PY'
import json, sys
logins = json.load(open(sys.argv[1]))
print(f"SCRAM-SHA-512 logins over TLS (2 client processes, 10 s): {logins['logins_per_s']:.0f}/s, "
      f"{logins['logins_per_cpu_second']:.0f} per second of agent CPU")
PY
