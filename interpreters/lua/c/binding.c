/*
 * The Lua 5.4 binding: lifecycle, exports and the init export.
 *
 * See ../README.md (the Lua guide) for the mapping between WIT and Lua. This file
 * owns the lua_State, runs the script when the init export is called, checks
 * that every export has a Lua function, and dispatches export calls.
 */
#include "binding.h"

#include <time.h>
#include <unistd.h> /* getentropy */

/* ====================================================================== */
/* Small helpers                                                           */
/* ====================================================================== */

/* "foo-bar" -> "foo_bar" (new string). */
static char *lb_snake(const char *s) {
  char *p = cz_strdup(s);
  for (char *q = p; *q; q++)
    if (*q == '-') *q = '_';
  return p;
}

static const char *lb_snake_or_same(const char *s) {
  return strchr(s, '-') ? lb_snake(s) : s;
}

static void lb_defer(lb_cx *cx, void *p) {
  if (cx->ndeferred == cx->capdeferred) {
    size_t cap = cx->capdeferred * 2;
    void **d = cz_xmalloc(cap * sizeof(void *));
    memcpy(d, cx->deferred, cx->ndeferred * sizeof(void *));
    if (cx->deferred != cx->inline_deferred) free(cx->deferred);
    cx->deferred = d;
    cx->capdeferred = cap;
  }
  cx->deferred[cx->ndeferred++] = p;
}

static void lb_cx_init(lb_cx *cx, lua_State *L) {
  cx->L = L;
  cx->deferred = cx->inline_deferred;
  cx->ndeferred = 0;
  cx->capdeferred = sizeof(cx->inline_deferred) / sizeof(cx->inline_deferred[0]);
}

static void lb_cx_release(lb_cx *cx) {
  for (size_t i = 0; i < cx->ndeferred; i++) free(cx->deferred[i]);
  cx->ndeferred = 0;
  if (cx->deferred != cx->inline_deferred) {
    free(cx->deferred);
    cx->deferred = cx->inline_deferred;
    cx->capdeferred = sizeof(cx->inline_deferred) / sizeof(cx->inline_deferred[0]);
  }
}

/* While values are lowered the collector must not run: the bytes of popped
 * strings are handed out by pointer, and finalizers could run Lua code. */
static void lb_gc_pause(lua_State *L, bool *was_running) {
  *was_running = lua_gc(L, LUA_GCISRUNNING) != 0;
  if (*was_running) lua_gc(L, LUA_GCSTOP);
}

static void lb_gc_resume(lua_State *L, bool was_running) {
  if (was_running) lua_gc(L, LUA_GCRESTART);
}

/* Fills the metatable on top for userdata holding a handle: methods from
 * the table at `index`, and what dropping and printing one does. */
static void lb_set_handle_meta(lua_State *L, int index, lua_CFunction gc, lua_CFunction close,
                               lua_CFunction tostring) {
  index = lua_absindex(L, index);
  lua_pushvalue(L, index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, tostring);
  lua_setfield(L, -2, "__tostring");
}

/* Message handler for lua_pcall: keeps the error object as is (so an export
 * can turn it into an `err` value) and stores the traceback aside. */
static int lb_msgh(lua_State *L) {
  luaL_traceback(L, L, NULL, 1);
  lua_rawseti(L, LUA_REGISTRYINDEX, LB.ref_traceback);
  return 1;
}

static int lb_tostring_protected(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/* Pushes tostring(value at idx); a failing __tostring does not raise. */
static const char *lb_push_tostring(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, lb_tostring_protected);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_isstring(L, -1)) {
    lua_pop(L, 1);
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, idx));
  }
  return lua_tostring(L, -1);
}

/* Pushes "message\nstack traceback:..." for the error object on top
 * (which stays). */
static const char *lb_push_error_text(lua_State *L, bool with_traceback) {
  int err = lua_gettop(L);
  lb_push_tostring(L, err);
  if (with_traceback) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LB.ref_traceback);
    if (lua_isstring(L, -1)) {
      lua_pushliteral(L, "\n");
      lua_insert(L, -2);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
    }
  }
  return lua_tostring(L, -1);
}

