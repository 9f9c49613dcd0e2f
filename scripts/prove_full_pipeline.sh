#!/usr/bin/env bash
# Proves the storage pipeline on PostgreSQL + S3: writes records through the
# library into a two-partition topic, reads them all back and compares them
# byte for byte, then shows the segment rows in PostgreSQL (psql) and the
# objects in the bucket.
#
# Targets: STREAMHOUSE_METADATA (postgres://…) and STREAMHOUSE_OBJECT_STORE
# (s3://BUCKET, endpoint and credentials from AWS_ENDPOINT_URL,
# AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION). When they are unset
# the script starts PostgreSQL and a SeaweedFS S3 server itself.
#
#   scripts/prove_full_pipeline.sh [RECORDS]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source-path=SCRIPTDIR source=lib/services.sh
source scripts/lib/services.sh
sh_install_cleanup_trap

records="${1:-10000}"

if [ -z "${STREAMHOUSE_METADATA:-}" ]; then
    sh_ensure_postgres
    STREAMHOUSE_METADATA=$(sh_create_database streamhouse_proof)
    export STREAMHOUSE_METADATA
fi
if [ -z "${STREAMHOUSE_OBJECT_STORE:-}" ]; then
    sh_ensure_weed
    workdir=$(mktemp -d "${TMPDIR:-/tmp}/streamhouse-proof.XXXXXX")
    sh_register_cleanup_path "$workdir"
    sh_start_s3 "$workdir"
    sh_create_bucket streamhouse-proof
    export STREAMHOUSE_OBJECT_STORE=s3://streamhouse-proof
fi
case "$STREAMHOUSE_METADATA" in
    postgres://* | postgresql://*) ;;
    *)
        echo "STREAMHOUSE_METADATA must be a postgres:// URL for this proof" >&2
        exit 2
        ;;
esac
case "$STREAMHOUSE_OBJECT_STORE" in
    s3://*) ;;
    *)
        echo "STREAMHOUSE_OBJECT_STORE must be an s3:// URL for this proof" >&2
        exit 2
        ;;
esac

sh_log "writing and reading $records records through the library"
output=$(mktemp "${TMPDIR:-/tmp}/streamhouse-proof-output.XXXXXX")
sh_register_cleanup_path "$output"
# Built with the same target selection as the test suite, so that right
# after `cargo test --workspace --all-targets` nothing is compiled again.
cargo build --quiet --workspace --all-targets
"${CARGO_TARGET_DIR:-target}/debug/examples/pipeline" "$records" | tee "$output"
topic=$(sed -n 's/^TOPIC=//p' "$output")
if [ -z "$topic" ]; then
    echo "the pipeline run did not report its topic" >&2
    exit 1
fi

sh_log "segment rows in PostgreSQL for topic $topic"
psql "$STREAMHOUSE_METADATA" -v ON_ERROR_STOP=1 -v topic="$topic" <<'SQL'
\pset pager off
SELECT id, topic, partition_id, base_offset, end_offset, record_count, size_bytes,
       s3_bucket, s3_key, byte_offset, byte_length, min_timestamp, max_timestamp,
       to_timestamp(created_at / 1000.0) AS created_at
  FROM segments WHERE topic = :'topic' ORDER BY partition_id, base_offset LIMIT 20;
SELECT partition_id, count(*) AS segments, sum(record_count) AS records,
       min(base_offset) AS first_offset, max(end_offset) AS last_offset,
       count(DISTINCT s3_key) AS objects
  FROM segments WHERE topic = :'topic' GROUP BY partition_id ORDER BY partition_id;
SELECT topic, partition_id, high_watermark, log_start_offset
  FROM partitions WHERE topic = :'topic' ORDER BY partition_id;
SQL

bucket="${STREAMHOUSE_OBJECT_STORE#s3://}"
bucket="${bucket%%/*}"
sh_log "objects in bucket $bucket (S3 ListObjectsV2, read directly from the server)"
first_key=$(psql "$STREAMHOUSE_METADATA" -Atc \
    "SELECT s3_key FROM segments WHERE topic = '$topic' ORDER BY id LIMIT 1")
prefix="${first_key%/*}/"
if listing=$(curl -sf "${AWS_ENDPOINT_URL:-}/$bucket?list-type=2&prefix=$prefix&max-keys=1000"); then
    keys=$(grep -o '<Key>[^<]*</Key>' <<<"$listing" | sed 's/<[^>]*>//g' || true)
    echo "$(wc -l <<<"$keys") objects under $bucket/$prefix; first ones:"
    head -5 <<<"$keys" | sed 's/^/  /'
    missing=0
    while read -r key; do
        grep -qxF "$key" <<<"$keys" || missing=$((missing + 1))
    done < <(psql "$STREAMHOUSE_METADATA" -Atc \
        "SELECT DISTINCT s3_key FROM segments WHERE topic = '$topic'")
    if [ "$missing" -ne 0 ]; then
        echo "!!! $missing objects referenced by segment rows are missing from the bucket" >&2
        exit 1
    fi
    echo "every object referenced by the segment rows is in the bucket"
else
    echo "(the server refused an anonymous listing; the listing above came through the library)"
fi
sh_log "full pipeline proven on PostgreSQL + S3"
