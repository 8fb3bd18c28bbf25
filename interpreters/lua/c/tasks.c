/*
 * Async exports: each call is a task, and each task runs its Lua function
 * in a coroutine of its own.
 *
 * The bindings lift an async export's arguments onto a fresh context
 * (wit_dylib_export_start), then hand it over (wit_dylib_export_async_call).
 * The task resumes its coroutine; when the function returns, the result
 * goes back through the export's task.return and the task ends (EXIT). When
 * the function yields (`coroutine.yield()` in the export's own coroutine),
 * the task answers YIELD: the host runs other tasks and calls back with no
 * event, and the coroutine goes on. So several calls of any async exports
 * can be in flight, each suspended at a yield, and they interleave.
 *
 * An async import called from the task's coroutine starts the call; unless
 * it returned at once, the coroutine yields until the subtask's RETURNED
 * event (the task answers WAIT on a waitable set of its own meanwhile), and
 * then the import's result is lifted where the Lua call left off. So the
 * script reads sequentially while other tasks run.
 *
 * A task's state is found again through its context slot, with the link
 * stage's componentize_task_context_get/set (see componentize.h).
 * Errors follow the sync exports' rules (lb_export_outcome). Borrowed
 * handles among the arguments are the task's own: they are kept in a lent
 * table of the task, swapped in while it runs, and dropped when it ends.
 */
#include "binding.h"

/* The canonical ABI's callback codes, events and subtask states. */
enum { LB_CALLBACK_EXIT = 0, LB_CALLBACK_YIELD = 1, LB_CALLBACK_WAIT = 2 };
enum { LB_EVENT_NONE = 0, LB_EVENT_SUBTASK = 1 };
enum { LB_SUBTASK_RETURNED = 2 };

typedef struct lb_task {
  size_t which;
  /* The context the bindings lift onto and task.return pops from. Its
   * thread's slot 1 holds the coroutine, which keeps it alive. */
  lb_cx cx;
  int ref_thread;  /* registry reference to cx.L */
  lua_State *co;   /* the coroutine running the export's function */
  int ref_lent;    /* the task's borrowed handles */
  size_t nlent;
  /* The async import the coroutine waits for (subtask 0: none), its
   * context (whose buffers live until the result is lifted) and area. */
  uint32_t subtask;
  size_t import;
  lb_cx icx;
  void *area;
  size_t area_size;
  uint32_t set; /* the task's waitable set, 0 until it first waits */
} lb_task;

/* The task whose coroutine runs now (NULL outside lb_task_step). */
static lb_task *lb_running;

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

/* export_start of an async export: a task with a thread of its own. */
static lb_cx *lb_task_start(size_t which) {
  lua_State *L = LB.main;
  lb_task *t = cz_xmalloc(sizeof *t);
  t->which = which;
  lua_State *T = lua_newthread(L);
  t->ref_thread = luaL_ref(L, LUA_REGISTRYINDEX);
  if (!lua_checkstack(T, 64)) cz_die("cannot grow the Lua stack");
  t->co = lua_newthread(T); /* slot 1 */
  lb_cx_init(&t->cx, T);
  lua_newtable(L);
  t->ref_lent = luaL_ref(L, LUA_REGISTRYINDEX);
  t->nlent = 0;
  t->subtask = 0;
  t->area = NULL;
  t->set = 0;
  /* The arguments' borrowed handles go in the task's table. */
  lb_task_swap_lent(t);
  return &t->cx;
}

static lb_task *lb_task_of(void *cx) { return (lb_task *)((char *)cx - offsetof(lb_task, cx)); }

/* The function returned or raised: its outcome goes back through
 * task.return, and everything of the task is released. */
static void lb_task_end(lb_task *t, int st) {
  lua_State *T = t->cx.L, *co = t->co;
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
  lb_export_outcome(T, t->which, st);
  bool gc;
  lb_gc_pause(T, &gc);
  LB.wit->export_funcs[t->which].task_return(&t->cx);
  lb_gc_resume(T, gc);
  lua_settop(T, 0);
  lb_cx_release(&t->cx);
  if (t->set) componentize_waitable_set_drop(t->set);
  luaL_unref(LB.main, LUA_REGISTRYINDEX, t->ref_lent);
  luaL_unref(LB.main, LUA_REGISTRYINDEX, t->ref_thread);
  free(t);
}

/* Runs the task's coroutine until it returns, raises or yields; the
 * callback code. */
