#!/usr/bin/env bash
# The Airflow half of `make cluster`: docker/compose.yml's Airflow services from real packages,
# on loopback, beside the three-node Elasticsearch cluster of es-cluster.sh.
#
#   stack.sh up            start whatever is not running, wait until all is healthy
#   stack.sh down          stop everything (TERM, then KILL after a grace period); keeps state
#   stack.sh status        one line per component
#   stack.sh kill NAME     kill -9 every process of NAME's session (a lost machine)
#   stack.sh start NAME    start NAME alone again, with the settings `up` wrote (an Airflow
#                          component: and wait until the stack is healthy again)
#
# NAME: postgres, redis, mailsink, demosite, api-server, scheduler, dag-processor, triggerer,
# worker1, worker2 (demosite only with NEWSRADAR_CONFIG_DIR=config/demo: the bundled demo news
# site, as `make up` runs it, on a free port chosen at the first start and kept). PostgreSQL and Redis are Debian's packages (installed when missing, their own
# services never started), each run as its package's unprivileged user on a data folder under
# $cluster_state. Airflow 3 runs with the CeleryExecutor and the FAB auth manager, the settings
# of docker/airflow.env plus this machine's hosts, ports and generated secrets (kept in
# $cluster_state/secrets.env, 0600). The tasks read NEWSRADAR_* from $cluster_state/es.env
# (written by es-cluster.sh up, whose API key is for one NEWSRADAR_INDEX_PREFIX: the same one
# here, `make cluster` gives both `cluster`), the mail sink's address, NEWSRADAR_CONFIG_DIR
# (default the repo's config/) and any other NEWSRADAR_* set
# here; NEWSRADAR_INGEST_SCHEDULE, NEWSRADAR_CRAWL_SCHEDULE and NEWSRADAR_DELIVER_SCHEDULE
# replace the cron schedules of ingest_feeds, crawl_sites and deliver_alerts, `none` for no
# schedule (the cluster test: every minute for the first, none for the others).
# After `up`, $cluster_state/airflow.env (0600) holds the API's address and login and every
# setting the components run with; `start` reads it back. Those settings are fixed when the
# first Airflow component starts: `down` first to change them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=docker/cluster/ports.sh
source "$here/ports.sh"
root="$cluster_root"
venv="${NEWSRADAR_VENV:-$root/.venv}"
run="$cluster_state/run"
logs="$cluster_state/logs"
secrets="$cluster_state/secrets.env"
settings="$cluster_state/airflow.env"
airflow_names=(api-server scheduler dag-processor triggerer worker1 worker2)
all_names=(postgres redis mailsink demosite "${airflow_names[@]}")
grace="${NEWSRADAR_STACK_GRACE:-30}"

fail() { echo "stack: $*" >&2; exit 1; }
usage() { echo "usage: stack.sh up|down|status|kill NAME|start NAME (NAME: ${all_names[*]})" >&2; exit 2; }
known() { local n; for n in "${all_names[@]}"; do [ "$n" = "$1" ] && return 0; done; return 1; }

# shellcheck source=docker/cluster/stack-procs.sh
source "$here/stack-procs.sh"

# --- packages ----------------------------------------------------------------------------------

pg_bin() { find /usr/lib/postgresql -maxdepth 3 -path '*/bin/postgres' 2>/dev/null | sort -V | tail -1 | xargs -r dirname; }

install_packages() {
  local wanted=()
  [ -n "$(pg_bin)" ] || wanted+=(postgresql)
  command -v redis-server >/dev/null || wanted+=(redis-server)
  [ "${#wanted[@]}" -gt 0 ] || return 0
  echo "stack: installing ${wanted[*]}"
  # The packages' own services would take the default ports: forbid every service start for
  # the install when no policy says otherwise (Debian's invoke-rc.d honours policy-rc.d).
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
  fi
  local status=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "${wanted[@]}"; } >>"$logs/apt.log" 2>&1 || status=$?
  [ "$own_policy" = 0 ] || rm -f "$policy"
  [ "$status" = 0 ] || fail "apt-get install ${wanted[*]} failed; see $logs/apt.log"
  # Where a policy let them start anyway: stopped, and kept from starting at boot.
  local package
  for package in "${wanted[@]}"; do
    service "$package" stop >>"$logs/apt.log" 2>&1 || true
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      systemctl disable --now "$package" >>"$logs/apt.log" 2>&1 || true
    fi
  done
  [ -n "$(pg_bin)" ] || fail "no PostgreSQL server under /usr/lib/postgresql after the install"
}

