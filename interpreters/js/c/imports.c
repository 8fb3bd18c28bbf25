/*
 * Imports: every imported interface is an ES module the script imports by
 * its WIT name, with jco's names:
 *
 *   import { getEnvironment } from "wasi:cli/environment@0.2.12";
 *   import { getEnvironment } from "wasi:cli/environment";  (one version imported)
 *   import { hostLog } from "$root";                         (world-level functions)
 *
 * A module exports its functions (lowerCamelCase) and a class per resource
 * (UpperCamelCase): `new Fields()` calls [constructor]fields, methods are
 * on the prototype, statics on the class.
 *
 * Calling an import checks the arguments against the WIT types first (a
 * TypeError names the argument), pushes them, calls the bindings, and pops
 * the result. A `result` is unwrapped: `ok` is returned, `err` throws a
 * ComponentError whose `payload` is the error value.
 */
#include "binding.h"

typedef struct jb_module {
  const char *name;        /* interface name, or JB_ROOT_MODULE */
  char *unversioned;       /* "ns:pkg/iface", NULL when ambiguous or at root */
  jb_vec names;            /* char *: export names */
  jb_vec values;           /* JSValue: export values */
} jb_module;

static jb_vec JB_MODULES; /* jb_module */

static jb_module *jb_module_for(const char *iface) {
  const char *name = iface ? iface : JB_ROOT_MODULE;
  jb_module *ms = JB_MODULES.p;
  for (size_t k = 0; k < JB_MODULES.n; k++)
    if (strcmp(ms[k].name, name) == 0) return &ms[k];
  jb_module m = {.name = name};
  jb_vec_push(&JB_MODULES, &m, sizeof m);
  return &((jb_module *)JB_MODULES.p)[JB_MODULES.n - 1];
}

static void jb_module_add(jb_module *m, char *name, JSValue value) {
  jb_vec_push(&m->names, &name, sizeof name);
  jb_vec_push(&m->values, &value, sizeof value);
}

static size_t jb_find_resource(const char *iface, const char *name) {
  const wit_t *w = JB.wit;
  for (size_t i = 0; i < w->num_resources; i++) {
    const wit_resource_t *r = &w->resources[i];
    bool same_iface = (!iface && !r->interface) || (iface && r->interface && strcmp(iface, r->interface) == 0);
    if (same_iface && strcmp(r->name, name) == 0 && !cz_is_exported_resource(JB.wit, i)) return i;
  }
  cz_die("import of unknown resource %s in %s", name, iface ? iface : "the world");
}

/* The result of an import call, from its result value: `ok` is returned,
 * `err` is thrown as a ComponentError. */
static JSValue jb_unwrap_result(JSContext *ctx, JSValue v) {
  JSValue tag = JS_GetProperty(ctx, v, JB.atom_tag);
  const char *t = JS_ToCString(ctx, tag);
  bool err = t && strcmp(t, "err") == 0;
  if (t) JS_FreeCString(ctx, t);
  JS_FreeValue(ctx, tag);
  JSValue val = JS_GetProperty(ctx, v, JB.atom_val);
  JS_FreeValue(ctx, v);
  if (!err) return val;
  JSValue ce = JS_CallConstructor(ctx, JB.component_error, 1, (JSValueConst *)&val);
  JS_FreeValue(ctx, val);
  if (JS_IsException(ce)) return ce;
  return JS_Throw(ctx, ce);
}

/* An import function: magic is its index in wit->import_funcs. A method
 * takes `this` as its first WIT parameter. */
