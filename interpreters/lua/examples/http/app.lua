-- An HTTP service: the routes below, served by any wasi:http/proxy host.
--   componentize --interpreter lua.so --world app.wit --init app.lua -o http.wasm
--   componentize serve http.wasm
--   curl 'http://127.0.0.1:8080/hello?name=Ada'
local http = require("componentize.http")

-- Built once, while the component is built: every request starts with it.
local squares = {}
for i = 1, 100 do squares[i] = i * i end

-- Counts the requests this instance has handled. Each request gets a fresh
-- instance from the snapshot, so it is always 1 when a request reads it.
requests = 0

local function text(status, body)
  return { status = status, headers = { ["content-type"] = "text/plain; charset=utf-8" }, body = body }
end

local routes = {}

routes["GET /hello"] = function(req)
  local name = http.parse_query(req.query).name or "world"
  return text(200, "hello, " .. name .. "!\n")
end

routes["POST /echo"] = function(req)
  local body = req:body()
  return {
    status = 200,
    headers = { ["content-type"] = "application/octet-stream", ["x-body-length"] = #body },
    body = body,
  }
end

routes["GET /headers"] = function(req)
  local lines = {}
  for i, pair in ipairs(req.header_list) do lines[i] = pair[1] .. ": " .. pair[2] .. "\n" end
  table.sort(lines)
  return text(200, table.concat(lines))
end

routes["GET /state"] = function()
  return text(200, ("init entries: %d, requests in this instance: %d\n"):format(#squares, requests))
end

routes["GET /fail"] = function(req)
  error("the /fail route always fails (" .. req.method .. " " .. req.path .. ")")
end

http.handler(function(req)
  requests = requests + 1
  local route = routes[req.method .. " " .. req.path]
  if not route then return text(404, "not found: " .. req.path .. "\n") end
  return route(req)
end)
