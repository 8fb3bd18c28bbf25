-- componentize.http: wasi:http/incoming-handler for Lua, as plain values.
--
-- lua.so embeds this file (c/http.c) as the module `componentize.http`.
-- It needs a world that imports wasi:http/types (`include wasi:http/proxy`).
-- See ../README.md, "HTTP services", for the interface.

local types = package.loaded["wasi:http/types"]
if not types then
  -- Level 4 is the script's require() line: above this chunk are the
  -- preload loader and require itself.
  error("componentize.http needs a world that imports wasi:http/types "
    .. "(for example `include wasi:http/proxy@0.2.12;`)", 4)
end

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

local function request(incoming)
  local path_with_query = incoming:path_with_query() or "/"
  local path, query = path_with_query:match("^([^?]*)%??(.*)$")
  local scheme = incoming:scheme()
  local header_fields <close> = incoming:headers()
  local list, headers = {}, {}
  for i, entry in ipairs(header_fields:entries()) do
    local name, value = entry[1], entry[2]
    list[i] = { name, value }
    headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
  end
  return setmetatable({
    method = method_name(incoming:method()),
    path_with_query = path_with_query,
    path = path,
    query = path_with_query:find("?", 1, true) and query or nil,
    scheme = scheme and (scheme.tag == "other" and scheme.value or scheme.tag:lower()) or nil,
    authority = incoming:authority(),
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
end

local function respond(out, response)
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
  local outgoing = types.outgoing_response(fields(headers))
  if outgoing:set_status_code(response.status or 200).err ~= nil then
    error("invalid response status " .. tostring(response.status), 0)
  end
  local outgoing_body = ok(outgoing:body(), "opening the response body")
  -- The head goes out first, so a large body streams instead of filling
  -- the host's buffer before anyone reads it.
  types.response_outparam.set(out, { ok = outgoing })
  local stream = ok(outgoing_body:write(), "opening the response body stream")
  if type(body) == "string" then
    write_all(stream, body)
  else
    for chunk in body do write_all(stream, chunk) end
  end
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
      local response = handler(request(incoming))
      respond(out, response)
    end,
  }
  incoming_handler = export
  return export
end

return http