void wit_dylib_dealloc_bytes(void *vcx, void *ptr, size_t size, size_t align, bool defer) {
  (void)align;
  if (size == 0 || ptr == NULL) return;
  if (defer && vcx) lb_defer(vcx, ptr);
  else free(ptr);
}

/* ====================================================================== */
/* math.random reseeding                                                   */
/* ====================================================================== */

static void lb_reseed(lua_State *L, int randomseed) {
  uint64_t seed[2] = {0, 0};
  if (getentropy(seed, sizeof seed) != 0) {
    seed[0] = (uint64_t)time(NULL);
    seed[1] = (uint64_t)(uintptr_t)&seed;
  }
  LB.reseed_pending = false;
  lua_pushvalue(L, randomseed);
  lua_pushinteger(L, (lua_Integer)seed[0]);
  lua_pushinteger(L, (lua_Integer)seed[1]);
  lua_call(L, 2, 0);
}

/* math.random: upvalue 1 is Lua's math.random, 2 Lua's math.randomseed. */
static int lb_math_random(lua_State *L) {
  if (LB.reseed_pending) lb_reseed(L, lua_upvalueindex(2));
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, n, LUA_MULTRET);
  return lua_gettop(L);
}

/* math.randomseed: an explicit seed cancels the pending reseed. */
static int lb_math_randomseed(lua_State *L) {
  LB.reseed_pending = false;
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, n, LUA_MULTRET);
  return lua_gettop(L);
}

static void lb_wrap_random(lua_State *L) {
  lua_getglobal(L, "math");
  lua_getfield(L, -1, "random");
  lua_getfield(L, -2, "randomseed");
  lua_pushcclosure(L, lb_math_random, 2);
  lua_setfield(L, -2, "random");
  lua_getfield(L, -1, "random"); /* keep the original randomseed as upvalue */
  lua_getupvalue(L, -1, 2);
  lua_remove(L, -2);
  lua_pushcclosure(L, lb_math_randomseed, 1);
  lua_setfield(L, -2, "randomseed");
  lua_pop(L, 1);
}

/* ====================================================================== */
/* Export naming                                                           */
/* ====================================================================== */

/* Globals of a standard Lua 5.4 state: an exported interface whose short
 * name is one of these gets its qualified name instead. */
static const char *const LB_STD_GLOBALS[] = {
    "_G", "_VERSION", "assert", "collectgarbage", "coroutine", "debug", "dofile", "error",
    "getmetatable", "io", "ipairs", "load", "loadfile", "math", "next", "os", "package",
    "pairs", "pcall", "print", "rawequal", "rawget", "rawlen", "rawset", "require", "select",
    "setmetatable", "string", "table", "tonumber", "tostring", "type", "utf8", "warn", "xpcall",
    NULL};

static bool lb_is_std_global(const char *s) {
  for (size_t i = 0; LB_STD_GLOBALS[i]; i++)
    if (strcmp(LB_STD_GLOBALS[i], s) == 0) return true;
  return false;
}

/* "ns:pkg/iface@1.0" -> "iface"; "name" -> "name" (snake_case). */
static char *lb_iface_short(const char *key) {
  const char *s = strrchr(key, '/');
  s = s ? s + 1 : key;
  size_t n = strcspn(s, "@");
  char *p = cz_xmalloc(n + 1);
  memcpy(p, s, n);
  p[n] = 0;
  for (char *q = p; *q; q++)
    if (*q == '-') *q = '_';
  return p;
}

/* "ns:pkg/iface@1.0" -> "ns_pkg_iface" (with_version: "ns_pkg_iface_1_0"). */
static char *lb_iface_qualified(const char *key, bool with_version) {
  size_t n = with_version ? strlen(key) : strcspn(key, "@");
  char *p = cz_xmalloc(n + 1);
  for (size_t i = 0; i < n; i++) {
    char c = key[i];
    bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    p[i] = word ? c : '_';
  }
  p[n] = 0;
  return p;
}

