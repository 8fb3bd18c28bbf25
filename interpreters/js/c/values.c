/*
 * Values: checks of JS values against WIT types, and the push_* (canonical
 * ABI -> JS) and pop_* (JS -> canonical ABI) functions of componentize.h,
 * on the value stack of the call context.
 *
 * Pops trust their input: every value is checked by jb_check before the
 * bindings start lowering it, because a pop cannot fail half-way through a
 * lowering. A pop that still finds something unexpected is a bug of the
 * binding and traps.
 */
#include "binding.h"

/* ====================================================================== */
/* The value stack                                                         */
/* ====================================================================== */

typedef struct jb_iter {
  JSValue array; /* an Array (lists) or an Array of [key, value] (maps) */
  uint32_t next;
} jb_iter;

static jb_vec JB_ITERS; /* iterators of pop_list / pop_map, innermost last */

static void jb_push(jb_cx *cx, JSValue v) {
  jb_vec_push(&cx->stack, &v, sizeof v);
}

static JSValue jb_pop(jb_cx *cx) {
  if (cx->stack.n == 0) cz_die("internal error: pop from an empty value stack");
  return ((JSValue *)cx->stack.p)[--cx->stack.n];
}

static JSValue *jb_top(jb_cx *cx) {
  if (cx->stack.n == 0) cz_die("internal error: the value stack is empty");
  return &((JSValue *)cx->stack.p)[cx->stack.n - 1];
}

static void jb_cx_release(jb_cx *cx) {
  JSContext *ctx = JB.ctx;
  for (size_t i = 0; i < cx->stack.n; i++) JS_FreeValue(ctx, ((JSValue *)cx->stack.p)[i]);
  for (size_t i = 0; i < cx->cstrings.n; i++) JS_FreeCString(ctx, ((const char **)cx->cstrings.p)[i]);
  for (size_t i = 0; i < cx->held.n; i++) JS_FreeValue(ctx, ((JSValue *)cx->held.p)[i]);
  for (size_t i = 0; i < cx->deferred.n; i++) free(((void **)cx->deferred.p)[i]);
  cx->stack.n = cx->cstrings.n = cx->held.n = cx->deferred.n = 0;
}

/* ====================================================================== */
/* Descriptions for messages                                               */
/* ====================================================================== */

static void jb_type_name(wit_type_t ty, char *buf, size_t len) {
  static const char *const prim[] = {"u8",  "u16",  "u32",  "u64", "s8",     "s16", "s32",
                                     "s64", "bool", "char", "f32", "f64", "string"};
  ty = cz_resolve(JB.wit, ty);
  size_t k = WIT_TYPE_KIND(ty), i = WIT_TYPE_INDEX(ty);
  const wit_t *w = JB.wit;
  const char *name = NULL;
  switch (k) {
    case WIT_TYPE_RECORD: name = w->records[i].name; break;
    case WIT_TYPE_FLAGS: name = w->flags[i].name; break;
    case WIT_TYPE_VARIANT: name = w->variants[i].name; break;
    case WIT_TYPE_ENUM: name = w->enums[i].name; break;
    case WIT_TYPE_OWN: snprintf(buf, len, "own<%s>", w->resources[i].name); return;
    case WIT_TYPE_BORROW: snprintf(buf, len, "borrow<%s>", w->resources[i].name); return;
    case WIT_TYPE_TUPLE: name = "tuple"; break;
    case WIT_TYPE_OPTION: name = "option"; break;
    case WIT_TYPE_RESULT: name = "result"; break;
    case WIT_TYPE_LIST: name = "list"; break;
    case WIT_TYPE_MAP: name = "map"; break;
    default: name = k < sizeof prim / sizeof prim[0] ? prim[k] : "a value"; break;
  }
  snprintf(buf, len, "%s", name ? name : "a value");
}

/* "string \"x\"", "number 1.5", "undefined", "object Foo", ... */
static void jb_describe(JSContext *ctx, JSValueConst v, char *buf, size_t len) {
  if (JS_IsUndefined(v)) snprintf(buf, len, "undefined");
  else if (JS_IsNull(v)) snprintf(buf, len, "null");
  else if (JS_IsBool(v)) snprintf(buf, len, "boolean %s", JS_ToBool(ctx, v) ? "true" : "false");
  else if (JS_IsNumber(v) || JS_IsBigInt(v) || JS_IsString(v)) {
    const char *s = JS_ToCString(ctx, v);
    const char *kind = JS_IsString(v) ? "string" : JS_IsNumber(v) ? "number" : "bigint";
    if (JS_IsString(v)) snprintf(buf, len, "%s \"%.40s%s\"", kind, s ? s : "", s && strlen(s) > 40 ? "..." : "");
    else snprintf(buf, len, "%s %s%s", kind, s ? s : "?", JS_IsBigInt(v) ? "n" : "");
    if (s) JS_FreeCString(ctx, s);
  } else if (JS_IsSymbol(v)) snprintf(buf, len, "a symbol");
  else if (JS_IsFunction(ctx, v)) snprintf(buf, len, "a function");
  else if (JS_IsArray(v)) snprintf(buf, len, "an array");
  else if (JS_IsObject(v)) {
    JSValue c = JS_GetPropertyStr(ctx, v, "constructor");
    JSValue n = JS_IsObject(c) ? JS_GetPropertyStr(ctx, c, "name") : JS_UNDEFINED;
    const char *s = JS_IsString(n) ? JS_ToCString(ctx, n) : NULL;
    snprintf(buf, len, "object %s", s && *s ? s : "(no class)");
    if (s) JS_FreeCString(ctx, s);
    JS_FreeValue(ctx, n);
    JS_FreeValue(ctx, c);
    if (JS_HasException(ctx)) JS_FreeValue(ctx, JS_GetException(ctx));
  } else snprintf(buf, len, "a value");
}

static void jb_path_text(const jb_path *p, char *buf, size_t len) {
  if (!p) {
    buf[0] = 0;
    return;
  }
  if (p->label) {
    snprintf(buf, len, "%s", p->label);
    return;
  }
  jb_path_text(p->up, buf, len);
  size_t n = strlen(buf);
  if (p->field) snprintf(buf + n, len - n, ".%s", p->field);
  else snprintf(buf + n, len - n, "[%lld]", (long long)p->index);
}

static bool jb_fail(JSContext *ctx, const jb_path *p, JSValueConst v, const char *expected) {
  char where[512], got[128];
  jb_path_text(p, where, sizeof where);
  jb_describe(ctx, v, got, sizeof got);
  snprintf(JB_ERR, sizeof JB_ERR, "%s%sexpected %s, got %s", where, *where ? ": " : "", expected, got);
  return false;
}

