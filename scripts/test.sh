#!/usr/bin/env bash
# StreamHouse's one test command. On a fresh machine it installs and starts
# the real backing services (PostgreSQL, SeaweedFS S3), runs the Rust test
# suites against them, then proves the full produce/consume pipeline.
#
#   scripts/test.sh                        everything
#   scripts/test.sh -p streamhouse-storage one crate (any `cargo test` arguments work)
#   scripts/test.sh -- --nocapture         arguments for the test binaries
#
# Environment:
#   STREAMHOUSE_TEST_DATABASE      database to recreate (default streamhouse_test);
#                                  give concurrent runs different names
#   STREAMHOUSE_TEST_SKIP_PIPELINE=1  skip scripts/prove_full_pipeline.sh
#   plus what scripts/lib/services.sh reads (PGHOST, PGPORT, ...)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT=$(pwd)

# shellcheck source-path=SCRIPTDIR source=lib/services.sh
source "$REPO_ROOT/scripts/lib/services.sh"

if ! command -v cargo >/dev/null 2>&1; then
    {
        echo
        echo "!!! ERROR: cargo is not installed, so StreamHouse cannot be built or tested."
        echo "!!! Install the Rust toolchain with rustup, then re-run scripts/test.sh:"
        echo "!!!     curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh"
        echo "!!!     source \"\$HOME/.cargo/env\""
        echo "!!! (see https://rustup.rs; the workspace's rust-version is in Cargo.toml)"
        echo
    } >&2
    exit 1
fi

# ---------------------------------------------------------------------------
# Step bookkeeping for the closing summary
# ---------------------------------------------------------------------------

STEP_NAMES=()
STEP_SKIPPED=""
STEP_RESULTS=()
STEP_SECONDS=()
CURRENT_STEP=""
CURRENT_STEP_START=0
TEST_TALLY=""
RUN_START=$SECONDS

step_begin() {
    CURRENT_STEP="$1"
    CURRENT_STEP_START=$SECONDS
    STEP_SKIPPED=""
    echo >&2
    sh_log "[$CURRENT_STEP]"
}

step_end() {
    STEP_NAMES+=("$CURRENT_STEP")
    STEP_RESULTS+=("$1")
    STEP_SECONDS+=($((SECONDS - CURRENT_STEP_START)))
    CURRENT_STEP=""
}

any_failed() {
    local result
    for result in "${STEP_RESULTS[@]}"; do
        [ "$result" != FAIL ] || return 0
    done
    return 1
}

print_summary() {
    # A step still open here was cut short by an error or a signal.
    if [ -n "$CURRENT_STEP" ]; then
        step_end FAIL
    fi
    local i
    echo
    echo "==================== StreamHouse test summary ===================="
    for i in "${!STEP_NAMES[@]}"; do
        printf '  %-5s %-28s %5ss\n' "${STEP_RESULTS[$i]}" "${STEP_NAMES[$i]}" "${STEP_SECONDS[$i]}"
    done
    printf '  total %-28s %5ss\n' "" "$((SECONDS - RUN_START))"
    if [ "${SH_EXIT_STATUS:-0}" -ne 0 ] || any_failed; then
        echo "  RESULT: FAILED"
    else
        echo "  RESULT: OK"
    fi
    echo "=================================================================="
    if [ -n "$TEST_TALLY" ]; then
        echo "$TEST_TALLY"
    fi
}

sh_at_exit print_summary
sh_install_cleanup_trap

# Adds up libtest's "test result:" lines into one closing line.
tally_cargo_output() {
    sed -E 's/\x1b\[[0-9;]*m//g' "$1" | awk '
        /^test result: / {
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^passed;?$/) passed += $(i - 1)
                if ($i ~ /^failed;?$/) failed += $(i - 1)
                if ($i ~ /^ignored;?$/) ignored += $(i - 1)
            }
            seen = 1
        }
        END {
            if (seen) printf "tests: %d passed, %d failed, %d skipped\n", passed, failed, ignored
        }'
}

# ---------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------

start_postgres() {
    sh_ensure_postgres
    local database="${STREAMHOUSE_TEST_DATABASE:-streamhouse_test}" url
    url=$(sh_create_database "$database")
    export STREAMHOUSE_TEST_POSTGRES_URL="$url"
}

