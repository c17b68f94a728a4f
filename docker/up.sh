#!/usr/bin/env bash
# `make up`: the whole pipeline on this machine, scheduled by Airflow.
#
# Starts, each only if it is not running yet: the local Elasticsearch node (es-up.sh) unless
# NEWSRADAR_ES_URL names a node, a loopback mail sink (devtools.mailsink, messages in
# .local/mail/newsradar.mbox) unless NEWSRADAR_SMTP_HOST names a real server, the demo news site
# when NEWSRADAR_CONFIG_DIR is config/demo, then `newsradar init`, then Airflow's API server,
# scheduler, DAG processor and triggerer (SQLite and the LocalExecutor under .local/airflow, our
# dags/ folder, examples off, DAGs unpaused). It returns once a triggered run of deliver_alerts
# has succeeded (docker/airflow_ready.py), so a started Airflow is one whose tasks run, and
# prints the UI's address and login. Every process started here runs in its own session, its
# pid in .local/run, its output appended to .local/logs; `make down` (docker/down.sh) stops them.
#
# Every listening socket is on 127.0.0.1. NEWSRADAR_PORT_BASE moves every port used here, and
# the URLs derived from them; the individual variables still win (docker/ports.sh has the
# plan). `up.sh --ports` prints the plan and exits. Settings for the tasks are NEWSRADAR_*
# variables in this script's environment (see the README).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
state="$(absolute "${NEWSRADAR_STATE_DIR:-$root/.local}")"
venv="$(absolute "${NEWSRADAR_VENV:-$root/.venv}")"
run="$state/run"
logs="$state/logs"

fail() { echo "up: $*" >&2; exit 1; }
[ "$#" -le 1 ] && [ "${1:---ports}" = --ports ] || { echo "up: unknown argument $* (known: --ports)" >&2; exit 2; }

# shellcheck source=docker/ports.sh
source "$root/docker/ports.sh"
external_es="${NEWSRADAR_ES_URL:-}"
external_smtp="${NEWSRADAR_SMTP_HOST:-}"
api_url="http://127.0.0.1:$newsradar_airflow_port"
execution_api_url="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-$api_url/execution/}"
if [ "${1:-}" = --ports ]; then
  es_transport="127.0.0.1:$newsradar_es_transport_port"
  [ -z "$external_es" ] || es_transport="(no local node: NEWSRADAR_ES_URL is set)"
  printf '%-28s %s\n' \
    "Elasticsearch HTTP" "${external_es:-127.0.0.1:$newsradar_es_port}" \
    "Elasticsearch transport" "$es_transport" \
    "Airflow API server" "127.0.0.1:$newsradar_airflow_port" \
    "Airflow execution API" "$execution_api_url" \
    "Airflow worker log server" "port $newsradar_worker_log_port (not started: logs are read from files)" \
    "Airflow triggerer log server" "port $newsradar_trigger_log_port (not started: logs are read from files)" \
    "mail sink" "${external_smtp:+(not started: $external_smtp)}${external_smtp:-127.0.0.1:$newsradar_smtp_port}" \
    "demo site" "127.0.0.1:$newsradar_demo_port (only with config/demo)"
  exit 0
fi

