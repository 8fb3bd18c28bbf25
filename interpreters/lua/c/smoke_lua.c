/*
 * Build-time smoke test of liblua.so (toolchain/build.sh).
 *
 * Linked with liblua.so, libsetjmp.so and libc.so into a component (world
 * smoke.wit) and run under wasmtime. It proves that Lua errors unwind through
 * the wasm-EH setjmp/longjmp lowering (pcall, runtime errors, coroutines) and
 * that libc (malloc, stdio, strings) works through the shared libc.so.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"

static const char chunk[] =
    "local ok, err = pcall(error, 'x')\n"
    "assert(ok == false and err == 'x', 'pcall(error, \"x\") did not catch')\n"
    "local ok2, err2 = pcall(function() local t; return t.field end)\n"
    "assert(not ok2 and tostring(err2):find('index'), 'runtime error not caught')\n"
    "local co = coroutine.create(function() error('from coroutine') end)\n"
    "local ok3, err3 = coroutine.resume(co)\n"
    "assert(not ok3 and err3:find('from coroutine'), 'coroutine error lost')\n"
    "assert(string.format('%.2f %d', 2.5, 7) == '2.50 7', 'string.format')\n"
    "return 42\n";

/* Returns 42 when everything works, a negative number otherwise. */
__attribute__((export_name("run")))
int smoke_run(void) {
  lua_State *L = luaL_newstate();
  if (L == NULL)
    return -1;
  luaL_openlibs(L);
  int result = -2;
  if (luaL_dostring(L, chunk) == LUA_OK) {
    result = (int)lua_tointeger(L, -1);
  } else {
    fprintf(stderr, "smoke_lua: %s\n", lua_tostring(L, -1));
  }
  lua_close(L);
  char *copy = strdup("libc ok");
  if (copy == NULL || strcmp(copy, "libc ok") != 0)
    result = -3;
  free(copy);
  return result;
}