static bool jb_fail_msg(const jb_path *p, const char *msg) {
  char where[512];
  jb_path_text(p, where, sizeof where);
  snprintf(JB_ERR, sizeof JB_ERR, "%s%s%s", where, *where ? ": " : "", msg);
  return false;
}

/* ====================================================================== */
/* Checks                                                                  */
/* ====================================================================== */

/* A JS number or BigInt with an integral value in [min, max]. u64 has its
 * own check (its max does not fit int64_t). */
static bool jb_int_value(JSContext *ctx, JSValueConst v, int64_t *out) {
  if (JS_IsNumber(v)) {
    double d;
    JS_ToFloat64(ctx, &d, v);
    if (d != d || d < -9223372036854775808.0 || d >= 9223372036854775808.0 || d != (double)(int64_t)d)
      return false;
    *out = (int64_t)d;
    return true;
  }
  return false;
}

static bool jb_check_int(JSContext *ctx, JSValueConst v, int64_t min, int64_t max, const char *name,
                         const jb_path *p) {
  int64_t i;
  if (!jb_int_value(ctx, v, &i) || i < min || i > max) {
    char exp[64];
    snprintf(exp, sizeof exp, "%s (an integer in [%lld, %lld])", name, (long long)min, (long long)max);
    return jb_fail(ctx, p, v, exp);
  }
  return true;
}

/* u64/s64: a BigInt in range, or a Number that is a safe integer. */
static bool jb_check_big(JSContext *ctx, JSValueConst v, bool is_signed, const jb_path *p) {
  if (JS_IsBigInt(v)) {
    JSValue s = JS_ToString(ctx, v);
    const char *t = JS_ToCString(ctx, s);
    bool ok = false;
    if (t) {
      bool neg = t[0] == '-';
      size_t n = strlen(t) - (neg ? 1 : 0);
      const char *digits = t + (neg ? 1 : 0);
      const char *limit = is_signed ? (neg ? "9223372036854775808" : "9223372036854775807")
                                    : "18446744073709551615";
      ok = (!neg || is_signed) && (n < strlen(limit) || (n == strlen(limit) && strcmp(digits, limit) <= 0));
      JS_FreeCString(ctx, t);
    }
    JS_FreeValue(ctx, s);
    if (ok) return true;
  } else if (JS_IsNumber(v)) {
    double d;
    JS_ToFloat64(ctx, &d, v);
    if (d == d && d >= (is_signed ? -9007199254740991.0 : 0.0) && d <= 9007199254740991.0 &&
        d == (double)(int64_t)d)
      return true;
  }
  return jb_fail(ctx, p, v, is_signed ? "s64 (a BigInt)" : "u64 (a BigInt)");
}

/* Index of the case named `s` (its WIT name, or lowerCamelCase) among
 * `n` names, or -1. */
static int64_t jb_find_name(const char *s, size_t n, const char *(*name_at)(size_t, size_t), size_t ty) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(name_at(ty, i), s) == 0) return (int64_t)i;
  for (size_t i = 0; i < n; i++) {
    char *c = jb_camel(name_at(ty, i), false);
    bool same = strcmp(c, s) == 0;
    free(c);
    if (same) return (int64_t)i;
  }
  return -1;
}

static const char *jb_enum_name(size_t ty, size_t i) { return JB.wit->enums[ty].names[i]; }
static const char *jb_case_name(size_t ty, size_t i) { return JB.wit->variants[ty].cases[i].name; }

/* The case of a tagged value {tag, val}: its index, or -1 (JB_ERR set). */
static int64_t jb_tag_of(JSContext *ctx, JSValueConst v, size_t n, const char *(*name_at)(size_t, size_t),
                         size_t ty, const jb_path *p, const char *what) {
  if (!JS_IsObject(v)) {
    jb_fail(ctx, p, v, what);
    return -1;
  }
  JSValue tag = JS_GetProperty(ctx, v, JB.atom_tag);
  int64_t idx = -1;
  const char *s = JS_IsString(tag) ? JS_ToCString(ctx, tag) : NULL;
  if (s) idx = jb_find_name(s, n, name_at, ty);
  if (idx < 0) {
    char where[512], got[128], exp[256];
    jb_path_text(p, where, sizeof where);
    jb_describe(ctx, tag, got, sizeof got);
    size_t o = (size_t)snprintf(exp, sizeof exp, "one of");
    for (size_t i = 0; i < n && o < sizeof exp; i++)
      o += (size_t)snprintf(exp + o, sizeof exp - o, "%s \"%s\"", i ? "," : "", name_at(ty, i));
    snprintf(JB_ERR, sizeof JB_ERR, "%s%s.tag: expected %s, got %s", where, *where ? "" : "value", exp, got);
  }
  if (s) JS_FreeCString(ctx, s);
  JS_FreeValue(ctx, tag);
  return idx;
}

static const char *jb_ok_err(size_t ty, size_t i) {
  (void)ty;
  return i ? "err" : "ok";
}

static const char *jb_some_none(size_t ty, size_t i) {
  (void)ty;
  return i ? "some" : "none";
}

/* The typed array class that holds list<T> of a number type, or -1. */
static int jb_typed_kind(wit_type_t et) {
  switch (WIT_TYPE_KIND(cz_resolve(JB.wit, et))) {
    case WIT_TYPE_U8: return JS_TYPED_ARRAY_UINT8;
    case WIT_TYPE_S8: return JS_TYPED_ARRAY_INT8;
    case WIT_TYPE_U16: return JS_TYPED_ARRAY_UINT16;
    case WIT_TYPE_S16: return JS_TYPED_ARRAY_INT16;
    case WIT_TYPE_U32: return JS_TYPED_ARRAY_UINT32;
    case WIT_TYPE_S32: return JS_TYPED_ARRAY_INT32;
    case WIT_TYPE_U64: return JS_TYPED_ARRAY_BIG_UINT64;
    case WIT_TYPE_S64: return JS_TYPED_ARRAY_BIG_INT64;
    case WIT_TYPE_F32: return JS_TYPED_ARRAY_FLOAT32;
    case WIT_TYPE_F64: return JS_TYPED_ARRAY_FLOAT64;
    default: return -1;
  }
}

static const char *const JB_TYPED_NAMES[] = {
    "Uint8ClampedArray", "Int8Array",      "Uint8Array",     "Int16Array",   "Uint16Array", "Int32Array",
    "Uint32Array",       "BigInt64Array", "BigUint64Array", "Float16Array", "Float32Array", "Float64Array"};