static void lb_exports_init(void) {
  const wit_t *w = LB.wit;
  size_t n = w->num_export_funcs;
  LB.exports = cz_xmalloc((n ? n : 1) * sizeof(lb_export));
  memset(LB.exports, 0, (n ? n : 1) * sizeof(lb_export));
  LB.init_which = SIZE_MAX;

  for (size_t i = 0; i < n; i++) {
    const wit_export_func_t *f = &w->export_funcs[i];
    lb_export *e = &LB.exports[i];
    e->iface = f->interface;
    e->display = f->interface ? cz_format("%s#%s", f->interface, f->name) : cz_strdup(f->name);
    if (f->interface && strcmp(f->interface, LB_INIT_INTERFACE) == 0 &&
        strcmp(f->name, LB_INIT_FUNCTION) == 0) {
      e->kind = LB_INIT;
      LB.init_which = i;
      continue;
    }
    const char *name = f->name;
    if (cz_starts(name, "[constructor]")) {
      e->kind = LB_CTOR;
      e->res = lb_snake(name + strlen("[constructor]"));
      e->fn = cz_strdup("new");
    } else if (cz_starts(name, "[method]") || cz_starts(name, "[static]")) {
      bool method = cz_starts(name, "[method]");
      const char *rest = name + strlen(method ? "[method]" : "[static]");
      const char *dot = strchr(rest, '.');
      if (!dot) cz_die("malformed export name %s", name);
      e->kind = method ? LB_METHOD : LB_STATIC;
      e->res = lb_snake(rest);
      e->res[dot - rest] = 0;
      e->fn = lb_snake(dot + 1);
    } else {
      e->kind = LB_FUNC;
      e->fn = lb_snake(name);
    }
  }

  /* Names of interface tables: the short name, unless it collides with the
   * short name of another exported interface, a world-level export, or a
   * standard Lua global; then the qualified name (plus the version if that
   * still collides). */
  for (size_t i = 0; i < n; i++) {
    lb_export *e = &LB.exports[i];
    if (!e->iface || e->kind == LB_INIT || e->table) continue;
    char *shortname = lb_iface_short(e->iface);
    bool clash = lb_is_std_global(shortname);
    for (size_t j = 0; j < n && !clash; j++) {
      const lb_export *o = &LB.exports[j];
      if (o->kind == LB_INIT) continue;
      if (!o->iface) {
        clash = strcmp(o->fn, shortname) == 0;
      } else if (strcmp(o->iface, e->iface) != 0) {
        char *s2 = lb_iface_short(o->iface);
        clash = strcmp(s2, shortname) == 0;
        free(s2);
      }
    }
    char *table = shortname;
    if (clash) {
      free(shortname);
      table = lb_iface_qualified(e->iface, false);
      for (size_t j = 0; j < n; j++) {
        const lb_export *o = &LB.exports[j];
        if (!o->iface || o->kind == LB_INIT || strcmp(o->iface, e->iface) == 0) continue;
        char *q2 = lb_iface_qualified(o->iface, false);
        bool same = strcmp(q2, table) == 0;
        free(q2);
        if (same) {
          free(table);
          table = lb_iface_qualified(e->iface, true);
          break;
        }
      }
    }
    /* Every export of this interface shares the name. */
    for (size_t j = i; j < n; j++) {
      lb_export *o = &LB.exports[j];
      if (o->iface && o->kind != LB_INIT && strcmp(o->iface, e->iface) == 0)
        o->table = table;
    }
  }

  for (size_t i = 0; i < n; i++) {
    lb_export *e = &LB.exports[i];
    if (e->kind == LB_INIT) continue;
    const char *pre = e->table ? e->table : "";
    const char *dot = e->table ? "." : "";
    switch (e->kind) {
      case LB_FUNC: e->lua_display = cz_format("%s%s%s", pre, dot, e->fn); break;
      case LB_CTOR:
      case LB_STATIC: e->lua_display = cz_format("%s%s%s.%s", pre, dot, e->res, e->fn); break;
      case LB_METHOD: e->lua_display = cz_format("%s%s%s:%s", pre, dot, e->res, e->fn); break;
      case LB_INIT: break;
    }
  }
}

