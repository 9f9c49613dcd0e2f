# shellcheck shell=bash
# Processes the service scripts start, and cleaning up after them: free
# ports, stopping process trees, watchdogs, and what runs when the shell
# exits. Sourced by services.sh, after log.sh.
#
#   sh_free_port                 prints a free TCP port on 127.0.0.1
#   sh_install_cleanup_trap      runs sh_cleanup and the sh_at_exit hooks at exit
#   sh_register_cleanup_path P   removes file or directory P at cleanup
#   sh_at_exit FUNC              runs FUNC at exit, after cleanup
#   sh_cleanup                   stops what was started (idempotent)
#   _sh_on_cleanup FUNC          runs FUNC in sh_cleanup, after the watchdogs
#                                stop and before the registered paths go
#   _sh_start_watchdog PID [CMD ARGS...]
#                                stops PID's process tree, then runs CMD, if
#                                the shell dies without running its EXIT trap

# Seconds a stopped process gets to exit after SIGTERM. SeaweedFS's filer
# waits up to 15 s for gRPC streams to drain, which buys nothing for a
# throwaway test store.
_SH_STOP_GRACE_SECONDS=3

_SH_WATCHDOG_PIDS=()
_SH_CLEANUP_HOOKS=()
_SH_CLEANUP_DIRS=()
_SH_EXIT_HOOKS=()

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
# Process trees
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

# Stops process tree $1 when the shell that started it disappears without
# running its EXIT trap (SIGKILL, a CI timeout), so no server outlives its
# test run, then runs the rest of the arguments as a command, if any.
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
            if [ "$#" -gt 0 ]; then
                "$@"
            fi
        fi
    ) &
    _SH_WATCHDOG_PIDS+=("$!")
}

# ---------------------------------------------------------------------------
# Cleanup at exit
# ---------------------------------------------------------------------------

sh_register_cleanup_path() {
    _SH_CLEANUP_DIRS+=("$1")
}

# Registers a command to run at exit, after the services are stopped.
# SH_EXIT_STATUS holds the status the shell is exiting with.
sh_at_exit() {
    _SH_EXIT_HOOKS+=("$1")
}

# Registers a command sh_cleanup runs to stop a service, after the watchdogs
# are stopped and before the registered paths are removed.
_sh_on_cleanup() {
    _SH_CLEANUP_HOOKS+=("$1")
}

sh_cleanup() {
    local pid hook dir
    for pid in "${_SH_WATCHDOG_PIDS[@]}"; do
        _sh_stop_tree "$pid"
    done
    _SH_WATCHDOG_PIDS=()
    for hook in "${_SH_CLEANUP_HOOKS[@]}"; do
        "$hook"
    done
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
