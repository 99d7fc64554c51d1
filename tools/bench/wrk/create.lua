-- POST /v1/conversations for the agent given. With a BUDGET, each thread
-- stops after BUDGET answers (to load a store of a known size).
-- wrk ... -s create.lua URL -- KEY AGENT [BUDGET]
dofile("tools/bench/wrk/common.lua")
local budget, answered = nil, 0

function init(args)
  bench_static(args[1], "POST", "/v1/conversations",
               '{"agent_id":"' .. args[2] .. '","title":"bench"}')
  budget = tonumber(args[3])
end

function response(status, hdrs, resp_body)
  answered = answered + 1
  if budget and answered >= budget then wrk.thread:stop() end
end
