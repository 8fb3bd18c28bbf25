/*
 * Internal declarations of the Lua 5.4 binding (lua.so).
 *
 * The binding is compiled as one translation unit (lua.c
 * includes every file of this folder), so everything here is static except
 * the functions of componentize.h.
 *
 * Overview of the state:
 *   - one lua_State (`LB.main`) made in wit_dylib_initialize; the script is
 *     run by the init export (componentize:init/init@0.1.0#init);
 *   - a call context (`lb_cx`) per export call or import call: the Lua
 *     thread whose stack is the value stack of that call, and the buffers to
 *     free when the call ends;
 *   - registry tables for what must outlive a call: the objects behind the
 *     reps of exported resources, metatables of imported resources, name
 *     lookup tables of enums/variants/flags.
 */
#ifndef LUA_BINDING_H
#define LUA_BINDING_H

#define CZ_LIBRARY_NAME "lua.so"
#include "binding_support.h"
#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"

/* The interface the init stage adds to every world. */
#define LB_INIT_INTERFACE "componentize:init/init@0.1.0"
#define LB_INIT_FUNCTION "init"
/* Module name of world-level imports: require("$root"). */
#define LB_ROOT_MODULE "$root"

/* An absent type (no result, no payload): kind WIT_TYPE_EMPTY, all bits set. */
#define LB_EMPTY ((wit_type_t)0xffffffffu)
#define LB_NONE(ty) (WIT_TYPE_KIND(ty) == WIT_TYPE_EMPTY)

/* ---- call contexts --------------------------------------------------- */

typedef struct lb_cx {
  lua_State *L;        /* the stack values are pushed on / popped from */
  void **deferred;     /* buffers freed when the call ends */
  size_t ndeferred, capdeferred;
  void *inline_deferred[8];
} lb_cx;

#define LB_L(cx) (((lb_cx *)(cx))->L)

/* ---- per-export information ------------------------------------------ */

enum lb_export_kind { LB_FUNC, LB_CTOR, LB_METHOD, LB_STATIC, LB_INIT };

typedef struct lb_export {
  enum lb_export_kind kind;
  const char *iface;   /* interface key as in the world, NULL at world level */
  char *table;         /* Lua name of the interface table (NULL at world level) */
  char *res;           /* Lua name of the resource class (ctor/method/static) */
  char *fn;            /* Lua name of the function ("new" for constructors) */
  char *display;       /* WIT name for messages: "iface#name" or "name" */
  char *lua_display;   /* Lua name for messages: "tbl.res:fn", "foo_bar" */
} lb_export;

/* ---- global state ---------------------------------------------------- */

typedef struct lb_state {
  const wit_t *wit;
  lua_State *main;
  bool loaded;            /* the init export ran the script successfully */
  bool reseed_pending;    /* math.random reseeds on its next use */
  bool zero_freed;        /* the Lua allocator zeroes what it frees (until init ends) */
  size_t init_which;      /* index of the init export, SIZE_MAX if none */
  lb_export *exports;     /* one per wit->export_funcs */
  /* Registry references. */
  int ref_root;           /* where exports are looked up: _G or the table the script returned */
  int ref_reps;           /* exported resources: rep -> object */
  int ref_counts;         /* exported resources: object -> number of live reps */
  int ref_lent;           /* borrowed imported handles of the current export */
  int ref_traceback;      /* traceback of the last error caught by lb_msgh */
  int *ref_meta;          /* per resource: metatable (imported resources only) */
  int *ref_enum_names;    /* per enum: name -> index + 1 */
  int *ref_variant_names; /* per variant: case name -> index + 1 */
  int *ref_flag_names;    /* per flags: name -> bit + 1 */
  /* Lua spellings (snake_case) of WIT names; entries point at the WIT
   * string itself when it has no '-'. */
  const char ***record_fields;
  const char ***flag_names;
  const char ***enum_names;
  const char ***case_names;
  /* Per option type: the payload can itself be nil (an option), so `some`
   * is wrapped as {some = v}. */
  bool *option_nested;
  /* Per list type: elements can be nil (options); the length is t.n. */
  bool *list_nullable;
  size_t nlent;           /* entries in ref_lent */
  uint32_t next_rep;
  uint32_t reclaiming;    /* rep whose handle we are dropping ourselves */
  bool reclaimed;
  lb_cx export_cx;
  bool in_export;
  bool export_gc;         /* the collector ran before the export paused it */
} lb_state;

static lb_state LB;

/* ---- shared helpers (binding.c) --------------------------------------- */

static char *lb_snake(const char *s);
static const char *lb_snake_or_same(const char *s);
static void lb_defer(lb_cx *cx, void *p);
static void lb_cx_release(lb_cx *cx);
static void lb_gc_pause(lua_State *L, bool *was_running);
static void lb_gc_resume(lua_State *L, bool was_running);
static int lb_msgh(lua_State *L);
static void lb_set_handle_meta(lua_State *L, int index, lua_CFunction gc, lua_CFunction close,
                               lua_CFunction tostring);
static const char *lb_push_error_text(lua_State *L, bool with_traceback);
static _Noreturn void lb_bad_pop(lua_State *L, const char *what);

/* ---- checks (check.c) -------------------------------------------------- */

/* A position inside a value, for messages: root label, then .field / [i]. */
typedef struct lb_path {
  const struct lb_path *up;
  const char *field;   /* ".field" when non-NULL */
  lua_Integer index;   /* "[index]" otherwise */
  const char *label;   /* root only: "result", "argument #2", ... */
} lb_path;

/* Checks that the value at `idx` fits `ty` (with the conventions of the
 * mapping). On failure writes "<path>: <problem>" to LB_ERR and returns
 * false; never raises a Lua error. */
static bool lb_check(lua_State *L, int idx, wit_type_t ty, const lb_path *p);
static char LB_ERR[1024];
static void lb_type_name(wit_type_t ty, char *buf, size_t len);
static bool lb_res_arg(lua_State *L, int idx, size_t index, cz_handle **out);

/* ---- resources (resources.c) ------------------------------------------ */

static void lb_resources_init(lua_State *L);
static void lb_push_imported(lua_State *L, size_t index, uint32_t handle, int state);
static void lb_release_lent(lua_State *L);
static cz_handle *lb_test_res(lua_State *L, int idx);
static void lb_push_class(lua_State *L, size_t index);

/* ---- async exports, their fibers and async imports (tasks.c) ---------------------------------------------- */

static bool lb_is_async_export(size_t which);
static lb_cx *lb_task_start(size_t which);
static int lb_import_async(lua_State *L, size_t which, const char *name);

/* ---- futures and streams (ends.c) ------------------------------------------ */

static void lb_ends_init(lua_State *L);
static bool lb_check_end_value(lua_State *L, int idx, wit_type_t ty, char *why, size_t len);

/* ---- imports (imports.c) ------------------------------------------------ */

static void lb_imports_init(lua_State *L);
static void lb_http_init(lua_State *L);

/* ---- modules (modules.c) ------------------------------------------------ */

static void lb_modules_before_init(lua_State *L);
static void lb_modules_after_init(lua_State *L);

/* ---- the standard library on WASI (stdlib.c) ----------------------------- */

static void lb_stdlib_init(lua_State *L);
static void lb_stdlib_after_init(void);

#endif
