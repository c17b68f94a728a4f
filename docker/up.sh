#!/usr/bin/env bash
# `make up`: the whole pipeline on this machine, scheduled by Airflow.
#
# Starts, each only if it is not running yet: the local Elasticsearch node (es-up.sh), a
# loopback mail sink (pipeline.mailsink, messages in .local/mail/newsradar.mbox) unless
# NEWSRADAR_SMTP_HOST names a real server, the demo news site when NEWSRADAR_CONFIG_DIR is
# config/demo, then `newsradar init`, then `airflow standalone` (SQLite and LocalExecutor under
# .local/airflow, our dags/ folder, examples off, DAGs unpaused). Prints the UI's address and
# login. Every process started here runs in its own session, its pid in .local/run, its output
# in .local/logs; `make down` (docker/down.sh) stops them.
#
# AIRFLOW_PORT picks the UI's port (default 8080). Settings for the tasks are NEWSRADAR_*
# variables in this script's environment (see the README).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
state="${NEWSRADAR_STATE_DIR:-$root/.local}"
venv="${NEWSRADAR_VENV:-$root/.venv}"
run="$state/run"
logs="$state/logs"
mkdir -p "$run" "$logs" "$state/mail"

fail() { echo "up: $*" >&2; exit 1; }
running() { [ -s "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }
start() {  # start NAME COMMAND...: in the background, in a session of its own
  local name=$1
  shift
  if running "$name"; then
    echo "up: $name is already running (pid $(cat "$run/$name.pid"))"
    return
  fi
  setsid nohup "$@" >"$logs/$name.log" 2>&1 </dev/null &
  echo $! >"$run/$name.pid"
  echo "up: started $name (pid $!, log $logs/$name.log)"
}
wait_for() {  # wait_for NAME SECONDS COMMAND...: until COMMAND succeeds
  local name=$1 seconds=$2
  shift 2
  for _ in $(seq 1 "$seconds"); do
    "$@" >/dev/null 2>&1 && return 0
    running "$name" || fail "$name exited while starting; see $logs/$name.log"
    sleep 1
  done
  fail "$name did not answer within $seconds s; see $logs/$name.log"
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

[ -x "$venv/bin/airflow" ] || fail "no Airflow in $venv (run make install)"
# airflow standalone starts its components as `airflow ...` from PATH.
export PATH="$venv/bin:$PATH"

# Settings every task inherits, as absolute paths: Airflow's workers run elsewhere.
config_dir="$(cd "${NEWSRADAR_CONFIG_DIR:-$root/config}" 2>/dev/null && pwd)" \
  || fail "NEWSRADAR_CONFIG_DIR ${NEWSRADAR_CONFIG_DIR:-} is not a directory"
export NEWSRADAR_CONFIG_DIR="$config_dir"

bash "$root/docker/es-up.sh"

if [ -z "${NEWSRADAR_SMTP_HOST:-}" ]; then
  export NEWSRADAR_SMTP_HOST=127.0.0.1 NEWSRADAR_SMTP_PORT="${NEWSRADAR_SMTP_PORT:-8025}"
  start mailsink "$venv/bin/python" -m pipeline.mailsink \
    --port "$NEWSRADAR_SMTP_PORT" --mbox "$state/mail/newsradar.mbox"
  wait_for mailsink 30 port_open "$NEWSRADAR_SMTP_PORT"
fi

if [ "$config_dir" = "$root/config/demo" ]; then
  # The demo sources live on loopback, and are ours: no politeness delay needed.
  export NEWSRADAR_ALLOW_PRIVATE_NETWORKS=1 NEWSRADAR_CRAWL_DELAY="${NEWSRADAR_CRAWL_DELAY:-0}"
  start demosite "$venv/bin/python" -m pipeline.demosite --port 8765
  wait_for demosite 30 port_open 8765
fi

(cd "$root" && "$venv/bin/newsradar" init)

export AIRFLOW_HOME="$state/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$root/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__API__PORT="${AIRFLOW_PORT:-8080}"
mkdir -p "$AIRFLOW_HOME"
start airflow bash -c "cd '$root' && exec '$venv/bin/airflow' standalone"
# The first start creates the database: a minute or so.
wait_for airflow 300 curl -fsS -m 2 "http://127.0.0.1:$AIRFLOW__API__PORT/api/v2/monitor/health"
# DAGs seen before may have been paused by hand; new ones start unpaused.
"$venv/bin/airflow" dags unpause --treat-dag-id-as-regex --yes \
  '^(ingest_feeds|crawl_sites|deliver_alerts|maintenance)$' >>"$logs/airflow.log" 2>&1 || true

passwords="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
for _ in $(seq 1 30); do [ -s "$passwords" ] && break; sleep 1; done
login=$("$venv/bin/python" -c 'import json, sys
users = json.load(open(sys.argv[1]))
print(", ".join(f"{user} / {password}" for user, password in users.items()))' "$passwords" 2>/dev/null) \
  || login="see $passwords"
echo
echo "Airflow UI:  http://127.0.0.1:$AIRFLOW__API__PORT   login: $login"
echo "DAGs:        ingest_feeds (every 10 min), crawl_sites (hourly), deliver_alerts (every 5 min"
echo "             and on new alerts), maintenance (daily); sources from $NEWSRADAR_CONFIG_DIR"
if running mailsink; then
  echo "Mail:        SMTP sink on 127.0.0.1:$NEWSRADAR_SMTP_PORT, messages in $state/mail/newsradar.mbox"
fi
echo "Stop with:   make down"
