# The ports and state folders of `make cluster` (the production shape on loopback); sourced by
# every script under docker/cluster. NEWSRADAR_CLUSTER_PORT_BASE (default 29200) moves them all:
#
#   base + 0, 1, 2      Elasticsearch HTTP of es01, es02, es03    cluster_es_ports
#   base + 100, 101, 102 Elasticsearch transport of es01..es03    cluster_es_transport_ports
#   base + 25           the loopback mail sink                    cluster_smtp_port
#   base + 74           Airflow scheduler health check            cluster_scheduler_health_port
#   base + 80           Airflow API server                        cluster_airflow_port
#   base + 93, 94       Airflow worker log servers (worker1, 2)   cluster_worker_log_ports
#   base + 95           Airflow triggerer log server              cluster_trigger_log_port
#   base + 179          Redis                                     cluster_redis_port
#   base + 232          PostgreSQL                                cluster_postgres_port
#
# State goes under NEWSRADAR_CLUSTER_STATE (default <repo>/.local/cluster): Elasticsearch in
# es/, PostgreSQL in postgres/, Redis in redis/, Airflow in airflow/, logs in logs/, pids in
# run/. After `es-cluster.sh up`, $cluster_state/es.env holds the pipeline's connection.

_cluster_fail() { local script="${0##*/}"; echo "${script%.sh}: $*" >&2; exit 2; }

cluster_port_base="${NEWSRADAR_CLUSTER_PORT_BASE:-29200}"
[[ "$cluster_port_base" =~ ^[0-9]{1,5}$ ]] && [ "$((10#$cluster_port_base))" -ge 1024 ] \
  && [ "$((10#$cluster_port_base))" -le $((65535 - 232)) ] \
  || _cluster_fail "NEWSRADAR_CLUSTER_PORT_BASE=$cluster_port_base is not a port number (1024-65303)"
cluster_port_base=$((10#$cluster_port_base))

cluster_es_nodes=(es01 es02 es03)
cluster_es_ports=("$cluster_port_base" $((cluster_port_base + 1)) $((cluster_port_base + 2)))
cluster_es_transport_ports=($((cluster_port_base + 100)) $((cluster_port_base + 101)) \
  $((cluster_port_base + 102)))
cluster_smtp_port=$((cluster_port_base + 25))
cluster_scheduler_health_port=$((cluster_port_base + 74))
cluster_airflow_port=$((cluster_port_base + 80))
cluster_worker_log_ports=($((cluster_port_base + 93)) $((cluster_port_base + 94)))
cluster_trigger_log_port=$((cluster_port_base + 95))
cluster_redis_port=$((cluster_port_base + 179))
cluster_postgres_port=$((cluster_port_base + 232))

cluster_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cluster_state="${NEWSRADAR_CLUSTER_STATE:-$cluster_root/.local/cluster}"
case "$cluster_state" in
  /*) ;;
  *) _cluster_fail "NEWSRADAR_CLUSTER_STATE=$cluster_state is not an absolute path" ;;
esac
cluster_state="${cluster_state%/}"
