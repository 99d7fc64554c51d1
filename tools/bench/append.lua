-- wrk script: durable appends of a 200-byte message, spread over the
-- conversations given as arguments.
-- wrk -c64 -d10s -s tools/bench/append.lua http://127.0.0.1:PORT -- KEY CONV...
local headers, body, paths, n = nil, nil, {}, 0

function init(args)
  headers = {
    ["Authorization"] = "Bearer " .. args[1],
    ["Content-Type"] = "application/json",
  }
  for i = 2, #args do
    paths[#paths + 1] = "/v1/conversations/" .. args[i] .. "/messages"
  end
  body = '{"role":"user","content":"' .. string.rep("x", 200) .. '"}'
end

function request()
  n = n + 1
  return wrk.format("POST", paths[(n % #paths) + 1], headers, body)
end

function response(status, hdrs, resp_body)
  if status ~= 201 then
    error("append got HTTP " .. status .. ": " .. resp_body)
  end
end
