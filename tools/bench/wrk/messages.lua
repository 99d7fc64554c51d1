-- GET every message of one (50-message) conversation.
-- wrk ... -s messages.lua URL -- KEY CONV
dofile("tools/bench/wrk/common.lua")

function init(args)
  bench_static(args[1], "GET", "/v1/conversations/" .. args[2] .. "/messages")
end
