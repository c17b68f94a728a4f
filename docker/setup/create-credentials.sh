#!/usr/bin/env bash
# One-shot setup of docker/compose.yml's Elasticsearch, safe to run on every `up`:
#   1. a CA and TLS certificates for every node (es01..es03) and, once the cluster answers,
#   2. the kibana_system password Kibana connects with,
#   3. the role <prefix>_analyst (read the dashboards in Kibana; give it to analysts' users),
#   4. an API key for the pipeline limited to the <prefix>-* indices, written to
#      /run/newsradar/es-api-key for the newsradar containers (kept while it still works).
# Runs as root in the Elasticsearch image (certutil, curl and unzip are there), and on a host for
# docker/cluster/es-cluster.sh: the variables below default to the image's paths and owners.
#   CERTS_DIR, SECRETS_DIR      where the certificates and the API key file go
#   ES_URL, ES_NODES            the node the calls go to; the nodes certificates are made for
#   CERTUTIL                    elasticsearch-certutil (default: bin/ of the current folder)
#   CERTS_OWNER, KEY_OWNER      owner:group of the certificates and of the key file
#   CERTS_ONLY=1                stop after step 1 (the nodes need certificates to start)
set -euo pipefail

fail() { echo "setup: $*" >&2; exit 1; }

: "${ELASTIC_PASSWORD:?set ELASTIC_PASSWORD in .env}"
: "${KIBANA_SYSTEM_PASSWORD:?set KIBANA_SYSTEM_PASSWORD in .env}"
: "${NEWSRADAR_INDEX_PREFIX:?set NEWSRADAR_INDEX_PREFIX in .env}"
for secret in "$ELASTIC_PASSWORD" "$KIBANA_SYSTEM_PASSWORD"; do
  case "$secret" in
    change-me*) fail "replace the change-me placeholders in .env with real secrets" ;;
  esac
done

# The paths compose mounts, unless set.
certs="${CERTS_DIR:-/usr/share/elasticsearch/config/certs}"
secrets="${SECRETS_DIR:-/run/newsradar}"
es_url="${ES_URL:-https://es01:9200}"
nodes="${ES_NODES:-es01 es02 es03}"
certutil="${CERTUTIL:-bin/elasticsearch-certutil}"
certs_owner="${CERTS_OWNER:-root:0}"
# The uid the newsradar image runs as (docker/Dockerfile); it must read the key file.
key_owner="${KEY_OWNER:-50000:0}"
key_name="newsradar-pipeline-$NEWSRADAR_INDEX_PREFIX"

# --- 1. certificates ---------------------------------------------------------------------------
mkdir -p "$certs"
if [ ! -f "$certs/ca/ca.crt" ]; then
  echo "setup: creating the certificate authority"
  "$certutil" ca --silent --pem --out "$certs/ca.zip"
  unzip -q -o "$certs/ca.zip" -d "$certs"
  rm -f "$certs/ca.zip"
fi
first_node="${nodes%% *}"
if [ ! -f "$certs/$first_node/$first_node.crt" ]; then
  echo "setup: creating node certificates for: $nodes"
  {
    echo "instances:"
    for node in $nodes; do
      printf '  - name: %s\n    dns: [%s, localhost]\n    ip: [127.0.0.1]\n' "$node" "$node"
    done
  } >"$certs/instances.yml"
  "$certutil" cert --silent --pem --in "$certs/instances.yml" \
    --out "$certs/nodes.zip" --ca-cert "$certs/ca/ca.crt" --ca-key "$certs/ca/ca.key"
  unzip -q -o "$certs/nodes.zip" -d "$certs"
  rm -f "$certs/nodes.zip"
fi
# Elasticsearch and Kibana run as uid 1000 and newsradar as 50000, all in group 0: group-read
# for the certificates, but the CA key stays root's, so no service can mint certificates.
chown -R "$certs_owner" "$certs"
find "$certs" -type d -exec chmod 0750 {} +
find "$certs" -type f -exec chmod 0640 {} +
chmod 0600 "$certs/ca/ca.key"
ca="$certs/ca/ca.crt"
if [ "${CERTS_ONLY:-}" = 1 ]; then
  echo "setup: certificates in $certs"
  exit 0
fi

