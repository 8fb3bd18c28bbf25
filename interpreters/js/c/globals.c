/*
 * The JS environment on WASI: console, TextEncoder/TextDecoder,
 * crypto.getRandomValues, ComponentError (prelude.js, embedded at build
 * time), and Math.random reseeded after the snapshot.
 *
 * prelude.js is evaluated once in wit_dylib_initialize, so its cost is
 * paid at build time and its objects are part of the snapshot. It gets the
 * natives below as its argument and keeps them in closures: the script
 * sees only the standard names.
 */
#include "binding.h"

#include <time.h>
#include <unistd.h> /* getentropy, write */

static const char JB_PRELUDE[] = {
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wc23-extensions"
#embed "prelude.js"
#pragma clang diagnostic pop
    , 0};

/* write(fd, string): console output, unbuffered after stdout's buffer. */
static JSValue jb_native_write(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  (void)this_val, (void)argc;
  int32_t fd;
  size_t len;
  if (JS_ToInt32(ctx, &fd, argv[0]) < 0) return JS_EXCEPTION;
  const char *s = JS_ToCStringLen(ctx, &len, argv[1]);
  if (!s) return JS_EXCEPTION;
  FILE *f = fd == 2 ? stderr : stdout;
  fwrite(s, 1, len, f);
  if (fd == 2) fflush(stderr);
  JS_FreeCString(ctx, s);
  return JS_UNDEFINED;
}