/* Entries of a Map as an Array of [key, value] (Array.from), or an
 * exception. */
static JSValue jb_map_entries(JSContext *ctx, JSValueConst map) {
  JSValue global = JS_GetGlobalObject(ctx);
  JSValue array = JS_GetPropertyStr(ctx, global, "Array");
  JSValue from = JS_GetPropertyStr(ctx, array, "from");
  JSValue r = JS_Call(ctx, from, array, 1, &map);
  JS_FreeValue(ctx, from);
  JS_FreeValue(ctx, array);
  JS_FreeValue(ctx, global);
  return r;
}

static bool jb_check(JSContext *ctx, JSValueConst v, wit_type_t ty, const jb_path *p) {
  ty = cz_resolve(JB.wit, ty);
  size_t i = WIT_TYPE_INDEX(ty);
  const wit_t *w = JB.wit;
  switch (WIT_TYPE_KIND(ty)) {
    case WIT_TYPE_BOOL: return JS_IsBool(v) || jb_fail(ctx, p, v, "bool (a boolean)");
    case WIT_TYPE_U8: return jb_check_int(ctx, v, 0, UINT8_MAX, "u8", p);
    case WIT_TYPE_S8: return jb_check_int(ctx, v, INT8_MIN, INT8_MAX, "s8", p);
    case WIT_TYPE_U16: return jb_check_int(ctx, v, 0, UINT16_MAX, "u16", p);
    case WIT_TYPE_S16: return jb_check_int(ctx, v, INT16_MIN, INT16_MAX, "s16", p);
    case WIT_TYPE_U32: return jb_check_int(ctx, v, 0, UINT32_MAX, "u32", p);
    case WIT_TYPE_S32: return jb_check_int(ctx, v, INT32_MIN, INT32_MAX, "s32", p);
    case WIT_TYPE_U64: return jb_check_big(ctx, v, false, p);
    case WIT_TYPE_S64: return jb_check_big(ctx, v, true, p);
    case WIT_TYPE_F32:
    case WIT_TYPE_F64:
      return JS_IsNumber(v) || jb_fail(ctx, p, v, WIT_TYPE_KIND(ty) == WIT_TYPE_F32 ? "f32 (a number)" : "f64 (a number)");
    case WIT_TYPE_CHAR: {
      if (!JS_IsString(v)) return jb_fail(ctx, p, v, "char (a string of one character)");
      size_t len;
      const char *s = JS_ToCStringLen(ctx, &len, v);
      uint32_t cp;
      bool ok = s && cz_utf8_one(s, len, &cp);
      if (s) JS_FreeCString(ctx, s);
      return ok || jb_fail(ctx, p, v, "char (a string of one Unicode scalar value)");
    }
    case WIT_TYPE_STRING: return JS_IsString(v) || jb_fail(ctx, p, v, "string");
    case WIT_TYPE_RECORD: {
      const wit_record_t *r = &w->records[i];
      if (!JS_IsObject(v) || JS_IsArray(v)) {
        char exp[160];
        snprintf(exp, sizeof exp, "record %s (an object)", r->name);
        return jb_fail(ctx, p, v, exp);
      }
      for (size_t f = 0; f < r->nfields; f++) {
        JSValue fv = JS_GetProperty(ctx, v, JB.record_atoms[i][f]);
        const char *fname = JS_AtomToCString(ctx, JB.record_atoms[i][f]);
        jb_path fp = {.up = p, .field = fname};
        bool ok = !JS_IsException(fv) && jb_check(ctx, fv, r->fields[f].ty, &fp);
        if (JS_IsException(fv)) {
          JS_FreeValue(ctx, JS_GetException(ctx));
          jb_fail_msg(&fp, "reading the field threw");
        }
        JS_FreeCString(ctx, fname);
        JS_FreeValue(ctx, fv);
        if (!ok) return false;
      }
      return true;
    }
    case WIT_TYPE_TUPLE: {
      const wit_tuple_t *t = &w->tuples[i];
      int64_t len = -1;
      if (JS_IsArray(v)) JS_GetLength(ctx, v, &len);
      if (len != (int64_t)t->ntypes) {
        char exp[80];
        snprintf(exp, sizeof exp, "tuple (an array of %zu elements)", t->ntypes);
        return jb_fail(ctx, p, v, exp);
      }
      for (size_t k = 0; k < t->ntypes; k++) {
        JSValue ev = JS_GetPropertyUint32(ctx, v, (uint32_t)k);
        jb_path ep = {.up = p, .index = (int64_t)k};
        bool ok = jb_check(ctx, ev, t->types[k], &ep);
        JS_FreeValue(ctx, ev);
        if (!ok) return false;
      }
      return true;
    }
    case WIT_TYPE_FLAGS: {
      const wit_flags_t *f = &w->flags[i];
      if (!JS_IsObject(v)) {
        char exp[160];
        snprintf(exp, sizeof exp, "flags %s (an object of booleans)", f->name);
        return jb_fail(ctx, p, v, exp);
      }
      JSPropertyEnum *props;
      uint32_t n;
      if (JS_GetOwnPropertyNames(ctx, &props, &n, v, JS_GPN_STRING_MASK | JS_GPN_ENUM_ONLY) < 0) {
        JS_FreeValue(ctx, JS_GetException(ctx));
        return jb_fail_msg(p, "cannot list the flags object's properties");
      }
      bool ok = true;
      for (uint32_t k = 0; k < n && ok; k++) {
        bool known = false;
        for (size_t b = 0; b < f->nnames && !known; b++) known = props[k].atom == JB.flag_atoms[i][b];
        if (!known) {
          const char *s = JS_AtomToCString(ctx, props[k].atom);
          char msg[256];
          snprintf(msg, sizeof msg, "`%s` is not a flag of %s", s ? s : "?", f->name);
          if (s) JS_FreeCString(ctx, s);
          ok = jb_fail_msg(p, msg);
        }
      }
      JS_FreePropertyEnum(ctx, props, n);
      return ok;
    }
    case WIT_TYPE_ENUM: {
      const wit_enum_t *e = &w->enums[i];
      const char *s = JS_IsString(v) ? JS_ToCString(ctx, v) : NULL;
      bool ok = s && jb_find_name(s, e->nnames, jb_enum_name, i) >= 0;
      if (s) JS_FreeCString(ctx, s);
      if (ok) return true;
      char exp[256];
      size_t o = (size_t)snprintf(exp, sizeof exp, "enum %s (one of", e->name);
      for (size_t k = 0; k < e->nnames && o < sizeof exp; k++)
        o += (size_t)snprintf(exp + o, sizeof exp - o, "%s \"%s\"", k ? "," : "", e->names[k]);
      if (o < sizeof exp) snprintf(exp + o, sizeof exp - o, ")");
      return jb_fail(ctx, p, v, exp);
    }
    case WIT_TYPE_VARIANT: {
      const wit_variant_t *var = &w->variants[i];
      char exp[160];
      snprintf(exp, sizeof exp, "variant %s (an object { tag, val })", var->name);
      int64_t c = jb_tag_of(ctx, v, var->ncases, jb_case_name, i, p, exp);
      if (c < 0) return false;
      if (JB_NONE(var->cases[c].ty)) return true;
      JSValue pv = JS_GetProperty(ctx, v, JB.atom_val);
      jb_path vp = {.up = p, .field = "val"};
      bool ok = jb_check(ctx, pv, var->cases[c].ty, &vp);
      JS_FreeValue(ctx, pv);
      return ok;
    }
    case WIT_TYPE_OPTION: {
      const wit_option_t *o = &w->options[i];
      if (!JB.option_tagged[i]) return JS_IsUndefined(v) || JS_IsNull(v) || jb_check(ctx, v, o->ty, p);
      int64_t c = jb_tag_of(ctx, v, 2, jb_some_none, 0, p, "option (an object { tag: \"some\", val } or { tag: \"none\" })");
      if (c <= 0) return c == 0;
      JSValue pv = JS_GetProperty(ctx, v, JB.atom_val);
      jb_path vp = {.up = p, .field = "val"};
      bool ok = jb_check(ctx, pv, o->ty, &vp);
      JS_FreeValue(ctx, pv);
      return ok;
    }
    case WIT_TYPE_RESULT: {
      const wit_result_t *r = &w->results[i];
      int64_t c = jb_tag_of(ctx, v, 2, jb_ok_err, 0, p, "result (an object { tag: \"ok\" | \"err\", val })");
      if (c < 0) return false;
      wit_type_t pt = c ? r->err : r->ok;
      if (JB_NONE(pt)) return true;
      JSValue pv = JS_GetProperty(ctx, v, JB.atom_val);
      jb_path vp = {.up = p, .field = "val"};
      bool ok = jb_check(ctx, pv, pt, &vp);
      JS_FreeValue(ctx, pv);
      return ok;
    }
    case WIT_TYPE_LIST: {
      wit_type_t et = w->lists[i].ty;
      int tk = jb_typed_kind(et);
      int have = JS_GetTypedArrayType(v);
      if (tk >= 0 && have == tk) return true;
      if (tk == JS_TYPED_ARRAY_UINT8 && have == JS_TYPED_ARRAY_UINT8C) return true;
      if (!JS_IsArray(v)) {
        char exp[160];
        if (tk >= 0) snprintf(exp, sizeof exp, "list (a %s or an array)", JB_TYPED_NAMES[tk]);
        else snprintf(exp, sizeof exp, "list (an array)");
        return jb_fail(ctx, p, v, exp);
      }
      int64_t len;
      if (JS_GetLength(ctx, v, &len) < 0) return jb_fail_msg(p, "cannot read the array's length");
      for (int64_t k = 0; k < len; k++) {
        JSValue ev = JS_GetPropertyInt64(ctx, v, k);
        jb_path ep = {.up = p, .index = k};
        bool ok = jb_check(ctx, ev, et, &ep);
        JS_FreeValue(ctx, ev);
        if (!ok) return false;
      }
      return true;
    }
    case WIT_TYPE_MAP: {
      const wit_map_t *m = &w->maps[i];
      if (!JS_IsMap(v)) return jb_fail(ctx, p, v, "map (a Map)");
      JSValue entries = jb_map_entries(ctx, v);
      if (JS_IsException(entries)) {
        JS_FreeValue(ctx, JS_GetException(ctx));
        return jb_fail_msg(p, "cannot read the Map's entries");
      }
      int64_t len = 0;
      JS_GetLength(ctx, entries, &len);
      bool ok = true;
      for (int64_t k = 0; k < len && ok; k++) {
        JSValue e = JS_GetPropertyInt64(ctx, entries, k);
        JSValue key = JS_GetPropertyUint32(ctx, e, 0), val = JS_GetPropertyUint32(ctx, e, 1);
        char label[32];
        snprintf(label, sizeof label, "key");
        jb_path kp = {.up = p, .index = k};
        jb_path kp2 = {.up = &kp, .field = "key"}, vp2 = {.up = &kp, .field = "value"};
        ok = jb_check(ctx, key, m->key_type, &kp2) && jb_check(ctx, val, m->value_type, &vp2);
        JS_FreeValue(ctx, key);
        JS_FreeValue(ctx, val);
        JS_FreeValue(ctx, e);
      }
      JS_FreeValue(ctx, entries);
      return ok;
    }
    case WIT_TYPE_OWN:
    case WIT_TYPE_BORROW: {
      bool own = WIT_TYPE_KIND(ty) == WIT_TYPE_OWN;
      const char *rname = w->resources[i].name;
      char exp[160];
      if (cz_is_exported_resource(JB.wit, i)) {
        snprintf(exp, sizeof exp, "%s<%s> (an object of the script's class)", own ? "own" : "borrow", rname);
        return JS_IsObject(v) || jb_fail(ctx, p, v, exp);
      }
      cz_handle *r = jb_get_res(v, i);
      if (!r) {
        snprintf(exp, sizeof exp, "%s<%s> (a resource object)", own ? "own" : "borrow", rname);
        return jb_fail(ctx, p, v, exp);
      }
      if (r->state == CZ_DEAD) {
        char msg[160];
        snprintf(msg, sizeof msg, "resource %s was already dropped or moved", rname);
        return jb_fail_msg(p, msg);
      }
      if (own && r->state == CZ_BORROWED) {
        char msg[200];
        snprintf(msg, sizeof msg, "own<%s> needs an owned handle; this one is borrowed for the current call", rname);
        return jb_fail_msg(p, msg);
      }
      return true;
    }
    default: {
      char name[64];
      jb_type_name(ty, name, sizeof name);
      char msg[128];
      snprintf(msg, sizeof msg, "values of this type (%s) are not supported by the JavaScript binding", name);
      return jb_fail_msg(p, msg);
    }
  }
}

