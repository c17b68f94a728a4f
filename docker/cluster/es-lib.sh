# The work behind docker/cluster/es-cluster.sh, sourced by it after ports.sh and es-dist.sh
# (which define cluster_*, es_dist and fail).

es_state="$cluster_state/es"
es_certs="$es_state/certs"
es_prefix="${NEWSRADAR_INDEX_PREFIX:-newsradar}"
[[ "$es_prefix" =~ ^[a-z0-9][a-z0-9_-]*$ ]] \
  || fail "NEWSRADAR_INDEX_PREFIX=$es_prefix is not an index prefix (a-z, 0-9, _ and -)"
# One API key per index prefix: a key made for another prefix still authenticates, so it would
# be kept, and refused on this prefix's indices.
es_secrets="$es_state/secrets/$es_prefix"
es_password_file="$es_state/elastic-password"
es_kibana_password_file="$es_state/kibana-system-password"
es_formed="$es_state/cluster-formed"  # once there: no cluster.initial_master_nodes any more
es_logs="$cluster_state/logs"
es_pids="$cluster_state/run/es"
es_env_file="$cluster_state/es.env"
es_compose="$root/docker/compose.yml"
es_heap="${NEWSRADAR_CLUSTER_ES_HEAP:-512m}"

node_index() {  # node_index NODE: its position in cluster_es_nodes
  local i
  for i in "${!cluster_es_nodes[@]}"; do
    [ "${cluster_es_nodes[$i]}" = "$1" ] && { echo "$i"; return 0; }
  done
  fail "unknown node '$1' (nodes: ${cluster_es_nodes[*]})"
}

es_run_as_setup() {  # sets run_as (empty unless root), node_uid and node_gid
  run_as=()
  node_uid=$(id -u)
  node_gid=$(id -g)
  if [ "$node_uid" = 0 ]; then
    local user="${NEWSRADAR_ES_USER:-nobody}"
    node_uid=$(id -u "$user") || fail "no user '$user' to run the nodes as (set NEWSRADAR_ES_USER)"
    node_gid=$(id -g "$user")
    run_as=(setpriv --reuid="$node_uid" --regid="$node_gid" --clear-groups)
  fi
}

node_pid() {  # node_pid NODE: the pid of its JVM, if it runs; status 1 otherwise
  local file="$es_pids/$1.pid" pid
  [ -s "$file" ] || return 1
  pid=$(cat "$file")
  # A pid file left by a killed node may name a pid since reused by another process.
  kill -0 "$pid" 2>/dev/null && grep -qa "org.elasticsearch" "/proc/$pid/cmdline" 2>/dev/null \
    || return 1
  echo "$pid"
}

es_curl() {  # es_curl PORT PATH [CURL ARGS...]: as the elastic user, over HTTPS with the CA
  local port="$1" path="$2"
  shift 2
  curl -sS --cacert "$es_certs/ca/ca.crt" -u "elastic:$(cat "$es_password_file")" \
    "https://127.0.0.1:$port$path" "$@"
}

es_health() {  # es_health [WAIT]: the cluster health line from the first node that answers
  local port out
  for port in "${cluster_es_ports[@]}"; do
    out=$(es_curl "$port" "/_cluster/health?${1:-}" -m 70 2>/dev/null) || continue
    case "$out" in
      *'"cluster_name"'*) echo "$out"; return 0 ;;
    esac
  done
  return 1
}

es_wait_green() {  # es_wait_green SECONDS NODES: green with NODES nodes, else fail
  local deadline=$((SECONDS + $1)) health=""
  while [ "$SECONDS" -lt "$deadline" ]; do
    health=$(es_health "wait_for_status=green&wait_for_nodes=$2&timeout=5s" || true)
    case "$health" in
      *'"status":"green"'*'"timed_out":false'* | *'"timed_out":false'*'"status":"green"'*)
        [[ "$health" == *"\"number_of_nodes\":$2,"* ]] && return 0 ;;
    esac
    sleep 1
  done
  fail "the cluster is not green with $2 nodes after $1 s (last health: ${health:-none}); see $es_logs"
}

