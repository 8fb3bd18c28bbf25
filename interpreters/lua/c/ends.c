/*
 * Futures and streams: their ends as Lua userdata, and the module
 * componentize.async.
 *
 * A future or stream that comes into Lua (an export's argument, an
 * import's result, a field of either) is its readable end. The script makes
 * new ones with componentize.async.future(payload) and .stream(payload),
 * which return the readable and the writable end; the readable end is what
 * goes out (as an import's argument or an export's result) and is moved
 * there: the Lua value is closed afterwards.
 *
 * Reads and writes suspend the calling fiber (tasks.c) until the other side
 * takes part, so they work in an async export's coroutine (or one it
 * spawned) only:
 *   stream reader  r:read([n])  up to n items (default LB_READ_DEFAULT):
 *                               a string for stream<u8>, an array of values
 *                               otherwise, the count for a stream without a
 *                               payload; nil once the writer is gone
 *   stream writer  w:write(x)   a string (stream<u8>), an array of values or
 *                               a count (no payload); returns how many items
 *                               the reader took: fewer once it is gone
 *   future reader  r:read()     the value (true without a payload); the end
 *                               is closed once it is read
 *   future writer  w:write(v)   true once the reader took it, false when the
 *                               reader is gone; then the end is closed
 *   any end        e:close()    drops the end (also on garbage collection
 *                               and as a to-be-closed variable)
 * One operation at a time per end: a second coroutine reading the same end
 * while a read is in flight gets a Lua error.
 *
 * The component model keeps apart the future (and stream) types of
 * different functions even when their payloads are the same, and a handle
 * of one cannot be passed as another. So a pair from componentize.async is
 * made lazily: its type is the one of the first function its readable end
 * is passed to, or the first with that payload if an end is used before.
 */
#include "binding.h"

enum { LB_EVENT_STREAM_READ = 2, LB_EVENT_STREAM_WRITE = 3, LB_EVENT_FUTURE_READ = 4, LB_EVENT_FUTURE_WRITE = 5 };
/* A copy's result: BLOCKED, or the state in the low bits and, for a
 * stream, the count above it (a future's COMPLETED carries no count). */
#define LB_COPY_BLOCKED 0xffffffffu
enum { LB_COPY_COMPLETED = 0, LB_COPY_DROPPED = 1 };

/* Items a stream read asks for when the script gives no count. */
#define LB_READ_DEFAULT_BYTES 65536
#define LB_READ_DEFAULT_ITEMS 64

/* The four kinds of end, in the order of LB_END_META. */
enum { LB_STREAM_READER, LB_STREAM_WRITER, LB_FUTURE_READER, LB_FUTURE_WRITER };
static const char *const LB_END_META[] = {"componentize.stream-reader", "componentize.stream-writer",
                                          "componentize.future-reader", "componentize.future-writer"};

typedef struct lb_end {
  uint32_t handle; /* 0 once closed or moved out, or while unmade */
  size_t ty;       /* index into wit->streams or wit->futures */
  int kind;
  bool unmade;     /* from componentize.async, the pair not created yet; the
                      other end is the user value until it is */
  bool busy;       /* a read or write is in flight */
  bool done;       /* the other end is gone (or a future's value went) */
  bool written;    /* future writer: a value was written */
} lb_end;

static bool lb_end_is_stream(const lb_end *e) { return e->kind <= LB_STREAM_WRITER; }
static bool lb_end_is_writer(const lb_end *e) { return e->kind == LB_STREAM_WRITER || e->kind == LB_FUTURE_WRITER; }

/* What both kinds of type table have in common. */
typedef struct lb_payload {
  wit_type_t ty;
  wit_lift_fn_t lift;
  wit_lower_fn_t lower;
  size_t size, align;
} lb_payload;

static lb_payload lb_end_payload(const lb_end *e) {
  if (lb_end_is_stream(e)) {
    const wit_stream_t *s = &LB.wit->streams[e->ty];
    return (lb_payload){s->ty, s->lift, s->lower, s->abi_payload_size, s->abi_payload_align};
  }
  const wit_future_t *f = &LB.wit->futures[e->ty];
  return (lb_payload){f->ty, f->lift, f->lower, f->abi_payload_size, f->abi_payload_align};
}

