/*
 * Async exports: each call is a task, and a task runs Lua coroutines
 * (fibers): the export's function, and those it spawns.
 *
 * The bindings lift an async export's arguments onto a fresh context
 * (wit_dylib_export_start), then hand it over (wit_dylib_export_async_call).
 * The task resumes its fibers in turn until each has finished or is
 * suspended, then answers the host:
 *   - a fiber that called `coroutine.yield()` in its own coroutine is
 *     resumed at the task's next turn, after the host ran other tasks
 *     (YIELD);
 *   - a fiber that waits (an async import that has not returned, a read or
 *     write of a future or stream that did not complete at once) is resumed
 *     when the event it waits for arrives (WAIT on the task's waitable set);
 *   - when none is left, the task ends (EXIT).
 * When the export's own function returns, its result goes back through the
 * export's task.return at once; spawned fibers may go on after that (an HTTP
 * handler returns its response, then writes the body).
 *
 * A task's state is found again through its context slot, with the link
 * stage's componentize_task_context_get/set (see componentize.h).
 * Errors of the export's function follow the sync exports' rules
 * (lb_export_outcome); an error in a spawned fiber traps. Borrowed handles
 * among the arguments are the task's own: they are kept in a lent table of
 * the task, swapped in while its fibers run, and dropped when the export's
 * function finishes.
 *
 * Cancellation. When the caller cancels a call that has not returned yet
 * (event TASK_CANCELLED), every wait of the task's fibers is cancelled: an
 * async import's subtask with subtask.cancel, a read or write with the
 * stream's or future's cancel; so is every wait a fiber starts afterwards.
 * The fiber then resumes with the error componentize.async.cancelled,
 * raised where it waited, once what the cancelled operation had done is
 * taken in (an import that returned anyway is lifted; items a read got
 * are lifted). Uncaught, it unwinds the fiber, running its to-be-closed
 * variables; the export's function ending so makes the task end without a
 * result (task.cancel), and a spawned fiber ending so ends quietly. A
 * function that catches it may still return a result, which goes back as
 * usual. Cancellation waits for nothing: a fiber that never waits again is
 * not stopped.
 */
#include "binding.h"

/* The canonical ABI's callback codes, events and subtask states. */
enum { LB_CALLBACK_EXIT = 0, LB_CALLBACK_YIELD = 1, LB_CALLBACK_WAIT = 2 };
enum { LB_EVENT_NONE = 0, LB_EVENT_SUBTASK = 1, LB_EVENT_CANCELLED = 6 };
enum { LB_SUBTASK_RETURNED = 2 };

/* The registry key of componentize.async.cancelled. */
#define LB_CANCELLED_KEY "componentize.cancelled"


typedef enum { LB_FIBER_READY, LB_FIBER_YIELDED, LB_FIBER_WAITING } lb_fiber_state;

typedef struct lb_fiber {
  struct lb_fiber *next;
  lua_State *co;
  int ref_co;        /* registry reference to co */
  lb_fiber_state state;
  int nargs;         /* values to resume co with (its first resume only) */
  uint32_t event;    /* WAITING: the event that ends the wait ... */
  uint32_t waitable; /* ... for this subtask or future/stream end */
  uint32_t code;     /* that event's payload, once it came */
  /* How to cancel the wait: NULL for a subtask (subtask.cancel), else the
   * end's cancel-read or cancel-write. */
  uint32_t (*cancel)(uint32_t waitable);
  bool cancelled;    /* its wait was cancelled: raise once it is taken in */
} lb_fiber;

typedef struct lb_task {
  size_t which;
  /* The context the bindings lift onto and task.return pops from. */
  lb_cx cx;
  int ref_thread;   /* registry reference to cx.L */
  lb_fiber *fibers; /* in the order they were started */
  lb_fiber *main;   /* the export's function; NULL once it finished */
  int ref_lent;     /* the task's borrowed handles */
  size_t nlent;
  uint32_t set;     /* the task's waitable set, 0 until a fiber first waits */
  bool cancelled;   /* the caller cancelled the call */
} lb_task;