# The security settings of compose's x-elasticsearch-env (the xpack.* lines), so the cluster runs
# with exactly what production sets; the node's own key and certificate are added per node.
es_security_settings() {
  [ -r "$es_compose" ] || fail "cannot read $es_compose for the security settings"
  awk '/^x-elasticsearch-env:/ {on = 1; next}
       on && /^[^ ]/ {exit}
       on && /^  xpack\.[A-Za-z0-9_.]+: / {
         key = $1; sub(/:$/, "", key)
         value = substr($0, index($0, ": ") + 2); gsub(/"/, "", value)
         print key ": " value
       }' "$es_compose"
}

es_secret() {  # es_secret FILE: a random secret kept in FILE (0600), made once
  if [ ! -s "$1" ]; then
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$1.new")
    mv "$1.new" "$1"
  fi
  cat "$1"
}

es_credentials() {  # es_credentials [CERTS_ONLY]: create-credentials.sh with the cluster's paths
  env ELASTIC_PASSWORD="$(cat "$es_password_file")" \
    KIBANA_SYSTEM_PASSWORD="$(cat "$es_kibana_password_file")" \
    NEWSRADAR_INDEX_PREFIX="$es_prefix" ES_URL="https://127.0.0.1:${cluster_es_ports[0]}" \
    ES_NODES="${cluster_es_nodes[*]}" CERTS_DIR="$es_certs" SECRETS_DIR="$es_secrets" \
    CERTUTIL="$es_home/bin/elasticsearch-certutil" ES_JAVA_HOME="$es_java_home" \
    CERTS_OWNER="$(id -u):$(id -g)" KEY_OWNER="$(id -u):$(id -g)" CERTS_ONLY="${1:-}" \
    bash "$root/docker/setup/create-credentials.sh" >>"$es_logs/credentials.log" 2>&1 \
    || fail "create-credentials.sh failed: $(tail -n1 "$es_logs/credentials.log") (log: $es_logs/credentials.log)"
}

es_node_config() {  # es_node_config NODE: ES_PATH_CONF with settings, certificates, keystore
  local node="$1" i conf="$es_state/$1/config" seeds="" port
  i=$(node_index "$node")
  for port in "${cluster_es_transport_ports[@]}"; do seeds="$seeds${seeds:+, }\"127.0.0.1:$port\""; done
  if [ ! -f "$conf/jvm.options" ]; then
    mkdir -p "$conf"
    cp -r "$es_home/config/." "$conf/"
    rm -f "$conf/elasticsearch.yml" "$conf/elasticsearch.keystore"
  fi
  mkdir -p "$es_state/$node/data" "$es_state/$node/tmp" "$es_logs/$node" "$conf/certs/ca"
  # A node needs the CA's certificate, never its key.
  cp "$es_certs/ca/ca.crt" "$conf/certs/ca/"
  cp -r "$es_certs/$node" "$conf/certs/"
  {
    echo "# Written by docker/cluster/es-cluster.sh on every start."
    echo "cluster.name: newsradar-cluster"
    echo "node.name: $node"
    echo "network.host: 127.0.0.1"
    echo "http.port: ${cluster_es_ports[$i]}"
    echo "transport.port: ${cluster_es_transport_ports[$i]}"
    echo "discovery.seed_hosts: [$seeds]"
    if [ ! -e "$es_formed" ]; then
      local masters="${cluster_es_nodes[*]}"
      echo "cluster.initial_master_nodes: [${masters// /, }]"
    fi
    echo "path.data: $es_state/$node/data"
    echo "path.logs: $es_logs/$node"
    es_security_settings
    echo "xpack.security.http.ssl.key: certs/$node/$node.key"
    echo "xpack.security.http.ssl.certificate: certs/$node/$node.crt"
    echo "xpack.security.transport.ssl.key: certs/$node/$node.key"
    echo "xpack.security.transport.ssl.certificate: certs/$node/$node.crt"
  } >"$conf/elasticsearch.yml"
  printf -- '-Xms%s\n-Xmx%s\n' "$es_heap" "$es_heap" >"$conf/jvm.options.d/heap.options"
  if [ "${#run_as[@]}" -gt 0 ]; then
    chown -R "$node_uid:$node_gid" "$es_state/$node" "$es_logs/$node"
  fi
  # The elastic password, as the Docker image passes ELASTIC_PASSWORD: the keystore's
  # bootstrap.password, which holds until a password is stored in the security index.
  # A digest of the password beside the keystore saves a JVM start per node on every start.
  local digest
  digest=$(es_secret "$es_password_file" | sha256sum | cut -c1-64)
  if [ ! -s "$conf/elasticsearch.keystore" ] || [ "$(cat "$conf/.bootstrap-password" 2>/dev/null)" != "$digest" ]; then
    if [ ! -s "$conf/elasticsearch.keystore" ]; then
      es_node_env "$node" "$es_home/bin/elasticsearch-keystore" create </dev/null >/dev/null 2>&1 \
        || fail "cannot create the keystore in $conf"
    fi
    es_secret "$es_password_file" \
      | es_node_env "$node" "$es_home/bin/elasticsearch-keystore" add -x -f bootstrap.password \
      >>"$es_logs/$node.out" 2>&1 || fail "cannot add the elastic password to $conf's keystore"
    echo "$digest" >"$conf/.bootstrap-password"
  fi
}

es_node_env() {  # es_node_env NODE COMMAND...: run COMMAND as the node's user with its config
  local node="$1"
  shift
  "${run_as[@]}" env HOME="$es_state/$node/tmp" ES_TMPDIR="$es_state/$node/tmp" \
    ES_PATH_CONF="$es_state/$node/config" ES_JAVA_HOME="$es_java_home" "$@"
}

es_start_node() {  # es_start_node NODE: start its JVM unless it runs; returns once it is started
  local node="$1"
  if node_pid "$node" >/dev/null; then
    say "$node already runs (pid $(node_pid "$node"))"
    return 0
  fi
  es_node_config "$node"
  rm -f "$es_pids/$node.pid"
  echo "==== es-cluster: starting $node at $(date -u +%Y-%m-%dT%H:%M:%SZ) ====" >>"$es_logs/$node.out"
  es_node_env "$node" "$es_home/bin/elasticsearch" -d -p "$es_pids/$node.pid" \
    >>"$es_logs/$node.out" 2>&1 \
    || fail "$node did not start; see $es_logs/$node.out and $es_logs/$node/newsradar-cluster.log"
  say "$node started (pid $(cat "$es_pids/$node.pid"))"
}

es_cluster_plugin() {  # the security index's analysis (es-plugin/), built into the cluster's copy
  local src="$here/es-plugin" dir="$es_home/plugins/newsradar-cluster" classes="$es_state/cluster-plugin-classes" build
  # shellcheck disable=SC2046
  build="1.0.0-$(cat $(find "$src" -type f | LC_ALL=C sort) | sha1sum | cut -c1-12)"
  if [ -s "$dir/newsradar-cluster.jar" ] && grep -qx "version=$build" "$dir/plugin-descriptor.properties"; then
    return 0
  fi
  rm -rf "$dir" "$classes"
  mkdir -p "$dir" "$classes"
  "$es_java_home/bin/javac" --release 17 -nowarn -d "$classes" -cp "$es_home/lib/*" \
    $(find "$src/src" -name '*.java') >"$es_logs/cluster-plugin-build.log" 2>&1 \
    || fail "the cluster plugin does not compile; see $es_logs/cluster-plugin-build.log"
  "$es_java_home/bin/jar" cf "$dir/newsradar-cluster.jar" -C "$classes" .
  sed -e "s/@ES_VERSION@/$es_version/" -e "s/@PLUGIN_BUILD@/$build/" \
    "$src/plugin-descriptor.properties" >"$dir/plugin-descriptor.properties"
}

es_prepare() {  # the distribution, the secrets, the certificates and the folders
  es_run_as_setup
  mkdir -p "$es_state" "$es_logs" "$es_pids" "$es_secrets"
  chmod 755 "$cluster_state" "$es_state" "$es_logs" "$cluster_state/run" 2>/dev/null || true
  if [ "${#run_as[@]}" -gt 0 ]; then
    "${run_as[@]}" test -x "$es_state" \
      || fail "user with uid $node_uid cannot reach $es_state (set NEWSRADAR_CLUSTER_STATE)"
    chown "$node_uid:$node_gid" "$es_pids"
  fi
  es_dist "$es_state"
  es_cluster_plugin
  es_secret "$es_password_file" >/dev/null
  es_secret "$es_kibana_password_file" >/dev/null
  es_credentials 1
}

es_write_env() {  # the pipeline's connection, for stack.sh and tests/cluster (0600)
  local urls="" port
  for port in "${cluster_es_ports[@]}"; do urls="$urls${urls:+,}https://127.0.0.1:$port"; done
  [ -s "$es_secrets/es-api-key" ] || fail "no API key in $es_secrets/es-api-key"
  # The CA's certificate is public; a copy any user can read, for services not run as root.
  cp "$es_certs/ca/ca.crt" "$es_state/ca.crt"
  chmod 644 "$es_state/ca.crt"
  (
    umask 077
    {
      echo "NEWSRADAR_ES_URL=$urls"
      echo "NEWSRADAR_ES_CA_CERTS=$es_state/ca.crt"
      echo "NEWSRADAR_ES_API_KEY=$(cat "$es_secrets/es-api-key")"
      echo "NEWSRADAR_INDEX_PREFIX=$es_prefix"
      echo "CLUSTER_ES_ELASTIC_PASSWORD=$(cat "$es_password_file")"
    } >"$es_env_file.new"
  )
  mv "$es_env_file.new" "$es_env_file"
}

es_cluster_up() {
  local started=$SECONDS node pids=() failed=0 pid
  es_prepare
  for node in "${cluster_es_nodes[@]}"; do
    # In parallel: a node's start waits for it to join a cluster, which needs the others.
    es_start_node "$node" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  [ "$failed" = 0 ] || fail "a node did not start; see $es_logs"
  # Three JVMs starting on a small machine: minutes, more under load.
  es_wait_green 600 "${#cluster_es_nodes[@]}"
  touch "$es_formed"
  es_credentials
  es_write_env
  es_wait_green 120 "${#cluster_es_nodes[@]}"
  say "${#cluster_es_nodes[@]} nodes green in $((SECONDS - started)) s; connection in $es_env_file"
}

es_stop_pids() {  # es_stop_pids SIGNAL NODE...: signal each running node, wait until gone
  local signal="$1" node pid deadline
  shift
  declare -A running=()
  for node in "$@"; do
    if pid=$(node_pid "$node"); then
      kill "-$signal" "$pid" 2>/dev/null || true
      running[$node]=$pid
    else
      say "$node is not running"
    fi
  done
  deadline=$((SECONDS + 60))
  for node in "${!running[@]}"; do
    while kill -0 "${running[$node]}" 2>/dev/null; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        kill -9 "${running[$node]}" 2>/dev/null || true
        say "$node did not stop in 60 s and was killed"
      fi
      sleep 0.2
    done
    rm -f "$es_pids/$node.pid"
    say "$node stopped (pid ${running[$node]}, SIG$signal)"
  done
}

es_cluster_down() {
  es_stop_pids TERM "${cluster_es_nodes[@]}"
}

es_kill_node() {
  node_pid "$1" >/dev/null || fail "$1 is not running"
  es_stop_pids KILL "$1"
}

es_start_one() {
  local started=$SECONDS
  es_prepare
  es_start_node "$1"
  es_wait_green 600 "${#cluster_es_nodes[@]}"
  say "$1 back; ${#cluster_es_nodes[@]} nodes green in $((SECONDS - started)) s"
}

es_cluster_status() {  # exit status 0 when every node runs and the cluster is green
  local node i pid health all=0
  for i in "${!cluster_es_nodes[@]}"; do
    node="${cluster_es_nodes[$i]}"
    if pid=$(node_pid "$node"); then
      echo "$node up (pid $pid, https://127.0.0.1:${cluster_es_ports[$i]})"
    else
      echo "$node down"
      all=1
    fi
  done
  if [ -s "$es_password_file" ] && health=$(es_health); then
    echo "health: $(printf '%s' "$health" | grep -oE '"(status|number_of_nodes|active_shards|unassigned_shards)":"?[a-z0-9]+' | tr -d '"' | tr '\n' ' ')"
    [[ "$health" == *'"status":"green"'* ]] || all=1
  else
    echo "health: no node answers"
    all=1
  fi
  return "$all"
}
