#!/usr/bin/env bash
# Start, stop or report the SPE's JupyterHub in the background (default http://127.0.0.1:8000).
#
#   scripts/hub.sh start|stop|status|restart|down
#
# stop leaves workspaces running (a restarted hub finds them again); down also removes them.
#
# The hub runs from this checkout's jupyterhub_config.py with the virtualenv's Python
# ($SPE_PYTHON, default .venv/bin/python). Its pidfile and log are in <state dir>/hub/
# ($SPE_STATE_DIR, default the user's data dir). Settings: see jupyterhub_config.py.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/scripts/defaults.sh"
PYTHON="${SPE_PYTHON:-$ROOT/.venv/bin/python}"
STATE_DIR="${SPE_STATE_DIR:-$("$PYTHON" -c 'from lnds_spe.config import state_dir; print(state_dir())')}"
HUB_DIR="$STATE_DIR/hub"
PIDFILE="$HUB_DIR/jupyterhub.pid"
LOGFILE="$HUB_DIR/jupyterhub.log"
BIND_URL="${SPE_HUB_BIND_URL:-http://127.0.0.1:8000}"

RESTORE_SIGINT_AND_EXEC='import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])'

say() { echo "[hub] $*" >&2; }

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

clean_firewall() {
    # Host firewall chains (host side and bridge) of this hub's project networks that no container
    # uses any more, and the port guards of hubs that are gone.
    [ "$(id -u)" = 0 ] && command -v iptables >/dev/null 2>&1 || return 0
    use_engine_socket
    PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m lnds_spe.hub.firewall \
        "$(spe_setting SPE_CONTAINER_PREFIX)" | sed 's/^/[hub] /' >&2 || say "could not clean stale firewall chains"
}

start() {
    if running; then
        say "already running (pid $(cat "$PIDFILE")) at $BIND_URL"
        return
    fi
    mkdir -p "$HUB_DIR"
    clean_firewall
    use_engine_socket
    say "starting JupyterHub at $BIND_URL (log: $LOGFILE)"
    # The hub is detached from this shell's terminal and pipes (its output goes to the log).
    # bash starts background jobs with SIGINT ignored; the hub's services would inherit that and
    # its interrupt-then-terminate shutdown would take 30 s. Restore SIGINT, then exec the hub.
    cd "$HUB_DIR"
    SPE_STATE_DIR="$STATE_DIR" PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
        PATH="$(dirname "$PYTHON"):$PATH" \
        nohup setsid "$PYTHON" -c "$RESTORE_SIGINT_AND_EXEC" "$PYTHON" -m jupyterhub \
        -f "$ROOT/jupyterhub_config.py" \
        >>"$LOGFILE" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    cd "$ROOT"
    for _ in $(seq 1 120); do
        if curl -fsS --max-time 2 "$BIND_URL/hub/api" >/dev/null 2>&1; then
            say "up (pid $(cat "$PIDFILE"))"
            password_hint
            return
        fi
        if ! running; then
            say "JupyterHub exited; last lines of $LOGFILE:"
            tail -n 20 "$LOGFILE" >&2
            exit 1
        fi
        sleep 0.5
    done
    say "JupyterHub did not answer at $BIND_URL/hub/api within 60 s; see $LOGFILE"
    exit 1
}

password_hint() {
    if [ -f "$STATE_DIR/demo-accounts.json" ]; then
        say "demo accounts and passwords: $STATE_DIR/demo-accounts.json"
    fi
}

stop() {
    if ! running; then
        say "not running"
        rm -f "$PIDFILE"
        return
    fi
    local pid
    pid="$(cat "$PIDFILE")"
    say "stopping JupyterHub (pid $pid); workspaces keep running"
    kill -TERM "$pid"
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "still running after 30 s, sending SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
    fi
    rm -f "$PIDFILE"
    clean_firewall
    say "stopped"
}

down() {
    # Stop the hub, then every workspace container it started, and wipe their prepared data.
    stop
    local engine=(podman)
    command -v podman >/dev/null 2>&1 || engine=(docker)
    local prefix="$(spe_setting SPE_CONTAINER_PREFIX)" ids nets
    # This hub's workspaces and checkers' review servers (by name prefix and SPE label).
    ids="$( { "${engine[@]}" ps -aq --filter "name=^${prefix}-" --filter label=org.lnds-spe.project
              "${engine[@]}" ps -aq --filter "name=^${prefix}-" --filter label=org.lnds-spe.review
            } 2>/dev/null | sort -u || true)"
    if [ -n "$ids" ]; then
        say "removing $(echo "$ids" | wc -l) workspace container(s)"
        echo "$ids" | xargs "${engine[@]}" rm -f >/dev/null
    fi
    # Homes stay, but unmounted: Podman 4.3 leaves a loop-mounted home mounted after a container
    # in a user namespace (lnds_spe/hub/homes.py release_stale_mount).
    local volume mountpoint
    for volume in $("${engine[@]}" volume ls -q 2>/dev/null | grep -E "^${prefix}-home-" || true); do
        mountpoint="$("${engine[@]}" volume inspect --format '{{.Mountpoint}}' "$volume" 2>/dev/null || true)"
        if [ -n "$mountpoint" ] && mountpoint -q "$mountpoint"; then umount "$mountpoint" || true; fi
    done
    nets="$("${engine[@]}" network ls --format '{{.Name}}' 2>/dev/null \
            | grep -E "^${prefix}-(net|reviewnet)-" || true)"
    if [ -n "$nets" ]; then
        echo "$nets" | xargs "${engine[@]}" network rm -f >/dev/null 2>&1 || true
    fi
    if [ -d "$STATE_DIR/workspaces" ]; then
        say "wiping prepared workspace data under $STATE_DIR/workspaces"
        find "$STATE_DIR/workspaces" -mindepth 3 -maxdepth 3 -name data -type d -exec rm -rf {} +
    fi
    clean_firewall
    say "everything stopped"
}

status() {
    if running; then
        say "running (pid $(cat "$PIDFILE")) at $BIND_URL; log: $LOGFILE"
    else
        say "not running"
        return 3
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    down) down ;;
    restart) stop; start ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status|restart|down" >&2; exit 2 ;;
esac