/* ====================================================================== */
/* push: canonical ABI -> JS                                               */
/* ====================================================================== */

void wit_dylib_push_bool(void *cx, bool v) { jb_push(cx, JS_NewBool(JB.ctx, v)); }

void wit_dylib_push_char(void *cx, uint32_t v) {
  char buf[4];
  jb_push(cx, JS_NewStringLen(JB.ctx, buf, cz_utf8_encode(v, buf)));
}

void wit_dylib_push_u8(void *cx, uint8_t v) { jb_push(cx, JS_NewInt32(JB.ctx, v)); }
void wit_dylib_push_s8(void *cx, int8_t v) { jb_push(cx, JS_NewInt32(JB.ctx, v)); }
void wit_dylib_push_u16(void *cx, uint16_t v) { jb_push(cx, JS_NewInt32(JB.ctx, v)); }
void wit_dylib_push_s16(void *cx, int16_t v) { jb_push(cx, JS_NewInt32(JB.ctx, v)); }
void wit_dylib_push_u32(void *cx, uint32_t v) { jb_push(cx, JS_NewUint32(JB.ctx, v)); }
void wit_dylib_push_s32(void *cx, int32_t v) { jb_push(cx, JS_NewInt32(JB.ctx, v)); }
void wit_dylib_push_u64(void *cx, uint64_t v) { jb_push(cx, JS_NewBigUint64(JB.ctx, v)); }
void wit_dylib_push_s64(void *cx, int64_t v) { jb_push(cx, JS_NewBigInt64(JB.ctx, v)); }
void wit_dylib_push_f32(void *cx, float v) { jb_push(cx, JS_NewFloat64(JB.ctx, (double)v)); }
void wit_dylib_push_f64(void *cx, double v) { jb_push(cx, JS_NewFloat64(JB.ctx, v)); }

