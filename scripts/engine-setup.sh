#!/usr/bin/env bash
# Make a container engine API socket available for the workspace spawner, idempotently.
#
# If a Docker engine answers (DOCKER_HOST or /var/run/docker.sock), nothing is installed.
# Otherwise Podman + runc are installed from the distribution, configured for this kind of
# machine (runc instead of crun, soft = hard ulimits) and its Docker-compatible API service is
# started in the background on $SPE_ENGINE_SOCKET (default in lnds_spe/defaults.env).
#
# Prints `DOCKER_HOST=unix://...` as its last line so callers can export it.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/defaults.sh"
SOCKET="$(spe_setting SPE_ENGINE_SOCKET)"
SOCKET_DIR="$(dirname "$SOCKET")"
PIDFILE="$SOCKET_DIR/podman-service.pid"
LOGFILE="$SOCKET_DIR/podman-service.log"
CONF=/etc/containers/containers.conf

say() { echo "[engine-setup] $*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# The hub's proxy (configurable-http-proxy) is a Node program; install it once if missing. A fresh
# Debian 12 has no Node: take the distribution's nodejs and npm (a Node that came with its own npm,
# e.g. NodeSource's, is left alone: Debian's npm package would conflict with it).
if ! command -v npm >/dev/null 2>&1; then
    say "installing Node.js and npm from the distribution (the proxy needs them)"
    $SUDO apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q nodejs npm >&2
fi
if ! command -v configurable-http-proxy >/dev/null 2>&1; then
    # 5.2 and later need Node 20; Debian 12's own Node is 18, for which 5.1 is the last.
    chp="configurable-http-proxy@^5"
    if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then chp="configurable-http-proxy@~5.1"; fi
    say "installing $chp with npm"
    $SUDO npm install -g --no-fund --no-audit "$chp" >&2
fi

engine_answers() {
    # True if the API socket given as $1 answers a version request.
    local sock="$1"
    [ -S "$sock" ] && curl -fsS --max-time 3 --unix-socket "$sock" http://d/version >/dev/null 2>&1
}

if [ -n "${DOCKER_HOST:-}" ] && [[ "$DOCKER_HOST" == unix://* ]] && engine_answers "${DOCKER_HOST#unix://}"; then
    say "engine already answers at $DOCKER_HOST"
    echo "DOCKER_HOST=$DOCKER_HOST"
    exit 0
fi
if engine_answers /var/run/docker.sock && ! [ -L /var/run/docker.sock ]; then
    say "a Docker engine answers at /var/run/docker.sock"
    echo "DOCKER_HOST=unix:///var/run/docker.sock"
    exit 0
fi



missing=()
for pkg in podman runc curl iproute2 mmdebstrap e2fsprogs; do  # e2fsprogs: home volume images
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]} with apt-get (takes a minute the first time)"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 \
        "${missing[@]}" 2>&1 | { grep -v -e "^(Reading database" -e "^Selecting previously" >&2 || true; }
else
    say "podman, runc, curl, iproute2, mmdebstrap, e2fsprogs already installed"
fi

# runc copes with this kernel's cgroup layout where crun does not; podman's default rlimits
# are higher than an unprivileged-ish process may raise, so pin them soft = hard.
want_conf='# Written by scripts/engine-setup.sh (LNDS SPE).
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"
'
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$(printf '%s' "$want_conf")" ]; then
    if [ -f "$CONF" ] && ! grep -q "scripts/engine-setup.sh" "$CONF"; then
        say "keeping the previous $CONF as $CONF.before-spe"
        $SUDO cp -n "$CONF" "$CONF.before-spe"
    fi
    say "writing $CONF (runtime=runc, default_ulimits)"
    $SUDO mkdir -p "$(dirname "$CONF")"
    printf '%s' "$want_conf" | $SUDO tee "$CONF" >/dev/null
fi

# Workspaces run in user namespaces (`--userns=auto`): each container gets its own range of
# uids from the subordinate ids of the `containers` user, so the workspace's uid 1000 is no host
# account (D6). Podman reads /etc/subuid and /etc/subgid at each container start.
for idfile in /etc/subuid /etc/subgid; do
    if ! grep -q '^containers:' "$idfile" 2>/dev/null; then
        say "giving Podman's user namespaces the ids 2147483647-4294967294 in $idfile"
        echo "containers:2147483647:2147483648" | $SUDO tee -a "$idfile" >/dev/null
    fi
done

$SUDO mkdir -p "$SOCKET_DIR"
if engine_answers "$SOCKET"; then
    say "podman API service already answers at $SOCKET"
else
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        say "stopping the unresponsive podman service (pid $(cat "$PIDFILE"))"
        $SUDO kill "$(cat "$PIDFILE")" || true
        sleep 1
    fi
    $SUDO rm -f "$SOCKET"
    say "starting the podman API service at $SOCKET (log: $LOGFILE)"
    # Started from its socket's folder: the container monitor writes files (e.g. an empty `oom`
    # when a workspace is killed for memory) into the service's working directory.
    $SUDO sh -c "cd '$(dirname "$SOCKET")' && nohup setsid podman system service --time=0 'unix://$SOCKET' >'$LOGFILE' 2>&1 & echo \$! >'$PIDFILE'"
    for _ in $(seq 1 100); do
        engine_answers "$SOCKET" && break
        sleep 0.2
    done
    if ! engine_answers "$SOCKET"; then
        say "the podman API service did not answer at $SOCKET; see $LOGFILE"
        exit 1
    fi
    say "podman API service is up (pid $(cat "$PIDFILE"))"
fi
echo "DOCKER_HOST=unix://$SOCKET"