# --- secrets -----------------------------------------------------------------------------------

ensure_secrets() {
  [ -s "$secrets" ] && return 0
  # Made once, kept with the data they protect: Postgres and the Fernet key outlive a restart.
  (umask 077 && "$venv/bin/python" - >"$secrets.tmp" <<'EOF'
import base64, os, secrets
for name in ("AIRFLOW_DB_PASSWORD", "REDIS_PASSWORD", "AIRFLOW_ADMIN_PASSWORD",
             "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY"):
    print(f"{name}={secrets.token_urlsafe(24)}")
print(f"AIRFLOW_FERNET_KEY={base64.urlsafe_b64encode(os.urandom(32)).decode()}")
EOF
  ) || fail "cannot generate $secrets"
  mv "$secrets.tmp" "$secrets"
}

# --- PostgreSQL and Redis ----------------------------------------------------------------------

# Run as the packages' own system users: both refuse or ought not to run as root, and those
# users exist once the packages are installed, own nothing else of ours and cannot log in.
as_user() { local user=$1; shift; setpriv --reuid="$(id -u "$user")" --regid="$(id -g "$user")" --clear-groups "$@"; }
# The same as a command line, for launch (setsid runs programs, not shell functions).
setpriv_for() { echo setpriv --reuid="$(id -u "$1")" --regid="$(id -g "$1")" --clear-groups; }

start_postgres() {
  local data="$cluster_state/postgres/data" sockets="$cluster_state/postgres/run" bin
  bin="$(pg_bin)"
  mkdir -p "$cluster_state/postgres" "$sockets"
  as_user postgres test -x "$cluster_state" \
    || fail "the postgres user cannot reach $cluster_state (a folder above it is closed to others); set NEWSRADAR_CLUSTER_STATE"
  chown postgres:postgres "$cluster_state/postgres" "$sockets"
  chmod 700 "$cluster_state/postgres" "$sockets"
  if [ ! -s "$data/PG_VERSION" ]; then
    # Local connections (the socket folder, 0700 to postgres) trust the postgres user; TCP
    # needs a password.
    as_user postgres "$bin/initdb" -D "$data" -U postgres --auth-local=trust \
      --auth-host=scram-sha-256 -E UTF8 >>"$logs/postgres.log" 2>&1 \
      || fail "initdb of $data failed; see $logs/postgres.log"
  fi
  # shellcheck disable=SC2046 # setpriv and its options
  launch postgres $(setpriv_for postgres) "$bin/postgres" -D "$data" -c listen_addresses=127.0.0.1 \
    -c port="$cluster_postgres_port" -c unix_socket_directories="$sockets" -c max_connections=200
  wait_for postgres 60 as_user postgres "$bin/pg_isready" -q -h "$sockets" -p "$cluster_postgres_port"
}

ensure_airflow_database() {
  local bin sockets="$cluster_state/postgres/run"
  bin="$(pg_bin)"
  local psql=(as_user postgres "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$sockets" -p "$cluster_postgres_port" -U postgres)
  # The password is set on every start, so the role always matches secrets.env.
  "${psql[@]}" -d postgres -v password="$AIRFLOW_DB_PASSWORD" >>"$logs/postgres.log" 2>&1 <<'EOF' \
    || fail "cannot create the airflow role and database; see $logs/postgres.log"
SELECT 'CREATE ROLE airflow LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'airflow')\gexec
ALTER ROLE airflow WITH LOGIN PASSWORD :'password';
SELECT 'CREATE DATABASE airflow OWNER airflow' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'airflow')\gexec
EOF
}

start_redis() {
  local dir="$cluster_state/redis"
  mkdir -p "$dir"
  # The password lives in the file, not on a command line every user can read.
  (umask 077 && cat >"$dir/redis.conf" <<EOF
bind 127.0.0.1
port $cluster_redis_port
protected-mode yes
requirepass $REDIS_PASSWORD
dir $dir
daemonize no
EOF
  )
  chown -R redis:redis "$dir"
  # shellcheck disable=SC2046 # setpriv and its options
  launch redis $(setpriv_for redis) redis-server "$dir/redis.conf"
  wait_for redis 30 redis_ping
}
redis_ping() { [ "$(REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h 127.0.0.1 -p "$cluster_redis_port" ping 2>/dev/null)" = PONG ]; }

