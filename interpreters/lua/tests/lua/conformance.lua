-- Lua 5.4 conformance of lua.so as a component (tests/conformance.rs).
-- No registry package ships Lua's own test suite; this is its equivalent
-- for what a script relies on. Every check runs at runtime, in the
-- snapshot; `run` prints one line per failure, then the counts, and
-- returns err when any check failed.
--
-- The host grants: stdin "first line\nsecond line\n", the folder /data
-- holding lines.txt ("a\nb\nc\n") and writable, and CONFORMANCE=yes.

local checks = {}
local function check(name, f) checks[#checks + 1] = { name = name, f = f } end
local function eq(a, b, what)
  if a ~= b then
    error(("%s: expected %s, got %s"):format(what or "value", tostring(b), tostring(a)), 2)
  end
end
local function raises(f, pattern)
  local ok, err = pcall(f)
  assert(not ok, "expected an error")
  if pattern then assert(tostring(err):find(pattern), "error was: " .. tostring(err)) end
  return err
end

-- strings and patterns ---------------------------------------------------
check("string.find and plain find", function()
  eq(select(1, ("hello world"):find("o w")), 5)
  eq(select(2, ("a.b"):find(".", 1, true)), 2)
  eq(("abc"):find("x"), nil)
end)
check("string.match captures and anchors", function()
  local k, v = ("key = value"):match("^(%w+)%s*=%s*(%w+)$")
  eq(k, "key"); eq(v, "value")
  eq(("  trim  "):match("^%s*(.-)%s*$"), "trim")
  eq(("[[x]]"):match("%b[]"), "[[x]]")
  eq(("THE (quick) fox"):find("%f[%a]%a+%f[%A]", 5), 6)
  eq(("2024-01-31"):match("(%d+)-(%d+)-(%d+)"), "2024")
end)
check("string.gsub with strings, tables, functions", function()
  eq((("hello"):gsub("l", "L")), "heLLo")
  eq(select(2, ("hello"):gsub("l", "L")), 2)
  eq((("$a $b"):gsub("%$(%w+)", { a = "1", b = "2" })), "1 2")
  eq((("abc"):gsub("%w", function(c) return c:upper() .. "." end)), "A.B.C.")
  eq((("abc"):gsub("", "-")), "-a-b-c-")
  eq((("x = 1"):gsub("(%w+) = (%w+)", "%2 = %1")), "1 = x")
end)
check("string.gmatch", function()
  local words = {}
  for w in ("one two  three"):gmatch("%a+") do words[#words + 1] = w end
  eq(table.concat(words, ","), "one,two,three")
  local pairs_ = {}
  for k, v in ("a=1, b=2"):gmatch("(%w+)=(%w+)") do pairs_[#pairs_ + 1] = k .. v end
  eq(table.concat(pairs_), "a1b2")
end)
check("string.format", function()
  eq(("%5.2f|%-4d|%x|%X|%o"):format(3.14159, 7, 255, 255, 8), " 3.14|7   |ff|FF|10")
  eq(("%q"):format("a\nb\"c\0"), '"a\\\nb\\"c\\0"')
  eq(("%s %s"):format(nil, true), "nil true")
  eq(("%g"):format(1e20), "1e+20")
  eq(("%c%c"):format(72, 105), "Hi")
  eq(("%10.3s|"):format("abcdef"), "       abc|")
end)
check("string.rep, byte, char, reverse, upper, lower, len", function()
  eq(("ab"):rep(3, ","), "ab,ab,ab")
  eq(("ABC"):byte(2), 66)
  eq(select("#", ("ABC"):byte(1, -1)), 3)
  eq(string.char(76, 117, 97), "Lua")
  eq(("abc"):reverse(), "cba")
  eq(("MiXeD"):lower() .. ("MiXeD"):upper(), "mixedMIXED")
  eq(#"\u{20AC}", 3)
  eq(("hello"):sub(-3), "llo")
  eq(("hello"):sub(2, -2), "ell")
end)

-- tables -----------------------------------------------------------------
check("table functions", function()
  local t = { 3, 1, 2 }
  table.insert(t, 4); table.insert(t, 1, 0)
  eq(table.concat(t, " "), "0 3 1 2 4")
  eq(table.remove(t, 1), 0); eq(table.remove(t), 4)
  table.sort(t); eq(table.concat(t, ""), "123")
  table.sort(t, function(a, b) return a > b end); eq(table.concat(t, ""), "321")
  local p = table.pack(1, nil, 3); eq(p.n, 3)
  eq(select("#", table.unpack({ 1, 2, 3 }, 2)), 2)
  local m = table.move({ 1, 2, 3 }, 1, 3, 2, {}); eq(m[3], 2)
  eq(#{ 1, 2, 3, nil }, 3)
end)
check("next, pairs, ipairs, rawlen, select", function()
  local n = 0
  for _ in pairs({ a = 1, b = 2, 3 }) do n = n + 1 end
  eq(n, 3)
  local s = 0
  for i, v in ipairs({ 10, 20, nil, 40 }) do s = s + i + v end
  eq(s, 33)
  eq(next({}), nil)
  eq(rawlen({ 1, 2 }), 2)
  eq(select(-1, 1, 2, 3), 3)
end)

-- metatables -------------------------------------------------------------
check("__index, __newindex, __call, __len, __tostring, __concat", function()
  local log = {}
  local proxy = setmetatable({}, {
    __index = function(_, k) return k .. "!" end,
    __newindex = function(t, k, v) rawset(t, k, v * 2); log[#log + 1] = k end,
    __call = function(self, x) return x + 1 end,
    __len = function() return 42 end,
    __tostring = function() return "proxy" end,
    __concat = function(a, b) return "cat" end,
  })
  eq(proxy.x, "x!")
  proxy.y = 5; eq(rawget(proxy, "y"), 10); eq(log[1], "y")
  eq(proxy(1), 2); eq(#proxy, 42); eq(tostring(proxy), "proxy")
  eq(proxy .. "z", "cat")
end)
check("arithmetic and comparison metamethods", function()
  local V = {}
  V.__index = V
  local function v(x) return setmetatable({ x = x }, V) end
  V.__add = function(a, b) return v(a.x + b.x) end
  V.__eq = function(a, b) return a.x == b.x end
  V.__lt = function(a, b) return a.x < b.x end
  V.__le = function(a, b) return a.x <= b.x end
  V.__unm = function(a) return v(-a.x) end
  V.__idiv = function(a, b) return v(a.x // b.x) end
  eq((v(1) + v(2)).x, 3)
  assert(v(1) == v(1) and v(1) ~= v(2))
  assert(v(1) < v(2) and v(2) <= v(2) and not (v(3) < v(2)))
  eq((-v(4)).x, -4); eq((v(7) // v(2)).x, 3)
  assert(rawequal(v(1), v(1)) == false)
end)
check("__metatable protects, __close runs", function()
  local t = setmetatable({}, { __metatable = "locked" })
  eq(getmetatable(t), "locked")
  raises(function() setmetatable(t, {}) end, "protected metatable")
  local closed = {}
  do
    local a <close> = setmetatable({}, { __close = function() closed[#closed + 1] = "a" end })
    local b <close> = setmetatable({}, { __close = function() closed[#closed + 1] = "b" end })
  end
  eq(table.concat(closed), "ba")
  local k <const> = 10
  eq(k, 10)
end)
check("inheritance through __index chains", function()
  local Base = {}; Base.__index = Base
  function Base.new(n) return setmetatable({ n = n }, Base) end
  function Base:name() return "base" .. self.n end
  local Derived = setmetatable({}, { __index = Base }); Derived.__index = Derived
  function Derived.new(n) return setmetatable(Base.new(n), Derived) end
  function Derived:name() return "derived/" .. Base.name(self) end
  eq(Derived.new(2):name(), "derived/base2")
end)

-- coroutines -------------------------------------------------------------
check("coroutines", function()
  local co = coroutine.create(function(a, b)
    local c = coroutine.yield(a + b)
    local d, e = coroutine.yield(c * 2)
    return d + e
  end)
  eq(select(2, coroutine.resume(co, 1, 2)), 3)
  eq(select(2, coroutine.resume(co, 10)), 20)
  eq(select(2, coroutine.resume(co, 3, 4)), 7)
  eq(coroutine.status(co), "dead")
  local ok, err = coroutine.resume(co)
  assert(not ok and err:find("dead"))
  local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
  eq(gen() + gen() + gen(), 6)
  local inner_yieldable = coroutine.wrap(function() return coroutine.isyieldable() end)
  assert(inner_yieldable())
  local failing = coroutine.create(function() error("inside") end)
  local ok2, msg = coroutine.resume(failing)
  assert(not ok2 and msg:find("inside"))
  local closable = coroutine.create(function() coroutine.yield() end)
  coroutine.resume(closable)
  assert(coroutine.close(closable)); eq(coroutine.status(closable), "dead")
end)
check("yield across pcall", function()
  local co = coroutine.wrap(function()
    local ok, v = pcall(function() return coroutine.yield(1) + 1 end)
    return ok and v
  end)
  eq(co(), 1); eq(co(41), 42)
end)

-- errors -----------------------------------------------------------------
check("error levels and positions", function()
  local function level1() error("one") end
  local function level2() error("two", 2) end
  local e1 = raises(level1)
  assert(e1:find("^conformance%.lua:%d+: one$"), e1)
  local line = debug.getinfo(1, "l").currentline
  local e2 = raises(function() level2() end)
  eq(e2, ("conformance.lua:%d: two"):format(line + 1))
  eq(raises(function() error("bare", 0) end), "bare")
end)
check("error objects, xpcall, assert", function()
  local obj = raises(function() error({ code = 7 }) end)
  eq(obj.code, 7)
  local ok, tb = xpcall(function() error("deep") end, debug.traceback)
  assert(not ok and tb:find("deep") and tb:find("stack traceback"))
  eq(select(2, pcall(assert, false, "custom")), "custom")
  eq(select(2, pcall(assert, nil)), "assertion failed!")
  assert(tostring(raises(function() local x = nil; return x.y end)):find("attempt to index a nil value"))
  assert(tostring(raises(function() return 1 + {} end)):find("attempt to perform arithmetic"))
  eq(select("#", pcall(error)), 2)
end)

-- goto -------------------------------------------------------------------
check("goto continue and nested break", function()
  local odd = {}
  for i = 1, 6 do
    if i % 2 == 0 then goto continue end
    odd[#odd + 1] = i
    ::continue::
  end
  eq(table.concat(odd, ","), "1,3,5")
  local found
  for i = 1, 3 do
    for j = 1, 3 do
      if i * j == 6 then found = i .. "x" .. j; goto done end
    end
  end
  ::done::
  eq(found, "2x3")
end)

-- integers and floats ----------------------------------------------------
check("integer and float semantics", function()
  eq(math.type(1), "integer"); eq(math.type(1.0), "float"); eq(math.type("1"), nil)
  eq(7 // 2, 3); eq(7.0 // 2, 3.0); eq(-7 // 2, -4); eq(7 % -3, -2); eq(-7 % 3, 2)
  eq(math.type(7 // 2), "integer"); eq(math.type(2^2), "float"); eq(7 / 2, 3.5)
  eq(math.maxinteger + 1, math.mininteger)
  eq(math.mininteger // -1, math.mininteger)
  raises(function() return 1 // 0 end, "attempt to divide by zero")
  raises(function() return 1 % 0 end, "attempt to perform 'n%%0'")
  eq(1 / 0, math.huge); eq(-1 / 0, -math.huge)
  local nan = 0 / 0; assert(nan ~= nan)
  eq(math.tointeger(3.0), 3); eq(math.tointeger(3.5), nil)
  assert(math.ult(1, -1))
  eq(3 | 5, 7); eq(3 & 5, 1); eq(3 ~ 5, 6); eq(~0, -1); eq(1 << 62, 4611686018427387904); eq(-1 >> 63, 1)
  eq(1 == 1.0, true); eq("10" + 1, 11); eq("0x10" + 0, 16); eq("1e2" * 1, 100.0)
  eq(tostring(1e100), "1e+100"); eq(tostring(2^53), "9.007199254741e+15"); eq(tostring(-0.0), "-0.0")
  eq(tonumber("  12  "), 12); eq(tonumber("z", 36), 35); eq(tonumber("1e"), nil); eq(tonumber("0x1p4"), 16.0)
  eq(math.floor(-3.5), -4); eq(math.ceil(-3.5), -3); eq(math.fmod(-7, 3), -1); eq(math.abs(math.mininteger), math.mininteger)
  eq(string.format("%.3f", math.pi), "3.142"); eq(math.max(1, 5, 3), 5); eq(math.min(2.5, 1), 1)
  eq(8 // 0.0, math.huge)
end)

-- string.pack ------------------------------------------------------------
check("string.pack and unpack", function()
  local packed = string.pack("<i4 >I2 z s1 d", -2, 513, "zero", "len", 1.5)
  eq(#packed, 4 + 2 + 5 + 4 + 8)
  local a, b, c, d, e, next_ = string.unpack("<i4 >I2 z s1 d", packed)
  eq(a, -2); eq(b, 513); eq(c, "zero"); eq(d, "len"); eq(e, 1.5); eq(next_, #packed + 1)
  eq(string.packsize("i4 i8 !8 d"), 24)
  eq(string.pack(">I3", 0x010203), "\1\2\3")
  raises(function() string.pack("i1", 200) end, "overflow")
  eq(string.unpack("<j", string.pack("<j", math.mininteger)), math.mininteger)
end)

-- utf8 -------------------------------------------------------------------
check("utf8 library", function()
  local s = utf8.char(72, 228, 8364, 128512)
  eq(s, "Hä€😀"); eq(utf8.len(s), 4); eq(#s, 1 + 2 + 3 + 4)
  eq(select(2, utf8.codepoint(s, 1, -1)), 228)
  eq(utf8.offset(s, 3), 4); eq(utf8.offset(s, -1), 7)
  local cps = {}
  for p, c in utf8.codes(s) do cps[#cps + 1] = p .. ":" .. c end
  eq(table.concat(cps, " "), "1:72 2:228 4:8364 7:128512")
  local len, bad = utf8.len("ab\xffcd"); eq(len, nil); eq(bad, 3)
  eq(#s:match(utf8.charpattern .. "$"), 4)
end)

-- the garbage collector --------------------------------------------------
check("__gc finalizers run", function()
  local finalized = {}
  do
    setmetatable({}, { __gc = function() finalized[#finalized + 1] = "first" end })
    setmetatable({}, { __gc = function() finalized[#finalized + 1] = "second" end })
  end
  collectgarbage("collect"); collectgarbage("collect")
  eq(#finalized, 2)
  eq(finalized[1], "second") -- in reverse order of marking
end)
check("weak tables are cleared", function()
  local weak_keys = setmetatable({}, { __mode = "k" })
  local weak_values = setmetatable({}, { __mode = "v" })
  local kept = {}
  weak_keys[{}] = true; weak_keys[kept] = true
  weak_values[1] = {}; weak_values[2] = kept
  collectgarbage("collect")
  local n = 0
  for _ in pairs(weak_keys) do n = n + 1 end
  eq(n, 1); eq(weak_values[1], nil); eq(weak_values[2], kept)
end)
check("collectgarbage options", function()
  assert(collectgarbage("count") > 0)
  eq(collectgarbage("isrunning"), true)
  local previous = collectgarbage("generational"); assert(previous == "incremental" or previous == "generational")
  eq(collectgarbage("incremental"), "generational")
  eq(collectgarbage("step", 0) ~= nil, true)
end)

-- load, environments, varargs ---------------------------------------------
check("load with environments and modes", function()
  local env = { x = 5 }
  local f = load("return x * 2", "=chunk", "t", env); eq(f(), 10)
  local bin = string.dump(function(a) return a + 1 end)
  eq(load(bin, "=bin", "b")(1), 2)
  local nope, err = load(bin, "=bin", "t"); eq(nope, nil); assert(err:find("binary"))
  local _, syntax = load("x = = 1", "=bad"); assert(syntax:find("^bad:1:"))
  local parts = { "return ", "1 + ", "2" }
  local i = 0
  eq(load(function() i = i + 1; return parts[i] end)(), 3)
end)
check("varargs and multiple results", function()
  local function count(...) return select("#", ...) end
  eq(count(nil, nil), 2)
  local function three() return 1, 2, 3 end
  eq(count(three()), 3); eq(count(three(), 10), 2); eq(count((three())), 1)
  local t = { three(), three() }; eq(#t, 4)
end)
check("string methods through the string metatable", function()
  eq(("x"):rep(2), "xx"); eq(#getmetatable("").__index.format("%d", 3), 1)
end)

-- io and os on WASI --------------------------------------------------------
check("io.read from stdin", function()
  eq(io.read("l"), "first line"); eq(io.read("L"), "second line\n"); eq(io.read("l"), nil)
end)
check("io.lines and io.open on a preopened folder", function()
  local lines = {}
  for l in io.lines("/data/lines.txt") do lines[#lines + 1] = l end
  eq(table.concat(lines, ","), "a,b,c")
  local f = assert(io.open("/data/out.txt", "w")); f:write("one\n", 2, "\n"); f:close()
  local r = assert(io.open("/data/out.txt", "r")); eq(r:read("n"), nil); r:seek("set", 0)
  eq(r:read("l"), "one"); eq(r:read("n"), 2); r:close()
  local a = assert(io.open("/data/out.txt", "a")); a:write("more"); eq(a:seek("end"), 10); a:close()
  eq(select("#", io.open("/missing/file")), 3)
  local nofile, msg = io.open("/data/none.txt"); eq(nofile, nil); assert(msg:find("No such file"))
  assert(os.remove("/data/out.txt")); eq(io.open("/data/out.txt"), nil)
  eq(io.type(io.stdout), "file"); eq(io.type(r), "closed file"); eq(io.type(42), nil)
end)
check("os.rename and os.remove", function()
  local f = assert(io.open("/data/a.txt", "w")); f:write("x"); f:close()
  assert(os.rename("/data/a.txt", "/data/b.txt"))
  eq(io.open("/data/a.txt"), nil)
  assert(os.remove("/data/b.txt"))
  local ok, msg = os.remove("/data/b.txt"); eq(ok, nil); assert(msg:find("No such file"))
end)
check("os.getenv", function()
  eq(os.getenv("CONFORMANCE"), "yes"); eq(os.getenv("NOT_SET_ANYWHERE"), nil)
end)
check("os.time, os.date, os.difftime", function()
  assert(os.time() > 1700000000, "the clock is the runtime's")
  eq(os.time({ year = 2000, month = 1, day = 1, hour = 0 }) % 60, 0)
  eq(os.date("!%Y-%m-%d %H:%M:%S", 86400), "1970-01-02 00:00:00")
  local d = os.date("!*t", 0); eq(d.year, 1970); eq(d.yday, 1); eq(d.isdst, false)
  eq(os.difftime(10, 4), 6.0)
end)
check("os.clock measures elapsed time", function()
  local a = os.clock(); local x = 0
  for i = 1, 100000 do x = x + i end
  local b = os.clock()
  eq(math.type(a), "float"); assert(b >= a)
end)
check("what WASI cannot do answers nil and a message", function()
  eq(os.execute(), false) -- no shell
  local p, msg = io.popen("ls"); eq(p, nil); assert(msg:find("not supported on WASI"))
  local t, msg2 = io.tmpfile(); eq(t, nil); assert(msg2:find("not supported on WASI"))
  raises(os.tmpname)
end)

run = {
  run = function()
    local passed, failed = 0, 0
    for _, c in ipairs(checks) do
      local ok, err = pcall(c.f)
      if ok then passed = passed + 1
      else failed = failed + 1; print("FAIL " .. c.name .. ": " .. tostring(err)) end
    end
    print(("conformance: %d passed, %d failed"):format(passed, failed))
    if failed > 0 then return nil, "failed" end
  end,
}
