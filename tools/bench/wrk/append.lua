-- POST a 200-byte message (durable) to one of the conversations given.
-- wrk ... -s append.lua URL -- KEY CONV...
dofile("tools/bench/wrk/common.lua")
local headers, body, paths, n = nil, nil, {}, 0

function init(args)
  headers = bench_headers(args[1])
  for i = 2, #args do
    paths[#paths + 1] = "/v1/conversations/" .. args[i] .. "/messages"
  end
  body = '{"role":"user","content":"' .. string.rep("x", 200) .. '"}'
  n = math.random(#paths)
end

function request()
  n = n + 1
  return wrk.format("POST", paths[(n % #paths) + 1], headers, body)
end