/* The task and fiber running now (NULL outside lb_task_run). */
static lb_task *lb_running;
static lb_fiber *lb_running_fiber;

/* Makes the task's lent table the current one (the previous goes in the
 * task while it runs). */
static void lb_task_swap_lent(lb_task *t) {
  int ref = LB.ref_lent;
  size_t n = LB.nlent;
  LB.ref_lent = t->ref_lent;
  LB.nlent = t->nlent;
  t->ref_lent = ref;
  t->nlent = n;
}

static bool lb_is_async_export(size_t which) { return LB.wit->export_funcs[which].task_return != NULL; }

/* A new fiber at the end of t's list, ready to run the function below its
 * `nargs` arguments on top of L (which are moved to it). */
static lb_fiber *lb_fiber_new(lb_task *t, lua_State *L, int nargs) {
  lb_fiber *f = cz_xmalloc(sizeof *f);
  f->co = lua_newthread(L);
  f->ref_co = luaL_ref(L, LUA_REGISTRYINDEX);
  if (!lua_checkstack(f->co, nargs + 8)) cz_die("cannot grow the Lua stack");
  lua_xmove(L, f->co, nargs + 1);
  f->state = LB_FIBER_READY;
  f->nargs = nargs;
  f->cancelled = false;
  f->next = NULL;
  lb_fiber **tail = &t->fibers;
  while (*tail) tail = &(*tail)->next;
  *tail = f;
  return f;
}

static void lb_fiber_free(lb_task *t, lb_fiber *f) {
  lb_fiber **p = &t->fibers;
  while (*p != f) p = &(*p)->next;
  *p = f->next;
  luaL_unref(LB.main, LUA_REGISTRYINDEX, f->ref_co);
  free(f);
}

/* export_start of an async export: a task with a thread of its own. */
static lb_cx *lb_task_start(size_t which) {
  lua_State *L = LB.main;
  lb_task *t = cz_xmalloc(sizeof *t);
  t->which = which;
  lua_State *T = lua_newthread(L);
  t->ref_thread = luaL_ref(L, LUA_REGISTRYINDEX);
  if (!lua_checkstack(T, 64)) cz_die("cannot grow the Lua stack");
  lb_cx_init(&t->cx, T);
  lua_newtable(L);
  t->ref_lent = luaL_ref(L, LUA_REGISTRYINDEX);
  t->nlent = 0;
  t->fibers = t->main = NULL;
  t->set = 0;
  t->cancelled = false;
  /* The arguments' borrowed handles go in the task's table. */
  lb_task_swap_lent(t);
  return &t->cx;
}

static lb_task *lb_task_of(void *cx) { return (lb_task *)((char *)cx - offsetof(lb_task, cx)); }

static int lb_cancelled_tostring(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  return 1;
}

/* Pushes componentize.async.cancelled, made at its first use. */
static void lb_push_cancelled(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, LB_CANCELLED_KEY) != LUA_TNIL) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_createtable(L, 0, 2);
  lua_pushliteral(L, "cancelled: the caller of the async export cancelled the call");
  lua_pushcclosure(L, lb_cancelled_tostring, 1);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "componentize.cancelled");
  lua_setfield(L, -2, "__name");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, LB_CANCELLED_KEY);
}

/* Whether the value at idx is componentize.async.cancelled. */
static bool lb_is_cancelled(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lb_push_cancelled(L);
  bool same = lua_rawequal(L, idx, -1);
  lua_pop(L, 1);
  return same;
}

/* Raises componentize.async.cancelled in the fiber running on L. */
static int lb_raise_cancelled(lua_State *L) {
  lb_push_cancelled(L);
  return lua_error(L);
}

/* The export's function returned or raised (status st, on f's coroutine):
 * its outcome goes back through task.return, and the borrows go. */
