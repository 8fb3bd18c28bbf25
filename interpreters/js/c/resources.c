/*
 * Resources.
 *
 * Imported resources are objects of a JS class per resource, made by this
 * file: the class's constructor calls the import's [constructor], its
 * prototype holds the methods (imports.c adds them) and
 * [Symbol.dispose](), which drops an owned handle. The garbage collector
 * drops handles that are no longer referenced.
 *
 * Exported resources are the script's own objects. Each own<R> handed out
 * gets a rep: an index into JB.reps, which keeps the object alive while a
 * handle to it exists. When the last handle of an object is dropped, the
 * object's [Symbol.dispose]() is called, if it has one.
 */
#include "binding.h"

static void jb_res_finalizer(JSRuntime *rt, JSValueConst val) {
  (void)rt;
  cz_handle *r = JS_GetOpaque(val, JS_GetClassID(val));
  if (!r) return;
  if (r->state == CZ_OWNED) JB.wit->resources[r->index].drop(r->handle);
  free(r);
}

static cz_handle *jb_get_res(JSValueConst v, size_t index) {
  if (!JS_IsObject(v) || !JB.res_class[index]) return NULL;
  return JS_GetOpaque(v, JB.res_class[index]);
}

static JSValue jb_new_imported(JSContext *ctx, size_t index, uint32_t handle, int state) {
  JSValue obj = JS_NewObjectProtoClass(ctx, JB.res_proto[index], JB.res_class[index]);
  if (JS_IsException(obj)) cz_die("out of memory (a resource object)");
  cz_handle *r = cz_xmalloc(sizeof *r);
  r->handle = handle;
  r->index = (uint32_t)index;
  r->state = state;
  JS_SetOpaque(obj, r);
  return obj;
}

/* obj[Symbol.dispose](): drops an owned handle; a borrowed one is released
 * when the export returns; a second call does nothing. */
static JSValue jb_res_dispose(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv, int magic) {
  (void)argc, (void)argv;
  cz_handle *r = jb_get_res(this_val, (size_t)magic);
  if (!r) return JS_ThrowTypeError(ctx, "%s: not a resource object", JB.wit->resources[magic].name);
  if (r->state == CZ_OWNED) {
    r->state = CZ_DEAD;
    JB.wit->resources[r->index].drop(r->handle);
  }
  return JS_UNDEFINED;
}

/* The constructor of an imported resource without [constructor]. */
static JSValue jb_res_no_ctor(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv, int magic) {
  (void)this_val, (void)argc, (void)argv;
  return JS_ThrowTypeError(ctx, "resource %s has no constructor: its objects come from functions of %s",
                           JB.wit->resources[magic].name,
                           JB.wit->resources[magic].interface ? JB.wit->resources[magic].interface : "the world");
}

static void jb_resources_init(JSContext *ctx) {
  const wit_t *w = JB.wit;
  size_t n = w->num_resources;
  JB.res_class = cz_xmalloc((n + 1) * sizeof(JSClassID));
  JB.res_proto = cz_xmalloc((n + 1) * sizeof(JSValue));
  JB.res_ctor = cz_xmalloc((n + 1) * sizeof(JSValue));
  JSValue global = JS_GetGlobalObject(ctx);
  JSValue symbol = JS_GetPropertyStr(ctx, global, "Symbol");
  JSValue dispose = JS_GetPropertyStr(ctx, symbol, "dispose");
  JS_FreeValue(ctx, symbol);
  JS_FreeValue(ctx, global);
  JB.atom_dispose = JS_ValueToAtom(ctx, dispose);
  JS_FreeValue(ctx, dispose);
  for (size_t i = 0; i < n; i++) {
    JB.res_class[i] = 0;
    JB.res_proto[i] = JS_UNDEFINED;
    JB.res_ctor[i] = JS_UNDEFINED;
    if (cz_is_exported_resource(JB.wit, i)) continue;
    char *cname = jb_camel(w->resources[i].name, true);
    JSClassDef def = {.class_name = cname, .finalizer = jb_res_finalizer};
    JS_NewClassID(JB.rt, &JB.res_class[i]);
    if (JS_NewClass(JB.rt, JB.res_class[i], &def) < 0) cz_die("cannot register the class of resource %s", cname);
    JSValue proto = JS_NewObject(ctx);
    JS_DefinePropertyValue(ctx, proto, JB.atom_dispose,
                           JS_NewCFunctionMagic(ctx, jb_res_dispose, "[Symbol.dispose]", 0, JS_CFUNC_generic_magic, (int)i),
                           JS_PROP_CONFIGURABLE | JS_PROP_WRITABLE);
    JS_SetClassProto(ctx, JB.res_class[i], JS_DupValue(ctx, proto));
    JB.res_proto[i] = proto;
    /* imports.c replaces this with the [constructor] import if there is one. */
    JSValue ctor = JS_NewCFunctionMagic(ctx, jb_res_no_ctor, cname, 0, JS_CFUNC_constructor_or_func_magic, (int)i);
    JS_SetConstructor(ctx, ctor, proto);
    JB.res_ctor[i] = ctor;
    free(cname); /* QuickJS keeps its own copies of the names */
  }
}