# --- Airflow's settings ------------------------------------------------------------------------

# Every line NAME=value, shell-quoted: `start` sources it back, the tests read it with shlex.
write_settings() {
  local es_env="$cluster_state/es.env" config_dir prefix
  [ -s "$es_env" ] || fail "no $es_env: start the Elasticsearch cluster first (es-cluster.sh up)"
  config_dir="$(cd "${NEWSRADAR_CONFIG_DIR:-$root/config}" 2>/dev/null && pwd)" \
    || fail "NEWSRADAR_CONFIG_DIR ${NEWSRADAR_CONFIG_DIR:-} is not a directory"
  # The pipeline's API key in es.env reaches only the indices named <its prefix>-*: this
  # prefix must be that one or one under it (<its prefix>-something).
  local key_prefix
  key_prefix=$(sed -n 's/^NEWSRADAR_INDEX_PREFIX=//p' "$es_env" | tail -1)
  prefix="${NEWSRADAR_INDEX_PREFIX:-${key_prefix:-cluster}}"
  if [ -n "$key_prefix" ] && [ "$prefix" != "$key_prefix" ] && [ "${prefix#"$key_prefix"-}" = "$prefix" ]; then
    fail "NEWSRADAR_INDEX_PREFIX=$prefix is not under $key_prefix, the prefix of the API key in $es_env"
  fi
  local demo_port=""
  if [ "$config_dir" = "$root/config/demo" ]; then
    # config/demo names the site on 127.0.0.1:8765; the tasks read a copy naming the port the
    # kernel gives us, so the cluster takes no fixed port beyond its plan.
    demo_port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p "$cluster_state/config-demo"
    for file in sources.yaml alerts.yaml; do
      sed "s/127\.0\.0\.1:8765/127.0.0.1:$demo_port/g" "$config_dir/$file" >"$cluster_state/config-demo/$file"
    done
    config_dir="$cluster_state/config-demo"
  fi
  local api="http://127.0.0.1:$cluster_airflow_port" db="airflow:$AIRFLOW_DB_PASSWORD@127.0.0.1:$cluster_postgres_port/airflow"
  {
    echo "# Written by docker/cluster/stack.sh up: the settings every component runs with."
    emit CLUSTER_AIRFLOW_API "$api"
    emit CLUSTER_AIRFLOW_USER admin
    emit CLUSTER_AIRFLOW_PASSWORD "$AIRFLOW_ADMIN_PASSWORD"
    # As Celery's %h and airflow_hostname.py name the host: its short name.
    emit CLUSTER_WORKERS "worker1@$(hostname) worker2@$(hostname)"
    emit CLUSTER_MBOX "$cluster_state/mail/newsradar.mbox"
    emit CLUSTER_DEMO_PORT "$demo_port"
    emit CLUSTER_STARTED_AT "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    # The shared settings first, as written; then this machine's.
    grep -E '^AIRFLOW__[A-Z_]+=' "$root/docker/airflow.env" | while IFS='=' read -r name value; do emit "$name" "$value"; done
    emit AIRFLOW_HOME "$cluster_state/airflow"
    emit AIRFLOW__CORE__DAGS_FOLDER "$root/dags"
    emit AIRFLOW__CORE__FERNET_KEY "$AIRFLOW_FERNET_KEY"
    emit AIRFLOW__CORE__EXECUTION_API_SERVER_URL "$api/execution/"
    emit AIRFLOW__DATABASE__SQL_ALCHEMY_CONN "postgresql+psycopg2://$db"
    emit AIRFLOW__CELERY__RESULT_BACKEND "db+postgresql://$db"
    emit AIRFLOW__CELERY__BROKER_URL "redis://:$REDIS_PASSWORD@127.0.0.1:$cluster_redis_port/0"
    # Two cores here: two task slots per worker, so a handful of mapped tasks spread over both.
    emit AIRFLOW__CELERY__WORKER_CONCURRENCY "${AIRFLOW__CELERY__WORKER_CONCURRENCY:-2}"
    emit AIRFLOW__API_AUTH__JWT_SECRET "$AIRFLOW_JWT_SECRET"
    emit AIRFLOW__API__SECRET_KEY "$AIRFLOW_API_SECRET_KEY"
    emit AIRFLOW__API__HOST 127.0.0.1
    emit AIRFLOW__API__PORT "$cluster_airflow_port"
    emit AIRFLOW__API__BASE_URL "$api"
    emit AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST 127.0.0.1
    emit AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT "$cluster_scheduler_health_port"
    emit AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT "$cluster_trigger_log_port"
    emit AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT "${cluster_worker_log_ports[0]}"
    # What the tasks read: the caller's NEWSRADAR_*, then the cluster's, which win.
    env | grep -E '^NEWSRADAR_[A-Z0-9_]+=' | grep -vE '^NEWSRADAR_(ES_|CLUSTER_|STACK_|VENV=|PORT_BASE=|SMTP_HOST=|SMTP_PORT=|INDEX_PREFIX=|CONFIG_DIR=)' \
      | while IFS='=' read -r name value; do emit "$name" "$value"; done || true  # none set
    grep -E '^NEWSRADAR_[A-Z0-9_]+=' "$es_env"
    emit NEWSRADAR_INDEX_PREFIX "$prefix"
    emit NEWSRADAR_CONFIG_DIR "$config_dir"
    emit NEWSRADAR_SMTP_HOST 127.0.0.1
    emit NEWSRADAR_SMTP_PORT "$cluster_smtp_port"
  } >"$settings.tmp"
  chmod 600 "$settings.tmp"
  mv "$settings.tmp" "$settings"
}
emit() { printf '%s=%q\n' "$1" "$2"; }
load_settings() {
  [ -s "$settings" ] || fail "no $settings: run stack.sh up first"
  # The components see the settings written, not whatever NEWSRADAR_* this shell carries.
  local name
  for name in $(compgen -e | grep -E '^NEWSRADAR_' | grep -vE '^NEWSRADAR_(CLUSTER_|STACK_|VENV$)'); do
    unset "$name"
  done
  set -a
  # shellcheck source=/dev/null
  source "$settings"
  set +a
}

