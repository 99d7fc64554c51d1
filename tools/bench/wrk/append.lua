-- POST a 200-byte message (durable) to one of the conversations given.
-- wrk ... -s append.lua URL -- KEY CONV...
dofile("tools/bench/wrk/common.lua")
local requests, n = {}, 0

function init(args)
  local paths = {}
  for i = 2, #args do
    paths[#paths + 1] = "/v1/conversations/" .. args[i] .. "/messages"
  end
  local body = '{"role":"user","content":"' .. string.rep("x", 200) .. '"}'
  requests = bench_requests("POST", paths, bench_headers(args[1]), body)
  n = math.random(#requests)
end

function request()
  n = n + 1
  return requests[(n % #requests) + 1]
end
