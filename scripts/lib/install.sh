# shellcheck shell=bash
# Installing software the services and tests need: Debian packages (as root
# or through sudo) and directories added to PATH. Sourced by services.sh,
# after log.sh.
#
#   _sh_as_root CMD...             runs CMD as root, through sudo when needed
#   _sh_apt_install PACKAGE...     installs Debian packages (apt-get update and
#                                  one retry when the first attempt fails)
#   _sh_need_cmd CMD PACKAGE       installs PACKAGE when CMD is not on PATH
#   _sh_add_path DIR               puts DIR at the front of PATH, once

_sh_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        _sh_die "root is needed to run: $*" "run it as root, or install sudo"
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

_sh_add_path() {
    case ":$PATH:" in
        *":$1:"*) ;;
        *) PATH="$1:$PATH" ;;
    esac
    export PATH
}
