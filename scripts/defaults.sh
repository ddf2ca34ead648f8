# Sourced by the scripts: the built-in defaults of SPE settings, read from lnds_spe/defaults.env
# (the one place they are written; lnds_spe/config.py reads the same file).
#   spe_setting NAME   -> $NAME if set and not empty, else its built-in default
spe_setting() {
    local value="${!1:-}"
    if [ -z "$value" ]; then
        value="$(sed -n "s/^$1=//p" "$(dirname "${BASH_SOURCE[0]}")/../lnds_spe/defaults.env")"
    fi
    printf '%s\n' "$value"
}

# Point the Docker client at the engine socket scripts/engine-setup.sh starts, unless DOCKER_HOST
# already names one.
use_engine_socket() {
    local socket
    socket="$(spe_setting SPE_ENGINE_SOCKET)"
    if [ -z "${DOCKER_HOST:-}" ] && [ -S "$socket" ]; then
        export DOCKER_HOST="unix://$socket"
    fi
}