static void lb_task_return(lb_task *t, lb_fiber *f, int st) {
  lua_State *T = t->cx.L, *co = f->co;
  /* Slot 1 (as lb_export_outcome wants it): the coroutine. */
  lua_rawgeti(T, LUA_REGISTRYINDEX, f->ref_co);
  if (st == LUA_OK) {
    lua_xmove(co, T, lua_gettop(co));
  } else {
    /* A coroutine has no message handler: take its traceback here, while
     * its stack is still there. */
    luaL_traceback(T, co, NULL, 0);
    lua_rawseti(T, LUA_REGISTRYINDEX, LB.ref_traceback);
    lua_xmove(co, T, 1);
  }
  lb_task_swap_lent(t);
  lb_release_lent(T);
  lb_task_swap_lent(t);
  lua_closethread(co, T); /* runs pending to-be-closed variables */
  if (st != LUA_OK && t->cancelled && lb_is_cancelled(T, -1)) {
    /* The cancellation unwound the function: no result. */
    componentize_task_cancel();
  } else {
    lb_export_outcome(T, t->which, st);
    bool gc;
    lb_gc_pause(T, &gc);
    LB.wit->export_funcs[t->which].task_return(&t->cx);
    lb_gc_resume(T, gc);
  }
  lua_settop(T, 0);
  lb_cx_release(&t->cx);
  t->main = NULL;
}

/* A spawned fiber finished: an error in it ends the instance (but for the
 * cancellation of its task). */
static void lb_fiber_finished(lb_task *t, lb_fiber *f, int st) {
  lua_State *co = f->co;
  if (st != LUA_OK && !(t->cancelled && lb_is_cancelled(co, -1))) {
    lua_State *T = t->cx.L;
    luaL_traceback(T, co, NULL, 0);
    lua_rawseti(T, LUA_REGISTRYINDEX, LB.ref_traceback);
    lua_xmove(co, T, 1);
    const lb_export *e = &LB.exports[t->which];
    cz_die("error in a coroutine spawned by export %s (Lua `%s`): %s", e->display, e->lua_display,
           lb_push_error_text(T, true));
  }
  lua_closethread(co, t->cx.L);
}

/* Resumes the task's ready fibers until none is, then answers the host with
 * the callback code. */
static uint32_t lb_task_run(lb_task *t) {
  for (;;) {
    lb_fiber *f = t->fibers;
    while (f && f->state != LB_FIBER_READY) f = f->next;
    if (!f) break;
    lb_task_swap_lent(t);
    lua_pushboolean(LB.main, 0); /* no traceback yet */
    lua_rawseti(LB.main, LUA_REGISTRYINDEX, LB.ref_traceback);
    int nres, nargs = f->nargs;
    f->nargs = 0;
    lb_running = t;
    lb_running_fiber = f;
    int st = lua_resume(f->co, LB.main, nargs, &nres);
    lb_running = NULL;
    lb_running_fiber = NULL;
    fflush(stdout);
    lb_task_swap_lent(t);
    if (st == LUA_YIELD) {
      lua_pop(f->co, nres); /* what coroutine.yield was given */
      /* A wait set WAITING before it yielded; anything else is a plain
       * coroutine.yield(). */
      if (f->state == LB_FIBER_READY) f->state = LB_FIBER_YIELDED;
      continue;
    }
    if (f == t->main) lb_task_return(t, f, st);
    else lb_fiber_finished(t, f, st);
    lb_fiber_free(t, f);
  }
  bool yielded = false, waiting = false;
  for (lb_fiber *f = t->fibers; f; f = f->next) {
    if (f->state == LB_FIBER_YIELDED) {
      f->state = LB_FIBER_READY;
      yielded = true;
    } else if (f->state == LB_FIBER_WAITING) {
      waiting = true;
    }
  }
  if (yielded || waiting) {
    componentize_task_context_set((uint32_t)(uintptr_t)t);
    return yielded ? LB_CALLBACK_YIELD : LB_CALLBACK_WAIT | (t->set << 4);
  }
  componentize_task_context_set(0);
  if (t->set) componentize_waitable_set_drop(t->set);
  luaL_unref(LB.main, LUA_REGISTRYINDEX, t->ref_lent);
  luaL_unref(LB.main, LUA_REGISTRYINDEX, t->ref_thread);
  free(t);
  return LB_CALLBACK_EXIT;
}

