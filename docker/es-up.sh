#!/usr/bin/env bash
# Start one local Elasticsearch 8 node in the background and wait until it is yellow or green.
#
# The node is the project's distribution (docker/es-dist.sh): Elastic's integ-test distribution
# from Maven Central plus the project's local-node plugin (language analysers, root URL).
# Everything the node writes stays under .local/es, or NEWSRADAR_ES_STATE; NEWSRADAR_ES_PORT picks
# the HTTP port (default 9200; transport on port + 100, or NEWSRADAR_ES_TRANSPORT_PORT),
# NEWSRADAR_PORT_BASE moves both (docker/ports.sh). Elasticsearch refuses to run as root, so as root the node runs
# as the unprivileged user named by NEWSRADAR_ES_USER (default: nobody).
set -euo pipefail
# The node keeps the real clock when started from a process whose clock libfaketime moves (the
# suite a year ahead, `make test-future`): the node's clock is not under test, and a JVM under
# libfaketime can hang. So the script starts again without it, and so does everything it runs.
if [[ "${LD_PRELOAD:-}" == *faketime* ]]; then
  for name in $(compgen -e | grep '^FAKETIME' || true); do unset "$name"; done
  unset LD_PRELOAD
  exec bash "$0" "$@"
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
state="${NEWSRADAR_ES_STATE:-$root/.local/es}"
# shellcheck source=docker/ports.sh
source "$root/docker/ports.sh"
port="$newsradar_es_port"
url="http://127.0.0.1:$port"
pointer="$root/.local/es-state"  # where the node's files are when not in .local/es (es-down)

fail() { echo "es-up: $*" >&2; exit 1; }

# shellcheck source=docker/es-dist.sh
source "$root/docker/es-dist.sh"
# A node already running an older plugin build lacks analysers the mappings name, and every
# test would then fail on "unknown analyzer"; say so once, here.
plugin_build="$es_plugin_build"
if curl -fsS -m 2 "$url/_cluster/health" >/dev/null 2>&1; then
  running=$(curl -fsS -m 5 "$url/_nodes/plugins?filter_path=nodes.*.plugins.name,nodes.*.plugins.version" 2>/dev/null \
    | grep -oE '"name" *: *"newsradar-local" *, *"version" *: *"[^"]*"' | head -n1 \
    | sed -E 's/.*"version" *: *"([^"]*)"/\1/' || true)
  if [ -n "$running" ] && [ "$running" != "$plugin_build" ]; then
    fail "the node on $url runs local-node plugin $running, this checkout builds $plugin_build (new analysers); stop it (make es-down, with the same NEWSRADAR_PORT_BASE) and start it again"
  fi
  echo "es-up: a node already answers on $url"
  exit 0
fi

mkdir -p "$state" "$root/.local"
run_as=()
if [ "$(id -u)" = 0 ]; then
  user="${NEWSRADAR_ES_USER:-nobody}"
  uid=$(id -u "$user") || fail "no user '$user' to run the node as (set NEWSRADAR_ES_USER)"
  gid=$(id -g "$user")
  run_as=(setpriv --reuid="$uid" --regid="$gid" --clear-groups)
  if ! "${run_as[@]}" test -x "$state"; then
    # The checkout sits below a folder that user cannot enter (a home directory, say): the
    # node's files go to a folder of their own under the temporary directory instead.
    alternative="${TMPDIR:-/tmp}/newsradar-es-$(printf %s "$state" | sha1sum | cut -c1-12)"
    echo "es-up: user '$user' cannot reach $state; the node's files go to $alternative" >&2
    state="$alternative"
    mkdir -p "$state"
    chmod 755 "$state"
  fi
fi
if [ -z "${NEWSRADAR_ES_STATE:-}" ]; then
  if [ "$state" = "$root/.local/es" ]; then rm -f "$pointer"; else echo "$state" >"$pointer"; fi
fi
es_dist "$state"
home="$es_home"
java_home="$es_java_home"
pid_file="$state/run/es.pid"

mkdir -p "$state/data" "$state/logs" "$state/tmp" "$state/run"
cat >"$home/config/elasticsearch.yml" <<YAML
cluster.name: newsradar-local
node.name: local
network.host: 127.0.0.1
http.port: $port
transport.port: $newsradar_es_transport_port
discovery.type: single-node
# Local and test use only: production runs with security on (docker/compose.yml).
xpack.security.enabled: false
action.destructive_requires_name: false
path.data: $state/data
path.logs: $state/logs
YAML
printf -- '-Xms1g\n-Xmx1g\n' >"$home/config/jvm.options.d/heap.options"

if [ "${#run_as[@]}" -gt 0 ]; then
  chown -R "$uid:$gid" "$state/dist" "$state/data" "$state/logs" "$state/tmp" "$state/run"
  "${run_as[@]}" test -w "$state/data" || fail "user '$user' cannot write to $state/data"
fi

rm -f "$pid_file"
# Appended, not truncated: a restart must not lose the previous start's errors.
echo "==== es-up: starting Elasticsearch on $url at $(date -u +%Y-%m-%dT%H:%M:%SZ) ====" \
  >>"$state/node.log"
if ! "${run_as[@]}" env HOME="$state/tmp" ES_TMPDIR="$state/tmp" ES_JAVA_HOME="$java_home" \
    "$home/bin/elasticsearch" -d -p "$pid_file" >>"$state/node.log" 2>&1; then
  fail "the node did not start; see $state/node.log and $state/logs/newsradar-local.log"
fi

for _ in $(seq 1 120); do
  if curl -fsS -m 2 "$url/_cluster/health?wait_for_status=yellow&timeout=1s" >/dev/null 2>&1; then
    echo "es-up: Elasticsearch $es_version is up on $url (pid $(cat "$pid_file"))"
    exit 0
  fi
  if [ ! -s "$pid_file" ] || ! kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    fail "the node exited while starting; see $state/logs/newsradar-local.log"
  fi
  sleep 1
done
fail "no yellow or green health on $url after 120 s; see $state/logs/newsradar-local.log"