start_s3() {
    sh_ensure_weed
    local workdir
    workdir=$(mktemp -d "${TMPDIR:-/tmp}/streamhouse-test.XXXXXX")
    sh_register_cleanup_path "$workdir"
    sh_start_s3 "$workdir"
    sh_create_bucket streamhouse-test
    export STREAMHOUSE_TEST_S3_URL=s3://streamhouse-test
}

cargo_test_step() {
    # `--workspace` makes cargo ignore `-p`, and `--all-targets` cannot be
    # combined with target selections such as `--doc`; the caller's choice wins.
    local log rc=0
    local -a scope=(--workspace) targets=(--all-targets)
    local arg
    for arg in "$@"; do
        case "$arg" in
            --) break ;;
            -p | -p?* | --package | --package=*) scope=() ;;
            --lib | --bins | --bin | --bin=* | --examples | --example | --example=* | \
                --tests | --test | --test=* | --benches | --bench | --bench=* | --doc | --all-targets)
                targets=()
                ;;
        esac
    done
    log=$(mktemp "${TMPDIR:-/tmp}/streamhouse-cargo-test.XXXXXX")
    sh_register_cleanup_path "$log"
    if [ -t 1 ]; then
        export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-always}"
    fi
    sh_log "cargo test ${scope[*]} ${targets[*]} $*"
    cargo test "${scope[@]}" "${targets[@]}" "$@" 2>&1 | tee "$log" || rc=$?
    TEST_TALLY=$(tally_cargo_output "$log" || true)
    return "$rc"
}

prove_full_pipeline() {
    local script="$REPO_ROOT/scripts/prove_full_pipeline.sh"
    if [ ! -f "$script" ]; then
        {
            echo
            echo "!!! SKIPPED: $script does not exist yet, so the full pipeline is NOT proven by this run"
            echo
        } >&2
        STEP_SKIPPED=1
        return 0
    fi
    STREAMHOUSE_METADATA="$STREAMHOUSE_TEST_POSTGRES_URL" \
        STREAMHOUSE_OBJECT_STORE="$STREAMHOUSE_TEST_S3_URL" \
        bash "$script"
}

# Kafka client compatibility suites (kcat, confluent-kafka, kafka-python,
# aiokafka and KafkaJS in tests/clients) on the embedded default and on PostgreSQL + S3; the runner
# sets up its clients and returns non-zero on failure.
run_client_suites() {
    bash "$REPO_ROOT/scripts/lib/client_suites.sh"
}

# Runs "$@" as one reported step that may fail without aborting the run. A
# command that sets STEP_SKIPPED=1 reports the step as skipped.
run_test_step() {
    local name="$1" rc=0
    shift
    step_begin "$name"
    "$@" || rc=$?
    if [ "$rc" -ne 0 ]; then
        sh_log "$name FAILED (exit status $rc)"
        step_end FAIL
    elif [ -n "$STEP_SKIPPED" ]; then
        step_end SKIP
    else
        step_end PASS
    fi
}

# Service setup runs in this shell (it exports the connection settings) and
# any failure in it ends the run.
step_begin "PostgreSQL"
start_postgres
step_end PASS

step_begin "S3 (SeaweedFS)"
start_s3
step_end PASS

export STREAMHOUSE_TEST_REQUIRE_SERVERS=1
sh_log "test environment:"
for var in STREAMHOUSE_TEST_POSTGRES_URL STREAMHOUSE_TEST_S3_URL STREAMHOUSE_TEST_REQUIRE_SERVERS \
    AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_REGION AWS_ALLOW_HTTP; do
    printf '      %s=%s\n' "$var" "$(_sh_redact_url "${!var}")" >&2
done

# Some Rust tests drive kcat as a real Kafka client (streamctl's group
# commands); install it before they run rather than let them skip.
step_begin "kcat"
sh_ensure_kcat
step_end PASS

run_test_step "cargo test" cargo_test_step "$@"

if [ "${STREAMHOUSE_TEST_SKIP_PIPELINE:-0}" = 1 ]; then
    step_begin "full pipeline proof"
    sh_log "skipped: STREAMHOUSE_TEST_SKIP_PIPELINE=1"
    step_end SKIP
else
    run_test_step "full pipeline proof" prove_full_pipeline
fi

run_test_step "Kafka client suites" run_client_suites

if any_failed; then
    exit 1
fi
