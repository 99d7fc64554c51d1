-- GET one conversation, rotating over the conversations given.
-- wrk ... -s get.lua URL -- KEY CONV...
dofile("tools/bench/wrk/common.lua")
local headers, paths, n = nil, {}, 0

function init(args)
  headers = bench_headers(args[1])
  for i = 2, #args do paths[#paths + 1] = "/v1/conversations/" .. args[i] end
  n = math.random(#paths)
end

function request()
  n = n + 1
  return wrk.format("GET", paths[(n % #paths) + 1], headers)
end