static JSValue jb_call_import(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv, int magic) {
  const wit_import_func_t *f = &JB.wit->import_funcs[magic];
  bool method = strncmp(f->name, "[method]", 8) == 0;
  bool ctor = strncmp(f->name, "[constructor]", 13) == 0;
  size_t given = (size_t)argc + (method ? 1 : 0);
  char display[300];
  snprintf(display, sizeof display, "%s%s%s", f->interface ? f->interface : "", f->interface ? "#" : "", f->name);
  if (given > f->nparams)
    return JS_ThrowTypeError(ctx, "too many arguments to '%s' (expected %zu, got %zu)", display,
                             f->nparams - (method ? 1 : 0), (size_t)argc);
  JSValue args[f->nparams + 1];
  for (size_t k = 0; k < f->nparams; k++) {
    if (method && k == 0) args[k] = this_val;
    else {
      size_t a = k - (method ? 1 : 0);
      args[k] = a < (size_t)argc ? argv[a] : JS_UNDEFINED;
    }
  }
  for (size_t k = 0; k < f->nparams; k++) {
    char label[32];
    if (method && k == 0) snprintf(label, sizeof label, "this");
    else snprintf(label, sizeof label, "argument #%zu", k + (method ? 0 : 1));
    jb_path p = {.label = label};
    if (!jb_check(ctx, args[k], f->params[k], &p))
      return JS_ThrowTypeError(ctx, "bad %s to '%s' (%s)", label, display, JB_ERR);
  }
  (void)ctor;
  jb_cx cx = {0};
  /* First argument on top. */
  for (size_t k = f->nparams; k-- > 0;) jb_push(&cx, JS_DupValue(ctx, args[k]));
  f->impl(&cx);
  JSValue ret = JS_UNDEFINED;
  if (!JB_NONE(f->result)) ret = jb_pop(&cx);
  jb_cx_release(&cx);
  free(cx.stack.p), free(cx.cstrings.p), free(cx.held.p), free(cx.deferred.p);
  if (!JB_NONE(f->result) && WIT_TYPE_KIND(cz_resolve(JB.wit, f->result)) == WIT_TYPE_RESULT)
    return jb_unwrap_result(ctx, ret);
  return ret;
}

