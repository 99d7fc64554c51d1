-- GET one conversation, rotating over the conversations given.
-- wrk ... -s get.lua URL -- KEY CONV...
dofile("tools/bench/wrk/common.lua")
local requests, n = {}, 0

function init(args)
  local paths = {}
  for i = 2, #args do paths[#paths + 1] = "/v1/conversations/" .. args[i] end
  requests = bench_requests("GET", paths, bench_headers(args[1]))
  n = math.random(#requests)
end

function request()
  n = n + 1
  return requests[(n % #requests) + 1]
end
