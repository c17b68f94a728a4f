# The project's Elasticsearch distribution, sourced by docker/es-up.sh and
# docker/cluster/es-cluster.sh so the single node and the cluster run the same build.
#
# It is Elastic's integ-test distribution of Elasticsearch, resolved by Maven from Maven Central
# (docker/es/pom.xml), plus the project's local-node plugin (docker/es/plugin), which adds the
# language analysers and the root URL that distribution leaves out. Defines:
#   es_version       the Elasticsearch version
#   es_plugin_build  the plugin's version: a digest of its sources and of the pom
#   es_dist STATE    resolve and build into STATE (dist/, plugin-jars/, maven.log, ...); sets
#                    es_home (the distribution's folder) and es_java_home
# The caller defines fail (one-line error, then exit) and sets root (the checkout).

es_version=8.19.21
# The plugin's version names its build: a digest of its sources and of the pom that pins its
# Lucene modules, so a node running an older build can be told apart.
# shellcheck disable=SC2046
es_plugin_build="1.1.0-$(cat "$root/docker/es/pom.xml" $(find "$root/docker/es/plugin" -type f | LC_ALL=C sort) \
  | sha1sum | cut -c1-12)"

_es_mvn_run() {  # _es_mvn_run STATE ARGS...
  local state="$1"
  shift
  # Markers and build output go under the state folder too, so the checkout stays clean.
  mvn -B -q -s "$root/docker/es/settings.xml" -f "$root/docker/es/pom.xml" \
    -DmarkersDirectory="$state/markers" -Dproject.build.directory="$state/target" \
    "$@" >>"$state/maven.log" 2>&1
}

es_dist() {  # es_dist STATE
  local state="$1" plugin sources reason java_bin
  es_home="$state/dist/elasticsearch-$es_version"
  plugin="$es_home/plugins/newsradar-local"
  mkdir -p "$state"
  # Resolved again when the pom changed since (a Lucene module added to the plugin, say).
  if [ ! -x "$es_home/bin/elasticsearch" ] || [ ! -d "$state/plugin-jars" ] \
      || [ "$root/docker/es/pom.xml" -nt "$state/plugin-jars" ]; then
    rm -rf "$state/dist" "$state/plugin-jars" "$state/markers" "$state/maven.log"
    if ! _es_mvn_run "$state" dependency:unpack-dependencies -DincludeTypes=zip \
          -DoutputDirectory="$state/dist" \
        || ! _es_mvn_run "$state" dependency:copy-dependencies -DexcludeTypes=zip \
          -DoutputDirectory="$state/plugin-jars"; then
      rm -rf "$state/dist" "$state/plugin-jars"
      reason=$(grep -m1 -oE 'Could not (find|resolve)[^>]*' "$state/maven.log" || tail -n1 "$state/maven.log")
      fail "cannot resolve the Elasticsearch node from Maven Central: $reason (log: $state/maven.log)"
    fi
    touch "$state/plugin-jars"
  fi

  java_bin="$(command -v java)" || fail "no java on PATH (the node needs Java 17)"
  es_java_home="${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$java_bin")")")}"

  # The plugin is rebuilt whenever one of its sources is newer than its jar.
  sources=$(find "$root/docker/es/plugin/src" -name '*.java')
  if [ ! -s "$plugin/newsradar-local.jar" ] || [ "$state/plugin-jars" -nt "$plugin/newsradar-local.jar" ] \
      || [ -n "$(find "$root/docker/es/plugin" -newer "$plugin/newsradar-local.jar" -type f)" ]; then
    rm -rf "$plugin" "$state/plugin-classes"
    mkdir -p "$plugin" "$state/plugin-classes"
    # shellcheck disable=SC2086
    "$es_java_home/bin/javac" --release 17 -nowarn -d "$state/plugin-classes" \
      -cp "$es_home/lib/*:$state/plugin-jars/*" $sources >"$state/plugin-build.log" 2>&1 \
      || fail "the local-node plugin does not compile; see $state/plugin-build.log"
    "$es_java_home/bin/jar" cf "$plugin/newsradar-local.jar" -C "$state/plugin-classes" .
    cp "$state/plugin-jars"/*.jar "$plugin/"
    sed -e "s/@ES_VERSION@/$es_version/" -e "s/@PLUGIN_BUILD@/$es_plugin_build/" \
      "$root/docker/es/plugin/plugin-descriptor.properties" >"$plugin/plugin-descriptor.properties"
  fi
}
