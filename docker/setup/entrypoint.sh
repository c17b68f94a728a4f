#!/bin/sh
# Entry point of the newsradar image (docker/Dockerfile).
#
# Compose cannot leave a variable out when .env leaves it empty, and an empty value is not the
# same as unset to the settings (an empty NEWSRADAR_SMTP_USER would mean "log in as ''"), so
# empty NEWSRADAR_* variables are removed. The pipeline's Elasticsearch API key is written to a
# file by the setup service (create-credentials.sh); NEWSRADAR_ES_API_KEY_FILE names it and its
# content becomes NEWSRADAR_ES_API_KEY, the variable the settings read.
set -eu

for name in $(env | sed -n 's/^\(NEWSRADAR_[A-Z0-9_]*\)=$/\1/p'); do
  unset "$name"
done

if [ -z "${NEWSRADAR_ES_API_KEY:-}" ] && [ -n "${NEWSRADAR_ES_API_KEY_FILE:-}" ]; then
  if [ ! -r "$NEWSRADAR_ES_API_KEY_FILE" ]; then
    echo "newsradar: cannot read the API key file $NEWSRADAR_ES_API_KEY_FILE (has setup run?)" >&2
    exit 1
  fi
  NEWSRADAR_ES_API_KEY=$(cat "$NEWSRADAR_ES_API_KEY_FILE")
  export NEWSRADAR_ES_API_KEY
fi
unset NEWSRADAR_ES_API_KEY_FILE

exec "$@"