void wit_dylib_push_string(void *cx, uint8_t *bytes, size_t len) {
  jb_push(cx, JS_NewStringLen(JB.ctx, (const char *)bytes, len));
  if (len) free(bytes);
}

void wit_dylib_push_record(void *vcx, size_t ty) {
  jb_cx *cx = vcx;
  JSContext *ctx = JB.ctx;
  const wit_record_t *r = &JB.wit->records[ty];
  /* Fields were pushed in order: they are the top nfields values. */
  JSValue *fields = (JSValue *)cx->stack.p + (cx->stack.n - r->nfields);
  JSValue obj = JS_NewObject(ctx);
  for (size_t f = 0; f < r->nfields; f++)
    JS_DefinePropertyValue(ctx, obj, JB.record_atoms[ty][f], fields[f], JS_PROP_C_W_E);
  cx->stack.n -= r->nfields;
  jb_push(cx, obj);
}

void wit_dylib_push_tuple(void *vcx, size_t ty) {
  jb_cx *cx = vcx;
  size_t n = JB.wit->tuples[ty].ntypes;
  JSValue *items = (JSValue *)cx->stack.p + (cx->stack.n - n);
  JSValue arr = JS_NewArrayFrom(JB.ctx, (int)n, items); /* takes the items */
  cx->stack.n -= n;
  jb_push(cx, arr);
}

void wit_dylib_push_flags(void *cx, size_t ty, uint32_t bits) {
  JSContext *ctx = JB.ctx;
  const wit_flags_t *f = &JB.wit->flags[ty];
  JSValue obj = JS_NewObject(ctx);
  for (size_t b = 0; b < f->nnames; b++)
    JS_DefinePropertyValue(ctx, obj, JB.flag_atoms[ty][b], JS_NewBool(ctx, (bits >> b) & 1), JS_PROP_C_W_E);
  jb_push(cx, obj);
}

void wit_dylib_push_enum(void *cx, size_t ty, uint32_t discr) {
  jb_push(cx, JS_NewString(JB.ctx, JB.wit->enums[ty].names[discr]));
}

/* {tag, val}; `payload` true: the payload is on top of the stack. */
static void jb_push_tagged(jb_cx *cx, const char *tag, bool payload) {
  JSContext *ctx = JB.ctx;
  JSValue obj = JS_NewObject(ctx);
  JSValue val = payload ? jb_pop(cx) : JS_UNDEFINED;
  JS_DefinePropertyValue(ctx, obj, JB.atom_tag, JS_NewString(ctx, tag), JS_PROP_C_W_E);
  if (payload) JS_DefinePropertyValue(ctx, obj, JB.atom_val, val, JS_PROP_C_W_E);
  jb_push(cx, obj);
}

void wit_dylib_push_variant(void *cx, size_t ty, uint32_t discr) {
  const wit_case_t *c = &JB.wit->variants[ty].cases[discr];
  jb_push_tagged(cx, c->name, !JB_NONE(c->ty));
}

void wit_dylib_push_option(void *cx, size_t ty, uint32_t discr) {
  if (JB.option_tagged[ty]) {
    jb_push_tagged(cx, discr ? "some" : "none", discr != 0);
    return;
  }
  if (!discr) jb_push(cx, JS_UNDEFINED);
  /* some: the payload already on top is the value. */
}

void wit_dylib_push_result(void *cx, size_t ty, uint32_t discr) {
  const wit_result_t *r = &JB.wit->results[ty];
  jb_push_tagged(cx, discr ? "err" : "ok", !JB_NONE(discr ? r->err : r->ok));
}

static void *jb_realloc_buffer(JSRuntime *rt, void *opaque, void *ptr, size_t size) {
  (void)rt, (void)opaque;
  if (size == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, size);
}

static size_t jb_elem_size(int typed_kind) {
  switch (typed_kind) {
    case JS_TYPED_ARRAY_UINT8:
    case JS_TYPED_ARRAY_INT8: return 1;
    case JS_TYPED_ARRAY_UINT16:
    case JS_TYPED_ARRAY_INT16: return 2;
    case JS_TYPED_ARRAY_UINT32:
    case JS_TYPED_ARRAY_INT32:
    case JS_TYPED_ARRAY_FLOAT32: return 4;
    default: return 8;
  }
}