# --- Airflow -----------------------------------------------------------------------------------

airflow_setup() {
  mkdir -p "$AIRFLOW_HOME"
  echo "==== stack: airflow db migrate at $(date -u +%Y-%m-%dT%H:%M:%SZ) ====" >>"$logs/airflow-db.log"
  "$venv/bin/airflow" db migrate >>"$logs/airflow-db.log" 2>&1 \
    || fail "airflow db migrate failed; see $logs/airflow-db.log"
  if ! "$venv/bin/airflow" users list -o plain 2>>"$logs/airflow-db.log" | grep -qw "$CLUSTER_AIRFLOW_USER"; then
    "$venv/bin/airflow" users create --role Admin --username "$CLUSTER_AIRFLOW_USER" \
      --password "$CLUSTER_AIRFLOW_PASSWORD" --email admin@localhost.localdomain \
      --firstname newsradar --lastname admin >>"$logs/airflow-db.log" 2>&1 \
      || fail "cannot create the Airflow admin user; see $logs/airflow-db.log"
  fi
  "$venv/bin/newsradar" init >>"$logs/newsradar-init.log" 2>&1 \
    || fail "newsradar init failed against the cluster; see $logs/newsradar-init.log"
}

start_component() {  # start_component NAME: with the settings already in the environment
  local af="$venv/bin/airflow"
  case "$1" in
    postgres) start_postgres ;;
    redis) start_redis ;;
    mailsink)
      launch mailsink "$venv/bin/python" -m devtools.mailsink --port "$cluster_smtp_port" \
        --mbox "$cluster_state/mail/newsradar.mbox"
      wait_for mailsink 30 port_open "$cluster_smtp_port" ;;
    demosite)
      [ -n "$CLUSTER_DEMO_PORT" ] || fail "no demo site in this stack (NEWSRADAR_CONFIG_DIR is not config/demo)"
      launch demosite "$venv/bin/python" -m devtools.demosite --port "$CLUSTER_DEMO_PORT"
      wait_for demosite 30 port_open "$CLUSTER_DEMO_PORT" ;;
    api-server) launch api-server "$af" api-server --host 127.0.0.1 --port "$cluster_airflow_port" ;;
    scheduler) launch scheduler "$af" scheduler --skip-serve-logs ;;
    dag-processor) launch dag-processor "$af" dag-processor ;;
    # Its log server would listen on every interface; the task logs are files on this machine.
    triggerer) launch triggerer "$af" triggerer --skip-serve-logs ;;
    worker1 | worker2)
      local n=${1#worker}
      # Each its own log server port, and its Celery name as the host of the tasks it runs.
      AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="${cluster_worker_log_ports[$((n - 1))]}" \
        AIRFLOW__CORE__HOSTNAME_CALLABLE=airflow_hostname.hostname NEWSRADAR_CLUSTER_WORKER="$1" \
        PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" \
        launch "$1" "$af" celery worker --celery-hostname "$1@%h" \
        --concurrency "$AIRFLOW__CELERY__WORKER_CONCURRENCY" ;;
    *) usage ;;
  esac
}

