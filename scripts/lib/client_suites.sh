#!/usr/bin/env bash
# Kafka client compatibility suites: tests/clients (pytest) drives a real
# `streamhouse serve` with real clients — kcat (Debian's librdkafka),
# confluent-kafka (current librdkafka), kafka-python, aiokafka and KafkaJS
# (with its Snappy, LZ4 and ZSTD codec packages) — once on the
# embedded default (SQLite + a local directory) and once on PostgreSQL + S3.
# Tests marked `cluster` (several agents sharing PostgreSQL + S3, and
# backend outages: test_cluster.py, test_outages.py) run only in the second
# pass; the embedded pass deselects them and says so.
#
#   scripts/lib/client_suites.sh [PYTEST ARGS...]    e.g. -k kcat -x
#
# scripts/test.sh runs it after starting PostgreSQL and S3. It sets up what
# it needs: a virtualenv in target/client-venv with the pinned clients of
# tests/clients/requirements.txt (rebuilt only when that file or python3
# changes), kcat, KafkaJS and its codecs (npm ci of tests/clients/kafkajs),
# and a debug build of the server.
#
# Environment:
#   STREAMHOUSE_TEST_POSTGRES_URL     postgres://… server for the second pass; each
#                                     run creates and drops its own database there
#   STREAMHOUSE_TEST_S3_URL           s3://BUCKET[/PREFIX]; each run writes under a
#                                     fresh prefix (endpoint and keys from AWS_*)
#   STREAMHOUSE_TEST_REQUIRE_SERVERS=1  fail, rather than skip, the second pass
#                                     when those are not set
#   STREAMHOUSE_CLIENT_PASSES         passes to run (default "embedded postgres-s3")
#   STREAMHOUSE_CLIENT_PASS_TIMEOUT   seconds one pass may take (default 900)
set -euo pipefail

_CS_REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=services.sh
source "$_CS_REPO_ROOT/scripts/lib/services.sh"

_CS_SUITE_DIR="$_CS_REPO_ROOT/tests/clients"
_CS_VENV="$_CS_REPO_ROOT/target/client-venv"
_CS_DATABASE=""
_CS_ADMIN_URL=""
_CS_WORKDIR=""
_CS_PASS_SKIPPED=""
_CS_PASS_NOTE=""

_cs_banner() {
    {
        echo
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        printf '!!! %s\n' "$@"
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        echo
    } >&2
}

# What the virtualenv was built from; a change rebuilds it.
_cs_venv_stamp() {
    {
        sha256sum "$_CS_SUITE_DIR/requirements.txt"
        command -v python3
        python3 -c 'import sys; print(sys.version)'
    } | sha256sum | cut -d' ' -f1
}

_cs_ensure_venv() {
    command -v python3 >/dev/null 2>&1 || _sh_die "python3 is needed for the Kafka client suites"
    local stamp
    stamp=$(_cs_venv_stamp)
    if [ -x "$_CS_VENV/bin/python" ] && [ "$(cat "$_CS_VENV/.requirements-stamp" 2>/dev/null)" = "$stamp" ] &&
        "$_CS_VENV/bin/python" -c 'import aiokafka, confluent_kafka, cryptography, kafka, pytest' 2>/dev/null; then
        sh_log "reusing the client virtualenv $_CS_VENV"
        return 0
    fi
    sh_log "creating the client virtualenv $_CS_VENV from tests/clients/requirements.txt"
    rm -rf "$_CS_VENV"
    mkdir -p "$(dirname "$_CS_VENV")"
    if ! python3 -m venv "$_CS_VENV" >&2; then
        # Debian's python3 ships venv (ensurepip) separately.
        _sh_apt_install python3-venv
        rm -rf "$_CS_VENV"
        python3 -m venv "$_CS_VENV" >&2 || _sh_die "could not create a virtualenv at $_CS_VENV"
    fi
    "$_CS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
        -r "$_CS_SUITE_DIR/requirements.txt" >&2 ||
        _sh_die "pip could not install tests/clients/requirements.txt into $_CS_VENV (see above)"
    printf '%s\n' "$stamp" >"$_CS_VENV/.requirements-stamp"
}

