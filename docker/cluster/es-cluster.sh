#!/usr/bin/env bash
# Run the production shape of Elasticsearch on loopback: three nodes es01..es03 of the project's
# distribution (docker/es-dist.sh) with security on as docker/compose.yml sets it (TLS on
# transport and HTTP, an elastic password, the pipeline's least-privilege API key, all made by
# docker/setup/create-credentials.sh).
#
#   es-cluster.sh up            start the nodes that are down, wait for green, write es.env
#   es-cluster.sh down          stop every node (state kept)
#   es-cluster.sh status        each node up or down, and the cluster's health
#   es-cluster.sh kill NODE     kill -9 that node's JVM
#   es-cluster.sh start NODE    start that node again with its data and wait for green
#
# Ports and folders are docker/cluster/ports.sh's. Everything lives in $cluster_state/es: the
# distribution, certs/, secrets/, the elastic password, and per node <node>/config (its
# ES_PATH_CONF with keystore and certificates) and <node>/data. Logs go to $cluster_state/logs,
# pids to $cluster_state/run/es. Elasticsearch refuses to run as root, so as root the nodes run
# as NEWSRADAR_ES_USER (default: nobody).
set -euo pipefail
# As in es-up.sh: the nodes keep the real clock even when started from a faked one.
if [[ "${LD_PRELOAD:-}" == *faketime* ]]; then
  for name in $(compgen -e | grep '^FAKETIME' || true); do unset "$name"; done
  unset LD_PRELOAD
  exec bash "$0" "$@"
fi

fail() { echo "es-cluster: $*" >&2; exit 1; }
say() { echo "es-cluster: $*"; }

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=docker/cluster/ports.sh
source "$here/ports.sh"
# shellcheck source=docker/es-dist.sh
source "$root/docker/es-dist.sh"
# shellcheck source=docker/cluster/es-lib.sh
source "$here/es-lib.sh"

usage="usage: es-cluster.sh up|down|status|kill NODE|start NODE (NODE: ${cluster_es_nodes[*]})"
command="${1:-}"
case "$command" in
  up)
    es_cluster_up
    ;;
  down)
    es_cluster_down
    ;;
  status)
    es_cluster_status
    ;;
  kill | start)
    [ $# -eq 2 ] || fail "$usage"
    node_index "$2" >/dev/null
    if [ "$command" = kill ]; then es_kill_node "$2"; else es_start_one "$2"; fi
    ;;
  *)
    fail "$usage"
    ;;
esac