api_answers() { "$venv/bin/python" -c 'import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/api/v2/version", timeout=5)' "$CLUSTER_AIRFLOW_API"; }

wait_ready() {
  local watch=() name
  for name in "${airflow_names[@]}"; do watch+=(--watch "$name" "$run/$name.pid" "$logs/$name.log"); done
  # shellcheck disable=SC2086 # two names
  PYTHONPATH="$root/docker${PYTHONPATH:+:$PYTHONPATH}" \
    "$venv/bin/python" "$here/stack-ready.py" --api "$CLUSTER_AIRFLOW_API" \
    --scheduler-health "http://127.0.0.1:$cluster_scheduler_health_port/health" \
    --user "$CLUSTER_AIRFLOW_USER" --password-env CLUSTER_AIRFLOW_PASSWORD \
    --dags ingest_feeds crawl_sites deliver_alerts maintenance --workers $CLUSTER_WORKERS \
    --timeout "${NEWSRADAR_STACK_TIMEOUT:-300}" "${watch[@]}"
}

up() {
  local started
  started=$(date +%s)
  install_packages
  [ -x "$venv/bin/airflow" ] || fail "no Airflow in $venv (run make install)"
  ensure_secrets
  set -a
  # shellcheck source=/dev/null
  source "$secrets"
  set +a
  local name any_airflow=0
  for name in "${airflow_names[@]}"; do running "$name" && any_airflow=1; done
  if [ "$any_airflow" = 1 ] && [ -s "$settings" ]; then
    echo "stack: Airflow is running: keeping the settings in $settings"
  else
    write_settings
  fi
  load_settings
  # Every path is absolute by now; the components (and so the tasks) run in the checkout.
  cd "$root"
  for name in postgres redis mailsink; do running "$name" || start_component "$name"; done
  [ -z "$CLUSTER_DEMO_PORT" ] || running demosite || start_component demosite
  ensure_airflow_database
  [ "$any_airflow" = 1 ] || airflow_setup
  # The API server first: a worker given a task before the execution API listens fails it
  # (connection refused), and the scheduler hands out tasks as soon as it runs.
  running api-server || start_component api-server
  wait_for api-server "${NEWSRADAR_STACK_TIMEOUT:-300}" api_answers
  for name in "${airflow_names[@]}"; do running "$name" || start_component "$name"; done
  wait_ready || exit 1
  echo "stack: up in $(($(date +%s) - started)) s; Airflow $CLUSTER_AIRFLOW_API (login in $settings)"
}

case "${1:-}" in
  up) [ "$#" = 1 ] || usage; mkdir -p "$run" "$logs" "$cluster_state/mail"; up ;;
  down) [ "$#" = 1 ] || usage; stop_all ;;
  status) [ "$#" = 1 ] || usage; status_all ;;
  kill) [ "$#" = 2 ] && known "$2" || usage; kill_component "$2" ;;
  start)
    [ "$#" = 2 ] && known "$2" || usage
    mkdir -p "$run" "$logs"
    load_settings
    cd "$root"
    set -a
    # shellcheck source=/dev/null
    source "$secrets"
    set +a
    if running "$2"; then echo "stack: $2 is already running (pid $(cat "$run/$2.pid"))"; else start_component "$2"; fi
    # An Airflow component is back when it answers, as after `up`: a worker takes tasks then.
    case " ${airflow_names[*]} " in *" $2 "*) wait_ready || exit 1 ;; esac ;;
  *) usage ;;
esac