bool wit_dylib_push_list(void *cx, size_t ty, uint8_t *bytes, size_t len) {
  JSContext *ctx = JB.ctx;
  wit_type_t et = JB.wit->lists[ty].ty;
  int tk = jb_typed_kind(et);
  if (tk >= 0) {
    /* The canonical buffer becomes the typed array's memory: no copy. */
    size_t size = jb_elem_size(tk) * len;
    JSValue buf = JS_NewArrayBuffer(ctx, size ? bytes : NULL, size, 0, size ? jb_realloc_buffer : NULL, NULL, false);
    JSValue args[1] = {buf};
    JSValue arr = JS_NewTypedArray(ctx, 1, args, (JSTypedArrayEnum)tk);
    JS_FreeValue(ctx, buf);
    if (JS_IsException(arr)) cz_die("cannot make a %s of %zu elements", JB_TYPED_NAMES[tk], len);
    jb_push(cx, arr);
    return true;
  }
  if (WIT_TYPE_KIND(cz_resolve(JB.wit, et)) == WIT_TYPE_BOOL) {
    JSValue *items = cz_xmalloc((len + 1) * sizeof(JSValue));
    for (size_t i = 0; i < len; i++) items[i] = JS_NewBool(ctx, bytes[i] != 0);
    jb_push(cx, JS_NewArrayFrom(ctx, (int)len, items));
    free(items);
    if (len) free(bytes);
    return true;
  }
  jb_push(cx, JS_NewArray(ctx));
  return false;
}

void wit_dylib_list_append(void *vcx, size_t ty) {
  (void)ty;
  jb_cx *cx = vcx;
  JSValue v = jb_pop(cx);
  JSValue *arr = jb_top(cx);
  int64_t len;
  JS_GetLength(JB.ctx, *arr, &len);
  JS_SetPropertyInt64(JB.ctx, *arr, len, v);
}

void wit_dylib_push_map(void *cx, size_t ty, size_t len) {
  (void)ty, (void)len;
  JSValue global = JS_GetGlobalObject(JB.ctx);
  JSValue ctor = JS_GetPropertyStr(JB.ctx, global, "Map");
  JSValue map = JS_CallConstructor(JB.ctx, ctor, 0, NULL);
  JS_FreeValue(JB.ctx, ctor);
  JS_FreeValue(JB.ctx, global);
  jb_push(cx, map);
}

void wit_dylib_map_append(void *vcx, size_t ty) {
  (void)ty;
  jb_cx *cx = vcx;
  JSContext *ctx = JB.ctx;
  JSValue val = jb_pop(cx), key = jb_pop(cx);
  JSValue *map = jb_top(cx);
  JSValue set = JS_GetPropertyStr(ctx, *map, "set");
  JSValue args[2] = {key, val};
  JSValue r = JS_Call(ctx, set, *map, 2, args);
  JS_FreeValue(ctx, r);
  JS_FreeValue(ctx, set);
  JS_FreeValue(ctx, key);
  JS_FreeValue(ctx, val);
}

void wit_dylib_push_borrow(void *cx, size_t ty, uint32_t handle) {
  if (cz_is_exported_resource(JB.wit, ty)) {
    /* The handle is the rep of one of the script's objects. */
    jb_push(cx, jb_take_rep(JB.ctx, handle, false));
    return;
  }
  JSValue obj = jb_new_imported(JB.ctx, ty, handle, CZ_BORROWED);
  jb_vec_push(&JB.lent, &obj, sizeof obj);
  jb_push(cx, JS_DupValue(JB.ctx, obj));
}

void wit_dylib_push_own(void *cx, size_t ty, uint32_t handle) {
  if (cz_is_exported_resource(JB.wit, ty)) {
    /* One of our own objects comes back: it is the script's again. */
    uint32_t rep = (uint32_t)JB.wit->resources[ty].rep(handle);
    JSValue obj = jb_take_rep(JB.ctx, rep, false);
    JB.reclaiming = rep;
    JB.wit->resources[ty].drop(handle);
    JB.reclaiming = 0;
    jb_push(cx, obj);
    return;
  }
  jb_push(cx, jb_new_imported(JB.ctx, ty, handle, CZ_OWNED));
}

void wit_dylib_push_future(void *cx, size_t ty, uint32_t handle) {
  (void)cx, (void)ty, (void)handle;
  cz_die("futures are not supported by the JavaScript binding yet");
}

void wit_dylib_push_stream(void *cx, size_t ty, uint32_t handle) {
  (void)cx, (void)ty, (void)handle;
  cz_die("streams are not supported by the JavaScript binding yet");
}

/* ====================================================================== */
/* pop: JS -> canonical ABI (checked values)                               */
/* ====================================================================== */

static double jb_pop_number(void *cx) {
  JSValue v = jb_pop(cx);
  double d = 0;
  if (JS_IsBigInt(v)) {
    int64_t i;
    JS_ToBigInt64(JB.ctx, &i, v);
    d = (double)i;
  } else {
    JS_ToFloat64(JB.ctx, &d, v);
  }
  JS_FreeValue(JB.ctx, v);
  return d;
}

uint8_t wit_dylib_pop_u8(void *cx) { return (uint8_t)jb_pop_number(cx); }
uint16_t wit_dylib_pop_u16(void *cx) { return (uint16_t)jb_pop_number(cx); }
uint32_t wit_dylib_pop_u32(void *cx) { return (uint32_t)jb_pop_number(cx); }
int8_t wit_dylib_pop_s8(void *cx) { return (int8_t)jb_pop_number(cx); }
int16_t wit_dylib_pop_s16(void *cx) { return (int16_t)jb_pop_number(cx); }
int32_t wit_dylib_pop_s32(void *cx) { return (int32_t)jb_pop_number(cx); }
float wit_dylib_pop_f32(void *cx) { return (float)jb_pop_number(cx); }
double wit_dylib_pop_f64(void *cx) { return jb_pop_number(cx); }

/* The 64 bits of a checked u64 or s64: a BigInt (JS_ToBigInt64 wraps
 * modulo 2^64, which is the same bits for both) or a safe integer. */
static uint64_t jb_pop_64_bits(void *cx) {
  JSValue v = jb_pop(cx);
  int64_t i = 0;
  if (JS_IsBigInt(v)) JS_ToBigInt64(JB.ctx, &i, v);
  else {
    double d;
    JS_ToFloat64(JB.ctx, &d, v);
    i = (int64_t)d;
  }
  JS_FreeValue(JB.ctx, v);
  return (uint64_t)i;
}

uint64_t wit_dylib_pop_u64(void *cx) { return jb_pop_64_bits(cx); }
int64_t wit_dylib_pop_s64(void *cx) { return (int64_t)jb_pop_64_bits(cx); }

bool wit_dylib_pop_bool(void *cx) {
  JSValue v = jb_pop(cx);
  bool b = JS_ToBool(JB.ctx, v);
  JS_FreeValue(JB.ctx, v);
  return b;
}

