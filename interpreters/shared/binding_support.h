/*
 * What every C binding of componentize.h needs beyond its language: fatal
 * errors, allocation that cannot fail, formatting, WIT type lookups and
 * UTF-8. The Lua (interpreters/lua/c) and JavaScript (interpreters/js/c)
 * bindings include it from their binding.h; each is one translation unit,
 * so everything here is static but cabi_realloc, which the canonical ABI
 * calls by name.
 *
 * The includer defines CZ_LIBRARY_NAME, the file name its messages start
 * with ("lua.so").
 */
#ifndef COMPONENTIZE_BINDING_SUPPORT_H
#define COMPONENTIZE_BINDING_SUPPORT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "componentize.h"

#ifndef CZ_LIBRARY_NAME
#error "define CZ_LIBRARY_NAME (such as \"lua.so\") before including binding_support.h"
#endif

/* Prints "<library>: <message>" to stderr and aborts: the export traps,
 * with the reason where the host shows the guest's stderr. */
static _Noreturn void cz_die(const char *fmt, ...) {
  va_list ap;
  fflush(stdout);
  fputs(CZ_LIBRARY_NAME ": ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(stderr);
  abort();
}

static void *cz_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) cz_die("out of memory (%zu bytes)", n);
  return p;
}

static char *cz_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = cz_xmalloc(n);
  memcpy(p, s, n);
  return p;
}