static uint32_t lb_task_step(lb_task *t, int nargs) {
  lb_task_swap_lent(t);
  lua_pushboolean(LB.main, 0); /* no traceback yet */
  lua_rawseti(LB.main, LUA_REGISTRYINDEX, LB.ref_traceback);
  int nres;
  lb_running = t;
  int st = lua_resume(t->co, LB.main, nargs, &nres);
  lb_running = NULL;
  fflush(stdout);
  lb_task_swap_lent(t);
  if (st == LUA_YIELD) {
    lua_pop(t->co, nres); /* what coroutine.yield was given */
    componentize_task_context_set((uint32_t)(uintptr_t)t);
    if (t->subtask) return LB_CALLBACK_WAIT | (t->set << 4);
    return LB_CALLBACK_YIELD;
  }
  componentize_task_context_set(0);
  lb_task_end(t, st);
  return LB_CALLBACK_EXIT;
}

uint32_t wit_dylib_export_async_call(void *vcx, size_t which) {
  lb_task *t = lb_task_of(vcx);
  /* The arguments are lifted: borrows from now on are not the task's. */
  lb_task_swap_lent(t);
  if (!LB.loaded)
    cz_die("export %s called before the Lua script was loaded (by the init export %s#%s)",
           LB.exports[which].display, LB_INIT_INTERFACE, LB_INIT_FUNCTION);
  lua_State *T = t->cx.L, *co = t->co;
  int nargs = lua_gettop(T) - 1;
  if (!lua_checkstack(co, nargs + 8)) cz_die("cannot grow the Lua stack");
  lua_pushcfunction(co, lb_dispatch);
  lua_pushinteger(co, (lua_Integer)which);
  lua_xmove(T, co, nargs);
  return lb_task_step(t, nargs + 1);
}

uint32_t wit_dylib_export_async_callback(uint32_t event, uint32_t p1, uint32_t p2, size_t which) {
  lb_task *t = (lb_task *)(uintptr_t)componentize_task_context_get();
  if (t != NULL && event == LB_EVENT_NONE && t->subtask == 0) return lb_task_step(t, 0);
  if (t != NULL && event == LB_EVENT_SUBTASK && p1 == t->subtask) {
    if (p2 != LB_SUBTASK_RETURNED) return LB_CALLBACK_WAIT | (t->set << 4);
    componentize_waitable_join(t->subtask, 0);
    componentize_subtask_drop(t->subtask);
    t->subtask = 0;
    return lb_task_step(t, 0);
  }
  cz_die("async export %s got event %u (%u, %u), which the Lua binding does not wait for",
         LB.exports[which].display, event, p1, p2);
}

/* The async import returned: its result goes on the coroutine's stack,
 * where the Lua call left off, and its buffers go. */
static int lb_import_async_done(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lb_task *t = (lb_task *)ctx;
  const wit_import_func_t *f = &LB.wit->import_funcs[t->import];
  f->async_lift_impl(&t->icx, t->area);
  free(t->area);
  t->area = NULL;
  lb_cx_release(&t->icx);
  return LB_NONE(f->result) ? 0 : 1;
}

/* Calls async import `which`, its arguments (checked) pushed on L first on
 * top as for a sync import, from the running task's coroutine. */
static int lb_import_async(lua_State *L, size_t which, const char *name) {
  lb_task *t = lb_running;
  if (t == NULL || L != t->co)
    return luaL_error(L, "%s is an async import: call it from an async export, in the export's own "
                         "coroutine (not at init, from a sync export or in a coroutine of the script)",
                      name);
  const wit_import_func_t *f = &LB.wit->import_funcs[which];
  t->import = which;
  t->area_size = f->async_abi_area_size;
  t->area = NULL;
  if (t->area_size) {
    size_t align = f->async_abi_area_align < sizeof(void *) ? sizeof(void *) : f->async_abi_area_align;
    t->area = aligned_alloc(align, (t->area_size + align - 1) / align * align);
    if (!t->area) cz_die("out of memory (%zu bytes for the arguments of %s)", t->area_size, name);
  }
  lb_cx_init(&t->icx, L);
  bool gc;
  lb_gc_pause(L, &gc);
  uint32_t status = f->async_impl(&t->icx, t->area);
  lb_gc_resume(L, gc);
  if ((status & 0xf) == LB_SUBTASK_RETURNED) return lb_import_async_done(L, LUA_OK, (lua_KContext)t);
  /* The arguments stay on this stack while the call runs: the callee may
   * read them from memory until it has started. */
  t->subtask = status >> 4;
  if (t->set == 0) t->set = componentize_waitable_set_new();
  componentize_waitable_join(t->subtask, t->set);
  return lua_yieldk(L, 0, (lua_KContext)t, lb_import_async_done);
}