/* The items a copy of e moved, from its result. */
static size_t lb_copy_count(const lb_end *e, uint32_t code) {
  if (lb_end_is_stream(e)) return code >> 4;
  return (code & 0xf) == LB_COPY_COMPLETED ? 1 : 0;
}

static bool lb_payload_is_bytes(const lb_payload *p) { return !LB_NONE(p->ty) && WIT_TYPE_KIND(p->ty) == WIT_TYPE_U8; }

/* ---- type spellings ------------------------------------------------------ */

/* Appends the WIT spelling of ty ("result<option<fields>, error-code>"):
 * named types by name, anonymous ones by structure. */
static void lb_spell(luaL_Buffer *b, wit_type_t ty);

static void lb_spell_args(luaL_Buffer *b, const char *what, size_t n, const wit_type_t *tys) {
  luaL_addstring(b, what);
  luaL_addchar(b, '<');
  for (size_t i = 0; i < n; i++) {
    if (i) luaL_addstring(b, ", ");
    if (LB_NONE(tys[i])) luaL_addchar(b, '_');
    else lb_spell(b, tys[i]);
  }
  luaL_addchar(b, '>');
}

static void lb_spell(luaL_Buffer *b, wit_type_t ty) {
  const wit_t *w = LB.wit;
  size_t k = WIT_TYPE_KIND(ty), i = WIT_TYPE_INDEX(ty);
  const char *name = NULL;
  switch (k) {
    case WIT_TYPE_RECORD: name = w->records[i].name; break;
    case WIT_TYPE_OWN: name = w->resources[i].name; break;
    case WIT_TYPE_FLAGS: name = w->flags[i].name; break;
    case WIT_TYPE_TUPLE: name = w->tuples[i].name; break;
    case WIT_TYPE_VARIANT: name = w->variants[i].name; break;
    case WIT_TYPE_ENUM: name = w->enums[i].name; break;
    case WIT_TYPE_OPTION: name = w->options[i].name; break;
    case WIT_TYPE_RESULT: name = w->results[i].name; break;
    case WIT_TYPE_LIST: name = w->lists[i].name; break;
    case WIT_TYPE_MAP: name = w->maps[i].name; break;
    case WIT_TYPE_FIXED_LENGTH_LIST: name = w->fixed_length_lists[i].name; break;
    case WIT_TYPE_FUTURE: name = w->futures[i].name; break;
    case WIT_TYPE_STREAM: name = w->streams[i].name; break;
    case WIT_TYPE_ALIAS: name = w->aliases[i].name; break;
    default: break;
  }
  if (name) {
    luaL_addstring(b, name);
    return;
  }
  wit_type_t two[2];
  switch (k) {
    case WIT_TYPE_BORROW:
      luaL_addstring(b, "borrow<");
      luaL_addstring(b, w->resources[i].name);
      luaL_addchar(b, '>');
      return;
    case WIT_TYPE_TUPLE: lb_spell_args(b, "tuple", w->tuples[i].ntypes, w->tuples[i].types); return;
    case WIT_TYPE_OPTION: lb_spell_args(b, "option", 1, &w->options[i].ty); return;
    case WIT_TYPE_LIST: lb_spell_args(b, "list", 1, &w->lists[i].ty); return;
    case WIT_TYPE_RESULT: {
      const wit_result_t *r = &w->results[i];
      if (LB_NONE(r->ok) && LB_NONE(r->err)) luaL_addstring(b, "result");
      else if (LB_NONE(r->err)) lb_spell_args(b, "result", 1, &r->ok);
      else lb_spell_args(b, "result", 2, (two[0] = r->ok, two[1] = r->err, two));
      return;
    }
    case WIT_TYPE_MAP:
      lb_spell_args(b, "map", 2, (two[0] = w->maps[i].key_type, two[1] = w->maps[i].value_type, two));
      return;
    case WIT_TYPE_FIXED_LENGTH_LIST: {
      lb_spell_args(b, "list", 1, &w->fixed_length_lists[i].ty);
      luaL_buffsub(b, 1);
      lua_pushfstring(b->L, ", %d>", (int)w->fixed_length_lists[i].size);
      luaL_addvalue(b);
      return;
    }
    case WIT_TYPE_FUTURE:
    case WIT_TYPE_STREAM: {
      wit_type_t p = k == WIT_TYPE_FUTURE ? w->futures[i].ty : w->streams[i].ty;
      const char *what = k == WIT_TYPE_FUTURE ? "future" : "stream";
      if (LB_NONE(p)) luaL_addstring(b, what);
      else lb_spell_args(b, what, 1, &p);
      return;
    }
    default: {
      char buf[64];
      lb_type_name(ty, buf, sizeof buf);
      luaL_addstring(b, buf);
    }
  }
}

