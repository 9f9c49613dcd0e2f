# shellcheck shell=bash
# Installing PostgreSQL from Debian packages. Starting a server and creating
# databases is in postgres.sh. Sourced by services.sh, after log.sh and
# install.sh.
#
#   _sh_install_postgres_client LOCAL   psql and pg_isready: the server package
#                                       when LOCAL is 1 (its server is on this
#                                       machine), the client package otherwise
#   _sh_install_postgres_server         the server binaries and pg_ctlcluster

_sh_install_postgres_client() {
    local local_server="$1"
    if ! command -v pg_isready >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
        if [ "$local_server" = 1 ]; then
            _sh_apt_install postgresql
        else
            _sh_apt_install postgresql-client
        fi
    fi
}

_sh_install_postgres_server() {
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
        _sh_apt_install postgresql
    fi
}
