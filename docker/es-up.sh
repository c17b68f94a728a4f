#!/usr/bin/env bash
# Start one local Elasticsearch node in the background and wait until it is yellow or green.
# The node comes from org.codelibs:elasticsearch-cluster-runner, resolved by Maven from Central.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
state="$root/.local/es"
port="${NEWSRADAR_ES_PORT:-9200}"
url="http://127.0.0.1:$port"
mkdir -p "$state"

if curl -fsS -m 2 "$url/_cluster/health" >/dev/null 2>&1; then
  echo "es-up: a node already answers on $url"
  exit 0
fi

cp_file="$state/classpath.txt"
if [ ! -s "$cp_file" ]; then
  if ! mvn -B -q -U -s "$root/docker/es/settings.xml" -f "$root/docker/es/pom.xml" \
      dependency:build-classpath -Dmdep.outputFile="$cp_file" >"$state/maven.log" 2>&1; then
    rm -f "$cp_file"
    reason=$(grep -m1 -oE 'Could not (find|resolve)[^>]*' "$state/maven.log" || tail -n1 "$state/maven.log")
    echo "es-up: cannot resolve the Elasticsearch node from Maven Central: $reason (log: $state/maven.log)" >&2
    exit 1
  fi
fi

# The runner puts node N on baseHttpPort + N, so one node on $port needs base $port - 1.
nohup java -Xms1g -Xmx1g -cp "$(cat "$cp_file")" \
  org.codelibs.elasticsearch.runner.ElasticsearchClusterRunner \
  -basePath "$state/node" -numOfNode 1 -baseHttpPort "$((port - 1))" \
  -clusterName newsradar-local -printOnFailure >"$state/node.log" 2>&1 &
echo $! >"$state/es.pid"

for _ in $(seq 1 120); do
  if curl -fsS -m 2 "$url/_cluster/health?wait_for_status=yellow&timeout=1s" >/dev/null 2>&1; then
    echo "es-up: Elasticsearch is up on $url (pid $(cat "$state/es.pid"))"
    exit 0
  fi
  if ! kill -0 "$(cat "$state/es.pid")" 2>/dev/null; then
    echo "es-up: the node exited while starting; see $state/node.log" >&2
    exit 1
  fi
  sleep 1
done
echo "es-up: no yellow or green health on $url after 120 s; see $state/node.log" >&2
exit 1