/* Pushes the spelling of the payload p ("" without one). */
static const char *lb_push_payload_spelling(lua_State *L, wit_type_t p) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (!LB_NONE(p)) lb_spell(&b, p);
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

/* The spelling the script gave, with what may differ dropped: blanks, and
 * '_' for '-' (Lua names). */
static void lb_push_normal_spelling(lua_State *L, const char *s) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (; *s; s++) {
    if (*s == ' ' || *s == '\t' || *s == '\n') continue;
    luaL_addchar(&b, *s == '_' ? '-' : *s);
  }
  luaL_pushresult(&b);
}

/* ---- the userdata ------------------------------------------------------- */

static lb_end *lb_push_end(lua_State *L, int kind, size_t ty, uint32_t handle) {
  lb_end *e = lua_newuserdatauv(L, sizeof *e, 1);
  *e = (lb_end){.handle = handle, .ty = ty, .kind = kind};
  luaL_setmetatable(L, LB_END_META[kind]);
  return e;
}

/* The end at idx (of any kind), or NULL. */
static lb_end *lb_test_end(lua_State *L, int idx) {
  for (int k = 0; k < 4; k++) {
    lb_end *e = luaL_testudata(L, idx, LB_END_META[k]);
    if (e) return e;
  }
  return NULL;
}

/* Creates the pair of the unmade end at idx, with type ty, for it and the
 * other end; then they no longer hold each other. */
static void lb_end_make(lua_State *L, int idx, size_t ty) {
  lb_end *e = lua_touserdata(L, idx);
  if (!e->unmade) return;
  idx = lua_absindex(L, idx);
  lua_getiuservalue(L, idx, 1);
  lb_end *other = lua_touserdata(L, -1);
  lua_pushnil(L);
  lua_setiuservalue(L, -2, 1);
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_setiuservalue(L, idx, 1);
  bool stream = lb_end_is_stream(e);
  uint64_t ends = stream ? LB.wit->streams[ty].new() : LB.wit->futures[ty].new();
  lb_end *reader = lb_end_is_writer(e) ? other : e;
  lb_end *writer = reader == e ? other : e;
  reader->handle = (uint32_t)ends;
  writer->handle = (uint32_t)(ends >> 32);
  reader->ty = writer->ty = ty;
  reader->unmade = writer->unmade = false;
}

static lb_end *lb_check_end(lua_State *L, int idx, const char *op) {
  lb_end *e = lb_test_end(L, idx);
  if (!e) luaL_typeerror(L, idx, "a future or stream end");
  lb_end_make(L, idx, e->ty);
  if (!e->handle) luaL_error(L, "%s: the %s is closed (or was passed on)", op, LB_END_META[e->kind] + 13);
  if (e->busy) luaL_error(L, "%s: another coroutine is already using this %s", op, LB_END_META[e->kind] + 13);
  return e;
}

static void lb_end_drop(lb_end *e) {
  uint32_t h = e->handle;
  e->handle = 0;
  switch (e->kind) {
    case LB_STREAM_READER: LB.wit->streams[e->ty].drop_readable(h); break;
    case LB_STREAM_WRITER: LB.wit->streams[e->ty].drop_writable(h); break;
    case LB_FUTURE_READER: LB.wit->futures[e->ty].drop_readable(h); break;
    default: LB.wit->futures[e->ty].drop_writable(h); break;
  }
}