mkdir -p "$run" "$logs" "$state/mail"
running() { [ -s "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }
start() {  # start NAME COMMAND...: in the background, in a session of its own
  local name=$1
  shift
  if running "$name"; then
    echo "up: $name is already running (pid $(cat "$run/$name.pid"))"
    return
  fi
  # Appended, not truncated: a restart must not lose the previous run's errors.
  echo "==== up: starting $name at $(date -u +%Y-%m-%dT%H:%M:%SZ): $* ====" >>"$logs/$name.log"
  setsid nohup "$@" >>"$logs/$name.log" 2>&1 </dev/null &
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
port_free() {  # port_free NAME PORT VARIABLE: fail when another process listens on PORT
  if ! running "$1" && port_open "$2"; then
    fail "port $2 ($1) is in use by another process; set NEWSRADAR_PORT_BASE to move every port, or $3"
  fi
}

[ -x "$venv/bin/airflow" ] || fail "no Airflow in $venv (run make install)"
export PATH="$venv/bin:$PATH"

# Settings every task inherits, as absolute paths: Airflow's workers run elsewhere.
config_dir="$(cd "${NEWSRADAR_CONFIG_DIR:-$root/config}" 2>/dev/null && pwd)" \
  || fail "NEWSRADAR_CONFIG_DIR ${NEWSRADAR_CONFIG_DIR:-} is not a directory"
export NEWSRADAR_CONFIG_DIR="$config_dir"
# Every path is absolute by now; the components (and so the tasks) run in the checkout.
cd "$root"

port_free airflow-api-server "$newsradar_airflow_port" AIRFLOW_PORT
[ -n "$external_smtp" ] || port_free mailsink "$newsradar_smtp_port" NEWSRADAR_SMTP_PORT
[ "$config_dir" != "$root/config/demo" ] || port_free demosite "$newsradar_demo_port" NEWSRADAR_DEMO_PORT

if [ -n "$external_es" ]; then
  # A node of the operator's: nothing to start, and `make down` must leave it alone.
  echo "$external_es" >"$run/es.external"
  echo "up: using the Elasticsearch node at $external_es"
else
  rm -f "$run/es.external"
  bash "$root/docker/es-up.sh"
  export NEWSRADAR_ES_URL="http://127.0.0.1:$newsradar_es_port"
fi

if [ -z "$external_smtp" ]; then
  export NEWSRADAR_SMTP_HOST=127.0.0.1 NEWSRADAR_SMTP_PORT="$newsradar_smtp_port"
  start mailsink "$venv/bin/python" -m devtools.mailsink \
    --port "$NEWSRADAR_SMTP_PORT" --mbox "$state/mail/newsradar.mbox"
  wait_for mailsink 30 port_open "$NEWSRADAR_SMTP_PORT"
fi

if [ "$config_dir" = "$root/config/demo" ]; then
  # The demo sources live on loopback, and are ours: no politeness delay needed.
  export NEWSRADAR_ALLOW_PRIVATE_NETWORKS=1 NEWSRADAR_CRAWL_DELAY="${NEWSRADAR_CRAWL_DELAY:-0}"
  start demosite "$venv/bin/python" -m devtools.demosite --port "$newsradar_demo_port"
  wait_for demosite 30 port_open "$newsradar_demo_port"
  if [ "$newsradar_demo_port" != 8765 ]; then
    # config/demo names the site on 8765: the tasks read a copy that names this port.
    mkdir -p "$state/config-demo"
    for file in sources.yaml alerts.yaml; do
      sed "s/127\.0\.0\.1:8765/127.0.0.1:$newsradar_demo_port/g" "$config_dir/$file" \
        >"$state/config-demo/$file"
    done
    export NEWSRADAR_CONFIG_DIR="$state/config-demo"
  fi
fi

"$venv/bin/newsradar" init

export AIRFLOW_HOME="$state/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$root/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
# The LocalExecutor starts `parallelism` workers at once (about 136 MB each, idle or not); more
# than the machine's cores would only wait for each other.
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-$(nproc)}"
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="$newsradar_airflow_port"
# Without it the workers call http://localhost:8080/execution/ whatever the API's port is.
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="$execution_api_url"
# No log server is started (each would listen on every interface: Airflow offers no host for
# them): the API server reads the task logs from their files, on this machine. The ports are
# still ours, so that a log URL Airflow builds never reaches another Airflow's log server.
export AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="$newsradar_worker_log_port"
export AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT="$newsradar_trigger_log_port"
mkdir -p "$AIRFLOW_HOME"

# Before any component starts: the first airflow command writes airflow.cfg with the secrets
# every component must share (the JWT secret for the workers' tokens among them).
echo "==== up: airflow db migrate at $(date -u +%Y-%m-%dT%H:%M:%SZ) ====" >>"$logs/airflow-db.log"
"$venv/bin/airflow" db migrate >>"$logs/airflow-db.log" 2>&1 \
  || fail "airflow db migrate failed; see $logs/airflow-db.log"

start airflow-api-server "$venv/bin/airflow" api-server --host 127.0.0.1 --port "$newsradar_airflow_port"
start airflow-scheduler "$venv/bin/airflow" scheduler --skip-serve-logs
start airflow-dag-processor "$venv/bin/airflow" dag-processor
start airflow-triggerer "$venv/bin/airflow" triggerer --skip-serve-logs

passwords="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
watch=()
for name in airflow-api-server airflow-scheduler airflow-dag-processor airflow-triggerer; do
  watch+=(--watch "$name" "$run/$name.pid" "$logs/$name.log")
done
"$venv/bin/python" "$root/docker/airflow_ready.py" --api "$api_url" \
  --execution-api "$AIRFLOW__CORE__EXECUTION_API_SERVER_URL" --passwords "$passwords" \
  --dags ingest_feeds crawl_sites deliver_alerts maintenance --check-dag deliver_alerts \
  --timeout "${NEWSRADAR_UP_TIMEOUT:-600}" --task-logs "$AIRFLOW_HOME/logs" \
  --scheduler-log "$logs/airflow-scheduler.log" "${watch[@]}" || exit 1

login=$("$venv/bin/python" -c 'import json, sys
users = json.load(open(sys.argv[1]))
print(", ".join(f"{user} / {password}" for user, password in users.items()))' "$passwords" 2>/dev/null) \
  || login="see $passwords"
echo
echo "Airflow UI:  $api_url   login: $login"
echo "DAGs:        ingest_feeds (every 10 min), crawl_sites (hourly), deliver_alerts (every 5 min"
echo "             and on new alerts), maintenance (daily); sources from $NEWSRADAR_CONFIG_DIR"
echo "Search:      $NEWSRADAR_ES_URL"
if running mailsink; then
  echo "Mail:        SMTP sink on 127.0.0.1:$NEWSRADAR_SMTP_PORT, messages in $state/mail/newsradar.mbox"
fi
echo "Logs:        $logs (appended at each start)"
echo "Stop with:   make down"
