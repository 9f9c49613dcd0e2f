# shellcheck shell=bash
# Installing the command-line Kafka clients the tests drive. Sourced by
# services.sh, after log.sh and install.sh.
#
#   sh_ensure_kcat               installs kcat
#   sh_ensure_kafkajs            installs KafkaJS (npm) for the client suites

sh_ensure_kcat() {
    _sh_need_cmd kcat kcat
    sh_log "kcat: $(command -v kcat)"
}

# KafkaJS and its Snappy, LZ4 and ZSTD codec packages (whose native parts
# are prebuilt N-API packages: npm ci builds nothing), pinned by
# tests/clients/kafkajs/package-lock.json, installed with
# `npm ci` into target/client-node (reinstalled only when the lock file
# changes). Needs Node.js and npm (installed from Debian's packages when
# missing). Prints nothing; the suites find it through
# STREAMHOUSE_CLIENTS_NODE_MODULES.
sh_ensure_kafkajs() {
    local repo_root source target stamp
    repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    source="$repo_root/tests/clients/kafkajs"
    target="${CARGO_TARGET_DIR:-$repo_root/target}"
    case "$target" in
        /*) ;;
        *) target="$repo_root/$target" ;;
    esac
    target="$target/client-node"
    _sh_need_cmd node nodejs
    _sh_need_cmd npm npm
    stamp=$(sha256sum "$source/package-lock.json" | cut -d' ' -f1)
    if [ "$(cat "$target/.lock-stamp" 2>/dev/null)" != "$stamp" ] ||
        [ ! -f "$target/node_modules/kafkajs/package.json" ]; then
        sh_log "installing KafkaJS into $target (npm ci)"
        rm -rf "$target"
        mkdir -p "$target"
        cp "$source/package.json" "$source/package-lock.json" "$target/"
        (cd "$target" && npm ci --no-audit --no-fund --loglevel=error >&2) ||
            _sh_die "npm ci of tests/clients/kafkajs failed (see above)"
        printf '%s\n' "$stamp" >"$target/.lock-stamp"
    fi
    export STREAMHOUSE_CLIENTS_NODE_MODULES="$target/node_modules"
    sh_log "KafkaJS: $(node -p "require('$target/node_modules/kafkajs/package.json').version") on node $(node --version)"
}