/* Borrowed handles of imported resources that an export received: the
 * call is over, so they are released and their objects die. */
static void jb_release_lent(JSContext *ctx) {
  JSValue *objs = JB.lent.p;
  for (size_t k = 0; k < JB.lent.n; k++) {
    cz_handle *r = JS_GetOpaque(objs[k], JS_GetClassID(objs[k]));
    if (r && r->state == CZ_BORROWED) {
      r->state = CZ_DEAD;
      JB.wit->resources[r->index].drop(r->handle);
    }
    JS_FreeValue(ctx, objs[k]);
  }
  JB.lent.n = 0;
}

/* ---- exported resources ------------------------------------------------ */

/* A new rep (index into JB.reps, from 1) that keeps `obj` alive. */
static uint32_t jb_rep_for(JSContext *ctx, JSValueConst obj) {
  uint32_t rep;
  if (JB.free_rep) {
    rep = JB.free_rep;
    JB.free_rep = (uint32_t)JS_VALUE_GET_INT(JB.reps[rep]);
  } else {
    if (JB.nreps + 1 >= JB.capreps) {
      uint32_t cap = JB.capreps ? JB.capreps * 2 : 64;
      JSValue *p = realloc(JB.reps, cap * sizeof(JSValue));
      if (!p) cz_die("out of memory (resource table)");
      JB.reps = p;
      JB.capreps = cap;
    }
    rep = ++JB.nreps; /* rep 0 is never used: handles are non-zero */
  }
  JB.reps[rep] = JS_DupValue(ctx, obj);
  return rep;
}

/* The object of `rep` (a new reference). */
static JSValue jb_take_rep(JSContext *ctx, uint32_t rep, bool drop) {
  (void)drop;
  if (rep == 0 || rep > JB.nreps || !JS_IsObject(JB.reps[rep])) cz_die("internal error: unknown resource rep %u", rep);
  return JS_DupValue(ctx, JB.reps[rep]);
}

void wit_dylib_resource_dtor(size_t ty, size_t rep_) {
  JSContext *ctx = JB.ctx;
  uint32_t rep = (uint32_t)rep_;
  if (rep == 0 || rep > JB.nreps || !JS_IsObject(JB.reps[rep])) cz_die("internal error: dtor of unknown rep %u", rep);
  JSValue obj = JB.reps[rep];
  JB.reps[rep] = JS_NewInt32(ctx, (int32_t)JB.free_rep);
  JB.free_rep = rep;
  bool reclaimed = JB.reclaiming == rep;
  /* Another handle to the same object keeps it alive. */
  bool shared = false;
  for (uint32_t k = 1; k <= JB.nreps && !shared; k++)
    shared = JS_IsObject(JB.reps[k]) && JS_VALUE_GET_PTR(JB.reps[k]) == JS_VALUE_GET_PTR(obj);
  if (!reclaimed && !shared) {
    JSValue dispose = JS_GetProperty(ctx, obj, JB.atom_dispose);
    if (JS_IsFunction(ctx, dispose)) {
      JSValue r = JS_Call(ctx, dispose, obj, 0, NULL);
      if (JS_IsException(r)) {
        JSValue e = JS_GetException(ctx);
        char *t = jb_error_text(ctx, e, true);
        fprintf(stderr, "%s: [Symbol.dispose] of a %s threw: %s\n", CZ_LIBRARY_NAME, JB.wit->resources[ty].name, t);
        fflush(stderr);
        free(t);
        JS_FreeValue(ctx, e);
      }
      JS_FreeValue(ctx, r);
    } else if (JS_IsException(dispose)) {
      JS_FreeValue(ctx, JS_GetException(ctx));
    }
    JS_FreeValue(ctx, dispose);
  }
  JS_FreeValue(ctx, obj);
}
