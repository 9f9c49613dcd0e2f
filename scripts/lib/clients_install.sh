# shellcheck shell=bash
# Installing the command-line Kafka clients the tests drive. Sourced by
# services.sh, after log.sh and install.sh.
#
#   sh_ensure_kcat               installs kcat

sh_ensure_kcat() {
    _sh_need_cmd kcat kcat
    sh_log "kcat: $(command -v kcat)"
}
