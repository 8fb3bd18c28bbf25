/*
 * The standard library on WASI: what cannot work there answers the way Lua
 * reports an unavailable operation, so scripts can test for it.
 *
 * liblua.so is built for WASI with io.popen, io.tmpfile and os.clock raising
 * "not supported on WASI". The binding replaces them:
 *   - io.popen and io.tmpfile return nil, a message and an errno
 *     (luaL_fileresult's convention), like a failing io.open;
 *   - os.clock returns the seconds since the first os.clock call of this
 *     instance (WASI has no CPU-time clock; a monotonic one is the nearest).
 *     The start is forgotten when init ends, so a snapshot does not carry
 *     the build's clock.
 * os.tmpname still raises, as Lua's does when no name can be made.
 */
#include "binding.h"
#include <errno.h>
#include <time.h>

/* The monotonic time of the first os.clock call; < 0 before it. */
static double lb_clock_start = -1;

static double lb_monotonic_seconds(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int lb_os_clock(lua_State *L) {
  double now = lb_monotonic_seconds();
  if (lb_clock_start < 0) lb_clock_start = now;
  lua_pushnumber(L, (lua_Number)(now - lb_clock_start));
  return 1;
}

static int lb_unavailable(lua_State *L) {
  lua_pushnil(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushinteger(L, ENOTSUP);
  return 3;
}

/* Sets lib[name] to lb_unavailable with `message`; `lib` is on top. */
static void lb_set_unavailable(lua_State *L, const char *name, const char *message) {
  lua_pushstring(L, message);
  lua_pushcclosure(L, lb_unavailable, 1);
  lua_setfield(L, -2, name);
}

static void lb_stdlib_init(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, LUA_IOLIBNAME);
  lb_set_unavailable(L, "popen", "io.popen: not supported on WASI (a component cannot start processes)");
  lb_set_unavailable(L, "tmpfile", "io.tmpfile: not supported on WASI (there is no temporary folder)");
  lua_pop(L, 1);
  lua_getfield(L, -1, LUA_OSLIBNAME);
  lua_pushcfunction(L, lb_os_clock);
  lua_setfield(L, -2, "clock");
  lua_pop(L, 2);
}

/* Init ended: the next os.clock call starts the instance's clock anew. */
static void lb_stdlib_after_init(void) { lb_clock_start = -1; }