/* Pushes the table holding the functions of export `e` (the root for
 * world-level functions, the interface table, or the resource class).
 * Returns NULL, or a description of what is missing (pushing nothing). */
static const char *lb_push_container(lua_State *L, const lb_export *e, char *buf, size_t len) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, LB.ref_root);
  if (e->iface) {
    /* The full interface name takes precedence: root["ns:pkg/iface@1.0"]. */
    lua_getfield(L, -1, e->iface);
    if (!lua_istable(L, -1)) {
      lua_pop(L, 1);
      lua_getfield(L, -1, e->table);
    }
    if (!lua_istable(L, -1)) {
      snprintf(buf, len, "table `%s` (for interface %s) is %s", e->table, e->iface,
               lua_isnil(L, -1) ? "not defined" : "not a table");
      lua_pop(L, 2);
      return buf;
    }
    lua_remove(L, -2);
  }
  if (e->res) {
    lua_getfield(L, -1, e->res);
    if (!lua_istable(L, -1)) {
      snprintf(buf, len, "class `%s%s%s` (for resource %s of %s) is %s", e->table ? e->table : "",
               e->table ? "." : "", e->res, e->res, e->iface ? e->iface : "the world",
               lua_isnil(L, -1) ? "not defined" : "not a table");
      lua_pop(L, 2);
      return buf;
    }
    lua_remove(L, -2);
  }
  return NULL;
}

/* Pushes the Lua function of export `which`. For methods, `self` (a stack
 * index, or 0) is searched first, so instances may override their class.
 * Returns NULL or a description of what is missing (pushing nothing). */
static const char *lb_push_export_fn(lua_State *L, size_t which, int self, char *buf, size_t len) {
  const lb_export *e = &LB.exports[which];
  if (self && e->kind == LB_METHOD) {
    if (lua_type(L, self) == LUA_TTABLE || lua_type(L, self) == LUA_TUSERDATA) {
      lua_getfield(L, self, e->fn);
      if (lua_isfunction(L, -1)) return NULL;
      lua_pop(L, 1);
    }
  }
  const char *missing = lb_push_container(L, e, buf, len);
  if (missing) return missing;
  lua_getfield(L, -1, e->fn);
  lua_remove(L, -2);
  bool callable = lua_isfunction(L, -1);
  if (!callable && luaL_getmetafield(L, -1, "__call") != LUA_TNIL) {
    lua_pop(L, 1);
    callable = true;
  }
  if (!callable) {
    snprintf(buf, len, "function `%s` (for export %s) is %s", e->lua_display, e->display,
             lua_isnil(L, -1) ? "not defined" : "not a function");
    lua_pop(L, 1);
    return buf;
  }
  return NULL;
}

/* A growable C string for messages. */
typedef struct lb_sb {
  char *p;
  size_t len, cap;
} lb_sb;

static void lb_sb_add(lb_sb *b, const char *s) {
  size_t n = strlen(s);
  if (b->len + n + 1 > b->cap) {
    size_t cap = (b->len + n + 1) * 2;
    char *p = realloc(b->p, cap);
    if (!p) cz_die("out of memory");
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n + 1);
  b->len += n;
}

/* After the script ran: every export must have its function. Pushes the
 * error message and returns false when some are missing. */
static bool lb_check_exports(lua_State *L, const char *chunk) {
  lb_sb b = {0};
  size_t missing = 0;
  char buf[512];
  lb_sb_add(&b, "");
  for (size_t i = 0; i < LB.wit->num_export_funcs; i++) {
    if (LB.exports[i].kind == LB_INIT) continue;
    const char *m = lb_push_export_fn(L, i, 0, buf, sizeof buf);
    if (!m) {
      lua_pop(L, 1);
      continue;
    }
    /* A missing table is reported once, not once per function. */
    const char *seen = strstr(b.p, m);
    if (seen && (seen[strlen(m)] == '\n' || seen[strlen(m)] == 0)) continue;
    lb_sb_add(&b, "\n  - ");
    lb_sb_add(&b, m);
    missing++;
  }
  if (missing == 0) {
    free(b.p);
    return true;
  }
  lua_pushfstring(L, "%s: the script does not define what the world's exports need:%s", chunk, b.p);
  free(b.p);
  return false;
}

