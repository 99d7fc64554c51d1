-- Shared by every wrk scenario of tools/bench/run: the request headers and
-- one machine-readable result line per run:
--   RESULT requests_per_s p50_ms p99_ms p999_ms errors requests
-- (errors: non-2xx/3xx answers plus socket errors and timeouts).
function bench_headers(key)
  return {
    ["Authorization"] = "Bearer " .. key,
    ["Content-Type"] = "application/json",
  }
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