uint32_t wit_dylib_export_async_call(void *vcx, size_t which) {
  lb_task *t = lb_task_of(vcx);
  /* The arguments are lifted: borrows from now on are not the task's. */
  lb_task_swap_lent(t);
  if (!LB.loaded)
    cz_die("export %s called before the Lua script was loaded (by the init export %s#%s)",
           LB.exports[which].display, LB_INIT_INTERFACE, LB_INIT_FUNCTION);
  lua_State *T = t->cx.L;
  int nargs = lua_gettop(T);
  if (!lua_checkstack(T, 8)) cz_die("cannot grow the Lua stack");
  lua_pushcfunction(T, lb_dispatch);
  lua_pushinteger(T, (lua_Integer)which);
  lua_rotate(T, 1, 2);
  t->main = lb_fiber_new(t, T, nargs + 1);
  return lb_task_run(t);
}

/* Cancels f's wait at once (it is in no waitable set): f is ready, with
 * the outcome of the cancelled operation as its code. */
static void lb_wait_cancel(lb_fiber *f) {
  if (f->cancel) {
    f->code = f->cancel(f->waitable);
  } else {
    f->code = componentize_subtask_cancel(f->waitable);
    componentize_subtask_drop(f->waitable);
  }
  f->state = LB_FIBER_READY;
  f->cancelled = true;
}

/* Whether f resumes from a wait that lb_wait_cancel cancelled; the
 * continuation that resumes asks once, which clears it. */
static bool lb_fiber_take_cancelled(lb_fiber *f) {
  bool cancelled = f->cancelled;
  f->cancelled = false;
  return cancelled;
}

/* The caller cancelled task t: every wait of its fibers is cancelled. */
static uint32_t lb_task_cancel(lb_task *t) {
  t->cancelled = true;
  for (lb_fiber *f = t->fibers; f; f = f->next) {
    if (f->state != LB_FIBER_WAITING) continue;
    componentize_waitable_join(f->waitable, 0);
    lb_wait_cancel(f);
  }
  return lb_task_run(t);
}

uint32_t wit_dylib_export_async_callback(uint32_t event, uint32_t p1, uint32_t p2, size_t which) {
  lb_task *t = (lb_task *)(uintptr_t)componentize_task_context_get();
  if (t != NULL && event == LB_EVENT_NONE) return lb_task_run(t);
  if (t != NULL && event == LB_EVENT_CANCELLED) return lb_task_cancel(t);
  if (t != NULL) {
    for (lb_fiber *f = t->fibers; f; f = f->next) {
      if (f->state != LB_FIBER_WAITING || f->waitable != p1 || f->event != event) continue;
      if (event == LB_EVENT_SUBTASK && p2 != LB_SUBTASK_RETURNED) return LB_CALLBACK_WAIT | (t->set << 4);
      componentize_waitable_join(p1, 0);
      if (event == LB_EVENT_SUBTASK) componentize_subtask_drop(p1);
      f->state = LB_FIBER_READY;
      f->code = p2;
      return lb_task_run(t);
    }
  }
  cz_die("async export %s got event %u (%u, %u), which the Lua binding does not wait for",
         LB.exports[which].display, event, p1, p2);
}

/* The fiber of the running task whose coroutine is L, or a Lua error saying
 * that `what` needs one. */
static lb_fiber *lb_task_fiber(lua_State *L, const char *what) {
  if (lb_running_fiber == NULL || L != lb_running_fiber->co)
    luaL_error(L, "%s: call it from an async export, in the export's own coroutine or one it "
                  "spawned (not at init, from a sync export or in a coroutine of the script)",
               what);
  return lb_running_fiber;
}

