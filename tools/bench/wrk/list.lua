-- GET /v1/conversations?limit=20 (the newest page).
-- wrk ... -s list.lua URL -- KEY
dofile("tools/bench/wrk/common.lua")
local headers = nil

function init(args) headers = bench_headers(args[1]) end

function request()
  return wrk.format("GET", "/v1/conversations?limit=20", headers)
end
