# Process handling for docker/cluster/stack.sh, sourced by it (needs $run, $logs, $grace,
# $all_names and fail). Each component runs in a session of its own (setsid), so its pid is its
# session id and every process it forks (Celery's pool, the task supervisors and their tasks,
# which take process groups of their own) can be found by that id: the session, not the
# process group, is what holds a component together.

running() { [ -s "$run/$1.pid" ] && session_alive "$(cat "$run/$1.pid")"; }

launch() {  # launch NAME COMMAND...: in the background, in a session of its own
  local name=$1
  shift
  # Appended, not truncated: a restart must not lose the previous run's errors.
  echo "==== stack: starting $name at $(date -u +%Y-%m-%dT%H:%M:%SZ) ====" >>"$logs/$name.log"
  setsid "$@" >>"$logs/$name.log" 2>&1 </dev/null &
  echo $! >"$run/$name.pid"
  echo "stack: started $name (pid $!, log $logs/$name.log)"
}

wait_for() {  # wait_for NAME SECONDS COMMAND...: until COMMAND succeeds
  local name=$1 seconds=$2
  shift 2
  for _ in $(seq 1 "$seconds"); do
    "$@" >/dev/null 2>&1 && return 0
    running "$name" || fail "$name exited while starting; see $logs/$name.log"
    sleep 1
  done
  fail "$name did not answer within $seconds s; see $logs/$name.log"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The live processes of session $1 and their descendants (PostgreSQL's backends open sessions
# of their own); zombies (exited, not yet reaped) are not.
session_pids() {
  ps -eo pid=,ppid=,sid=,stat= | awk -v session="$1" '
    { pid[NR] = $1; parent[NR] = $2; live[NR] = $4 !~ /^Z/; if ($3 == session) mine[$1] = 1 }
    END {
      do { grown = 0; for (i = 1; i <= NR; i++) if (!(pid[i] in mine) && (parent[i] in mine)) { mine[pid[i]] = 1; grown = 1 } } while (grown)
      for (i = 1; i <= NR; i++) if ((pid[i] in mine) && live[i]) print pid[i]
    }'
}
session_alive() { [ -n "$(session_pids "$1")" ]; }
signal_session() {  # signal_session SIGNAL SESSION
  local pids
  pids=$(session_pids "$2")
  # shellcheck disable=SC2086 # one argument per pid
  [ -z "$pids" ] || kill "-$1" $pids 2>/dev/null || true
}

stop_group() {  # stop_group NAME...: a polite signal to each, then wait for all; KILL the rest
  local name pid waiting=() still
  for name in "$@"; do
    [ -s "$run/$name.pid" ] || continue
    pid=$(cat "$run/$name.pid")
    if ! session_alive "$pid"; then
      rm -f "$run/$name.pid"
      continue
    fi
    if [ "$name" = postgres ]; then
      # SIGINT to the postmaster alone is PostgreSQL's fast shutdown (TERM waits for clients).
      kill -INT "$pid" 2>/dev/null || true
    else
      signal_session TERM "$pid"
    fi
    waiting+=("$name")
  done
  for _ in $(seq 1 "$grace"); do
    still=()
    for name in ${waiting[@]+"${waiting[@]}"}; do
      pid=$(cat "$run/$name.pid")
      if session_alive "$pid"; then
        still+=("$name")
      else
        rm -f "$run/$name.pid"
        echo "stack: stopped $name"
      fi
    done
    waiting=(${still[@]+"${still[@]}"})
    [ "${#waiting[@]}" -gt 0 ] || return 0
    sleep 1
  done
  for name in "${waiting[@]}"; do
    signal_session KILL "$(cat "$run/$name.pid")"
    rm -f "$run/$name.pid"
    echo "stack: killed $name (still running after $grace s)"
  done
}

stop_all() {
  # Workers first, so their tasks end while the API and the database still take their state;
  # the broker and the database last.
  stop_group worker1 worker2
  stop_group triggerer dag-processor scheduler
  stop_group api-server mailsink demosite
  stop_group redis
  stop_group postgres
}

memory_mb() {  # memory_mb FIELD PID...: Rss or Pss summed over the processes, in MB
  local field=$1 pid
  shift
  for pid in "$@"; do cat "/proc/$pid/smaps_rollup" 2>/dev/null; done \
    | awk -v field="$field:" '$1 == field { kb += $2 } END { print int(kb / 1024) }'
}

# One line per component with its memory: resident (RSS, pages shared between processes counted
# in each, as PostgreSQL's shared buffers are) and proportional (PSS, shared pages divided).
status_all() {
  local name pids rss pss total_rss=0 total_pss=0
  for name in "${all_names[@]}"; do
    if running "$name"; then
      mapfile -t pids < <(session_pids "$(cat "$run/$name.pid")")
      rss=$(memory_mb Rss "${pids[@]}")
      pss=$(memory_mb Pss "${pids[@]}")
      total_rss=$((total_rss + rss))
      total_pss=$((total_pss + pss))
      printf '%-14s running  pid %-8s %3s processes  RSS %5s MB  PSS %5s MB\n' "$name" \
        "$(cat "$run/$name.pid")" "${#pids[@]}" "$rss" "$pss"
    else
      printf '%-14s stopped\n' "$name"
    fi
  done
  printf '%-14s %42s %5s MB  PSS %5s MB\n' total RSS "$total_rss" "$total_pss"
}

kill_component() {  # kill -9 of every process of NAME's session: what a lost machine looks like
  running "$1" || fail "$1 is not running"
  local pid pids left
  pid=$(cat "$run/$1.pid")
  pids=$(session_pids "$pid")
  signal_session KILL "$pid"
  # Until each is gone, zombies too: a killed postmaster not yet reaped still holds its pid,
  # and PostgreSQL refuses to start while the pid in its lock file exists.
  for _ in $(seq 1 40); do
    left=0
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && left=1; done
    [ "$left" = 1 ] || break
    sleep 0.25
  done
  echo "stack: killed $1 (session $(cat "$run/$1.pid"))"
}