/* A new string, formatted as printf does. */
static char *cz_format(const char *fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *p = cz_xmalloc((size_t)n + 1);
  vsnprintf(p, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  return p;
}

static bool cz_starts(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The type an alias stands for (through any chain of aliases). */
static wit_type_t cz_resolve(const wit_t *wit, wit_type_t ty) {
  while (WIT_TYPE_KIND(ty) == WIT_TYPE_ALIAS) ty = wit->aliases[WIT_TYPE_INDEX(ty)].ty;
  return ty;
}

/* Whether resource `index` is one the component exports (it has a
 * constructor of handles), not an imported one. */
static bool cz_is_exported_resource(const wit_t *wit, size_t index) {
  return wit->resources[index].new != NULL;
}

/* Dies, naming the first async function or future/stream type of the
 * world, for a binding that runs synchronous worlds only (`language` names
 * it in the message). Called from wit_dylib_initialize, so the build fails
 * at init with the reason rather than the component trapping later. A
 * future or stream type no function holds has no built-ins and is no
 * obstacle. */
static void cz_refuse_async(const wit_t *wit, const char *language) {
  static const char fix[] =
      "use a synchronous world (WASI 0.2 rather than 0.3, no `async func`, `future` or "
      "`stream`)";
  for (size_t i = 0; i < wit->num_import_funcs; i++) {
    const wit_import_func_t *f = &wit->import_funcs[i];
    if (f->async_impl)
      cz_die("import %s%s%s is async; the %s binding supports synchronous functions only: %s",
             f->interface ? f->interface : "", f->interface ? "#" : "", f->name, language, fix);
  }
  for (size_t i = 0; i < wit->num_export_funcs; i++) {
    const wit_export_func_t *f = &wit->export_funcs[i];
    if (f->task_return)
      cz_die("export %s%s%s is async; the %s binding supports synchronous functions only: %s",
             f->interface ? f->interface : "", f->interface ? "#" : "", f->name, language, fix);
  }
  for (size_t i = 0; i < wit->num_futures; i++)
    if (wit->futures[i].new)
      cz_die("the world passes futures (a `future` type of %s); the %s binding does not support "
             "them yet: %s", wit->futures[i].interface ? wit->futures[i].interface : "the world",
             language, fix);
  for (size_t i = 0; i < wit->num_streams; i++)
    if (wit->streams[i].new)
      cz_die("the world passes streams (a `stream` type of %s); the %s binding does not support "
             "them yet: %s", wit->streams[i].interface ? wit->streams[i].interface : "the world",
             language, fix);
}

/* An imported resource's handle, as the script's object for it holds it:
 * owned (the object drops it when collected or disposed), borrowed for
 * the duration of one export call, or dead (dropped, or given away to the
 * host). */
enum cz_handle_state { CZ_DEAD = 0, CZ_OWNED = 1, CZ_BORROWED = 2 };

typedef struct cz_handle {
  uint32_t handle;
  uint32_t index; /* into wit_t.resources */
  int state;      /* an enum cz_handle_state */
} cz_handle;

/* Until init ends, the bindings' allocators zero what they free: the init
 * stage saves every non-zero byte of linear memory, and the garbage of
 * load-time work would otherwise end up in the snapshot. Through a volatile
 * pointer: the compiler would drop a memset before free. */
static void *(*volatile cz_zero)(void *, int, size_t) = memset;

/* realloc of a block of `old_size` usable bytes that leaves no freed byte
 * unzeroed (shrinking zeroes the tail; growing copies, then zeroes and
 * frees the old block, which realloc would free as it is). `new_size` > 0. */
static void *cz_zeroing_realloc(void *ptr, size_t old_size, size_t new_size) {
  if (new_size <= old_size) {
    cz_zero((char *)ptr + new_size, 0, old_size - new_size);
    return realloc(ptr, new_size);
  }
  void *p = malloc(new_size);
  if (!p) return NULL;
  memcpy(p, ptr, old_size);
  cz_zero(ptr, 0, old_size);
  free(ptr);
  return p;
}

/* The canonical ABI's allocator: lowered strings and lists, and the
 * bindings' own buffers, come from the libc heap. */
void *cabi_realloc(void *ptr, size_t old_size, size_t align, size_t new_size) {
  (void)old_size;
  if (new_size == 0) {
    /* Never allocated; the ABI never frees zero-size buffers. */
    if (ptr) free(ptr);
    return (void *)align;
  }
  /* malloc's alignment (16) covers every canonical ABI alignment. */
  void *p = realloc(ptr, new_size);
  if (!p) cz_die("out of memory (cabi_realloc of %zu bytes)", new_size);
  return p;
}

/* ---- UTF-8 ----------------------------------------------------------- */

/* Decodes one scalar value at s[0..len); returns its byte length, 0 if
 * invalid (overlong, surrogate, above U+10FFFF, truncated). */
static size_t cz_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp) {
  unsigned c = s[0];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t n;
  uint32_t v, min;
  if ((c & 0xe0) == 0xc0) n = 2, v = c & 0x1f, min = 0x80;
  else if ((c & 0xf0) == 0xe0) n = 3, v = c & 0x0f, min = 0x800;
  else if ((c & 0xf8) == 0xf0) n = 4, v = c & 0x07, min = 0x10000;
  else return 0;
  if (len < n) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    v = (v << 6) | (s[i] & 0x3f);
  }
  if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
  *cp = v;
  return n;
}

/* Whether str[0..len) is well-formed UTF-8. */
static bool cz_utf8_valid(const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < len) {
    /* ASCII runs, 8 bytes at a time. */
    while (i + 8 <= len) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= len) break;
    if (s[i] < 0x80) {
      i++;
      continue;
    }
    uint32_t cp;
    size_t n = cz_utf8_decode(s + i, len - i, &cp);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

/* Whether s[0..len) is exactly one scalar value; it in *cp. */
static bool cz_utf8_one(const char *s, size_t len, uint32_t *cp) {
  if (len == 0) return false;
  size_t n = cz_utf8_decode((const unsigned char *)s, len, cp);
  return n != 0 && n == len;
}

/* Writes scalar value `cp` to out[0..4); returns its byte length. */
static size_t cz_utf8_encode(uint32_t cp, char *out) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xe0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
  }
  out[0] = (char)(0xf0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
  out[3] = (char)(0x80 | (cp & 0x3f));
  return 4;
}

#endif
