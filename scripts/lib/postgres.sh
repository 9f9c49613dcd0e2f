# shellcheck shell=bash
# PostgreSQL for StreamHouse's metadata: finding or starting a server on this
# machine, logging in, and creating databases. Installing its packages is in
# postgres_install.sh. Sourced by services.sh, after log.sh, install.sh and
# postgres_install.sh.
#
#   sh_ensure_postgres           exports STREAMHOUSE_PG_ADMIN_URL
#   sh_create_database NAME      prints the URL of a fresh, empty database
#
# Environment it reads:
#   PGHOST, PGPORT, PGUSER, PGPASSWORD   PostgreSQL address and login
#                                        (default 127.0.0.1, 5432, postgres, none)

# Given to a PostgreSQL role that has no password when the server insists on
# one over TCP (Debian's default pg_hba.conf).
_SH_PG_KNOWN_PASSWORD=streamhouse

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
    _sh_install_postgres_server
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

# Runs a command as the local postgres account.
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
    _sh_install_postgres_client "$local_server"
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