static int lb_end_close(lua_State *L) {
  lb_end *e = lb_test_end(L, 1);
  if (!e) return luaL_typeerror(L, 1, "a future or stream end");
  if (!e->handle && !e->unmade) return 0;
  if (e->busy) return luaL_error(L, "close: another coroutine is using this %s", LB_END_META[e->kind] + 13);
  if (e->kind == LB_FUTURE_WRITER && !e->written && !e->done)
    return luaL_error(L, "close: write the future's value first (the component model traps when the "
                         "writable end of a future is dropped before a value was written)");
  lb_end_make(L, 1, e->ty);
  lb_end_drop(e);
  return 0;
}

/* Garbage collection: an end nobody can use any more is dropped, except a
 * future writer that was never written, which would trap (leaving it makes
 * its reader wait for ever instead: write every future you make). */
static int lb_end_gc(lua_State *L) {
  lb_end *e = lua_touserdata(L, 1);
  if (e->handle && !e->busy && !(e->kind == LB_FUTURE_WRITER && !e->written && !e->done)) lb_end_drop(e);
  return 0;
}

static int lb_end_tostring(lua_State *L) {
  lb_end *e = lua_touserdata(L, 1);
  lb_push_payload_spelling(L, lb_end_payload(e).ty);
  const char *payload = lua_tostring(L, -1);
  lua_pushfstring(L, "%s%s%s%s %s (%s)", lb_end_is_stream(e) ? "stream" : "future", *payload ? "<" : "",
                  payload, *payload ? ">" : "", lb_end_is_writer(e) ? "writer" : "reader",
                  e->handle || e->unmade ? (e->busy ? "busy" : "open") : "closed");
  return 1;
}

/* ---- reads -------------------------------------------------------------- */

typedef struct lb_copy {
  lb_end *e;   /* the end, kept alive at stack index 1 */
  void *buf;   /* items; owned unless it is a string's bytes */
  bool own_buf;
  size_t n;    /* items asked for (read) or to write */
  size_t done; /* items written so far */
  lb_cx cx;    /* a write's lowering context (its buffers) */
} lb_copy;

static void *lb_copy_alloc(const lb_payload *p, size_t n) {
  static max_align_t lb_no_items;
  if (p->size == 0 || n == 0) return &lb_no_items;
  size_t align = p->align < sizeof(void *) ? sizeof(void *) : p->align;
  void *buf = aligned_alloc(align, (p->size * n + align - 1) / align * align);
  if (!buf) cz_die("out of memory (%zu items of a future or stream)", n);
  return buf;
}

static void lb_copy_free(lb_copy *c) {
  const lb_payload p = lb_end_payload(c->e);
  if (c->own_buf && p.size && c->n) free(c->buf);
  c->e->busy = false;
  free(c);
}

/* Starts c's read, or its write from item c->done on; a copy that does not
 * complete at once waits for its event. Then k (lb_read_done or
 * lb_write_done) runs with the result in the fiber's code, and with the
 * fiber's `cancelled` set if the task's cancellation cancelled the copy:
 * k takes in what it moved, then raises componentize.async.cancelled. */