uint32_t wit_dylib_pop_char(void *cx) {
  JSValue v = jb_pop(cx);
  size_t len;
  const char *s = JS_ToCStringLen(JB.ctx, &len, v);
  uint32_t cp = 0xfffd;
  if (s) cz_utf8_one(s, len, &cp);
  if (s) JS_FreeCString(JB.ctx, s);
  JS_FreeValue(JB.ctx, v);
  return cp;
}

/* A lone surrogate reaches us as its 3-byte WTF-8 form, which is not
 * UTF-8: replace it with U+FFFD (as TextEncoder does). Returns a new
 * buffer (deferred), or NULL if the text is valid. */
static char *jb_fix_surrogates(jb_cx *cx, const char *s, size_t len) {
  const unsigned char *u = (const unsigned char *)s;
  bool bad = false;
  for (size_t i = 0; i + 2 < len && !bad; i++) bad = u[i] == 0xed && u[i + 1] >= 0xa0;
  if (!bad) return NULL;
  char *out = cz_xmalloc(len);
  memcpy(out, s, len);
  for (size_t i = 0; i + 2 < len; i++)
    if (u[i] == 0xed && u[i + 1] >= 0xa0) {
      out[i] = (char)0xef, out[i + 1] = (char)0xbf, out[i + 2] = (char)0xbd;
      i += 2;
    }
  jb_vec_push(&cx->deferred, &out, sizeof out);
  return out;
}

size_t wit_dylib_pop_string(void *vcx, char **ptr) {
  jb_cx *cx = vcx;
  JSValue v = jb_pop(cx);
  size_t len = 0;
  const char *s = JS_ToCStringLen(JB.ctx, &len, v);
  JS_FreeValue(JB.ctx, v);
  if (!s) cz_die("out of memory converting a string");
  jb_vec_push(&cx->cstrings, &s, sizeof s);
  char *fixed = jb_fix_surrogates(cx, s, len);
  *ptr = fixed ? fixed : (char *)s;
  return len;
}

void wit_dylib_pop_record(void *vcx, size_t ty) {
  jb_cx *cx = vcx;
  const wit_record_t *r = &JB.wit->records[ty];
  JSValue obj = jb_pop(cx);
  /* The first field ends on top. */
  for (size_t f = r->nfields; f-- > 0;) jb_push(cx, JS_GetProperty(JB.ctx, obj, JB.record_atoms[ty][f]));
  JS_FreeValue(JB.ctx, obj);
}

void wit_dylib_pop_tuple(void *vcx, size_t ty) {
  jb_cx *cx = vcx;
  size_t n = JB.wit->tuples[ty].ntypes;
  JSValue arr = jb_pop(cx);
  for (size_t k = n; k-- > 0;) jb_push(cx, JS_GetPropertyUint32(JB.ctx, arr, (uint32_t)k));
  JS_FreeValue(JB.ctx, arr);
}

uint32_t wit_dylib_pop_flags(void *cx, size_t ty) {
  const wit_flags_t *f = &JB.wit->flags[ty];
  JSValue obj = jb_pop(cx);
  uint32_t bits = 0;
  for (size_t b = 0; b < f->nnames; b++) {
    JSValue v = JS_GetProperty(JB.ctx, obj, JB.flag_atoms[ty][b]);
    if (JS_ToBool(JB.ctx, v)) bits |= 1u << b;
    JS_FreeValue(JB.ctx, v);
  }
  JS_FreeValue(JB.ctx, obj);
  return bits;
}

uint32_t wit_dylib_pop_enum(void *cx, size_t ty) {
  const wit_enum_t *e = &JB.wit->enums[ty];
  JSValue v = jb_pop(cx);
  const char *s = JS_ToCString(JB.ctx, v);
  int64_t i = s ? jb_find_name(s, e->nnames, jb_enum_name, ty) : -1;
  if (s) JS_FreeCString(JB.ctx, s);
  JS_FreeValue(JB.ctx, v);
  if (i < 0) cz_die("internal error: unchecked enum value");
  return (uint32_t)i;
}

/* Pops a tagged value: returns its case, pushing `val` if `has_payload`. */
static uint32_t jb_pop_tagged(jb_cx *cx, size_t n, const char *(*name_at)(size_t, size_t), size_t ty,
                              const bool *has_payload_of) {
  JSValue v = jb_pop(cx);
  JSValue tag = JS_GetProperty(JB.ctx, v, JB.atom_tag);
  const char *s = JS_ToCString(JB.ctx, tag);
  int64_t c = s ? jb_find_name(s, n, name_at, ty) : -1;
  if (s) JS_FreeCString(JB.ctx, s);
  JS_FreeValue(JB.ctx, tag);
  if (c < 0) cz_die("internal error: unchecked tagged value");
  if (has_payload_of[c]) jb_push(cx, JS_GetProperty(JB.ctx, v, JB.atom_val));
  JS_FreeValue(JB.ctx, v);
  return (uint32_t)c;
}

uint32_t wit_dylib_pop_variant(void *cx, size_t ty) {
  const wit_variant_t *var = &JB.wit->variants[ty];
  bool payload[256];
  bool *pl = var->ncases <= 256 ? payload : cz_xmalloc(var->ncases);
  for (size_t c = 0; c < var->ncases; c++) pl[c] = !JB_NONE(var->cases[c].ty);
  uint32_t r = jb_pop_tagged(cx, var->ncases, jb_case_name, ty, pl);
  if (pl != payload) free(pl);
  return r;
}

uint32_t wit_dylib_pop_option(void *vcx, size_t ty) {
  jb_cx *cx = vcx;
  if (JB.option_tagged[ty]) {
    static const bool pl[2] = {false, true};
    return jb_pop_tagged(cx, 2, jb_some_none, 0, pl);
  }
  JSValue *top = jb_top(cx);
  if (JS_IsUndefined(*top) || JS_IsNull(*top)) {
    JS_FreeValue(JB.ctx, jb_pop(cx));
    return 0;
  }
  return 1; /* the value itself is the payload */
}

uint32_t wit_dylib_pop_result(void *cx, size_t ty) {
  const wit_result_t *r = &JB.wit->results[ty];
  bool pl[2] = {!JB_NONE(r->ok), !JB_NONE(r->err)};
  return jb_pop_tagged(cx, 2, jb_ok_err, 0, pl);
}

