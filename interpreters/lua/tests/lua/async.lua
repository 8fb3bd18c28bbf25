-- The async exports of worlds `tasks` and `waits` (tests/lua.rs). World
-- `waits` imports `delay`; in `tasks` there is no such module.
local root = package.loaded["$root"]
local delay = root and root.delay
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

-- Both: what was logged since the last call (and clears it), and the heap.
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
