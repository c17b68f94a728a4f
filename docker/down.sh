#!/usr/bin/env bash
# `make down`: stop what docker/up.sh started, by the pids it recorded, then the local node.
#
# Each was started in a session of its own, so SIGTERM goes to the whole process group: for
# Airflow standalone that is also its scheduler, API server, DAG processor, triggerer and their
# workers, each of which shuts down cleanly on it (standalone itself would only act on SIGINT,
# which background jobs ignore). Whatever is left after 30 s is killed. --keep-es leaves the
# Elasticsearch node running (it may serve others).
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

# Whether any process of group $1 is still running; zombies (exited, not yet reaped) are not.
group_alive() {
  ps -eo pgid=,stat= | awk -v group="$1" '$1 == group && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

stop() {  # stop NAME
  local name=$1 pid
  if [ ! -s "$run/$name.pid" ]; then
    return
  fi
  pid=$(cat "$run/$name.pid")
  if ! group_alive "$pid"; then
    rm -f "$run/$name.pid"
    return
  fi
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do
    # up.sh started it with setsid: its pid is its session's process group.
    if ! group_alive "$pid"; then
      rm -f "$run/$name.pid"
      echo "down: stopped $name (pid $pid)"
      return
    fi
    sleep 1
  done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  rm -f "$run/$name.pid"
  echo "down: $name (pid $pid) did not stop in 30 s and was killed"
}

stop airflow
stop demosite
stop mailsink
if [ "$keep_es" = 0 ]; then
  bash "$root/docker/es-down.sh"
fi
echo "down: done"
