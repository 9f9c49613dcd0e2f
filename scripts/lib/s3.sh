# shellcheck shell=bash
# The S3 server of the tests: a throwaway SeaweedFS (`weed server -s3`) on
# free loopback ports, stopped at cleanup, and buckets on it. Installing
# `weed` is in s3_install.sh. Sourced by services.sh, after log.sh,
# install.sh, process.sh and s3_install.sh.
#
#   sh_start_s3 WORKDIR          exports AWS_ENDPOINT_URL and AWS_* credentials;
#                                sets SH_S3_PORT and SH_WEED_PID
#   sh_create_bucket NAME        creates a bucket and waits until it takes writes
#
# Environment it reads:
#   STREAMHOUSE_S3_AUTH=1                make SeaweedFS check SigV4 signatures against
#                                        the exported credentials instead of accepting any

_SH_S3_ACCESS_KEY=streamhouse
# Distinctive, so that a test can search logs for it.
_SH_S3_SECRET_KEY=streamhouse-s3-secret-5d1c
_SH_S3_REGION=us-east-1

_SH_WEED_PIDS=()
_SH_WEED_PORTS=()

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

# Stops every weed started here and removes its sockets.
_sh_stop_weed() {
    local pid
    for pid in "${_SH_WEED_PIDS[@]}"; do
        if _sh_alive "$pid"; then
            sh_log "stopping SeaweedFS (pid $pid)"
        fi
        _sh_stop_tree "$pid"
    done
    _SH_WEED_PIDS=()
    _sh_remove_weed_sockets "${_SH_WEED_PORTS[@]}"
    _SH_WEED_PORTS=()
}
_sh_on_cleanup _sh_stop_weed

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
    _sh_start_watchdog "$pid" _sh_remove_weed_sockets "${used_ports[@]}"

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