static int lb_copy_start(lua_State *L, lb_copy *c, bool write, lua_KFunction k) {
  lb_end *e = c->e;
  lb_fiber *f = lb_running_fiber;
  bool stream = lb_end_is_stream(e);
  char *at = (char *)c->buf + c->done * lb_end_payload(e).size;
  uint32_t st;
  if (write) st = stream ? LB.wit->streams[e->ty].write(e->handle, at, c->n - c->done) : LB.wit->futures[e->ty].write(e->handle, at);
  else st = stream ? LB.wit->streams[e->ty].read(e->handle, at, c->n) : LB.wit->futures[e->ty].read(e->handle, at);
  uint32_t event = stream ? (write ? LB_EVENT_STREAM_WRITE : LB_EVENT_STREAM_READ)
                          : (write ? LB_EVENT_FUTURE_WRITE : LB_EVENT_FUTURE_READ);
  if (st == LB_COPY_BLOCKED) {
    uint32_t (*cancel)(uint32_t) = stream ? (write ? LB.wit->streams[e->ty].cancel_write : LB.wit->streams[e->ty].cancel_read)
                                          : (write ? LB.wit->futures[e->ty].cancel_write : LB.wit->futures[e->ty].cancel_read);
    return lb_task_wait(L, f, event, e->handle, cancel, (lua_KContext)c, k);
  }
  f->code = st;
  return k(L, LUA_OK, (lua_KContext)c);
}

