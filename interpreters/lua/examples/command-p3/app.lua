-- The export wasi:cli/run@0.3.0 is the table `run`; its `run` is an async
-- func, so each call runs in a coroutine of its own. `clock.wait_for` is an
-- async import: the coroutine is suspended until it returns, and the script
-- reads on as after any call. Raising an error prints it and means err: the
-- command exits with code 1.
--
-- With the argument `upcase` it copies stdin to stdout in upper case
-- through WASI 0.3's streams: stdin's `read-via-stream` gives a stream to
-- read, stdout's `write-via-stream` takes one the script writes.
local async = require("componentize.async")
local env = require("wasi:cli/environment")
local clock = require("wasi:clocks/monotonic-clock")
local stdin = require("wasi:cli/stdin")
local stdout = require("wasi:cli/stdout")

run = {}

-- Copies stdin to stdout, upper-cased, chunk by chunk; the bytes copied.
local function upcase()
  local input, input_done = table.unpack(stdin.read_via_stream())
  local output, writer = async.stream("u8")
  local output_done = stdout.write_via_stream(output)
  local copied = 0
  for chunk in function() return input:read() end do
    if writer:write(chunk:upper()) < #chunk then error("stdout was closed", 0) end
    copied = copied + #chunk
  end
  writer:close()
  local wrote = output_done:read()
  if wrote.err then error("writing stdout failed: " .. tostring(wrote.err.tag or wrote.err), 0) end
  local read = input_done:read()
  if read.err then error("reading stdin failed: " .. tostring(read.err.tag or read.err), 0) end
  return copied
end

function run.run()
  local args = env.get_arguments()
  if args[2] == "upcase" then
    io.stderr:write(string.format("upcased %d bytes\n", upcase()))
    return
  end
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
