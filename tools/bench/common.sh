# Shell helpers for the benchmark scripts (tools/bench/run,
# tools/bench/instructions, tools/bench/replay), sourced from the
# repository's root. Those that talk to the server use $url and the API key
# $key.

# Configures build-release as a Release build, with the tests off when it
# is configured for the first time; a build-release that already has them
# keeps them (the benchmarks build only their own targets).
configure_release() {
  if [ -f build-release/CMakeCache.txt ]; then
    cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
  else
    cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCONVSTORE_BUILD_TESTS=OFF >/dev/null
  fi
}

# The value of one metric of GET /metrics.
metric() { curl -s "$url/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
log_head() { metric convstore_log_head_position; }

# Waits, at most LIMIT seconds (default 300), until the server's storage
# has no flush or compaction running and none pending (twice in a row, a
# second apart), so that what is measured next does not share the two
# cores with the compactions of what was just loaded. Says how long.
wait_for_compactions() {  # [LIMIT]
  local limit=${1:-300} start=$SECONDS quiet=0
  while [ $((SECONDS - start)) -lt "$limit" ]; do
    if [ "$(metric convstore_storage_background_jobs)" = 0 ] &&
      [ "$(metric convstore_storage_pending_compaction_bytes)" = 0 ]; then
      quiet=$((quiet + 1))
      if [ "$quiet" -ge 2 ]; then
        echo "storage settled after $((SECONDS - start)) s"
        return 0
      fi
    else
      quiet=0
    fi
    sleep 1
  done
  echo "storage still compacting after $limit s; measuring anyway"
}

# Creates N more conversations of the agent $agent through the API with
# wrk. Each wrk thread stops sending after its share; wrk itself runs out
# its -d, so it is stopped once the log has grown by one event per
# conversation.
create_conversations() {  # N
  local missing=$1
  [ "$missing" -gt 0 ] || return 0
  local target=$(( $(log_head) + missing ))
  wrk -t2 -c32 -d3600s -s tools/bench/wrk/create.lua "$url" -- "$key" "$agent" \
    $(( (missing + 1) / 2 )) >/dev/null &
  local loader=$!
  while [ "$(log_head)" -lt "$target" ] && kill -0 "$loader" 2>/dev/null; do
    sleep 0.5
  done
  kill "$loader" 2>/dev/null; wait "$loader" 2>/dev/null || true
}
