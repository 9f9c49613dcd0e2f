# shellcheck shell=bash
# Messages of the service scripts: progress lines and loud fatal errors.
# Sourced by services.sh.
#
#   sh_log MESSAGE...      prints "==> MESSAGE" on stderr
#   _sh_die LINE...        prints LINE... in a block of "!!!" on stderr, exits 1
#   _sh_redact_url URL     prints URL with its password replaced by ***

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

_sh_redact_url() {
    # postgres://user:secret@host -> postgres://user:***@host
    printf '%s\n' "$1" | sed -E 's#^([a-z]+://[^:/@]+):[^@]*@#\1:***@#'
}
