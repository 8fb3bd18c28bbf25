-- The export wasi:cli/run@0.3.0 is the table `run`; its `run` is an async
-- func, so each call runs in a coroutine of its own. `clock.wait_for` is an
-- async import: the coroutine is suspended until it returns, and the script
-- reads on as after any call. Raising an error prints it and means err: the
-- command exits with code 1.
local env = require("wasi:cli/environment")
local clock = require("wasi:clocks/monotonic-clock")

run = {}

function run.run()
  local args = env.get_arguments()
  local start = clock.now()
  clock.wait_for(25 * 1000 * 1000) -- nanoseconds: 25 ms
  local waited_ms = (clock.now() - start) // 1000000
  print("hello from Lua on WASI 0.3")
  print(string.format("waited %s ms", waited_ms >= 25 and "at least 25" or "only " .. waited_ms))
  for i = 2, #args do
    io.write("argument: ", args[i], "\n")
    if args[i] == "fail" then error("asked to fail", 0) end
  end
end