size_t wit_dylib_pop_list(void *vcx, size_t ty, void **ptr) {
  jb_cx *cx = vcx;
  JSContext *ctx = JB.ctx;
  JSValue v = jb_pop(cx);
  wit_type_t et = JB.wit->lists[ty].ty;
  int tk = jb_typed_kind(et);
  int have = JS_GetTypedArrayType(v);
  if (tk >= 0 && (have == tk || (tk == JS_TYPED_ARRAY_UINT8 && have == JS_TYPED_ARRAY_UINT8C))) {
    /* The typed array's bytes are the canonical layout: lend them. */
    size_t off, blen, per;
    JSValue ab = JS_GetTypedArrayBuffer(ctx, v, &off, &blen, &per);
    size_t size;
    uint8_t *data = JS_GetArrayBuffer(ctx, &size, ab);
    JS_FreeValue(ctx, ab);
    jb_vec_push(&cx->held, &v, sizeof v);
    *ptr = data ? data + off : NULL;
    if (!data) *ptr = (void *)(uintptr_t)jb_elem_size(tk); /* empty: any aligned pointer */
    return blen / per;
  }
  int64_t len = 0;
  JS_GetLength(ctx, v, &len);
  wit_type_t rk = WIT_TYPE_KIND(cz_resolve(JB.wit, et));
  if (tk >= 0 || rk == WIT_TYPE_BOOL) {
    /* An array of numbers or booleans: convert it in one pass. */
    size_t size = tk >= 0 ? jb_elem_size(tk) : 1;
    uint8_t *buf = cz_xmalloc((size_t)len * size);
    for (int64_t k = 0; k < len; k++) {
      JSValue e = JS_GetPropertyInt64(ctx, v, k);
      uint8_t *p = buf + k * size;
      if (rk == WIT_TYPE_BOOL) {
        *p = JS_ToBool(ctx, e);
      } else if (tk == JS_TYPED_ARRAY_BIG_INT64 || tk == JS_TYPED_ARRAY_BIG_UINT64) {
        jb_push(cx, e);
        int64_t x = tk == JS_TYPED_ARRAY_BIG_INT64 ? wit_dylib_pop_s64(cx) : (int64_t)wit_dylib_pop_u64(cx);
        memcpy(p, &x, 8);
        continue;
      } else {
        double d;
        JS_ToFloat64(ctx, &d, e);
        switch (tk) {
          case JS_TYPED_ARRAY_UINT8: *p = (uint8_t)d; break;
          case JS_TYPED_ARRAY_INT8: *(int8_t *)p = (int8_t)d; break;
          case JS_TYPED_ARRAY_UINT16: { uint16_t x = (uint16_t)d; memcpy(p, &x, 2); } break;
          case JS_TYPED_ARRAY_INT16: { int16_t x = (int16_t)d; memcpy(p, &x, 2); } break;
          case JS_TYPED_ARRAY_UINT32: { uint32_t x = (uint32_t)d; memcpy(p, &x, 4); } break;
          case JS_TYPED_ARRAY_INT32: { int32_t x = (int32_t)d; memcpy(p, &x, 4); } break;
          case JS_TYPED_ARRAY_FLOAT32: { float x = (float)d; memcpy(p, &x, 4); } break;
          default: memcpy(p, &d, 8); break;
        }
      }
      JS_FreeValue(ctx, e);
    }
    jb_vec_push(&cx->deferred, &buf, sizeof buf);
    JS_FreeValue(ctx, v);
    *ptr = buf;
    return (size_t)len;
  }
  jb_iter it = {v, 0};
  jb_vec_push(&JB_ITERS, &it, sizeof it);
  *ptr = NULL;
  return (size_t)len;
}

void wit_dylib_pop_list_iter_next(void *cx, size_t ty) {
  (void)ty;
  jb_iter *it = &((jb_iter *)JB_ITERS.p)[JB_ITERS.n - 1];
  jb_push(cx, JS_GetPropertyUint32(JB.ctx, it->array, it->next++));
}

void wit_dylib_pop_list_iter(void *cx, size_t ty) {
  (void)cx, (void)ty;
  jb_iter *it = &((jb_iter *)JB_ITERS.p)[--JB_ITERS.n];
  JS_FreeValue(JB.ctx, it->array);
}

size_t wit_dylib_pop_map(void *cx, size_t ty) {
  (void)ty;
  JSValue map = jb_pop(cx);
  JSValue entries = jb_map_entries(JB.ctx, map);
  JS_FreeValue(JB.ctx, map);
  if (JS_IsException(entries)) cz_die("internal error: cannot read a Map's entries");
  int64_t len = 0;
  JS_GetLength(JB.ctx, entries, &len);
  jb_iter it = {entries, 0};
  jb_vec_push(&JB_ITERS, &it, sizeof it);
  return (size_t)len;
}

void wit_dylib_pop_map_iter_next(void *cx, size_t ty) {
  (void)ty;
  jb_iter *it = &((jb_iter *)JB_ITERS.p)[JB_ITERS.n - 1];
  JSValue e = JS_GetPropertyUint32(JB.ctx, it->array, it->next++);
  jb_push(cx, JS_GetPropertyUint32(JB.ctx, e, 1)); /* the value, then the key on top */
  jb_push(cx, JS_GetPropertyUint32(JB.ctx, e, 0));
  JS_FreeValue(JB.ctx, e);
}

void wit_dylib_pop_map_iter(void *cx, size_t ty) {
  wit_dylib_pop_list_iter(cx, ty);
}

uint32_t wit_dylib_pop_borrow(void *cx, size_t ty) {
  JSValue v = jb_pop(cx);
  uint32_t h;
  if (cz_is_exported_resource(JB.wit, ty)) {
    /* Lending our own object to an import is not expressible in WIT; an
     * export's result cannot be a borrow either. */
    cz_die("internal error: borrow of an exported resource popped");
  }
  h = jb_get_res(v, ty)->handle;
  JS_FreeValue(JB.ctx, v);
  return h;
}

uint32_t wit_dylib_pop_own(void *cx, size_t ty) {
  JSValue v = jb_pop(cx);
  uint32_t h;
  if (cz_is_exported_resource(JB.wit, ty)) {
    uint32_t rep = jb_rep_for(JB.ctx, v);
    h = JB.wit->resources[ty].new(rep);
  } else {
    cz_handle *r = jb_get_res(v, ty);
    h = r->handle;
    r->state = CZ_DEAD; /* moved */
  }
  JS_FreeValue(JB.ctx, v);
  return h;
}

uint32_t wit_dylib_pop_future(void *cx, size_t ty) {
  (void)cx, (void)ty;
  cz_die("futures are not supported by the JavaScript binding yet");
}

uint32_t wit_dylib_pop_stream(void *cx, size_t ty) {
  (void)cx, (void)ty;
  cz_die("streams are not supported by the JavaScript binding yet");
}
