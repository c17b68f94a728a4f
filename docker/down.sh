#!/usr/bin/env bash
# `make down`: stop what docker/up.sh started, by the pids it recorded, then the local node.
#
# Each was started in a session of its own, so SIGTERM goes to every process of that session:
# for the Airflow scheduler that is also its executor's workers and their tasks (which run in
# process groups of their own, so the session, not the group, is what holds them together),
# each of which shuts down cleanly on it. Whatever is left after 30 s is killed. --keep-es leaves the
# Elasticsearch node running (it may serve others); a node up.sh did not start (it was given
# NEWSRADAR_ES_URL) is never stopped.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
state="${NEWSRADAR_STATE_DIR:-$root/.local}"
run="$state/run"
keep_es=0
for arg in "$@"; do
  case "$arg" in
    --keep-es) keep_es=1 ;;
    *) echo "down: unknown argument $arg (known: --keep-es)" >&2; exit 2 ;;
  esac
done

# The live processes of session $1; zombies (exited, not yet reaped) are not.
session_pids() {
  ps -eo pid=,sid=,stat= | awk -v session="$1" '$2 == session && $3 !~ /^Z/ { print $1 }'
}
session_alive() { [ -n "$(session_pids "$1")" ]; }
signal_session() {  # signal_session SIGNAL SESSION
  local pids
  pids=$(session_pids "$2")
  # shellcheck disable=SC2086 # one argument per pid
  [ -z "$pids" ] || kill "-$1" $pids 2>/dev/null || true
}

stop() {  # stop NAME...: SIGTERM to each in this order, then wait for all at once
  local name pid waiting=()
  for name in "$@"; do
    [ -s "$run/$name.pid" ] || continue
    pid=$(cat "$run/$name.pid")
    # up.sh started it with setsid: its pid is its session's id.
    if session_alive "$pid"; then
      signal_session TERM "$pid"
      waiting+=("$name")
    else
      rm -f "$run/$name.pid"
    fi
  done
  for _ in $(seq 1 30); do
    local still=()
    for name in ${waiting[@]+"${waiting[@]}"}; do
      pid=$(cat "$run/$name.pid")
      if session_alive "$pid"; then
        still+=("$name")
      else
        rm -f "$run/$name.pid"
        echo "down: stopped $name (pid $pid)"
      fi
    done
    waiting=(${still[@]+"${still[@]}"})
    [ "${#waiting[@]}" -gt 0 ] || return 0
    sleep 1
  done
  for name in "${waiting[@]}"; do
    pid=$(cat "$run/$name.pid")
    signal_session KILL "$pid"
    rm -f "$run/$name.pid"
    echo "down: $name (pid $pid) did not stop in 30 s and was killed"
  done
}

# The scheduler first, so that it starts no more tasks; `airflow` is the standalone process
# of earlier versions of up.sh.
stop airflow-scheduler airflow-triggerer airflow-dag-processor airflow-api-server airflow \
  demosite mailsink
if [ -s "$run/es.external" ]; then
  echo "down: leaving the Elasticsearch node at $(cat "$run/es.external") alone (not started by up)"
  rm -f "$run/es.external"
elif [ "$keep_es" = 0 ]; then
  bash "$root/docker/es-down.sh"
fi
echo "down: done"
