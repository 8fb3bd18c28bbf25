-- componentize.http: an HTTP handler for Lua, as plain values, on
-- wasi:http 0.2 (`wasi:http/incoming-handler`) or 0.3 (`wasi:http/handler`,
-- async, with the body written by a coroutine of the request's task).
--
-- lua.so embeds this file (c/http.c) as the module `componentize.http`.
-- It needs a world that imports wasi:http/types (`include wasi:http/proxy`
-- or `include wasi:http/service`). See ../README.md, "HTTP services".

local types = package.loaded["wasi:http/types"]
if not types then
  -- Level 4 is the script's require() line: above this chunk are the
  -- preload loader and require itself.
  error("componentize.http needs a world that imports wasi:http/types "
    .. "(for example `include wasi:http/proxy@0.2.12;` or "
    .. "`include wasi:http/service@0.3.0;`)", 4)
end

-- wasi:http 0.3 has `response.new`; 0.2 has `outgoing-response` instead.
local P3 = types.outgoing_response == nil

local http = {}

-- The bytes asked for in one read of the request body.
local READ_CHUNK = 64 * 1024

local function failed(what, err)
  if type(err) == "table" then
    local detail = err.value
    if type(detail) == "userdata" and detail.to_debug_string then
      detail = detail:to_debug_string()
    end
    err = err.tag .. (detail ~= nil and (": " .. tostring(detail)) or "")
  end
  error(what .. " failed: " .. tostring(err), 3)
end

-- `r`'s ok value, or an error naming `what`.
local function ok(r, what)
  if r.err ~= nil then failed(what, r.err) end
  return r.ok
end

--- Decodes `%XX` escapes, and `+` as a space (form encoding).
function http.unescape(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

--- Parses a query string (`a=1&b=x%20y`) into `{ a = "1", b = "x y" }`. A
--- name without `=` gets `""`; of a repeated name, the last value wins.
function http.parse_query(query)
  local params = {}
  for pair in (query or ""):gmatch("[^&]+") do
    local name, value = pair:match("^([^=]*)=?(.*)$")
    params[http.unescape(name)] = http.unescape(value)
  end
  return params
end

-- The request as the handler sees it; its body is read on demand.
local Request = {}
Request.__index = Request

--- The whole request body, as one string.
function Request:body()
  if self._body == nil then
    local parts = {}
    for chunk in self:chunks() do parts[#parts + 1] = chunk end
    self._body = table.concat(parts)
  end
  return self._body
end

local function method_name(m)
  if m.tag == "other" then return m.value end
  return m.tag:upper()
end

-- The plain-value request: `incoming` is the resource, `header_fields` its
-- headers (closed here), the rest as the resource's getters gave them.
local function request(incoming, method, path_with_query, scheme, authority, header_fields)
  path_with_query = path_with_query or "/"
  local path, query = path_with_query:match("^([^?]*)%??(.*)$")
  local list, headers = {}, {}
  local entries = P3 and header_fields:copy_all() or header_fields:entries()
  header_fields:close()
  for i, entry in ipairs(entries) do
    local name, value = entry[1], entry[2]
    list[i] = { name, value }
    headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
  end
  return setmetatable({
    method = method_name(method),
    path_with_query = path_with_query,
    path = path,
    query = path_with_query:find("?", 1, true) and query or nil,
    scheme = scheme and (scheme.tag == "other" and scheme.value or scheme.tag:lower()) or nil,
    authority = authority,
    headers = headers,
    header_list = list,
    _incoming = incoming,
  }, Request)
end

-- Headers as wasi:http fields: a map `{ name = value }` (sorted by name, so
-- the order is the same every time) or a list of `{ name, value }` pairs.
local function fields(headers)
  local list = {}
  if #headers > 0 then
    for i, pair in ipairs(headers) do list[i] = { pair[1], tostring(pair[2]) } end
  else
    for name, value in pairs(headers) do list[#list + 1] = { name, tostring(value) } end
    table.sort(list, function(a, b) return a[1] < b[1] end)
  end
  local r = types.fields.from_list(list)
  if r.err ~= nil then
    local names = {}
    for i, pair in ipairs(list) do names[i] = pair[1] end
    failed("setting the response headers (" .. table.concat(names, ", ") .. ")", r.err)
  end
  return r.ok
end

local function has_header(headers, wanted)
  for name, value in pairs(headers) do
    local n = type(value) == "table" and value[1] or name
    if type(n) == "string" and n:lower() == wanted then return true end
  end
  return false
end

-- The response table checked, and its headers with a content-length added
-- for a string body.
local function response_parts(response)
  if type(response) ~= "table" then
    error("the handler must return a response table { status =, headers =, body = }, got "
      .. type(response), 0)
  end
  local body = response.body or ""
  local headers = {}
  for k, v in pairs(response.headers or {}) do headers[k] = v end
  if type(body) == "string" and not has_header(headers, "content-length") then
    if #headers > 0 then
      headers[#headers + 1] = { "content-length", tostring(#body) }
    else
      headers["content-length"] = tostring(#body)
    end
  end
  return response.status or 200, fields(headers), body
end

-- Calls `write(chunk)` for each chunk of `body` (a string or an iterator of
-- strings) until it returns false.
local function each_chunk(body, write)
  if type(body) == "string" then
    write(body)
  else
    for chunk in body do
      if not write(chunk) then return end
    end
  end
end

if not P3 then
  --- An iterator over the request body's chunks (strings), read from the
  --- stream as the loop asks for them. The body can be read once.
  function Request:chunks()
    if self._read then error("the request body was already read", 2) end
    self._read = true
    local body = ok(self._incoming:consume(), "reading the request body")
    local stream = ok(body:stream(), "opening the request body stream")
    return function()
      if not stream then return nil end
      while true do
        local r = stream:blocking_read(READ_CHUNK)
        if r.err ~= nil then
          if r.err.tag ~= "closed" then failed("reading the request body", r.err) end
          -- The stream is a child of the body: drop it first.
          stream:close()
          body:close()
          stream = nil
          return nil
        end
        if #r.ok > 0 then return r.ok end
      end
    end
  end

  -- Writes all of `data`, as fast as the host takes it.
  local function write_all(stream, data)
    local at = 1
    while at <= #data do
      local room = ok(stream:check_write(), "writing the response body")
      if room == 0 then
        local ready <close> = stream:subscribe()
        ready:block()
      else
        local n = math.min(room, #data - at + 1)
        ok(stream:write(data:sub(at, at + n - 1)), "writing the response body")
        at = at + n
      end
    end
    return true
  end

  local function respond(out, response)
    local status, headers, body = response_parts(response)
    local outgoing = types.outgoing_response(headers)
    if outgoing:set_status_code(status).err ~= nil then
      error("invalid response status " .. tostring(status), 0)
    end
    local outgoing_body = ok(outgoing:body(), "opening the response body")
    -- The head goes out first, so a large body streams instead of filling
    -- the host's buffer before anyone reads it.
    types.response_outparam.set(out, { ok = outgoing })
    local stream = ok(outgoing_body:write(), "opening the response body stream")
    each_chunk(body, function(chunk) return write_all(stream, chunk) end)
    -- Once a body with a content-length is complete, the host may close the
    -- stream before the flush returns: `closed` then means delivered.
    local flushed = stream:blocking_flush()
    if flushed.err ~= nil and flushed.err.tag ~= "closed" then
      failed("flushing the response body", flushed.err)
    end
    stream:close()
    ok(types.outgoing_body.finish(outgoing_body, nil), "finishing the response body")
  end

  --- Makes `handler` the component's wasi:http/incoming-handler: it sets the
  --- global `incoming_handler` and returns that table. `handler(request)`
  --- returns `{ status = 200, headers = {...}, body = "..." }`; `body` may
  --- also be an iterator of strings. A Lua error in the handler traps the
  --- export, which the server answers with 500.
  function http.handler(handler)
    local export = {
      handle = function(incoming, out)
        local req = request(incoming, incoming:method(), incoming:path_with_query(),
          incoming:scheme(), incoming:authority(), incoming:headers())
        respond(out, handler(req))
      end,
    }
    incoming_handler = export
    return export
  end

  return http
end

-- wasi:http 0.3 from here on: reads and writes wait in the request's task,
-- so other requests run meanwhile.
local async = require("componentize.async")

--- An iterator over the request body's chunks (strings), read from the
--- body stream as the loop asks for them. The body can be read once.
function Request:chunks()
  if self._read then error("the request body was already read", 2) end
  self._read = true
  -- The future tells the host how reading went; it is written once the
  -- body ended or the request is done (`_finish`).
  local done, done_writer = async.future("result<_, error-code>")
  local parts = types.request.consume_body(self._incoming, done)
  self._incoming = nil
  local stream, trailers = parts[1], parts[2]
  self._finish = function()
    self._finish = nil
    if stream then stream:close() end
    if trailers then trailers:close() end
    done_writer:write({ ok = true })
  end
  return function()
    if not stream then return nil end
    local chunk = stream:read(READ_CHUNK)
    if chunk ~= nil then return chunk end
    stream:close()
    stream = nil
    -- A body that failed (cut off, over the server's limit) ends early,
    -- with the error in its trailers.
    local ended = trailers:read()
    trailers = nil
    if self._finish then self._finish() end
    if ended.err ~= nil then failed("reading the request body", ended.err) end
    return nil
  end
end

-- Writes the request's "done" future if the handler did not read the body
-- to its end, and drops the request.
local function finish_request(req)
  if req._finish then req._finish() end
  if req._incoming then req._incoming:close() end
end

-- The first line of a Lua error (the message without its traceback).
local function first_line(message)
  return (tostring(message):match("^[^\n]*"))
end

-- Writes the body into `writer`, closes it, and resolves `trailers`: with
-- no trailers, or with internal-error when the body's iterator raised (the
-- host then cuts the response off).
local function write_body(req, body, writer, trailers, sent)
  local written, message = xpcall(each_chunk, debug.traceback, body, function(chunk)
    return writer:write(chunk) == #chunk
  end)
  writer:close()
  finish_request(req)
  if written then
    trailers:write({ ok = nil })
  else
    io.stderr:write("error: ", req.method, " ", req.path, ": the response body failed: ",
      tostring(message), "\n")
    trailers:write({ err = { tag = "internal-error", value = first_line(message) } })
  end
  -- How the host sent the response; a client that went away is no error
  -- of the handler's.
  sent:close()
end

local function respond(req, response)
  local status, headers, body = response_parts(response)
  local contents, writer = async.stream("u8")
  -- `trailers` is WIT's alias of `fields`: payloads are spelled by what they name.
  local trailers, trailers_writer = async.future("result<option<fields>, error-code>")
  local made = types.response.new(headers, contents, trailers)
  local outgoing, sent = made[1], made[2]
  if outgoing:set_status_code(status).err ~= nil then
    error("invalid response status " .. tostring(status), 0)
  end
  -- The body is written after `handle` returned the response: the host
  -- reads the stream only then.
  async.spawn(write_body, req, body, writer, trailers_writer, sent)
  return { ok = outgoing }
end

--- Makes `handler` the component's wasi:http/handler: it sets the global
--- `handler` and returns that table. `handler(request)` returns `{ status =
--- 200, headers = {...}, body = "..." }`; `body` may also be an iterator of
--- strings, which is called in a coroutine of the request's task after the
--- head went out, so it may wait on async imports. A Lua error in the
--- handler answers `internal-error` with its message (the server answers
--- 500), logged with its traceback on stderr; other requests carry on.
function http.handler(handler)
  local export = {
    handle = function(incoming)
      local req = request(incoming, incoming:get_method(), incoming:get_path_with_query(),
        incoming:get_scheme(), incoming:get_authority(), incoming:get_headers())
      local answered, result = xpcall(function() return respond(req, handler(req)) end,
        debug.traceback)
      if answered then return result end
      finish_request(req)
      io.stderr:write("error: ", req.method, " ", req.path, ": ", tostring(result), "\n")
      return { err = { tag = "internal-error", value = first_line(result) } }
    end,
  }
  _G.handler = export
  return export
end

return http
