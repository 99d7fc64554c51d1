-- GET /healthz: the HTTP ceiling of this very server.
dofile("tools/bench/wrk/common.lua")
wrk.path = "/healthz"
