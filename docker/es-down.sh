#!/usr/bin/env bash
# Stop the local Elasticsearch node started by es-up.sh, by its pid.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pid_file="${NEWSRADAR_ES_STATE:-$root/.local/es}/run/es.pid"
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
