-- GET every message of one (50-message) conversation.
-- wrk ... -s messages.lua URL -- KEY CONV
dofile("tools/bench/wrk/common.lua")
local headers, path = nil, nil

function init(args)
  headers = bench_headers(args[1])
  path = "/v1/conversations/" .. args[2] .. "/messages"
end

function request() return wrk.format("GET", path, headers) end