/* encode(string) -> Uint8Array of its UTF-8 (lone surrogates: U+FFFD). */
static JSValue jb_native_encode(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  (void)this_val, (void)argc;
  size_t len;
  const char *s = JS_ToCStringLen(ctx, &len, argv[0]);
  if (!s) return JS_EXCEPTION;
  JSValue out = JS_NewUint8ArrayCopy(ctx, (const uint8_t *)s, len);
  JS_FreeCString(ctx, s);
  size_t n;
  uint8_t *b = JS_GetUint8Array(ctx, &n, out);
  for (size_t i = 0; b && i + 2 < n; i++)
    if (b[i] == 0xed && b[i + 1] >= 0xa0) b[i] = 0xef, b[i + 1] = 0xbf, b[i + 2] = 0xbd, i += 2;
  return out;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0. */
static size_t jb_utf8_seq(const unsigned char *s, size_t n) {
  if (s[0] < 0x80) return 1;
  size_t len = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
  if (len == 0 || len > n) return 0;
  for (size_t k = 1; k < len; k++)
    if ((s[k] & 0xc0) != 0x80) return 0;
  uint32_t cp = len == 2 ? (uint32_t)(s[0] & 0x1f) : len == 3 ? (uint32_t)(s[0] & 0x0f) : (uint32_t)(s[0] & 0x07);
  for (size_t k = 1; k < len; k++) cp = (cp << 6) | (s[k] & 0x3f);
  if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

/* decode(bytes, fatal) -> string; invalid sequences become U+FFFD, or
 * throw a TypeError when fatal. */
static JSValue jb_native_decode(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  (void)this_val, (void)argc;
  size_t n;
  uint8_t *b = JS_GetUint8Array(ctx, &n, argv[0]);
  if (!b && n) return JS_EXCEPTION;
  if (!b) return JS_NewStringLen(ctx, "", 0);
  bool fatal = JS_ToBool(ctx, argv[1]);
  size_t i = 0;
  while (i < n) {
    size_t l = jb_utf8_seq(b + i, n - i);
    if (!l) break;
    i += l;
  }
  if (i == n) return JS_NewStringLen(ctx, (const char *)b, n);
  if (fatal) return JS_ThrowTypeError(ctx, "The encoded data was not valid for encoding utf-8");
  char *out = cz_xmalloc(n * 3 + 1);
  size_t o = 0;
  for (i = 0; i < n;) {
    size_t l = jb_utf8_seq(b + i, n - i);
    if (l) {
      memcpy(out + o, b + i, l);
      o += l;
      i += l;
    } else {
      memcpy(out + o, "\xef\xbf\xbd", 3);
      o += 3;
      i++;
    }
  }
  JSValue s = JS_NewStringLen(ctx, out, o);
  free(out);
  return s;
}

/* fillRandom(typedArray): bytes from wasi:random (getentropy). */
static JSValue jb_native_fill_random(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  (void)this_val, (void)argc;
  size_t off, len, per, size;
  JSValue ab = JS_GetTypedArrayBuffer(ctx, argv[0], &off, &len, &per);
  if (JS_IsException(ab)) return ab;
  uint8_t *data = JS_GetArrayBuffer(ctx, &size, ab);
  JS_FreeValue(ctx, ab);
  for (size_t i = 0; data && i < len; i += 256) {
    size_t chunk = len - i < 256 ? len - i : 256; /* getentropy's limit */
    if (getentropy(data + off + i, chunk) != 0) return JS_ThrowInternalError(ctx, "getentropy failed");
  }
  return JS_DupValue(ctx, argv[0]);
}

/* Math.random: xorshift128+. During init the seed is fixed, so a snapshot
 * is reproducible; the first call after init reseeds from getentropy, so
 * every instance of the snapshot draws its own numbers. */
static JSValue jb_math_random(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  (void)this_val, (void)argc, (void)argv;
  uint64_t *s = JB.random_state;
  if (JB.reseed_pending) {
    JB.reseed_pending = false;
    if (getentropy(s, sizeof JB.random_state) != 0) {
      s[0] = (uint64_t)time(NULL);
      s[1] = (uint64_t)(uintptr_t)&s;
    }
    if (!s[0] && !s[1]) s[0] = 1;
  }
  uint64_t x = s[0], y = s[1];
  s[0] = y;
  x ^= x << 23;
  s[1] = x ^ y ^ (x >> 17) ^ (y >> 26);
  uint64_t r = s[1] + y;
  return JS_NewFloat64(ctx, (double)(r >> 11) * (1.0 / 9007199254740992.0));
}

static void jb_globals_init(JSContext *ctx) {
  JB.random_state[0] = 0x9e3779b97f4a7c15ull;
  JB.random_state[1] = 0xbf58476d1ce4e5b9ull;
  JSValue global = JS_GetGlobalObject(ctx);
  JSValue math = JS_GetPropertyStr(ctx, global, "Math");
  JS_DefinePropertyValueStr(ctx, math, "random", JS_NewCFunction(ctx, jb_math_random, "random", 0),
                            JS_PROP_CONFIGURABLE | JS_PROP_WRITABLE);
  JS_FreeValue(ctx, math);
  JSValue natives = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, natives, "write", JS_NewCFunction(ctx, jb_native_write, "write", 2));
  JS_SetPropertyStr(ctx, natives, "encode", JS_NewCFunction(ctx, jb_native_encode, "encode", 1));
  JS_SetPropertyStr(ctx, natives, "decode", JS_NewCFunction(ctx, jb_native_decode, "decode", 2));
  JS_SetPropertyStr(ctx, natives, "fillRandom", JS_NewCFunction(ctx, jb_native_fill_random, "fillRandom", 1));
  JSValue fn = JS_Eval(ctx, JB_PRELUDE, sizeof JB_PRELUDE - 1, "componentize:prelude", JS_EVAL_TYPE_GLOBAL);
  if (JS_IsException(fn)) {
    JSValue e = JS_GetException(ctx);
    cz_die("prelude.js: %s", jb_error_text(ctx, e, true));
  }
  JSValue r = JS_Call(ctx, fn, JS_UNDEFINED, 1, (JSValueConst *)&natives);
  if (JS_IsException(r)) {
    JSValue e = JS_GetException(ctx);
    cz_die("prelude.js: %s", jb_error_text(ctx, e, true));
  }
  JB.component_error = JS_GetPropertyStr(ctx, global, "ComponentError");
  JS_FreeValue(ctx, r);
  JS_FreeValue(ctx, fn);
  JS_FreeValue(ctx, natives);
  JS_FreeValue(ctx, global);
}
