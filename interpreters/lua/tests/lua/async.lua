-- The async exports of worlds `tasks`, `waits`, `pipes` and `cancels`
-- (tests/lua.rs). World `waits` imports `delay`, world `cancels` `pause` and
-- `silence`; in the others there are no such imports.
local async = require("componentize.async")
local root = package.loaded["$root"]
local delay = root and root.delay
local pause, silence = root and root.pause, root and root.silence
local log = {}

-- tasks: logs `id` `turns` times, yielding after each.
function step(id, turns)
  for _ = 1, turns do
    log[#log + 1] = id
    coroutine.yield()
  end
  return id * turns
end

function fail_after_yield(message)
  coroutine.yield()
  error(message, 0)
end

function crash_after_yield()
  coroutine.yield()
  error("crashed after a yield")
end

-- waits: logs before and after the async import.
function relay(id, turns)
  log[#log + 1] = "start " .. id
  local got = delay(id, turns)
  log[#log + 1] = "end " .. id
  return got + 1000
end

function delay_from_sync()
  local ok, err = pcall(delay, 1, 1)
  assert(not ok)
  return err
end

-- pipes: futures and streams.
function measure(data, chunk)
  local bytes, reads, h = 0, 0, 0
  while true do
    local s = data:read(chunk)
    if s == nil then break end
    assert(#s <= chunk, "a read gave more than asked for")
    bytes, reads = bytes + #s, reads + 1
    for i = 1, #s do h = (h * 31 + s:byte(i)) & 0xffffffff end
  end
  data:close()
  return { bytes, reads, h }
end

function words(n, per)
  local rx, tx = async.stream("string")
  async.spawn(function()
    local i = 0
    while i < n do
      local batch = {}
      for k = i + 1, math.min(n, i + per) do batch[#batch + 1] = "word " .. k end
      local taken = tx:write(batch)
      assert(taken == #batch, "the host took " .. taken .. " of " .. #batch)
      i = i + #batch
      log[#log + 1] = "wrote " .. i
      coroutine.yield()
    end
    tx:close()
  end)
  log[#log + 1] = "returned"
  return rx
end

function join(parts, per)
  local all = {}
  for batch in function() return parts:read(per) end do
    assert(#batch <= per)
    for _, p in ipairs(batch) do all[#all + 1] = p end
  end
  return table.concat(all, "+")
end

function double_later(x)
  local rx, tx = async.future("u32")
  async.spawn(function()
    coroutine.yield()
    assert(tx:write(x * 2) == true, "the host did not take the value")
  end)
  return rx
end

function plus_one(f)
  return f:read() + 1
end

function nested(n)
  local rx, tx = async.stream("stream<u8>")
  async.spawn(function()
    local inner = {}
    for k = 1, n do
      local irx, itx = async.stream("u8")
      inner[k] = irx
      async.spawn(function()
        -- (The write first: it waits, and the log's end moves meanwhile.)
        local took = itx:write("inner " .. k)
        log[#log + 1] = "inner " .. k .. " took " .. took
        itx:close()
      end)
    end
    local took = tx:write(inner)
    log[#log + 1] = "outer took " .. took
    tx:close()
  end)
  return rx
end

function misuses()
  local errors = {}
  local function try(f, ...)
    local ok, err = pcall(f, ...)
    assert(not ok, "no error")
    errors[#errors + 1] = err
  end
  local rx, tx = async.stream("string")
  try(tx.write, tx, { "fine", 7 })
  try(rx.write, rx, { "x" })
  try(async.stream, "u16")
  local frx, ftx = async.future("u32")
  try(ftx.close, ftx)
  try(ftx.write, ftx, "not a number")
  frx:close()
  assert(ftx:write(5) == false, "a closed reader took the value")
  rx:close()
  try(rx.read, rx)
  tx:close()
  return errors
end

function stream_from_sync()
  local ok, err = pcall(async.stream, "string")
  assert(not ok)
  return err
end

-- All: what was logged since the last call (and clears it), and the heap.
-- cancels: the caller cancels these while they wait.

-- A to-be-closed value that logs its closing, and whether the cancellation
-- closed it.
local function closer(name)
  return setmetatable({}, {
    __close = function(_, err)
      log[#log + 1] = name .. " closed" .. (err == async.cancelled and " by the cancellation" or "")
    end,
  })
end

cancellable = {}

function cancellable.wait(turns)
  local guard <close> = closer("wait " .. turns)
  log[#log + 1] = "wait " .. turns
  local got = pause(turns)
  log[#log + 1] = "wait " .. turns .. " was not cancelled"
  return got
end

function cancellable.stubborn(turns)
  local ok, err = pcall(pause, turns)
  log[#log + 1] = "stubborn " .. turns .. ": " .. tostring(ok) .. ", " .. tostring(err)
  local again, err2 = pcall(pause, turns)
  log[#log + 1] = "stubborn " .. turns .. " again: " .. tostring(again) .. ", " .. tostring(err2 == async.cancelled)
  return turns + 1000
end

function cancellable.listen(turns)
  async.spawn(function()
    local guard <close> = closer("listener " .. turns)
    pause(turns)
    log[#log + 1] = "listener " .. turns .. " was not cancelled"
  end)
  local quiet <close> = silence()
  local guard <close> = closer("listen " .. turns)
  quiet:read()
  log[#log + 1] = "listen " .. turns .. " was not cancelled"
  return 0
end

function take_log()
  local taken = log
  log = {}
  return taken
end

function heap()
  collectgarbage("collect")
  collectgarbage("collect")
  return math.floor(collectgarbage("count") * 1024)
end

-- World `cancels` exports these two in its interface.
cancellable.take_log, cancellable.heap = take_log, heap
