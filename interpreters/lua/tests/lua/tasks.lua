-- Async exports of world `tasks` (tests/lua.rs).
local log = {}

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