# --- helpers -------------------------------------------------------------------------------------
json_string() {
  # A JSON string literal; the secrets are expected to be printable ASCII.
  printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
}

# es METHOD PATH [BODY]: the response body on stdout; fails unless the status is 2xx.
es() {
  local out status
  out=$(curl -sS --cacert "$ca" -u "elastic:$ELASTIC_PASSWORD" -X "$1" "$es_url$2" \
    -H 'Content-Type: application/json' ${3:+--data-binary "$3"} -w '\n%{http_code}') \
    || fail "$1 $2: Elasticsearch unreachable"
  status=${out##*$'\n'}
  out=${out%$'\n'*}
  case "$status" in
    2??) printf '%s' "$out" ;;
    *) fail "$1 $2 answered $status: $out" ;;
  esac
}

# --- 2. wait for the cluster, then the kibana_system password ------------------------------------
echo "setup: waiting for Elasticsearch at $es_url"
for _ in $(seq 1 120); do
  status=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$ca" -u "elastic:$ELASTIC_PASSWORD" \
    "$es_url/_cluster/health?wait_for_status=yellow&timeout=5s" || true)
  [ "$status" = 200 ] && break
  [ "$status" = 401 ] && fail "Elasticsearch refuses ELASTIC_PASSWORD (it is set on first start only)"
  sleep 5
done
[ "$status" = 200 ] || fail "Elasticsearch at $es_url is not up after 10 minutes"

es POST /_security/user/kibana_system/_password \
  "{\"password\": $(json_string "$KIBANA_SYSTEM_PASSWORD")}" >/dev/null
echo "setup: kibana_system password set"

# --- 3. the analysts' role -------------------------------------------------------------------------
indices="[\"$NEWSRADAR_INDEX_PREFIX-*\"]"
es PUT "/_security/role/${NEWSRADAR_INDEX_PREFIX}_analyst" "{
  \"description\": \"newsradar: read the $NEWSRADAR_INDEX_PREFIX-* indices and their Kibana dashboards\",
  \"indices\": [{\"names\": $indices, \"privileges\": [\"read\", \"view_index_metadata\"]}],
  \"applications\": [{
    \"application\": \"kibana-.kibana\",
    \"privileges\": [\"feature_dashboard.read\", \"feature_discover.read\", \"feature_visualize.read\"],
    \"resources\": [\"*\"]
  }]
}" >/dev/null
echo "setup: role ${NEWSRADAR_INDEX_PREFIX}_analyst in place"

# --- 4. the pipeline's API key ---------------------------------------------------------------------
# What `newsradar init` and the stages need, nothing more: index templates, the articles ILM
# policy, cluster health; create, map, roll over, read and write its own indices only.
pipeline_role="{
  \"cluster\": [\"monitor\", \"manage_index_templates\", \"manage_ilm\"],
  \"indices\": [{
    \"names\": $indices,
    \"privileges\": [\"create_index\", \"manage\", \"read\", \"write\", \"view_index_metadata\"]
  }]
}"
mkdir -p "$secrets"
key_file="$secrets/es-api-key"
if [ -s "$key_file" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$ca" \
    -H "Authorization: ApiKey $(cat "$key_file")" "$es_url/_security/_authenticate")" = 200 ]; then
  echo "setup: the pipeline's API key still works; kept"
else
  # A lost or revoked key: retire the old ones by name so exactly one stays valid.
  es DELETE /_security/api_key "{\"name\": \"$key_name\"}" >/dev/null
  created=$(es POST /_security/api_key "{
    \"name\": \"$key_name\",
    \"role_descriptors\": {\"newsradar_pipeline\": $pipeline_role},
    \"metadata\": {\"managed_by\": \"newsradar\", \"index_prefix\": \"$NEWSRADAR_INDEX_PREFIX\"}
  }")
  encoded=$(printf '%s' "$created" | sed -n 's/.*"encoded" *: *"\([^"]*\)".*/\1/p')
  [ -n "$encoded" ] || fail "no API key in Elasticsearch's answer"
  (umask 077 && printf '%s' "$encoded" >"$key_file.new")
  mv "$key_file.new" "$key_file"
  echo "setup: created the pipeline's API key $key_name"
fi
chown "$key_owner" "$key_file"
chmod 0440 "$key_file"
echo "setup: done"
