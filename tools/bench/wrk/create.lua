-- POST /v1/conversations for the agent given. With a BUDGET, each thread
-- stops after BUDGET answers (to load a store of a known size).
-- wrk ... -s create.lua URL -- KEY AGENT [BUDGET]
dofile("tools/bench/wrk/common.lua")
local headers, body, budget, answered = nil, nil, nil, 0

function init(args)
  headers = bench_headers(args[1])
  body = '{"agent_id":"' .. args[2] .. '","title":"bench"}'
  budget = tonumber(args[3])
end

function request()
  return wrk.format("POST", "/v1/conversations", headers, body)
end

function response(status, hdrs, resp_body)
  answered = answered + 1
  if budget and answered >= budget then wrk.thread:stop() end
end
