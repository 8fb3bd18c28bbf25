/*
 * The pure-Lua module componentize.http (http.lua, embedded at build time),
 * offered through package.preload so a script's require() finds it without
 * a file system. It is loaded only when required: worlds without wasi:http
 * pay nothing but this registration.
 */
#include "binding.h"

static const char LB_HTTP_LUA[] = {
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wc23-extensions"
#embed "http.lua"
#pragma clang diagnostic pop
};

static int lb_http_load(lua_State *L) {
  if (luaL_loadbufferx(L, LB_HTTP_LUA, sizeof LB_HTTP_LUA, "=componentize.http", "t") != LUA_OK)
    return lua_error(L);
  lua_call(L, 0, 1);
  return 1;
}

static void lb_http_init(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, lb_http_load);
  lua_setfield(L, -2, "componentize.http");
  lua_pop(L, 1);
}