static int lb_read_done(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lb_copy *c = (lb_copy *)ctx;
  lb_end *e = c->e;
  uint32_t code = lb_running_fiber->code;
  bool cancelled = lb_fiber_take_cancelled(lb_running_fiber);
  size_t count = lb_copy_count(e, code);
  if ((code & 0xf) == LB_COPY_DROPPED) e->done = true;
  if (count == 0 && !e->done && !cancelled) return lb_copy_start(L, c, false, lb_read_done); /* nothing yet: read again */
  const lb_payload p = lb_end_payload(e);
  if (count == 0) {
    lua_pushnil(L);
  } else if (LB_NONE(p.ty)) {
    if (lb_end_is_stream(e)) lua_pushinteger(L, (lua_Integer)count);
    else lua_pushboolean(L, 1);
  } else if (lb_payload_is_bytes(&p)) {
    lua_pushlstring(L, c->buf, count);
  } else {
    lb_cx cx;
    lb_cx_init(&cx, L);
    if (lb_end_is_stream(e)) lua_createtable(L, (int)count, 0);
    for (size_t i = 0; i < count; i++) {
      luaL_checkstack(L, 16, "reading a stream");
      p.lift(&cx, (char *)c->buf + i * p.size);
      if (lb_end_is_stream(e)) lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lb_cx_release(&cx);
  }
  lb_copy_free(c);
  if (cancelled) {
    /* What a cancelled read got is dropped with the Lua values. */
    if (!lb_end_is_stream(e) && count) {
      e->done = true;
      lb_end_drop(e);
    }
    return lb_raise_cancelled(L);
  }
  /* A future is read once: its end goes with its value. */
  if (!lb_end_is_stream(e)) {
    e->done = true;
    lb_end_drop(e);
  }
  return 1;
}

static int lb_end_read(lua_State *L) {
  lb_end *e = lb_check_end(L, 1, "read");
  if (lb_end_is_writer(e)) return luaL_error(L, "read: this is the writable end; read the other one");
  lb_task_fiber(L, "reading a future or stream");
  lua_settop(L, 2);
  if (e->done) {
    lua_pushnil(L);
    return 1;
  }
  const lb_payload p = lb_end_payload(e);
  size_t n = 1;
  if (lb_end_is_stream(e)) {
    lua_Integer dflt = lb_payload_is_bytes(&p) ? LB_READ_DEFAULT_BYTES : LB_READ_DEFAULT_ITEMS;
    lua_Integer want = luaL_optinteger(L, 2, dflt);
    luaL_argcheck(L, want >= 1 && want <= (1 << 24), 2, "the count must be 1 to 16777216");
    n = (size_t)want;
  }
  lb_copy *c = cz_xmalloc(sizeof *c);
  *c = (lb_copy){.e = e, .buf = lb_copy_alloc(&p, n), .own_buf = true, .n = n};
  e->busy = true;
  return lb_copy_start(L, c, false, lb_read_done);
}

/* ---- writes ------------------------------------------------------------- */

/* Items a write lowered that its reader did not take (it went away, or the
 * write was cancelled) are still this component's, and no Lua value holds
 * them any more. For a payload that is a handle, each is dropped, as if its
 * value had been collected: a resource is released, a future or stream
 * closed. (A handle inside a compound payload is not looked for.) */
static void lb_drop_untaken(const lb_payload *p, const void *buf, size_t from, size_t n) {
  const wit_t *w = LB.wit;
  if (LB_NONE(p->ty)) return;
  wit_type_t t = p->ty;
  while (WIT_TYPE_KIND(t) == WIT_TYPE_ALIAS) t = w->aliases[WIT_TYPE_INDEX(t)].ty;
  size_t k = WIT_TYPE_KIND(t), i = WIT_TYPE_INDEX(t);
  if (k != WIT_TYPE_OWN && k != WIT_TYPE_STREAM && k != WIT_TYPE_FUTURE) return;
  for (size_t j = from; j < n; j++) {
    uint32_t h = ((const uint32_t *)buf)[j];
    if (k == WIT_TYPE_OWN) w->resources[i].drop(h);
    else if (k == WIT_TYPE_STREAM) w->streams[i].drop_readable(h);
    else w->futures[i].drop_readable(h);
  }
}

static int lb_write_done(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lb_copy *c = (lb_copy *)ctx;
  lb_end *e = c->e;
  uint32_t code = lb_running_fiber->code;
  bool cancelled = lb_fiber_take_cancelled(lb_running_fiber);
  c->done += lb_copy_count(e, code);
  if ((code & 0xf) == LB_COPY_DROPPED) e->done = true;
  if (c->done < c->n && !e->done && !cancelled) return lb_copy_start(L, c, true, lb_write_done);
  size_t done = c->done;
  if (done < c->n) {
    const lb_payload p = lb_end_payload(e);
    lb_drop_untaken(&p, c->buf, done, c->n);
  }
  lb_cx_release(&c->cx);
  lb_copy_free(c);
  if (cancelled) {
    /* A future's value went if the write completed; else the writer stays
     * open (unwritten, so it cannot be closed). */
    if (!lb_end_is_stream(e) && done == 1) {
      e->written = true;
      lb_end_drop(e);
    }
    return lb_raise_cancelled(L);
  }
  if (lb_end_is_stream(e)) {
    lua_pushinteger(L, (lua_Integer)done);
  } else {
    e->written = true;
    lb_end_drop(e);
    lua_pushboolean(L, done == 1);
  }
  return 1;
}

static int lb_end_write(lua_State *L) {
  lb_end *e = lb_check_end(L, 1, "write");
  if (!lb_end_is_writer(e)) return luaL_error(L, "write: this is the readable end; write the other one");
  lb_task_fiber(L, "writing a future or stream");
  lua_settop(L, 2);
  const lb_payload p = lb_end_payload(e);
  if (e->done) {
    /* The reader is gone: nothing more is taken. */
    if (lb_end_is_stream(e)) {
      lua_pushinteger(L, 0);
    } else {
      lb_end_drop(e);
      lua_pushboolean(L, 0);
    }
    return 1;
  }
  lb_copy *c = cz_xmalloc(sizeof *c);
  *c = (lb_copy){.e = e, .own_buf = true, .n = 1};
  lb_cx_init(&c->cx, L);
  bool items = false;
  if (lb_end_is_stream(e) && LB_NONE(p.ty)) {
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n >= 0, 2, "the count must not be negative");
    c->n = (size_t)n;
  } else if (lb_payload_is_bytes(&p) && lb_end_is_stream(e)) {
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    c->buf = (void *)s; /* the string stays at index 2 until the write is done */
    c->own_buf = false;
    c->n = len;
  } else if (lb_end_is_stream(e)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    c->n = (size_t)lua_rawlen(L, 2);
    items = true;
  } else if (!LB_NONE(p.ty)) {
    items = true;
  }
  if (items) {
    /* Checked first, so that a bad item is a Lua error before anything is
     * lowered. */
    for (size_t i = 0; i < c->n; i++) {
      if (lb_end_is_stream(e)) lua_rawgeti(L, 2, (lua_Integer)i + 1);
      else lua_pushvalue(L, 2);
      lb_path root = {.label = lb_end_is_stream(e) ? "items" : "value"};
      lb_path at = {.up = &root, .index = (lua_Integer)i + 1};
      if (!lb_check(L, -1, p.ty, lb_end_is_stream(e) ? &at : &root)) {
        lb_cx_release(&c->cx);
        free(c);
        return luaL_error(L, "bad argument #1 to 'write' (%s)", LB_ERR);
      }
      lua_pop(L, 1);
    }
  }
  if (lb_end_is_stream(e) && c->n == 0) {
    lb_cx_release(&c->cx);
    free(c);
    lua_pushinteger(L, 0);
    return 1;
  }
  if (c->own_buf) c->buf = lb_copy_alloc(&p, c->n);
  if (items) {
    bool gc;
    lb_gc_pause(L, &gc);
    for (size_t i = 0; i < c->n; i++) {
      luaL_checkstack(L, 16, "writing a stream");
      if (lb_end_is_stream(e)) lua_rawgeti(L, 2, (lua_Integer)i + 1);
      else lua_pushvalue(L, 2);
      p.lower(&c->cx, (char *)c->buf + i * p.size);
    }
    lb_gc_resume(L, gc);
  }
  e->busy = true;
  return lb_copy_start(L, c, true, lb_write_done);
}

