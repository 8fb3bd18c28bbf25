/*
 * The JavaScript binding: lifecycle, the init export, export lookup and
 * dispatch, and the module loader.
 *
 * See ../README.md (the JS guide) for the mapping between WIT and JS. This
 * file owns the QuickJS runtime, evaluates the script as an ES module when
 * the init export is called, checks that the module exports what the world
 * needs, and calls those functions for export calls.
 */
#include "binding.h"

#include <malloc.h> /* malloc_usable_size */
#include <sys/stat.h>

/* ====================================================================== */
/* Small helpers                                                           */
/* ====================================================================== */

/* "foo-bar-baz" -> "fooBarBaz" (upper: "FooBarBaz"), as jco spells names.
 * An all-caps word stays as it is after its first letter ("get-URL" ->
 * "getURL"). */
static char *jb_camel(const char *s, bool upper) {
  char *p = cz_xmalloc(strlen(s) + 1), *q = p;
  bool up = upper;
  for (; *s; s++) {
    if (*s == '-') {
      up = true;
      continue;
    }
    char c = *s;
    if (up && c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
    else if (q == p && !upper && c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    *q++ = c;
    up = false;
  }
  *q = 0;
  return p;
}

static void jb_vec_push(jb_vec *v, const void *item, size_t size) {
  if (v->n == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 16;
    void *p = realloc(v->p, cap * size);
    if (!p) cz_die("out of memory");
    v->p = p;
    v->cap = cap;
  }
  memcpy((char *)v->p + v->n * size, item, size);
  v->n++;
}

void wit_dylib_dealloc_bytes(void *vcx, void *ptr, size_t size, size_t align, bool defer) {
  (void)align;
  if (size == 0 || ptr == NULL) return;
  if (defer && vcx) jb_vec_push(&((jb_cx *)vcx)->deferred, &ptr, sizeof ptr);
  else free(ptr);
}

/* The text of an exception: "Name: message" and, with_stack, the JS stack.
 * A SyntaxError starts with "file:line:column: ". Never throws. */
static char *jb_error_text(JSContext *ctx, JSValueConst err, bool with_stack) {
  char *out;
  JSValue s = JS_ToString(ctx, err);
  const char *msg = JS_IsException(s) ? NULL : JS_ToCString(ctx, s);
  JS_FreeValue(ctx, s);
  if (!msg) {
    JSValue e = JS_GetException(ctx);
    JS_FreeValue(ctx, e);
  }
  const char *text = msg ? msg : "(the error cannot be converted to a string)";
  const char *stack = NULL;
  char *where = NULL;
  if (JS_IsObject(err)) {
    JSValue name = JS_GetPropertyStr(ctx, err, "name");
    const char *n = JS_IsString(name) ? JS_ToCString(ctx, name) : NULL;
    if (n && strcmp(n, "SyntaxError") == 0) {
      JSValue file = JS_GetPropertyStr(ctx, err, "fileName");
      JSValue line = JS_GetPropertyStr(ctx, err, "lineNumber");
      JSValue col = JS_GetPropertyStr(ctx, err, "columnNumber");
      const char *f = JS_IsString(file) ? JS_ToCString(ctx, file) : NULL;
      int32_t l = 0, c = 0;
      if (f && JS_IsNumber(line) && JS_ToInt32(ctx, &l, line) == 0) {
        if (JS_IsNumber(col)) JS_ToInt32(ctx, &c, col);
        where = c > 0 ? cz_format("%s:%d:%d: ", f, l, c) : cz_format("%s:%d: ", f, l);
      }
      if (f) JS_FreeCString(ctx, f);
      JS_FreeValue(ctx, file);
      JS_FreeValue(ctx, line);
      JS_FreeValue(ctx, col);
      /* QuickJS-NG puts the position only in the stack: "    at app.js:2:15". */
      JSValue st = where ? JS_UNDEFINED : JS_GetPropertyStr(ctx, err, "stack");
      const char *sv = JS_IsString(st) ? JS_ToCString(ctx, st) : NULL;
      const char *at = sv ? strstr(sv, "at ") : NULL;
      if (at) {
        at += 3;
        size_t n = strcspn(at, "\n");
        while (n > 0 && at[n - 1] == ' ') n--;
        where = cz_format("%.*s: ", (int)n, at);
      }
      if (sv) JS_FreeCString(ctx, sv);
      JS_FreeValue(ctx, st);
    }
    if (n) JS_FreeCString(ctx, n);
    JS_FreeValue(ctx, name);
    if (with_stack && !where) {
      JSValue st = JS_GetPropertyStr(ctx, err, "stack");
      if (JS_IsString(st)) stack = JS_ToCString(ctx, st);
      JS_FreeValue(ctx, st);
    }
  }
  size_t sl = stack ? strlen(stack) : 0;
  while (sl > 0 && (stack[sl - 1] == '\n' || stack[sl - 1] == ' ')) sl--;
  out = cz_format("%s%s%s%.*s", where ? where : "", text, sl ? "\n" : "", (int)sl, stack ? stack : "");
  free(where);
  if (stack) JS_FreeCString(ctx, stack);
  if (msg) JS_FreeCString(ctx, msg);
  return out;
}

/* Runs queued promise jobs until none is left (the end of a JS task). An
 * exception in a job that nobody handles is printed, as a host would. */
static void jb_run_jobs(void) {
  JSContext *ctx;
  for (;;) {
    int r = JS_ExecutePendingJob(JB.rt, &ctx);
    if (r == 0) break;
    if (r < 0) {
      JSValue e = JS_GetException(ctx);
      char *t = jb_error_text(ctx, e, true);
      fprintf(stderr, "Uncaught (in promise) %s\n", t);
      fflush(stderr);
      free(t);
      JS_FreeValue(ctx, e);
    }
  }
}

/* ====================================================================== */
/* The allocator                                                           */
/* ====================================================================== */

/* QuickJS's allocator: zeroing what it frees until init ends (cz_zero),
 * so the parser's and compiler's garbage stays out of the snapshot. */

static void *jb_js_calloc(void *opaque, size_t count, size_t size) {
  (void)opaque;
  return calloc(count, size);
}

static void *jb_js_malloc(void *opaque, size_t size) {
  (void)opaque;
  return malloc(size);
}

static void jb_js_free(void *opaque, void *ptr) {
  (void)opaque;
  if (ptr && JB.zero_freed) cz_zero(ptr, 0, malloc_usable_size(ptr));
  free(ptr);
}

static void *jb_js_realloc(void *opaque, void *ptr, size_t size) {
  (void)opaque;
  if (!JB.zero_freed || !ptr) return realloc(ptr, size);
  if (size == 0) {
    jb_js_free(opaque, ptr);
    return NULL;
  }
  return cz_zeroing_realloc(ptr, malloc_usable_size(ptr), size);
}

static size_t jb_js_usable_size(const void *ptr) {
  return malloc_usable_size((void *)ptr);
}

static const JSMallocFunctions JB_MALLOC = {
    jb_js_calloc, jb_js_malloc, jb_js_free, jb_js_realloc, jb_js_usable_size,
};

/* ====================================================================== */
/* Export naming                                                           */
/* ====================================================================== */

/* "ns:pkg/my-api@1.0" -> "myApi". */
static char *jb_iface_short(const char *key) {
  const char *s = strrchr(key, '/');
  s = s ? s + 1 : key;
  size_t n = strcspn(s, "@");
  char *tmp = cz_xmalloc(n + 1);
  memcpy(tmp, s, n);
  tmp[n] = 0;
  char *p = jb_camel(tmp, false);
  free(tmp);
  return p;
}

static void jb_exports_init(void) {
  const wit_t *w = JB.wit;
  size_t n = w->num_export_funcs;
  JB.exports = cz_xmalloc((n ? n : 1) * sizeof(jb_export));
  memset(JB.exports, 0, (n ? n : 1) * sizeof(jb_export));
  for (size_t i = 0; i < n; i++) {
    const wit_export_func_t *f = &w->export_funcs[i];
    jb_export *e = &JB.exports[i];
    e->iface = f->interface;
    e->display = f->interface ? cz_format("%s#%s", f->interface, f->name) : cz_strdup(f->name);
    if (f->interface && strcmp(f->interface, JB_INIT_INTERFACE) == 0 &&
        strcmp(f->name, JB_INIT_FUNCTION) == 0) {
      e->kind = JB_INIT;
      continue;
    }
    if (f->interface) {
      e->iface_short = jb_iface_short(f->interface);
      size_t vn = strcspn(f->interface, "@");
      e->iface_unversioned = cz_xmalloc(vn + 1);
      memcpy(e->iface_unversioned, f->interface, vn);
      e->iface_unversioned[vn] = 0;
    }
    const char *name = f->name;
    if (cz_starts(name, "[constructor]")) {
      e->kind = JB_CTOR;
      e->res = jb_camel(name + strlen("[constructor]"), true);
      e->fn = cz_strdup("constructor");
    } else if (cz_starts(name, "[method]") || cz_starts(name, "[static]")) {
      bool method = cz_starts(name, "[method]");
      const char *rest = name + strlen(method ? "[method]" : "[static]");
      const char *dot = strchr(rest, '.');
      if (!dot) cz_die("malformed export name %s", name);
      char *res = cz_xmalloc((size_t)(dot - rest) + 1);
      memcpy(res, rest, (size_t)(dot - rest));
      res[dot - rest] = 0;
      e->kind = method ? JB_METHOD : JB_STATIC;
      e->res = jb_camel(res, true);
      free(res);
      e->fn = jb_camel(dot + 1, false);
    } else {
      e->kind = JB_FUNC;
      e->fn = jb_camel(name, false);
    }
    const char *pre = e->iface_short ? e->iface_short : "";
    const char *dot = e->iface_short ? "." : "";
    switch (e->kind) {
      case JB_FUNC: e->js_display = cz_format("%s%s%s", pre, dot, e->fn); break;
      case JB_CTOR: e->js_display = cz_format("%s%s%s", pre, dot, e->res); break;
      case JB_STATIC: e->js_display = cz_format("%s%s%s.%s", pre, dot, e->res, e->fn); break;
      case JB_METHOD:
        e->js_display = cz_format("%s%s%s.prototype.%s", pre, dot, e->res, e->fn);
        break;
      case JB_INIT: break;
    }
  }
}

/* The object of export `e`'s interface in the module namespace: the export
 * named after the full interface name, then the name without its version,
 * then the lowerCamelCase short name. Returns JS_UNDEFINED (and describes
 * what is missing in buf) when there is none. */
static JSValue jb_get_iface(JSContext *ctx, const jb_export *e, char *buf, size_t len) {
  const char *names[3] = {e->iface, e->iface_unversioned, e->iface_short};
  for (int k = 0; k < 3; k++) {
    JSValue v = JS_GetPropertyStr(ctx, JB.ns, names[k]);
    if (JS_IsException(v)) {
      JS_FreeValue(ctx, JS_GetException(ctx));
      continue;
    }
    if (JS_IsObject(v)) return v;
    JS_FreeValue(ctx, v);
  }
  snprintf(buf, len, "object `%s` (for interface %s) is not exported", e->iface_short, e->iface);
  return JS_UNDEFINED;
}

/* The container of export `e`'s function: the namespace (world level), the
 * interface object, or the resource class. */
static JSValue jb_get_container(JSContext *ctx, const jb_export *e, char *buf, size_t len) {
  JSValue c = e->iface ? jb_get_iface(ctx, e, buf, len) : JS_DupValue(ctx, JB.ns);
  if (JS_IsUndefined(c) || !e->res) return c;
  JSValue cls = JS_GetPropertyStr(ctx, c, e->res);
  JS_FreeValue(ctx, c);
  if (JS_IsException(cls)) JS_FreeValue(ctx, JS_GetException(ctx));
  if (!JS_IsConstructor(ctx, cls)) {
    /* The resource's WIT name, from "iface#[method]counter.get". */
    const char *wit_res = strchr(e->display, ']');
    wit_res = wit_res ? wit_res + 1 : e->res;
    snprintf(buf, len, "class `%s%s%s` (for resource %.*s%s%s) is %s", e->iface_short ? e->iface_short : "",
             e->iface_short ? "." : "", e->res, (int)strcspn(wit_res, "."), wit_res, e->iface ? " of " : "",
             e->iface ? e->iface : "",
             JS_IsUndefined(cls) ? "not exported" : "not a class");
    JS_FreeValue(ctx, cls);
    return JS_UNDEFINED;
  }
  return cls;
}

/* The function of export `which` (for methods: on the class's prototype;
 * for constructors: the class). JS_UNDEFINED with a description in buf if
 * it is missing. */
static JSValue jb_get_export_fn(JSContext *ctx, size_t which, char *buf, size_t len) {
  const jb_export *e = &JB.exports[which];
  JSValue c = jb_get_container(ctx, e, buf, len);
  if (JS_IsUndefined(c) || e->kind == JB_CTOR) return c;
  JSValue holder = c;
  if (e->kind == JB_METHOD) {
    holder = JS_GetPropertyStr(ctx, c, "prototype");
    JS_FreeValue(ctx, c);
  }
  JSValue f = JS_GetPropertyStr(ctx, holder, e->fn);
  JS_FreeValue(ctx, holder);
  if (JS_IsException(f)) JS_FreeValue(ctx, JS_GetException(ctx));
  if (!JS_IsFunction(ctx, f)) {
    snprintf(buf, len, "%s `%s` (for export %s) is %s", e->kind == JB_METHOD ? "method" : "function",
             e->js_display, e->display, JS_IsUndefined(f) ? "not defined" : "not a function");
    JS_FreeValue(ctx, f);
    return JS_UNDEFINED;
  }
  return f;
}

/* After the module ran: every export must have its function. Returns NULL,
 * or the message listing everything missing. */
static char *jb_check_exports(JSContext *ctx, const char *script) {
  char *list = cz_strdup("");
  size_t missing = 0;
  char buf[512];
  for (size_t i = 0; i < JB.wit->num_export_funcs; i++) {
    if (JB.exports[i].kind == JB_INIT) continue;
    JSValue f = jb_get_export_fn(ctx, i, buf, sizeof buf);
    if (!JS_IsUndefined(f)) {
      JS_FreeValue(ctx, f);
      continue;
    }
    /* A missing object or class is reported once, not once per function. */
    const char *seen = strstr(list, buf);
    size_t bl = strlen(buf);
    if (seen && (seen[bl] == '\n' || seen[bl] == 0)) continue;
    char *next = cz_format("%s\n  - %s", list, buf);
    free(list);
    list = next;
    missing++;
  }
  if (!missing) {
    free(list);
    return NULL;
  }
  char *msg = cz_format("%s: the module does not export what the world's exports need:%s", script, list);
  free(list);
  return msg;
}

/* ====================================================================== */
/* Modules                                                                 */
/* ====================================================================== */

/* Module names are paths relative to the module folders ("app.js",
 * "lib/util.js"), imported interfaces ("wasi:cli/environment@0.2.12") and
 * "$root". Relative specifiers resolve against the importing module's
 * folder; "." and ".." segments are folded, and ".." cannot leave the
 * module folders. */
static char *jb_normalize(JSContext *ctx, const char *base, const char *name, void *opaque) {
  (void)opaque;
  bool relative = cz_starts(name, "./") || cz_starts(name, "../");
  size_t blen = 0;
  if (relative) {
    const char *slash = strrchr(base, '/');
    blen = slash ? (size_t)(slash - base) + 1 : 0;
  }
  size_t n = blen + strlen(name);
  char *joined = cz_xmalloc(n + 1);
  memcpy(joined, base, blen);
  strcpy(joined + blen, name);
  if (!relative) {
    char *r = js_strdup(ctx, joined);
    free(joined);
    return r;
  }
  /* Fold the segments. */
  char *out = js_malloc(ctx, n + 1);
  if (!out) {
    free(joined);
    return NULL;
  }
  size_t o = 0;
  for (char *seg = joined; *seg;) {
    char *end = strchr(seg, '/');
    size_t sl = end ? (size_t)(end - seg) : strlen(seg);
    if (sl == 0 || (sl == 1 && seg[0] == '.')) {
    } else if (sl == 2 && seg[0] == '.' && seg[1] == '.') {
      if (o == 0) {
        JS_ThrowReferenceError(ctx, "cannot import '%s' from '%s': it is outside the module folders",
                               name, base);
        js_free(ctx, out);
        free(joined);
        return NULL;
      }
      o--;
      while (o > 0 && out[o - 1] != '/') o--;
    } else {
      memcpy(out + o, seg, sl);
      o += sl;
      if (end) out[o++] = '/';
    }
    seg += sl + (end ? 1 : 0);
  }
  if (o > 0 && out[o - 1] == '/') o--;
  out[o] = 0;
  free(joined);
  return out;
}

/* Reads `path` whole, NUL-terminated. NULL if it is not a readable file. */
static char *jb_read_file(const char *path, size_t *len) {
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = cz_xmalloc((size_t)st.st_size + 1);
  size_t n = fread(buf, 1, (size_t)st.st_size, f);
  fclose(f);
  buf[n] = 0;
  *len = n;
  return buf;
}

static JSModuleDef *jb_load_module(JSContext *ctx, const char *name, void *opaque) {
  (void)opaque;
  if (strcmp(name, JB_HTTP_MODULE) == 0) return jb_http_module(ctx);
  JSModuleDef *m = jb_import_module(ctx, name);
  if (m) return m;
  if (JS_HasException(ctx)) return NULL;
  if (strchr(name, ':') || strcmp(name, JB_ROOT_MODULE) == 0) {
    JS_ThrowReferenceError(ctx, "cannot import '%s': the world does not import that interface", name);
    return NULL;
  }
  if (!JB.module_dirs) {
    JS_ThrowReferenceError(ctx,
                           "module '%s' was not loaded at init: componentize reads modules only "
                           "while it builds the component, so import it statically from the script "
                           "(or from a module the script imports)",
                           name);
    return NULL;
  }
  /* The first module folder that has it; a bare name may omit ".js". */
  const char *suffixes[] = {"", ".js", ".mjs", "/index.js"};
  for (const char *p = JB.module_dirs; *p;) {
    const char *end = strchr(p, ':');
    size_t dl = end ? (size_t)(end - p) : strlen(p);
    for (size_t s = 0; s < sizeof suffixes / sizeof suffixes[0]; s++) {
      char *path = cz_format("%.*s/%s%s", (int)dl, p, name, suffixes[s]);
      size_t len;
      char *src = jb_read_file(path, &len);
      free(path);
      if (!src) continue;
      JSValue fn = JS_Eval(ctx, src, len, name, JS_EVAL_TYPE_MODULE | JS_EVAL_FLAG_COMPILE_ONLY);
      free(src);
      if (JS_IsException(fn)) return NULL;
      m = JS_VALUE_GET_PTR(fn);
      JS_FreeValue(ctx, fn);
      return m;
    }
    p += dl + (end ? 1 : 0);
  }
  JS_ThrowReferenceError(ctx, "cannot find module '%s' in the script's folder or the module path", name);
  return NULL;
}

/* ====================================================================== */
/* Lifecycle                                                               */
/* ====================================================================== */

static void jb_types_init(JSContext *ctx) {
  const wit_t *w = JB.wit;
  JB.record_atoms = cz_xmalloc((w->num_records + 1) * sizeof(JSAtom *));
  for (size_t i = 0; i < w->num_records; i++) {
    const wit_record_t *r = &w->records[i];
    JB.record_atoms[i] = cz_xmalloc((r->nfields + 1) * sizeof(JSAtom));
    for (size_t j = 0; j < r->nfields; j++) {
      char *c = jb_camel(r->fields[j].name, false);
      JB.record_atoms[i][j] = JS_NewAtom(ctx, c);
      free(c);
    }
  }
  JB.flag_atoms = cz_xmalloc((w->num_flags + 1) * sizeof(JSAtom *));
  for (size_t i = 0; i < w->num_flags; i++) {
    const wit_flags_t *f = &w->flags[i];
    JB.flag_atoms[i] = cz_xmalloc((f->nnames + 1) * sizeof(JSAtom));
    for (size_t j = 0; j < f->nnames; j++) {
      char *c = jb_camel(f->names[j], false);
      JB.flag_atoms[i][j] = JS_NewAtom(ctx, c);
      free(c);
    }
  }
  JB.option_tagged = cz_xmalloc(w->num_options + 1);
  for (size_t i = 0; i < w->num_options; i++)
    JB.option_tagged[i] = WIT_TYPE_KIND(cz_resolve(JB.wit, w->options[i].ty)) == WIT_TYPE_OPTION;
  JB.atom_tag = JS_NewAtom(ctx, "tag");
  JB.atom_val = JS_NewAtom(ctx, "val");
  JB.atom_payload = JS_NewAtom(ctx, "payload");
}

void wit_dylib_initialize(const wit_t *wit) {
  if (wit->version < WIT_CURRENT_VERSION)
    cz_die("bindings use interface version %u; this binding needs %d", wit->version, WIT_CURRENT_VERSION);
  cz_refuse_async(wit, "JavaScript");
  JB.wit = wit;
  JB.zero_freed = true;
  JB.rt = JS_NewRuntime2(&JB_MALLOC, NULL);
  if (!JB.rt) cz_die("cannot create the QuickJS runtime");
  /* QuickJS's own stack check reads the frame address, which in wasm does
   * not see the engine's native stack, where the interpreter's frames are:
   * deep recursion ends when that stack is exhausted, as a trap. (The
   * shadow stack cannot overflow into data either: the linker puts it first
   * in memory, so an overflow leaves the memory and traps.) */
  JS_SetMaxStackSize(JB.rt, 0);
  JB.ctx = JS_NewContext(JB.rt);
  if (!JB.ctx) cz_die("cannot create the QuickJS context");
  JB.ns = JS_UNDEFINED;
  JS_SetModuleLoaderFunc(JB.rt, jb_normalize, jb_load_module, NULL);
  jb_types_init(JB.ctx);
  jb_exports_init();
  jb_globals_init(JB.ctx);
  jb_resources_init(JB.ctx);
  jb_imports_init(JB.ctx);
}

/* ====================================================================== */
/* The init export                                                         */
/* ====================================================================== */

/* Evaluates the script; returns NULL or the error message. */
static char *jb_init_script(JSContext *ctx, const char *name, const char *src, size_t len) {
  const char *dirs = getenv("COMPONENTIZE_MODULE_PATH");
  JB.module_dirs = dirs && *dirs ? cz_strdup(dirs) : NULL;
  char *copy = cz_xmalloc(len + 1); /* JS_Eval wants a NUL after the source */
  memcpy(copy, src, len);
  copy[len] = 0;
  JSValue fn = JS_Eval(ctx, copy, len, name, JS_EVAL_TYPE_MODULE | JS_EVAL_FLAG_COMPILE_ONLY);
  free(copy);
  char *err = NULL;
  if (JS_IsException(fn)) {
    JSValue e = JS_GetException(ctx);
    err = jb_error_text(ctx, e, true);
    JS_FreeValue(ctx, e);
    /* Errors found after parsing (an undefined private field) carry no
     * position: name the file at least. */
    if (strncmp(err, name, strlen(name)) != 0) {
      char *named = cz_format("%s: %s", name, err);
      free(err);
      err = named;
    }
    return err;
  }
  JSModuleDef *m = JS_VALUE_GET_PTR(fn);
  JSValue promise = JS_EvalFunction(ctx, fn); /* takes fn */
  if (JS_IsException(promise)) {
    JSValue e = JS_GetException(ctx);
    err = jb_error_text(ctx, e, true);
    JS_FreeValue(ctx, e);
    return err;
  }
  /* Top-level await settles through the job queue. */
  jb_run_jobs();
  fflush(stdout);
  switch (JS_PromiseState(ctx, promise)) {
    case JS_PROMISE_REJECTED: {
      JSValue e = JS_PromiseResult(ctx, promise);
      err = jb_error_text(ctx, e, true);
      JS_FreeValue(ctx, e);
      break;
    }
    case JS_PROMISE_PENDING:
      err = cz_format("%s: the module's top-level await never settled (it waits for something "
                      "that cannot happen during init)",
                      name);
      break;
    default: break;
  }
  JS_FreeValue(ctx, promise);
  if (err) return err;
  JB.ns = JS_GetModuleNamespace(ctx, m);
  if (JS_IsException(JB.ns)) {
    JSValue e = JS_GetException(ctx);
    err = jb_error_text(ctx, e, false);
    JS_FreeValue(ctx, e);
    JB.ns = JS_UNDEFINED;
    return err;
  }
  return jb_check_exports(ctx, name);
}

/* The init export: pops (source, name) and pushes its result<_, string>. */
static void jb_run_init(jb_cx *cx) {
  JSContext *ctx = JB.ctx;
  /* The arguments were pushed in order: name, then source on top. */
  JSValue source = jb_pop(cx);
  JSValue name = jb_pop(cx);
  char *err;
  if (JB.loaded) {
    err = cz_strdup("the JavaScript module was already initialized");
  } else {
    const char *n = JS_ToCString(ctx, name);
    size_t len;
    uint8_t *bytes = JS_GetUint8Array(ctx, &len, source);
    err = jb_init_script(ctx, n ? n : "script.js", (const char *)bytes, bytes ? len : 0);
    if (n) JS_FreeCString(ctx, n);
  }
  JS_FreeValue(ctx, name);
  JS_FreeValue(ctx, source);
  JSValue result = JS_NewObject(ctx);
  if (err) {
    JS_SetProperty(ctx, result, JB.atom_tag, JS_NewString(ctx, "err"));
    JS_SetProperty(ctx, result, JB.atom_val, JS_NewString(ctx, err));
    free(err);
    if (!JS_IsUndefined(JB.ns)) {
      JS_FreeValue(ctx, JB.ns);
      JB.ns = JS_UNDEFINED;
    }
  } else {
    JB.loaded = true;
    free(JB.module_dirs);
    JB.module_dirs = NULL;
    JS_SetProperty(ctx, result, JB.atom_tag, JS_NewString(ctx, "ok"));
    /* The state may be snapshotted now: leave no garbage behind, stop
     * zeroing freed memory, and draw fresh randomness at runtime. */
    JS_RunGC(JB.rt);
    JB.zero_freed = false;
    JB.reseed_pending = true;
  }
  fflush(stdout);
  jb_push(cx, result);
}

/* ====================================================================== */
/* Exports                                                                 */
/* ====================================================================== */

void *wit_dylib_export_start(size_t which) {
  if (JB.in_export) cz_die("export %s called while another export runs", JB.exports[which].display);
  JB.in_export = true;
  return &JB.export_cx;
}

/* Reports an exception of export `which` as its `err` value when its
 * result type allows it (see the guide, Errors); otherwise prints it and
 * traps. Takes `err`; returns the result value to push. */
static JSValue jb_export_error(JSContext *ctx, size_t which, JSValue err) {
  const wit_export_func_t *f = &JB.wit->export_funcs[which];
  const jb_export *e = &JB.exports[which];
  wit_type_t rt = JB_NONE(f->result) ? f->result : cz_resolve(JB.wit, f->result);
  if (WIT_TYPE_KIND(rt) == WIT_TYPE_RESULT) {
    const wit_result_t *r = &JB.wit->results[WIT_TYPE_INDEX(rt)];
    wit_type_t et = JB_NONE(r->err) ? r->err : cz_resolve(JB.wit, r->err);
    /* A ComponentError carries the payload; any other value is the payload. */
    JSValue payload = JS_DupValue(ctx, err);
    if (JS_IsInstanceOf(ctx, err, JB.component_error) > 0) {
      JS_FreeValue(ctx, payload);
      payload = JS_GetProperty(ctx, err, JB.atom_payload);
    }
    JSValue out = JS_NewObject(ctx);
    JS_SetProperty(ctx, out, JB.atom_tag, JS_NewString(ctx, "err"));
    if (WIT_TYPE_KIND(et) == WIT_TYPE_STRING && !JS_IsString(payload)) {
      char *t = jb_error_text(ctx, payload, false);
      JS_SetProperty(ctx, out, JB.atom_val, JS_NewString(ctx, t));
      free(t);
      JS_FreeValue(ctx, payload);
      JS_FreeValue(ctx, err);
      return out;
    }
    jb_path p = {.label = "error"};
    if (!JB_NONE(et) && jb_check(ctx, payload, et, &p)) {
      JS_SetProperty(ctx, out, JB.atom_val, payload);
      JS_FreeValue(ctx, err);
      return out;
    }
    if (JB_NONE(et)) {
      char *t = jb_error_text(ctx, err, true);
      fprintf(stderr, "%s: error in export %s (JS `%s`): %s\n", CZ_LIBRARY_NAME, e->display, e->js_display, t);
      fflush(stderr);
      free(t);
      JS_FreeValue(ctx, payload);
      JS_FreeValue(ctx, err);
      return out;
    }
    JS_FreeValue(ctx, out);
    JS_FreeValue(ctx, payload);
    char *t = jb_error_text(ctx, err, true);
    cz_die("export %s (JS `%s`) threw a value that is not its error type (%s): %s\n%s", e->display,
           e->js_display, JB_ERR, t, "throw a value of the WIT error type, or a ComponentError carrying one");
  }
  char *t = jb_error_text(ctx, err, true);
  cz_die("error in export %s (JS `%s`): %s", e->display, e->js_display, t);
}

void wit_dylib_export_call(void *vcx, size_t which) {
  jb_cx *cx = vcx;
  JSContext *ctx = JB.ctx;
  const wit_export_func_t *f = &JB.wit->export_funcs[which];
  const jb_export *e = &JB.exports[which];
  if (e->kind == JB_INIT) {
    jb_run_init(cx);
    return;
  }
  if (!JB.loaded) cz_die("export %s called before the init export ran the script", e->display);
  /* Arguments: the first was pushed first. */
  size_t nargs = f->nparams;
  JSValue *args = cz_xmalloc((nargs + 1) * sizeof(JSValue));
  for (size_t i = nargs; i-- > 0;) args[i] = jb_pop(cx);
  char buf[512];
  JSValue fn = jb_get_export_fn(ctx, which, buf, sizeof buf);
  if (JS_IsUndefined(fn)) cz_die("%s", buf);
  JSValue ret;
  switch (e->kind) {
    case JB_CTOR: ret = JS_CallConstructor(ctx, fn, (int)nargs, args); break;
    case JB_METHOD: ret = JS_Call(ctx, fn, args[0], (int)nargs - 1, args + 1); break;
    default: ret = JS_Call(ctx, fn, JS_UNDEFINED, (int)nargs, args); break;
  }
  JS_FreeValue(ctx, fn);
  for (size_t i = 0; i < nargs; i++) JS_FreeValue(ctx, args[i]);
  free(args);
  jb_run_jobs();
  /* An async function in a sync world: its promise must have settled once
   * the jobs ran (it awaited nothing that needs the host). */
  if (!JS_IsException(ret) && JS_IsPromise(ret)) {
    JSValue p = ret;
    switch (JS_PromiseState(ctx, p)) {
      case JS_PROMISE_FULFILLED: ret = JS_PromiseResult(ctx, p); break;
      case JS_PROMISE_REJECTED: ret = JS_Throw(ctx, JS_PromiseResult(ctx, p)); break;
      default:
        cz_die("export %s (JS `%s`) returned a promise that did not settle: the export is "
               "synchronous in the world, so it cannot wait for the host",
               e->display, e->js_display);
    }
    JS_FreeValue(ctx, p);
  }
  fflush(stdout);
  jb_release_lent(ctx);
  if (JS_IsException(ret)) {
    JSValue err = JS_GetException(ctx);
    ret = jb_export_error(ctx, which, err);
    if (!JB_NONE(f->result)) jb_push(cx, ret);
    else JS_FreeValue(ctx, ret);
    return;
  }
  if (JB_NONE(f->result)) {
    JS_FreeValue(ctx, ret);
    return;
  }
  /* A result: the returned value is `ok`. */
  wit_type_t rt = cz_resolve(JB.wit, f->result);
  if (WIT_TYPE_KIND(rt) == WIT_TYPE_RESULT) {
    JSValue ok = JS_NewObject(ctx);
    JS_SetProperty(ctx, ok, JB.atom_tag, JS_NewString(ctx, "ok"));
    JS_SetProperty(ctx, ok, JB.atom_val, ret);
    ret = ok;
  }
  jb_path p = {.label = "result"};
  if (!jb_check(ctx, ret, rt, &p))
    cz_die("export %s (JS `%s`) returned a value that does not match its WIT type: %s", e->display,
           e->js_display, JB_ERR);
  jb_push(cx, ret);
}

void wit_dylib_export_finish(void *vcx, size_t which) {
  (void)which;
  jb_cx_release(vcx);
  JB.in_export = false;
}

uint32_t wit_dylib_export_async_call(void *cx, size_t which) {
  (void)cx;
  cz_die("export %s is async; the JavaScript binding does not support async functions yet",
         JB.exports[which].display);
}

uint32_t wit_dylib_export_async_callback(uint32_t event, uint32_t p1, uint32_t p2, size_t which) {
  (void)event, (void)p1, (void)p2;
  cz_die("export %s is async; the JavaScript binding does not support async functions yet",
         JB.exports[which].display);
}
