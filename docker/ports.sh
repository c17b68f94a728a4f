# The ports `make up` uses; sourced by up.sh and es-up.sh. NEWSRADAR_PORT_BASE moves them all:
#
#   base + 0  Elasticsearch HTTP               NEWSRADAR_ES_PORT                         9200
#   base + 1  Elasticsearch transport          NEWSRADAR_ES_TRANSPORT_PORT      HTTP port + 100
#   base + 2  Airflow API server (UI, REST,    AIRFLOW_PORT, AIRFLOW__API__PORT          8080
#             and the workers' execution API)
#   base + 3  Airflow worker log server        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT  8793
#   base + 4  Airflow triggerer log server     AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT 8794
#   base + 5  the loopback mail sink           NEWSRADAR_SMTP_PORT                       8025
#   base + 6  the demo news site               NEWSRADAR_DEMO_PORT                       8765
#
# A variable set on its own wins over the base; the last column is the port without either.
# pipeline/settings.py derives the Elasticsearch URL and the mail port the same way, so a shell
# with NEWSRADAR_PORT_BASE set reaches the same services with `newsradar ...`.
# Exports the NEWSRADAR_* variables and sets newsradar_<name>_port for each line above.

_ports_fail() { local script="${0##*/}"; echo "${script%.sh}: $*" >&2; exit 2; }
_ports_check() {  # _ports_check VARIABLE VALUE LOW HIGH
  [[ "$2" =~ ^[0-9]{1,5}$ ]] && [ "$2" -ge "$3" ] && [ "$2" -le "$4" ] \
    || _ports_fail "$1=$2 is not a port number ($3-$4)"
}

newsradar_port_span=7
if [ -n "${NEWSRADAR_PORT_BASE:-}" ]; then
  _ports_check NEWSRADAR_PORT_BASE "$NEWSRADAR_PORT_BASE" 1024 $((65535 - newsradar_port_span))
  _base=$((10#$NEWSRADAR_PORT_BASE))
  _default() { echo $((_base + $1)); }
else
  _default() { echo "$2"; }
fi

newsradar_es_port="${NEWSRADAR_ES_PORT:-$(_default 0 9200)}"
_ports_check NEWSRADAR_ES_PORT "$newsradar_es_port" 1 65535
if [ -n "${NEWSRADAR_ES_TRANSPORT_PORT:-}" ]; then
  newsradar_es_transport_port="$NEWSRADAR_ES_TRANSPORT_PORT"
elif [ -n "${NEWSRADAR_ES_PORT:-}" ] || [ -z "${NEWSRADAR_PORT_BASE:-}" ]; then
  newsradar_es_transport_port=$((newsradar_es_port + 100))  # as before the base existed
else
  newsradar_es_transport_port=$(_default 1 9300)
fi
_ports_check NEWSRADAR_ES_TRANSPORT_PORT "$newsradar_es_transport_port" 1 65535
newsradar_airflow_port="${AIRFLOW_PORT:-${AIRFLOW__API__PORT:-$(_default 2 8080)}}"
_ports_check AIRFLOW_PORT "$newsradar_airflow_port" 1 65535
newsradar_worker_log_port="${AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT:-$(_default 3 8793)}"
_ports_check AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT "$newsradar_worker_log_port" 1 65535
newsradar_trigger_log_port="${AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT:-$(_default 4 8794)}"
_ports_check AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT "$newsradar_trigger_log_port" 1 65535
newsradar_smtp_port="${NEWSRADAR_SMTP_PORT:-$(_default 5 8025)}"
_ports_check NEWSRADAR_SMTP_PORT "$newsradar_smtp_port" 1 65535
newsradar_demo_port="${NEWSRADAR_DEMO_PORT:-$(_default 6 8765)}"
_ports_check NEWSRADAR_DEMO_PORT "$newsradar_demo_port" 1 65535
unset -f _default
unset _base

# Leading zeros would read as octal in later arithmetic.
newsradar_es_port=$((10#$newsradar_es_port))
newsradar_es_transport_port=$((10#$newsradar_es_transport_port))
newsradar_airflow_port=$((10#$newsradar_airflow_port))
newsradar_worker_log_port=$((10#$newsradar_worker_log_port))
newsradar_trigger_log_port=$((10#$newsradar_trigger_log_port))
newsradar_smtp_port=$((10#$newsradar_smtp_port))
newsradar_demo_port=$((10#$newsradar_demo_port))
export NEWSRADAR_ES_PORT="$newsradar_es_port"
export NEWSRADAR_ES_TRANSPORT_PORT="$newsradar_es_transport_port"
