-- GET /v1/conversations?limit=20 (the newest page).
-- wrk ... -s list.lua URL -- KEY
dofile("tools/bench/wrk/common.lua")

function init(args)
  bench_static(args[1], "GET", "/v1/conversations?limit=20")
end