/* Suspends the running fiber f (on L) until `event` for `waitable` arrives;
 * then k runs, with the event's payload in f->code. `cancel` cancels the
 * wait (NULL: waitable is a subtask). In a cancelled task the wait is
 * cancelled at once and k runs now, with f->cancelled set. */
static int lb_task_wait(lua_State *L, lb_fiber *f, uint32_t event, uint32_t waitable,
                        uint32_t (*cancel)(uint32_t), lua_KContext ctx, lua_KFunction k) {
  lb_task *t = lb_running;
  f->event = event;
  f->waitable = waitable;
  f->cancel = cancel;
  if (t->cancelled) {
    lb_wait_cancel(f);
    return k(L, LUA_OK, ctx);
  }
  if (t->set == 0) t->set = componentize_waitable_set_new();
  componentize_waitable_join(waitable, t->set);
  f->state = LB_FIBER_WAITING;
  return lua_yieldk(L, 0, ctx, k);
}

/* componentize.async.spawn(fn, ...): a new fiber of the running task. */
static int lb_task_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lb_task_fiber(L, "componentize.async.spawn");
  lb_fiber_new(lb_running, L, lua_gettop(L) - 1);
  return 0;
}

/* An async import call in flight: its context (whose buffers live until
 * the result is lifted) and area. */
typedef struct lb_async_call {
  size_t which;
  lb_cx cx;
  void *area;
} lb_async_call;

/* The async import returned: its result goes on the coroutine's stack,
 * where the Lua call left off, and its buffers go. */
static int lb_import_async_done(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lb_async_call *c = (lb_async_call *)ctx;
  const wit_import_func_t *f = &LB.wit->import_funcs[c->which];
  lb_fiber *fiber = lb_running_fiber;
  bool cancelled = lb_fiber_take_cancelled(fiber);
  /* A cancelled call has a result only if it returned before it could be
   * cancelled; it is lifted all the same, so that its handles are owned. */
  if (!cancelled || (fiber->code & 0xf) == LB_SUBTASK_RETURNED) f->async_lift_impl(&c->cx, c->area);
  free(c->area);
  lb_cx_release(&c->cx);
  free(c);
  if (cancelled) return lb_raise_cancelled(L);
  return LB_NONE(f->result) ? 0 : 1;
}

/* Calls async import `which`, its arguments (checked) pushed on L first on
 * top as for a sync import, from a fiber of the running task. */
static int lb_import_async(lua_State *L, size_t which, const char *name) {
  lua_pushfstring(L, "%s is an async import", name);
  lb_fiber *fiber = lb_task_fiber(L, lua_tostring(L, -1));
  lua_pop(L, 1);
  const wit_import_func_t *f = &LB.wit->import_funcs[which];
  lb_async_call *c = cz_xmalloc(sizeof *c);
  c->which = which;
  c->area = NULL;
  if (f->async_abi_area_size) {
    size_t align = f->async_abi_area_align < sizeof(void *) ? sizeof(void *) : f->async_abi_area_align;
    c->area = aligned_alloc(align, (f->async_abi_area_size + align - 1) / align * align);
    if (!c->area) cz_die("out of memory (%zu bytes for the arguments of %s)", f->async_abi_area_size, name);
  }
  lb_cx_init(&c->cx, L);
  bool gc;
  lb_gc_pause(L, &gc);
  uint32_t status = f->async_impl(&c->cx, c->area);
  lb_gc_resume(L, gc);
  if ((status & 0xf) == LB_SUBTASK_RETURNED) return lb_import_async_done(L, LUA_OK, (lua_KContext)c);
  /* The arguments stay on this stack while the call runs: the callee may
   * read them from memory until it has started. */
  return lb_task_wait(L, fiber, LB_EVENT_SUBTASK, status >> 4, NULL, (lua_KContext)c, lb_import_async_done);
}
