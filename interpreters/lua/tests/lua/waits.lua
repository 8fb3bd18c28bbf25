-- Async imports of world `waits` (tests/lua.rs).
local delay = require("$root").delay
local events = {}

function relay(id, turns)
  events[#events + 1] = "start " .. id
  local got = delay(id, turns)
  events[#events + 1] = "end " .. id
  return got + 1000
end

function take_events()
  local taken = events
  events = {}
  return taken
end

function delay_from_sync()
  local ok, err = pcall(delay, 1, 1)
  assert(not ok)
  return err
end

function heap()
  collectgarbage("collect")
  collectgarbage("collect")
  return math.floor(collectgarbage("count") * 1024)
end