static void jb_imports_init(JSContext *ctx) {
  const wit_t *w = JB.wit;
  /* Resource classes first, so a module lists every imported resource. */
  for (size_t i = 0; i < w->num_resources; i++) {
    if (cz_is_exported_resource(JB.wit, i)) continue;
    jb_module *m = jb_module_for(w->resources[i].interface);
    (void)m;
  }
  for (size_t i = 0; i < w->num_import_funcs; i++) {
    const wit_import_func_t *f = &w->import_funcs[i];
    jb_module *m = jb_module_for(f->interface);
    const char *name = f->name;
    if (strncmp(name, "[constructor]", 13) == 0) {
      size_t r = jb_find_resource(f->interface, name + 13);
      char *cname = jb_camel(w->resources[r].name, true);
      JSValue ctor = JS_NewCFunctionMagic(ctx, jb_call_import, cname, (int)f->nparams,
                                          JS_CFUNC_constructor_or_func_magic, (int)i);
      free(cname);
      JS_SetConstructor(ctx, ctor, JB.res_proto[r]);
      JS_FreeValue(ctx, JB.res_ctor[r]);
      JB.res_ctor[r] = ctor;
    } else if (strncmp(name, "[method]", 8) == 0 || strncmp(name, "[static]", 8) == 0) {
      bool method = name[1] == 'm';
      const char *rest = name + 8;
      const char *dot = strchr(rest, '.');
      if (!dot) cz_die("malformed import name %s", name);
      char res[256];
      snprintf(res, sizeof res, "%.*s", (int)(dot - rest), rest);
      size_t r = jb_find_resource(f->interface, res);
      char *fn = jb_camel(dot + 1, false);
      JSValue func = JS_NewCFunctionMagic(ctx, jb_call_import, fn, (int)f->nparams - (method ? 1 : 0),
                                          JS_CFUNC_generic_magic, (int)i);
      JSValue holder = method ? JB.res_proto[r] : JB.res_ctor[r];
      /* Statics are set after the constructor is final (below). */
      if (method) JS_DefinePropertyValueStr(ctx, holder, fn, func, JS_PROP_CONFIGURABLE | JS_PROP_WRITABLE);
      else JS_FreeValue(ctx, func);
      free(fn);
    } else {
      char *fn = jb_camel(name, false);
      jb_module_add(m, fn, JS_NewCFunctionMagic(ctx, jb_call_import, fn, (int)f->nparams, JS_CFUNC_generic_magic, (int)i));
    }
  }
  /* Statics, now that each class's constructor is the final one. */
  for (size_t i = 0; i < w->num_import_funcs; i++) {
    const wit_import_func_t *f = &w->import_funcs[i];
    if (strncmp(f->name, "[static]", 8) != 0) continue;
    const char *rest = f->name + 8;
    const char *dot = strchr(rest, '.');
    char res[256];
    snprintf(res, sizeof res, "%.*s", (int)(dot - rest), rest);
    size_t r = jb_find_resource(f->interface, res);
    char *fn = jb_camel(dot + 1, false);
    JS_DefinePropertyValueStr(ctx, JB.res_ctor[r], fn,
                              JS_NewCFunctionMagic(ctx, jb_call_import, fn, (int)f->nparams, JS_CFUNC_generic_magic, (int)i),
                              JS_PROP_CONFIGURABLE | JS_PROP_WRITABLE);
    free(fn);
  }
  for (size_t i = 0; i < w->num_resources; i++) {
    if (cz_is_exported_resource(JB.wit, i)) continue;
    jb_module_add(jb_module_for(w->resources[i].interface), jb_camel(w->resources[i].name, true),
                  JS_DupValue(ctx, JB.res_ctor[i]));
  }
  /* Names without the version, where only one version is imported. */
  jb_module *ms = JB_MODULES.p;
  for (size_t k = 0; k < JB_MODULES.n; k++) {
    if (strcmp(ms[k].name, JB_ROOT_MODULE) == 0 || !strchr(ms[k].name, '@')) continue;
    size_t n = strcspn(ms[k].name, "@");
    bool unique = true;
    for (size_t j = 0; j < JB_MODULES.n && unique; j++)
      unique = j == k || strncmp(ms[j].name, ms[k].name, n) != 0 || (ms[j].name[n] != '@' && ms[j].name[n] != 0);
    if (!unique) continue;
    ms[k].unversioned = cz_xmalloc(n + 1);
    memcpy(ms[k].unversioned, ms[k].name, n);
    ms[k].unversioned[n] = 0;
  }
}

static jb_module *jb_module_named(const char *name) {
  jb_module *ms = JB_MODULES.p;
  for (size_t k = 0; k < JB_MODULES.n; k++)
    if (strcmp(ms[k].name, name) == 0 || (ms[k].unversioned && strcmp(ms[k].unversioned, name) == 0))
      return &ms[k];
  return NULL;
}

static int jb_module_init(JSContext *ctx, JSModuleDef *def) {
  JSAtom a = JS_GetModuleName(ctx, def);
  const char *name = JS_AtomToCString(ctx, a);
  JS_FreeAtom(ctx, a);
  jb_module *m = name ? jb_module_named(name) : NULL;
  if (name) JS_FreeCString(ctx, name);
  if (!m) return -1;
  char **names = m->names.p;
  JSValue *values = m->values.p;
  for (size_t k = 0; k < m->names.n; k++)
    if (JS_SetModuleExport(ctx, def, names[k], JS_DupValue(ctx, values[k])) < 0) return -1;
  return 0;
}

/* Whether the world imports an interface that `name` names. */
static bool jb_import_module_exists(const char *name) {
  return jb_module_named(name) != NULL;
}

/* The module of the imported interface `name`, or NULL if there is none. */
static JSModuleDef *jb_import_module(JSContext *ctx, const char *name) {
  jb_module *m = jb_module_named(name);
  if (!m) return NULL;
  JSModuleDef *def = JS_NewCModule(ctx, name, jb_module_init);
  if (!def) return NULL;
  char **names = m->names.p;
  for (size_t k = 0; k < m->names.n; k++)
    if (JS_AddModuleExport(ctx, def, names[k]) < 0) return NULL;
  return def;
}