/* ====================================================================== */
/* Lifecycle                                                               */
/* ====================================================================== */

static int lb_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  cz_die("unprotected Lua error: %s", msg ? msg : "(error object is not a string)");
}

static int lb_new_ref_table(lua_State *L) {
  lua_newtable(L);
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* A table name -> index + 1 holding both spellings of each name. */
static int lb_name_table(lua_State *L, size_t n, const char *const *names, const char *const *lua_names) {
  lua_createtable(L, 0, (int)n);
  for (size_t i = 0; i < n; i++) {
    lua_pushinteger(L, (lua_Integer)i + 1);
    lua_setfield(L, -2, names[i]);
    lua_pushinteger(L, (lua_Integer)i + 1);
    lua_setfield(L, -2, lua_names[i]);
  }
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

static void lb_types_init(lua_State *L) {
  const wit_t *w = LB.wit;
  LB.record_fields = cz_xmalloc((w->num_records + 1) * sizeof(char **));
  for (size_t i = 0; i < w->num_records; i++) {
    const wit_record_t *r = &w->records[i];
    LB.record_fields[i] = cz_xmalloc((r->nfields + 1) * sizeof(char *));
    for (size_t j = 0; j < r->nfields; j++) LB.record_fields[i][j] = lb_snake_or_same(r->fields[j].name);
  }
  LB.flag_names = cz_xmalloc((w->num_flags + 1) * sizeof(char **));
  LB.ref_flag_names = cz_xmalloc((w->num_flags + 1) * sizeof(int));
  for (size_t i = 0; i < w->num_flags; i++) {
    const wit_flags_t *f = &w->flags[i];
    LB.flag_names[i] = cz_xmalloc((f->nnames + 1) * sizeof(char *));
    for (size_t j = 0; j < f->nnames; j++) LB.flag_names[i][j] = lb_snake_or_same(f->names[j]);
    LB.ref_flag_names[i] = lb_name_table(L, f->nnames, f->names, LB.flag_names[i]);
  }
  LB.enum_names = cz_xmalloc((w->num_enums + 1) * sizeof(char **));
  LB.ref_enum_names = cz_xmalloc((w->num_enums + 1) * sizeof(int));
  for (size_t i = 0; i < w->num_enums; i++) {
    const wit_enum_t *e = &w->enums[i];
    LB.enum_names[i] = cz_xmalloc((e->nnames + 1) * sizeof(char *));
    for (size_t j = 0; j < e->nnames; j++) LB.enum_names[i][j] = lb_snake_or_same(e->names[j]);
    LB.ref_enum_names[i] = lb_name_table(L, e->nnames, e->names, LB.enum_names[i]);
  }
  LB.case_names = cz_xmalloc((w->num_variants + 1) * sizeof(char **));
  LB.ref_variant_names = cz_xmalloc((w->num_variants + 1) * sizeof(int));
  for (size_t i = 0; i < w->num_variants; i++) {
    const wit_variant_t *v = &w->variants[i];
    const char **wit_names = cz_xmalloc((v->ncases + 1) * sizeof(char *));
    LB.case_names[i] = cz_xmalloc((v->ncases + 1) * sizeof(char *));
    for (size_t j = 0; j < v->ncases; j++) {
      wit_names[j] = v->cases[j].name;
      LB.case_names[i][j] = lb_snake_or_same(v->cases[j].name);
    }
    LB.ref_variant_names[i] = lb_name_table(L, v->ncases, wit_names, LB.case_names[i]);
    free(wit_names);
  }
  LB.option_nested = cz_xmalloc(w->num_options + 1);
  for (size_t i = 0; i < w->num_options; i++)
    LB.option_nested[i] = WIT_TYPE_KIND(cz_resolve(LB.wit, w->options[i].ty)) == WIT_TYPE_OPTION;
  LB.list_nullable = cz_xmalloc(w->num_lists + 1);
  for (size_t i = 0; i < w->num_lists; i++)
    LB.list_nullable[i] = WIT_TYPE_KIND(cz_resolve(LB.wit, w->lists[i].ty)) == WIT_TYPE_OPTION;
}

/* Lua's allocator: zeroing what it frees until init ends (cz_zero). */

static void *lb_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (nsize == 0) {
    if (ptr && LB.zero_freed) cz_zero(ptr, 0, osize);
    free(ptr);
    return NULL;
  }
  if (!LB.zero_freed || !ptr) return realloc(ptr, nsize);
  return cz_zeroing_realloc(ptr, osize, nsize);
}

void wit_dylib_initialize(const wit_t *wit) {
  if (wit->version < WIT_CURRENT_VERSION)
    cz_die("bindings use interface version %u; this binding needs %d", wit->version, WIT_CURRENT_VERSION);
  LB.wit = wit;
  lua_State *L = luaL_newstate();
  if (!L) cz_die("cannot create a Lua state");
  LB.main = L;
  LB.zero_freed = true;
  lua_setallocf(L, lb_alloc, NULL); /* compatible with luaL_newstate's: realloc/free */
  lua_atpanic(L, lb_panic);
  luaL_openlibs(L);
  lb_stdlib_init(L);
  lb_wrap_random(L);

  lua_pushglobaltable(L);
  LB.ref_root = luaL_ref(L, LUA_REGISTRYINDEX);
  LB.ref_reps = lb_new_ref_table(L);
  LB.ref_counts = lb_new_ref_table(L);
  LB.ref_lent = lb_new_ref_table(L);
  lua_pushboolean(L, 0); /* a slot (a nil would not get a reference) */
  LB.ref_traceback = luaL_ref(L, LUA_REGISTRYINDEX);
  LB.next_rep = 1;
  lb_types_init(L);
  lb_exports_init();
  lb_resources_init(L);
  lb_imports_init(L);
  lb_http_init(L);
  lb_ends_init(L);
  lua_settop(L, 0);
}

/* ====================================================================== */
/* Exports                                                                 */
/* ====================================================================== */

void *wit_dylib_export_start(size_t which) {
  if (lb_is_async_export(which)) return lb_task_start(which);
  lua_State *L = LB.main;
  if (LB.in_export) cz_die("export %s called while another export runs", LB.exports[which].display);
  LB.in_export = true;
  lua_settop(L, 0);
  if (!lua_checkstack(L, 64)) cz_die("cannot grow the Lua stack");
  lua_pushboolean(L, 0); /* no traceback yet */
  lua_rawseti(L, LUA_REGISTRYINDEX, LB.ref_traceback);
  lua_pushcfunction(L, lb_msgh); /* slot 1: message handler */
  lb_cx_init(&LB.export_cx, L);
  return &LB.export_cx;
}

/* Pushes {ok = v} / {err = v} with the value on top (nil when absent). */
static void lb_push_tagged(lua_State *L, const char *tag) {
  lua_createtable(L, 0, 1);
  lua_insert(L, -2);
  lua_setfield(L, -2, tag);
}

/* The body of the init export, run protected: (name, source) -> true, or
 * nil and the message. */
static int lb_init_protected(lua_State *L) {
  size_t srclen;
  const char *name = lua_tostring(L, 1);
  const char *src = lua_tolstring(L, 2, &srclen);
  lb_modules_before_init(L);
  lua_pushfstring(L, "@%s", name);
  if (luaL_loadbufferx(L, src, srclen, lua_tostring(L, -1), NULL) != LUA_OK) {
    lua_pushnil(L); /* syntax error: "app.lua:3: ... near ..." */
    lua_insert(L, -2);
    return 2;
  }
  lua_pushcfunction(L, lb_msgh);
  lua_insert(L, -2);
  int st = lua_pcall(L, 0, 1, -2);
  fflush(stdout);
  if (st != LUA_OK) {
    lb_push_error_text(L, true);
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  /* A chunk that returns a table exports from that table, not _G. */
  if (lua_istable(L, -1)) lua_rawseti(L, LUA_REGISTRYINDEX, LB.ref_root);
  else lua_pop(L, 1);
  if (!lb_check_exports(L, name)) {
    lua_pushglobaltable(L);
    lua_rawseti(L, LUA_REGISTRYINDEX, LB.ref_root);
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* The init export: [msgh, name, source] -> pushes its result<_, string>. */
static void lb_run_init(lua_State *L) {
  if (LB.loaded) {
    lua_pushstring(L, "the Lua script was already initialized");
    lb_push_tagged(L, "err");
    return;
  }
  lua_pushcfunction(L, lb_init_protected);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  if (lua_pcall(L, 2, 2, 1) != LUA_OK) {
    lb_push_error_text(L, true);
    lb_push_tagged(L, "err");
    return;
  }
  if (!lua_toboolean(L, -2)) {
    lb_push_tagged(L, "err");
    return;
  }
  LB.loaded = true;
  lb_modules_after_init(L);
  lb_stdlib_after_init();
  /* The state may be snapshotted now: leave no garbage behind, stop zeroing
   * freed memory, and draw fresh randomness at runtime. */
  lua_gc(L, LUA_GCCOLLECT);
  lua_gc(L, LUA_GCCOLLECT);
  LB.zero_freed = false;
  LB.reseed_pending = true;
  lua_pushboolean(L, 1);
  lb_push_tagged(L, "ok");
}

static int lb_dispatch_done(lua_State *L, int status, lua_KContext ctx) {
  (void)status, (void)ctx;
  return lua_gettop(L);
}

/* Calls an export's Lua function, run protected: (which, args...) ->
 * results. Finding the function is protected too: metamethods may run. */
static int lb_dispatch(lua_State *L) {
  size_t which = (size_t)lua_tointeger(L, 1);
  lua_remove(L, 1);
  int nargs = lua_gettop(L);
  char buf[512];
  const char *missing = lb_push_export_fn(L, which, nargs > 0 ? 1 : 0, buf, sizeof buf);
  if (missing) return luaL_error(L, "%s", missing);
  lua_insert(L, 1);
  /* Yieldable: an async export's coroutine yields through here. */
  lua_callk(L, nargs, LUA_MULTRET, 0, lb_dispatch_done);
  return lua_gettop(L);
}

/* Reports a Lua error of export `which` as its `err` value when its result
 * type allows it; otherwise prints the error and traps. The error object is
 * on top; on return the result value replaces it. */
static void lb_export_error(lua_State *L, size_t which) {
  const wit_export_func_t *f = &LB.wit->export_funcs[which];
  const lb_export *e = &LB.exports[which];
  wit_type_t rt = LB_NONE(f->result) ? LB_EMPTY : cz_resolve(LB.wit, f->result);
  if (WIT_TYPE_KIND(rt) == WIT_TYPE_RESULT) {
    const wit_result_t *r = &LB.wit->results[WIT_TYPE_INDEX(rt)];
    wit_type_t et = LB_NONE(r->err) ? LB_EMPTY : cz_resolve(LB.wit, r->err);
    if (WIT_TYPE_KIND(et) == WIT_TYPE_STRING) {
      lb_push_tostring(L, -1);
      lua_remove(L, -2);
      lb_push_tagged(L, "err");
      return;
    }
    lb_path p = {.label = "error"};
    if (!LB_NONE(et) && lb_check(L, lua_gettop(L), et, &p)) {
      lb_push_tagged(L, "err");
      return;
    }
    if (LB_NONE(et)) {
      const char *text = lb_push_error_text(L, true);
      fprintf(stderr, "lua: error in %s (Lua `%s`): %s\n", e->display, e->lua_display, text);
      fflush(stderr);
      lua_pop(L, 2);
      lua_pushboolean(L, 1);
      lb_push_tagged(L, "err");
      return;
    }
  }
  const char *text = lb_push_error_text(L, true);
  cz_die("error in export %s (Lua `%s`): %s", e->display, e->lua_display, text);
}

/* Checks the result of export `which` (on top of L, at slot 2) and pushes
 * the copy the bindings pop; slot 2 keeps everything in it alive. */
static void lb_export_push_result(lua_State *L, size_t which) {
  const wit_export_func_t *f = &LB.wit->export_funcs[which];
  const lb_export *e = &LB.exports[which];
  if (LB_NONE(f->result)) return;
  lb_path p = {.label = "result"};
  if (!lb_check(L, 2, f->result, &p))
    cz_die("export %s (Lua `%s`) returned a value that does not match its WIT type: %s", e->display,
           e->kind == LB_INIT ? "init" : e->lua_display, LB_ERR);
  lua_pushvalue(L, 2);
}

/* The outcome of export `which`'s Lua function on L, whose slot 1 stays:
 * above it the function's results (st == LUA_OK) or its error object. The
 * result value goes to slot 2 (Lua idioms such as `return nil, err`
 * applied, an error turned into `err` where the type allows it), and its
 * copy on top. */
static void lb_export_outcome(lua_State *L, size_t which, int st) {
  const wit_export_func_t *f = &LB.wit->export_funcs[which];
  if (st != LUA_OK) {
    lb_export_error(L, which);
  } else if (LB_NONE(f->result)) {
    lua_settop(L, 1);
  } else {
    int nres = lua_gettop(L) - 1;
    wit_type_t rt = cz_resolve(LB.wit, f->result);
    if (WIT_TYPE_KIND(rt) == WIT_TYPE_RESULT) {
      const wit_result_t *r = &LB.wit->results[WIT_TYPE_INDEX(rt)];
      if (nres >= 2 && lua_isnil(L, 2) && !lua_isnil(L, 3)) {
        /* The Lua idiom `return nil, err`. */
        lua_settop(L, 3);
        lb_push_tagged(L, "err");
        lua_replace(L, 2);
      } else if ((nres == 0 || lua_isnil(L, 2)) && LB_NONE(r->ok)) {
        /* Nothing returned from a function with an empty ok case. */
        lua_settop(L, 1);
        lua_pushboolean(L, 1);
        lb_push_tagged(L, "ok");
      }
    }
    if (nres == 0) lua_pushnil(L);
    lua_settop(L, 2);
  }
  lb_export_push_result(L, which);
}

void wit_dylib_export_call(void *vcx, size_t which) {
  lb_cx *cx = vcx;
  lua_State *L = cx->L;
  const lb_export *e = &LB.exports[which];
  if (e->kind == LB_INIT) {
    lb_run_init(L);
    lua_replace(L, 2);
    lua_settop(L, 2);
    lb_export_push_result(L, which);
  } else {
    if (!LB.loaded)
      cz_die("export %s called before the Lua script was loaded (by the init export %s#%s)", e->display,
             LB_INIT_INTERFACE, LB_INIT_FUNCTION);
    int nargs = lua_gettop(L) - 1;
    lua_pushcfunction(L, lb_dispatch);
    lua_insert(L, 2);
    lua_pushinteger(L, (lua_Integer)which);
    lua_insert(L, 3);
    int st = lua_pcall(L, nargs + 1, LUA_MULTRET, 1);
    lb_release_lent(L);
    fflush(stdout);
    lb_export_outcome(L, which, st);
  }
  lb_gc_pause(L, &LB.export_gc);
}

void wit_dylib_export_finish(void *vcx, size_t which) {
  (void)which;
  lb_cx *cx = vcx;
  lua_settop(cx->L, 0);
  lb_cx_release(cx);
  lb_gc_resume(cx->L, LB.export_gc);
  LB.in_export = false;
}
