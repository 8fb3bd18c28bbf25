/*
 * Internal declarations of the JavaScript binding (js.so), QuickJS-NG.
 *
 * The binding is one translation unit (js.c includes every file of this
 * folder), so everything here is static except the functions of
 * componentize.h.
 *
 * State:
 *   - one JSRuntime and one JSContext (`JB.rt`, `JB.ctx`), made in
 *     wit_dylib_initialize; the init export evaluates the script as an ES
 *     module and keeps its namespace object (`JB.ns`), where exports are
 *     looked up;
 *   - a call context (`jb_cx`) per export call or import call: the value
 *     stack of that call, and what to release when the call ends (C strings
 *     lent to the canonical ABI, values whose buffers were lent, buffers
 *     the bindings deferred);
 *   - per resource: the JS class of imported resources, and the table of
 *     reps of exported ones (rep -> the script's object).
 */
#ifndef JS_BINDING_H
#define JS_BINDING_H

#define CZ_LIBRARY_NAME "js.so"
#include "binding_support.h"
#include "quickjs.h"

/* The interface the init stage adds to every world. */
#define JB_INIT_INTERFACE "componentize:init/init@0.1.0"
#define JB_INIT_FUNCTION "init"
/* Module specifier of world-level imports: import { f } from "$root". */
#define JB_ROOT_MODULE "$root"
/* The built-in HTTP helper module (http.js). */
#define JB_HTTP_MODULE "componentize:http"
/* What messages call this library. */

/* An absent type (no result, no payload): kind WIT_TYPE_EMPTY, all bits set. */
#define JB_NONE(ty) (WIT_TYPE_KIND(ty) == WIT_TYPE_EMPTY)

/* ---- call contexts --------------------------------------------------- */

typedef struct jb_vec {
  void *p;
  size_t n, cap;
} jb_vec;

typedef struct jb_cx {
  jb_vec stack;    /* JSValue: the value stack of this call */
  jb_vec cstrings; /* const char *: from JS_ToCStringLen, lent to the ABI */
  jb_vec held;     /* JSValue: typed arrays whose bytes were lent */
  jb_vec deferred; /* void *: buffers freed when the call ends */
} jb_cx;

/* ---- per-export information ------------------------------------------ */

enum jb_export_kind { JB_FUNC, JB_CTOR, JB_METHOD, JB_STATIC, JB_INIT };

typedef struct jb_export {
  enum jb_export_kind kind;
  const char *iface;  /* interface key as in the world, NULL at world level */
  char *iface_short;  /* lowerCamelCase short name of the interface */
  char *iface_unversioned; /* "ns:pkg/iface" */
  char *res;          /* UpperCamelCase class name (ctor/method/static) */
  char *fn;           /* lowerCamelCase function name */
  char *display;      /* WIT name for messages: "iface#name" or "name" */
  char *js_display;   /* JS name for messages: "api.Counter.prototype.add" */
} jb_export;

/* ---- global state ---------------------------------------------------- */

typedef struct jb_state {
  const wit_t *wit;
  JSRuntime *rt;
  JSContext *ctx;
  JSValue ns;             /* the script module's namespace (after init) */
  bool loaded;            /* the init export ran the script successfully */
  bool zero_freed;        /* the allocator zeroes what it frees (until init ends) */
  bool reseed_pending;    /* Math.random reseeds on its next use */
  uint64_t random_state[2];
  jb_export *exports;     /* one per wit->export_funcs */
  /* Names: lowerCamelCase atoms of record fields and flags, per type. */
  JSAtom **record_atoms;
  JSAtom **flag_atoms;
  JSAtom atom_tag, atom_val, atom_payload, atom_handles, atom_dispose;
  /* Per option type: tagged ({tag, val}) because its payload is an option. */
  bool *option_tagged;
  /* Imported resources: class id and prototype, per resource (0 if exported). */
  JSClassID *res_class;
  JSValue *res_proto;
  JSValue *res_ctor;
  /* Exported resources: rep -> object (JS_UNDEFINED when free). */
  JSValue *reps;
  uint32_t nreps, capreps, free_rep;
  uint32_t reclaiming; /* rep whose handle we are dropping ourselves */
  /* Borrowed imported handles lent to the current export. */
  jb_vec lent;         /* JSValue: the objects, made dead at the end */
  JSValue component_error; /* the ComponentError class */
  jb_cx export_cx;
  bool in_export;
  char *module_dirs;   /* COMPONENTIZE_MODULE_PATH during init */
} jb_state;

static jb_state JB;

/* ---- shared helpers (binding.c) ----------------------------------------- */

static char *jb_camel(const char *s, bool upper);
static void jb_vec_push(jb_vec *v, const void *item, size_t size);
static char *jb_error_text(JSContext *ctx, JSValueConst err, bool with_stack);
static void jb_run_jobs(void);

/* ---- values (values.c) --------------------------------------------------- */

typedef struct jb_path {
  const struct jb_path *up;
  const char *field;  /* ".field" when non-NULL */
  int64_t index;      /* "[index]" otherwise */
  const char *label;  /* root only: "result", "argument #2", ... */
} jb_path;

static char JB_ERR[1024];
static bool jb_check(JSContext *ctx, JSValueConst v, wit_type_t ty, const jb_path *p);
static void jb_push(jb_cx *cx, JSValue v);
static JSValue jb_pop(jb_cx *cx);
static void jb_cx_release(jb_cx *cx);
static void jb_type_name(wit_type_t ty, char *buf, size_t len);
static void jb_describe(JSContext *ctx, JSValueConst v, char *buf, size_t len);

/* ---- resources (resources.c) ---------------------------------------------- */

static void jb_resources_init(JSContext *ctx);
static JSValue jb_new_imported(JSContext *ctx, size_t index, uint32_t handle, int state);
static cz_handle *jb_get_res(JSValueConst v, size_t index);
static void jb_release_lent(JSContext *ctx);
static uint32_t jb_rep_for(JSContext *ctx, JSValueConst obj);
static JSValue jb_take_rep(JSContext *ctx, uint32_t rep, bool drop);

/* ---- imports (imports.c) --------------------------------------------------- */

static void jb_imports_init(JSContext *ctx);
static JSModuleDef *jb_import_module(JSContext *ctx, const char *name);
static bool jb_import_module_exists(const char *name);

/* ---- componentize:http (http.c) --------------------------------------------- */

static JSModuleDef *jb_http_module(JSContext *ctx);

/* ---- the JS environment (globals.c) ---------------------------------------- */

static void jb_globals_init(JSContext *ctx);

#endif
