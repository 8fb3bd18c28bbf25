/*
 * Modules: require() of the script's Lua modules, which are read during
 * init only.
 *
 * During init the init stage preopens each module folder read-only and
 * lists them in COMPONENTIZE_MODULE_PATH (componentize_contract's
 * MODULE_PATH_ENV, guest paths separated by ':'). Before the script runs,
 * package.path becomes "DIR/?.lua;DIR/?/init.lua" for each of them. What
 * the script requires is then part of the snapshot. After init the folders
 * are gone, so the file searchers are replaced by one that says the module
 * was not loaded at init.
 */
#include "binding.h"

#define LB_MODULE_PATH_ENV "COMPONENTIZE_MODULE_PATH"

/* Sets package.path from the module folders, if init lists any. */
static void lb_modules_before_init(lua_State *L) {
  const char *dirs = getenv(LB_MODULE_PATH_ENV);
  if (!dirs || !*dirs) return;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (const char *p = dirs; *p;) {
    const char *end = strchr(p, ':');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n > 0) {
      if (luaL_bufflen(&b) > 0) luaL_addchar(&b, ';');
      luaL_addlstring(&b, p, n);
      luaL_addstring(&b, "/?.lua;");
      luaL_addlstring(&b, p, n);
      luaL_addstring(&b, "/?/init.lua");
    }
    p += n + (end ? 1 : 0);
  }
  luaL_pushresult(&b);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, LUA_LOADLIBNAME);
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, "path");
  lua_pop(L, 3);
}

/* The searcher of modules after init: nothing can be read any more. */
static int lb_search_not_loaded(lua_State *L) {
  lua_pushfstring(L,
                  "module '%s' was not loaded at init: componentize reads modules only while it "
                  "builds the component, so require it from the script (or from a module the "
                  "script requires) when it runs at init",
                  luaL_checkstring(L, 1));
  return 1;
}

/* package.searchers = { the preload searcher, lb_search_not_loaded }. */
static void lb_modules_after_init(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, LUA_LOADLIBNAME);
  if (lua_getfield(L, -1, "searchers") == LUA_TTABLE) {
    lua_pushcfunction(L, lb_search_not_loaded);
    lua_rawseti(L, -2, 2);
    for (lua_Integer i = luaL_len(L, -1); i > 2; i--) {
      lua_pushnil(L);
      lua_rawseti(L, -2, i);
    }
  }
  lua_pop(L, 3);
}
