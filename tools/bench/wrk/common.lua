-- Shared by every wrk scenario of tools/bench/run: the request headers, the
-- requests formatted up front, and one machine-readable result line per run:
--   RESULT requests_per_s p50_ms p99_ms p999_ms errors requests
-- (errors: non-2xx/3xx answers plus socket errors and timeouts).
function bench_headers(key)
  return {
    ["Authorization"] = "Bearer " .. key,
    ["Content-Type"] = "application/json",
  }
end

-- Every request a scenario sends, formatted once in init: the client's own
-- work per request (on the same two cores as the server) stays as small as
-- the static request of healthz, whatever the scenario.
function bench_requests(method, paths, headers, body)
  local requests = {}
  for i = 1, #paths do
    requests[i] = wrk.format(method, paths[i], headers, body)
  end
  return requests
end

-- A scenario that sends one request over and over: wrk's static request,
-- formatted once (into wrk.headers, which already holds Host).
function bench_static(key, method, path, body)
  wrk.method = method
  wrk.path = path
  for name, value in pairs(bench_headers(key)) do wrk.headers[name] = value end
  wrk.body = body
end

function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  local seconds = summary.duration / 1e6
  io.write(string.format("RESULT %.1f %.3f %.3f %.3f %d %d\n",
    summary.requests / seconds, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    errors, summary.requests))
end