_cs_build_server() {
    command -v cargo >/dev/null 2>&1 || _sh_die "cargo is needed to build streamhouse"
    # The same target selection as `cargo test --workspace --all-targets`,
    # so that right after the Rust tests nothing is compiled again.
    sh_log "cargo build --workspace --all-targets"
    (cd "$_CS_REPO_ROOT" && cargo build --workspace --all-targets) ||
        _sh_die "cargo build failed (see above)"
    local target_dir="${CARGO_TARGET_DIR:-target}"
    case "$target_dir" in
        /*) ;;
        *) target_dir="$_CS_REPO_ROOT/$target_dir" ;;
    esac
    STREAMHOUSE_CLIENTS_BIN="$target_dir/debug/streamhouse"
    [ -x "$STREAMHOUSE_CLIENTS_BIN" ] || _sh_die "cargo built no binary at $STREAMHOUSE_CLIENTS_BIN"
}

# The maintenance database of the server STREAMHOUSE_TEST_POSTGRES_URL
# points at, with the same credentials and options.
_cs_admin_url() {
    python3 - "$1" <<'PY'
import sys
from urllib.parse import urlsplit, urlunsplit

url = urlsplit(sys.argv[1])
print(urlunsplit(url._replace(path="/postgres")))
PY
}

_cs_database_url() {
    python3 - "$1" "$2" <<'PY'
import sys
from urllib.parse import urlsplit, urlunsplit

url = urlsplit(sys.argv[1])
print(urlunsplit(url._replace(path="/" + sys.argv[2])))
PY
}

_cs_psql() {
    psql -X -q -w -v ON_ERROR_STOP=1 -d "$_CS_ADMIN_URL" "$@"
}

_cs_drop_database() {
    [ -n "$_CS_DATABASE" ] || return 0
    _cs_psql -c "DROP DATABASE IF EXISTS $_CS_DATABASE WITH (FORCE)" >/dev/null 2>&1 ||
        sh_log "could not drop PostgreSQL database $_CS_DATABASE"
    _CS_DATABASE=""
}

_cs_cleanup() {
    _cs_drop_database
    if [ -n "$_CS_WORKDIR" ] && [ -d "$_CS_WORKDIR" ]; then
        rm -rf "$_CS_WORKDIR"
    fi
}

# Runs the suite once; NAME labels the pass, the rest goes to pytest.
_cs_pytest() {
    local name="$1" rc=0 basetemp="$_CS_WORKDIR/$1"
    shift
    sh_log "Kafka client suites [$name]: pytest tests/clients $*"
    (
        cd "$_CS_SUITE_DIR" &&
            PYTHONDONTWRITEBYTECODE=1 STREAMHOUSE_CLIENTS_BIN="$STREAMHOUSE_CLIENTS_BIN" \
                timeout --kill-after=15 "${STREAMHOUSE_CLIENT_PASS_TIMEOUT:-900}" \
                "$_CS_VENV/bin/python" -m pytest -p no:cacheprovider --basetemp="$basetemp" "$@"
    ) || rc=$?
    if [ "$rc" -eq 5 ]; then
        # pytest's "no tests collected": every test the arguments chose was
        # deselected in this pass. Nothing ran, so nothing passed either.
        _cs_banner "SKIPPED: Kafka client suites [$name]: no test selected in this pass ($*)"
        _CS_PASS_SKIPPED=1
        _CS_PASS_NOTE="no test selected"
        return 0
    fi
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        sh_log "Kafka client suites [$name]: pytest did not finish within ${STREAMHOUSE_CLIENT_PASS_TIMEOUT:-900} s"
    fi
    if [ "$rc" -ne 0 ]; then
        # Server logs and data directories of the failed pass stay for a look.
        local kept
        kept=$(mktemp -d "${TMPDIR:-/tmp}/streamhouse-clients-$name.XXXXXX")
        cp -a "$basetemp/." "$kept/" 2>/dev/null || true
        sh_log "Kafka client suites [$name] FAILED; server logs and data kept in $kept"
    fi
    return "$rc"
}

_cs_run_embedded() {
    # conftest.py deselects the `cluster` tests on these backends.
    sh_log "Kafka client suites [embedded]: tests marked 'cluster' are deselected" \
        "(several agents need a shared PostgreSQL + S3; the postgres-s3 pass runs them)"
    _CS_PASS_NOTE="cluster tests deselected"
    STREAMHOUSE_CLIENTS_METADATA="" STREAMHOUSE_CLIENTS_OBJECT_STORE="" \
        _cs_pytest embedded "$@"
}

_cs_run_postgres_s3() {
    local missing=()
    [ -n "${STREAMHOUSE_TEST_POSTGRES_URL:-}" ] || missing+=(STREAMHOUSE_TEST_POSTGRES_URL)
    [ -n "${STREAMHOUSE_TEST_S3_URL:-}" ] || missing+=(STREAMHOUSE_TEST_S3_URL)
    if [ "${#missing[@]}" -gt 0 ]; then
        if [ "${STREAMHOUSE_TEST_REQUIRE_SERVERS:-0}" = 1 ]; then
            _cs_banner "FAILED: Kafka client suites on PostgreSQL + S3: ${missing[*]} not set" \
                "but STREAMHOUSE_TEST_REQUIRE_SERVERS=1 (scripts/test.sh sets both)"
            return 1
        fi
        _cs_banner "SKIPPED: Kafka client suites on PostgreSQL + S3 (${missing[*]} not set);" \
            "only the embedded default was tested. scripts/test.sh runs both."
        _CS_PASS_SKIPPED=1
        return 0
    fi
    command -v psql >/dev/null 2>&1 || _sh_die "psql is needed to create the test database"

    _CS_ADMIN_URL=$(_cs_admin_url "$STREAMHOUSE_TEST_POSTGRES_URL")
    local suffix rc=0 err
    suffix="$(date +%Y%m%d%H%M%S)_$$_$RANDOM"
    _CS_DATABASE="streamhouse_clients_$suffix"
    err=$(_cs_psql -c "CREATE DATABASE $_CS_DATABASE" 2>&1) || {
        _CS_DATABASE=""
        _sh_die "could not create PostgreSQL database for the client suites on $(_sh_redact_url "$_CS_ADMIN_URL"):" "$err"
    }
    local metadata object_store
    metadata=$(_cs_database_url "$STREAMHOUSE_TEST_POSTGRES_URL" "$_CS_DATABASE")
    object_store="${STREAMHOUSE_TEST_S3_URL%/}/client-suites-${suffix//_/-}"
    sh_log "Kafka client suites on $(_sh_redact_url "$metadata") + $object_store"
    STREAMHOUSE_CLIENTS_METADATA="$metadata" STREAMHOUSE_CLIENTS_OBJECT_STORE="$object_store" \
        _cs_pytest postgres-s3 "$@" || rc=$?
    _cs_drop_database
    return "$rc"
}

# Runs every pass; returns non-zero when any failed.
sh_run_client_suites() {
    local started=$SECONDS
    _cs_ensure_venv
    sh_ensure_kcat
    sh_ensure_kafkajs
    _cs_build_server
    _CS_WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/streamhouse-clients.XXXXXX")

    local pass rc failed=() results=() selected=0
    for pass in ${STREAMHOUSE_CLIENT_PASSES:-embedded postgres-s3}; do
        local pass_started=$SECONDS outcome=PASS
        rc=0
        _CS_PASS_SKIPPED=""
        _CS_PASS_NOTE=""
        case "$pass" in
            embedded) _cs_run_embedded "$@" || rc=$? ;;
            postgres-s3) _cs_run_postgres_s3 "$@" || rc=$? ;;
            *) _sh_die "unknown pass '$pass' in STREAMHOUSE_CLIENT_PASSES (embedded, postgres-s3)" ;;
        esac
        if [ "$rc" -ne 0 ]; then
            failed+=("$pass")
            outcome=FAIL
        elif [ -n "$_CS_PASS_SKIPPED" ]; then
            outcome=SKIP
        fi
        [ "$_CS_PASS_NOTE" = "no test selected" ] || selected=1
        results+=("$(printf '  %-5s %-12s %4ss%s' "$outcome" "$pass" $((SECONDS - pass_started)) \
            "${_CS_PASS_NOTE:+  ($_CS_PASS_NOTE)}")")
    done
    {
        echo
        echo "Kafka client suites ($((SECONDS - started)) s in all):"
        printf '%s\n' "${results[@]}"
    } >&2
    if [ "${#failed[@]}" -gt 0 ]; then
        _cs_banner "Kafka client suites FAILED: ${failed[*]}"
        return 1
    fi
    if [ "$selected" -eq 0 ]; then
        _cs_banner "Kafka client suites FAILED: no pass selected any test ($*)"
        return 1
    fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    sh_at_exit _cs_cleanup
    sh_install_cleanup_trap
    sh_run_client_suites "$@"
fi
