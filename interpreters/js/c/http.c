/*
 * The module componentize:http (http.js, embedded at build time): a
 * wasi:http/incoming-handler with the shapes of fetch's Request and
 * Response. It is compiled only when a script imports it, so worlds without
 * wasi:http pay nothing for it.
 */
#include "binding.h"

static const char JB_HTTP_JS[] = {
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wc23-extensions"
#embed "http.js"
#pragma clang diagnostic pop
    , 0};

/* The module, or NULL with an exception. */
static JSModuleDef *jb_http_module(JSContext *ctx) {
  if (!jb_import_module_exists("wasi:http/types")) {
    JS_ThrowReferenceError(ctx, "%s needs a world that imports wasi:http/types (for example "
                                "`include wasi:http/proxy@0.2.12;`)",
                           JB_HTTP_MODULE);
    return NULL;
  }
  JSValue fn = JS_Eval(ctx, JB_HTTP_JS, sizeof JB_HTTP_JS - 1, JB_HTTP_MODULE,
                       JS_EVAL_TYPE_MODULE | JS_EVAL_FLAG_COMPILE_ONLY);
  if (JS_IsException(fn)) return NULL;
  JSModuleDef *m = JS_VALUE_GET_PTR(fn);
  JS_FreeValue(ctx, fn);
  return m;
}
