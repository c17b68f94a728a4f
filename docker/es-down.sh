#!/usr/bin/env bash
# Stop the local Elasticsearch node started by es-up.sh, by its pid.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# es-up.sh leaves a pointer when the node's files could not live in .local/es.
default_state="$root/.local/es"
[ -s "$root/.local/es-state" ] && default_state="$(cat "$root/.local/es-state")"
state="${NEWSRADAR_ES_STATE:-$default_state}"
pid_file="$state/run/es.pid"
if [ ! -s "$pid_file" ]; then
  # The folder es-up.sh falls back to when the node's user cannot reach $state.
  alternative="${TMPDIR:-/tmp}/newsradar-es-$(printf %s "$state" | sha1sum | cut -c1-12)"
  [ -s "$alternative/run/es.pid" ] && pid_file="$alternative/run/es.pid"
fi
if [ ! -s "$pid_file" ] || ! kill -0 "$(cat "$pid_file")" 2>/dev/null; then
  echo "es-down: no local node is running"
  rm -f "$pid_file"
  exit 0
fi
pid=$(cat "$pid_file")
kill "$pid"
for _ in $(seq 1 30); do
  kill -0 "$pid" 2>/dev/null || { rm -f "$pid_file"; echo "es-down: stopped pid $pid"; exit 0; }
  sleep 1
done
kill -9 "$pid" 2>/dev/null || true
rm -f "$pid_file"
echo "es-down: pid $pid did not stop in 30 s and was killed"