/* ---- pushes and pops ---------------------------------------------------- */

void wit_dylib_push_future(void *cx, size_t ty, uint32_t h) { lb_push_end(LB_L(cx), LB_FUTURE_READER, ty, h); }

void wit_dylib_push_stream(void *cx, size_t ty, uint32_t h) { lb_push_end(LB_L(cx), LB_STREAM_READER, ty, h); }

/* The readable end on top (checked by lb_check_end_value) is moved out,
 * as one of type ty. */
static uint32_t lb_pop_end(lua_State *L, size_t ty) {
  lb_end *e = lua_touserdata(L, -1);
  lb_end_make(L, -1, ty);
  uint32_t h = e->handle;
  e->handle = 0;
  lua_pop(L, 1);
  return h;
}

uint32_t wit_dylib_pop_future(void *cx, size_t ty) { return lb_pop_end(LB_L(cx), ty); }

uint32_t wit_dylib_pop_stream(void *cx, size_t ty) { return lb_pop_end(LB_L(cx), ty); }

/* For lb_check: is the value at idx an open readable end that fits ty (a
 * future or stream type)? On failure writes the problem to `why`. */
static bool lb_check_end_value(lua_State *L, int idx, wit_type_t ty, char *why, size_t len) {
  bool stream = WIT_TYPE_KIND(ty) == WIT_TYPE_STREAM;
  wit_type_t want = stream ? LB.wit->streams[WIT_TYPE_INDEX(ty)].ty : LB.wit->futures[WIT_TYPE_INDEX(ty)].ty;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lb_spell(&b, ty);
  luaL_pushresult(&b);
  const char *wanted = lua_tostring(L, -1);
  lb_end *e = lb_test_end(L, idx);
  bool ok = false;
  if (!e || lb_end_is_stream(e) != stream) {
    snprintf(why, len, "expected the readable end of a %s, got %s", wanted,
             e ? LB_END_META[e->kind] + 13 : luaL_typename(L, idx));
  } else if (lb_end_is_writer(e)) {
    snprintf(why, len, "expected the readable end of a %s, got its writable end (pass the reader)", wanted);
  } else if ((!e->handle && !e->unmade) || e->busy) {
    snprintf(why, len, "the %s reader is %s", wanted, e->handle ? "being read" : "closed (or was passed on)");
  } else {
    /* Types compare by structure, as the component model's do. */
    lb_push_payload_spelling(L, want);
    lb_push_payload_spelling(L, lb_end_payload(e).ty);
    ok = strcmp(lua_tostring(L, -1), lua_tostring(L, -2)) == 0;
    if (!ok) {
      snprintf(why, len, "expected the readable end of a %s, got one whose payload is %s", wanted, lua_tostring(L, -1));
    } else if (!e->unmade && e->ty != WIT_TYPE_INDEX(ty)) {
      ok = false;
      snprintf(why, len,
               "expected the readable end of a %s, got one of another function's %s type with the same "
               "payload, which the component model keeps apart (an end from componentize.async takes "
               "the type of the first function it is passed to): make a new one for this call",
               wanted, stream ? "stream" : "future");
    }
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
  return ok;
}

/* ---- componentize.async ------------------------------------------------- */

/* async.future(payload) / async.stream(payload): a new pair, reader and
 * writer. The payload is spelled as in WIT and must be one the world's
 * functions carry. */
static int lb_async_new(lua_State *L) {
  bool stream = lua_toboolean(L, lua_upvalueindex(1));
  const char *what = stream ? "componentize.async.stream" : "componentize.async.future";
  const char *given = luaL_optstring(L, 1, "");
  lb_task_fiber(L, what);
  lb_push_normal_spelling(L, given);
  const char *want = lua_tostring(L, -1);
  size_t count = stream ? LB.wit->num_streams : LB.wit->num_futures;
  lua_pushliteral(L, ""); /* the payloads there are, for the message */
  for (size_t i = 0; i < count; i++) {
    wit_type_t p = stream ? LB.wit->streams[i].ty : LB.wit->futures[i].ty;
    bool usable = stream ? LB.wit->streams[i].new != NULL : LB.wit->futures[i].new != NULL;
    if (!usable) continue;
    lb_push_payload_spelling(L, p);
    lb_push_normal_spelling(L, lua_tostring(L, -1));
    bool match = strcmp(lua_tostring(L, -1), want) == 0;
    lua_pop(L, 1);
    if (match) {
      lua_pop(L, 2);
      lb_push_end(L, stream ? LB_STREAM_READER : LB_FUTURE_READER, i, 0)->unmade = true;
      lb_push_end(L, stream ? LB_STREAM_WRITER : LB_FUTURE_WRITER, i, 0)->unmade = true;
      lua_pushvalue(L, -1);
      lua_setiuservalue(L, -3, 1);
      lua_pushvalue(L, -2);
      lua_setiuservalue(L, -2, 1);
      return 2;
    }
    /* Each spelling once: several functions may carry the same payload. */
    lua_pushfstring(L, "\"%s\"", lua_tostring(L, -1));
    if (!strstr(lua_tostring(L, -3), lua_tostring(L, -1))) {
      lua_pushfstring(L, "%s%s%s", lua_tostring(L, -3), lua_rawlen(L, -3) ? ", " : "", lua_tostring(L, -1));
      lua_replace(L, -4);
    }
    lua_pop(L, 2);
  }
  return luaL_error(L, "%s(\"%s\"): the world has no %s with that payload (the payloads its functions "
                       "carry: %s)",
                    what, given, stream ? "stream" : "future",
                    lua_rawlen(L, -1) ? lua_tostring(L, -1) : "none");
}

static int lb_async_load(lua_State *L) {
  lua_createtable(L, 0, 4);
  lua_pushboolean(L, 0);
  lua_pushcclosure(L, lb_async_new, 1);
  lua_setfield(L, -2, "future");
  lua_pushboolean(L, 1);
  lua_pushcclosure(L, lb_async_new, 1);
  lua_setfield(L, -2, "stream");
  lua_pushcfunction(L, lb_task_spawn);
  lua_setfield(L, -2, "spawn");
  lb_push_cancelled(L);
  lua_setfield(L, -2, "cancelled");
  return 1;
}

static void lb_ends_init(lua_State *L) {
  static const luaL_Reg methods[] = {{"read", lb_end_read}, {"write", lb_end_write}, {"close", lb_end_close}, {NULL, NULL}};
  for (int k = 0; k < 4; k++) {
    luaL_newlib(L, methods);
    luaL_newmetatable(L, LB_END_META[k]);
    lb_set_handle_meta(L, -2, lb_end_gc, lb_end_close, lb_end_tostring);
    lua_pop(L, 2);
  }
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, lb_async_load);
  lua_setfield(L, -2, "componentize.async");
  lua_pop(L, 1);
}
