-- An HTTP service for wasi:http 0.3: the routes of examples/http, plus two
-- that wait. `handle` is an async export: each request runs in a coroutine
-- of its own, and one instance answers many requests at the same time, so
-- while one waits on the clock the others go on.
--   componentize --interpreter lua --world app.wit --init app.lua -o http-p3.wasm
--   componentize serve http-p3.wasm
--   curl 'http://127.0.0.1:8080/stream?chunks=16&delay-ms=10' | wc -c
local http = require("componentize.http")
local clock = require("wasi:clocks/monotonic-clock")

-- Built once, while the component is built: every instance starts with it.
local squares = {}
for i = 1, 100 do squares[i] = i * i end

-- The instance's own state, shared by the requests it answers: how many it
-- took, and how many are in flight now.
requests = 0
local in_flight = 0

local function text(status, body)
  return { status = status, headers = { ["content-type"] = "text/plain; charset=utf-8" }, body = body }
end

local function number(query, name, default)
  return math.tointeger(tonumber(http.parse_query(query)[name])) or default
end

-- Bytes 0 to 250: the stream route's bodies repeat them.
local PATTERN = {}
for b = 0, 250 do PATTERN[b + 1] = string.char(b) end
PATTERN = table.concat(PATTERN)

-- `size` bytes of the pattern from offset `at` of the body.
local function pattern_bytes(at, size)
  local from = PATTERN:sub(at % #PATTERN + 1)
  return (from .. PATTERN:rep(size // #PATTERN + 1)):sub(1, size)
end

local function sleep_ms(ms)
  clock.wait_for(ms * 1000000) -- nanoseconds
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

-- Waits, then says where this request stood among the instance's others:
-- its number, and how many were in flight when it started and ended.
routes["GET /wait"] = function(req, number_in_instance)
  local started_with = in_flight
  sleep_ms(number(req.query, "ms", 100))
  return text(200, ("request %d: %d other(s) in flight at the start, %d at the end\n")
    :format(number_in_instance, started_with - 1, in_flight - 1))
end

-- A body of `chunks` chunks of `size` bytes (byte i of the body is
-- `i % 251`), written one by one, `delay-ms` apart: it streams.
routes["GET /stream"] = function(req)
  local chunks = number(req.query, "chunks", 16)
  local size = number(req.query, "size", 65536)
  local delay = number(req.query, "delay-ms", 0)
  local i = 0
  return {
    status = 200,
    headers = { ["content-type"] = "application/octet-stream" },
    body = function()
      if i == chunks then return nil end
      if i > 0 and delay > 0 then sleep_ms(delay) end
      local chunk = pattern_bytes(i * size, size)
      i = i + 1
      return chunk
    end,
  }
end

http.handler(function(req)
  requests = requests + 1
  local route = routes[req.method .. " " .. req.path]
  if not route then return text(404, "not found: " .. req.path .. "\n") end
  in_flight = in_flight + 1
  -- Counted out when the route returns or raises.
  local _ <close> = setmetatable({}, { __close = function() in_flight = in_flight - 1 end })
  return route(req, requests)
end)
