/*
 * componentize.h: the interface between componentize's generated bindings
 * and an interpreter.
 *
 * Binary compatible with wit_dylib.h version 3 (the `wit-dylib` crate 0.263):
 * same `wit_t` layout, same function names, same core wasm signatures. Unlike
 * that header it declares every function the bindings really import:
 * `wit_dylib_push_map` returns nothing, `wit_dylib_pop_map` returns the
 * number of entries, and the two async export hooks are declared.
 *
 * The bindings module (from `componentize generate`) imports every function
 * below from the `env` namespace; the interpreter library defines them (and
 * exports `cabi_realloc`, usually through its libc).
 *
 * Value flow. Each call has a context `cx` owned by the interpreter, holding a
 * stack of interpreter values:
 *   - push_* (canonical ABI -> interpreter): the bindings lift a value and the
 *     interpreter pushes it. Compound values are pushed after their parts:
 *     record/tuple fields in order (last field on top), then push_record pops
 *     them; a variant/option/result payload, then push_variant pops it.
 *   - pop_* (interpreter -> canonical ABI): the interpreter pops a value and
 *     returns it. pop_record/pop_tuple pop the value and push its fields with
 *     the FIRST field on top; pop_variant/option/result return the case and
 *     push its payload, if the case has one.
 * Exports: export_start(which) makes a cx; the arguments are pushed in
 * declaration order (last on top); export_call(cx, which) runs the function,
 * which pushes its result if it has one; the bindings pop it; after the host
 * has read it, export_finish(cx, which) ends the call (free cx and deferred
 * buffers there).
 * Imports: push the arguments in REVERSE order (first on top), call
 * `import_funcs[i].impl(cx)`; the result, if any, is then on top.
 *
 * Async (the component model's callback ABI; `componentize generate` binds
 * a function asynchronously when the WIT says `async func`, or as its
 * `--async` filter says). What the bindings generate is described where it
 * is declared: async imports at wit_import_func_t, async exports at
 * wit_dylib_export_async_call, futures and streams at wit_t. Futures and
 * streams pass as handles, with push_future/pop_future (and the stream
 * ones) like own handles. The task-level built-ins the interpreter calls
 * itself (waitable-set.new/wait/poll/drop, waitable.join, subtask.drop and
 * .cancel, context.get/set, yield, backpressure) it imports from `$root`
 * under their canonical names (`[waitable-set-new]`, `[context-get-1]`,
 * ...), as wit-component accepts them. Async imports:
 * `async_impl(cx, area)`, with `area` a buffer of async_abi_area_size bytes
 * that lives until the call returns, pops the arguments and starts the
 * call; it returns the subtask status (low 4 bits STARTING, STARTED or
 * RETURNED; the subtask handle above). Once RETURNED (at once or as a
 * SUBTASK event), `async_lift_impl(cx, area)` pushes the result, and the
 * interpreter drops the subtask. Buffers freed with `defer` during the pops
 * must outlive the call, not just async_impl.
 *
 * Stack pointer. The bindings keep temporaries on the shadow stack. By
 * default they import libc's `env.__stack_pointer` global; generated with
 * `--stack-pointer task-context`, for an interpreter and libc built for
 * WASIp3, they use `$root` [context-get-0]/[context-set-0] instead, where
 * such a libc keeps each task's stack pointer; the interpreter then keeps
 * its own per-task state in context slot 1.
 */
#ifndef COMPONENTIZE_H
#define COMPONENTIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIT_CURRENT_VERSION 3

/* A type: kind in the low 8 bits, index into that kind's table above. */
typedef uint32_t wit_type_t;
#define WIT_TYPE_KIND(ty) ((ty) & 0xff)
#define WIT_TYPE_INDEX(ty) ((ty) >> 8)
#define WIT_TYPE_U8 0
#define WIT_TYPE_U16 1
#define WIT_TYPE_U32 2
#define WIT_TYPE_U64 3
#define WIT_TYPE_S8 4
#define WIT_TYPE_S16 5
#define WIT_TYPE_S32 6
#define WIT_TYPE_S64 7
#define WIT_TYPE_BOOL 8
#define WIT_TYPE_CHAR 9
#define WIT_TYPE_F32 10
#define WIT_TYPE_F64 11
#define WIT_TYPE_STRING 12
#define WIT_TYPE_ERROR_CONTEXT 13
#define WIT_TYPE_RECORD 14
#define WIT_TYPE_OWN 15    /* index into resources */
#define WIT_TYPE_BORROW 16 /* index into resources */
#define WIT_TYPE_FLAGS 17
#define WIT_TYPE_TUPLE 18
#define WIT_TYPE_VARIANT 19
#define WIT_TYPE_ENUM 20
#define WIT_TYPE_OPTION 21
#define WIT_TYPE_RESULT 22
#define WIT_TYPE_LIST 23
#define WIT_TYPE_MAP 24
#define WIT_TYPE_FIXED_LENGTH_LIST 25
#define WIT_TYPE_FUTURE 26
#define WIT_TYPE_STREAM 27
#define WIT_TYPE_ALIAS 28 /* resolve through aliases[i].ty */
#define WIT_TYPE_EMPTY 0xff /* an absent result or payload: 0xffffffff */

typedef void (*wit_import_fn_t)(void *cx);
typedef uint32_t (*wit_import_async_fn_t)(void *cx, void *abi_area);
typedef void (*wit_import_async_lift_fn_t)(void *cx, void *abi_area);
typedef void (*wit_export_task_return_fn_t)(void *cx);

/* `interface` is NULL for world-level functions and types; otherwise it is
 * the interface's name in the world, e.g. "wasi:cli/stdout@0.2.6". */
typedef struct wit_import_func {
  const char *interface;
  const char *name; /* "f", "[constructor]r", "[method]r.m", "[static]r.s" */
  wit_import_fn_t impl;
  /* Exactly one of `impl` (a synchronous import) and `async_impl` (an
   * asynchronous one, see "Async imports" below) is set. */
  wit_import_async_fn_t async_impl;
  wit_import_async_lift_fn_t async_lift_impl;   /* set iff async_impl is */
  size_t nparams;
  const wit_type_t *params;
  wit_type_t result;
  /* The area an async call's parameters (when more than four flat values)
   * and result live in until it returns; 0 and 0 for a sync import. */
  size_t async_abi_area_size;
  size_t async_abi_area_align;
} wit_import_func_t;

typedef struct wit_export_func {
  const char *interface;
  const char *name;
  /* Set for an async export (see "Async exports" below), NULL for a sync
   * one. */
  wit_export_task_return_fn_t task_return;
  size_t nparams;
  const wit_type_t *params;
  wit_type_t result;
} wit_export_func_t;

typedef void (*wit_resource_drop_t)(uint32_t handle);
typedef uint32_t (*wit_resource_new_t)(size_t rep);
typedef size_t (*wit_resource_rep_t)(uint32_t handle);

/* Imported resources have only `drop`; exported ones (defined by the
 * interpreter) also `new` and `rep`. An interface both imported and exported
 * has two entries per resource. */
typedef struct wit_resource {
  const char *interface;
  const char *name;
  wit_resource_drop_t drop;
  wit_resource_new_t new;
  wit_resource_rep_t rep;
} wit_resource_t;

typedef struct wit_field { const char *name; wit_type_t ty; } wit_field_t;
typedef struct wit_record {
  const char *interface; const char *name;
  size_t nfields; const wit_field_t *fields;
} wit_record_t;
typedef struct wit_flags {
  const char *interface; const char *name;
  size_t nnames; const char **names; /* names[i] is bit i */
} wit_flags_t;
typedef struct wit_tuple {
  const char *interface; const char *name; /* name NULL unless aliased */
  size_t ntypes; const wit_type_t *types;
} wit_tuple_t;
typedef struct wit_case { const char *name; wit_type_t ty; } wit_case_t;
typedef struct wit_variant {
  const char *interface; const char *name;
  size_t ncases; const wit_case_t *cases;
} wit_variant_t;
typedef struct wit_enum {
  const char *interface; const char *name;
  size_t nnames; const char **names;
} wit_enum_t;
typedef struct wit_option { const char *interface; const char *name; wit_type_t ty; } wit_option_t;
typedef struct wit_result {
  const char *interface; const char *name; wit_type_t ok; wit_type_t err;
} wit_result_t;
typedef struct wit_list { const char *interface; const char *name; wit_type_t ty; } wit_list_t;
typedef struct wit_map {
  const char *interface; const char *name; wit_type_t key_type; wit_type_t value_type;
} wit_map_t;
typedef struct wit_fixed_length_list {
  const char *interface; const char *name; size_t size; wit_type_t ty;
} wit_fixed_length_list_t;

typedef void (*wit_lift_fn_t)(void *cx, const void *buffer);
typedef void (*wit_lower_fn_t)(void *cx, void *buffer);
typedef uint64_t (*wit_future_new_fn_t)(void);
typedef uint32_t (*wit_future_read_fn_t)(uint32_t future, void *buffer);
typedef uint32_t (*wit_future_write_fn_t)(uint32_t future, const void *buffer);
typedef uint32_t (*wit_future_cancel_read_fn_t)(uint32_t future);
typedef uint32_t (*wit_future_cancel_write_fn_t)(uint32_t future);
typedef void (*wit_future_drop_readable_fn_t)(uint32_t future);
typedef void (*wit_future_drop_writable_fn_t)(uint32_t future);
typedef struct wit_future {
  const char *interface; const char *name; wit_type_t ty;
  wit_future_new_fn_t new;
  wit_future_read_fn_t read;
  wit_future_write_fn_t write;
  wit_future_cancel_read_fn_t cancel_read;
  wit_future_cancel_write_fn_t cancel_write;
  wit_future_drop_readable_fn_t drop_readable;
  wit_future_drop_writable_fn_t drop_writable;
  wit_lift_fn_t lift;
  wit_lower_fn_t lower;
  size_t abi_payload_size;
  size_t abi_payload_align;
} wit_future_t;

typedef uint64_t (*wit_stream_new_fn_t)(void);
typedef uint32_t (*wit_stream_read_fn_t)(uint32_t stream, void *buffer, size_t count);
typedef uint32_t (*wit_stream_write_fn_t)(uint32_t stream, const void *buffer, size_t count);
typedef uint32_t (*wit_stream_cancel_read_fn_t)(uint32_t stream);
typedef uint32_t (*wit_stream_cancel_write_fn_t)(uint32_t stream);
typedef void (*wit_stream_drop_readable_fn_t)(uint32_t stream);
typedef void (*wit_stream_drop_writable_fn_t)(uint32_t stream);
typedef struct wit_stream {
  const char *interface; const char *name; wit_type_t ty;
  wit_stream_new_fn_t new;
  wit_stream_read_fn_t read;
  wit_stream_write_fn_t write;
  wit_stream_cancel_read_fn_t cancel_read;
  wit_stream_cancel_write_fn_t cancel_write;
  wit_stream_drop_readable_fn_t drop_readable;
  wit_stream_drop_writable_fn_t drop_writable;
  wit_lift_fn_t lift;
  wit_lower_fn_t lower;
  size_t abi_payload_size;
  size_t abi_payload_align;
} wit_stream_t;

typedef struct wit_alias { const char *interface; const char *name; wit_type_t ty; } wit_alias_t;

/* Empty tables have count 0 and a NULL pointer.
 *
 * Futures and streams: one entry per type (per side, like other types, when
 * an interface is imported and exported). `new` returns the readable end in
 * the low 32 bits and the writable end in the high 32. `read`/`write` take a
 * buffer of `count` (1 for a future) items of `abi_payload_size` bytes at
 * `abi_payload_align` and return the canonical status (BLOCKED, or the
 * count done with COMPLETED/DROPPED/CANCELLED); a blocked one completes as
 * an event on the waitable set the end joined. `lower(cx, item)` pops one
 * value into an item before a write; `lift(cx, item)` pushes one after a
 * read. Without a payload, `ty` is empty, `lift`/`lower` are NULL and the
 * size is 0 (align 1). A type no function signature holds (one an interface
 * only defines) has every function pointer NULL: the canonical ABI names
 * built-ins after a function, and no value of it can reach the
 * interpreter. (wit-dylib 0.263 refuses such a world.) */
typedef struct wit {
  uint32_t version; /* WIT_CURRENT_VERSION */
  size_t num_import_funcs; const wit_import_func_t *import_funcs;
  size_t num_export_funcs; const wit_export_func_t *export_funcs; /* `which` indexes this */
  size_t num_resources; const wit_resource_t *resources;
  size_t num_records; const wit_record_t *records;
  size_t num_flags; const wit_flags_t *flags;
  size_t num_tuples; const wit_tuple_t *tuples;
  size_t num_variants; const wit_variant_t *variants;
  size_t num_enums; const wit_enum_t *enums;
  size_t num_options; const wit_option_t *options;
  size_t num_results; const wit_result_t *results;
  size_t num_lists; const wit_list_t *lists;
  size_t num_maps; const wit_map_t *maps;
  size_t num_fixed_length_lists; const wit_fixed_length_list_t *fixed_length_lists;
  size_t num_futures; const wit_future_t *futures;
  size_t num_streams; const wit_stream_t *streams;
  size_t num_aliases; const wit_alias_t *aliases;
} wit_t;

/* ---- Lifecycle ---------------------------------------------------------- */

/* Called once, from the bindings' constructor, with metadata that stays
 * valid for the life of the instance. */
void wit_dylib_initialize(const wit_t *wit);

/* The allocator behind every buffer that crosses the boundary. */
void *cabi_realloc(void *ptr, size_t old_size, size_t align, size_t new_size);

/* Frees a buffer from cabi_realloc. With `defer`, the buffer is still read by
 * the other side: free it when `cx` ends (after the import returns, or in
 * export_finish). */
void wit_dylib_dealloc_bytes(void *cx, void *ptr, size_t size, size_t align, bool defer);

/* ---- Exports ------------------------------------------------------------ */

void *wit_dylib_export_start(size_t which);
void wit_dylib_export_call(void *cx, size_t which);
void wit_dylib_export_finish(void *cx, size_t which);
/* Async exports (the callback ABI). For an export whose task_return is set,
 * the bindings lift the arguments onto a fresh cx as for a sync export, then
 * call export_async_call(cx, which): the interpreter now owns cx (several
 * calls of one export may be in flight) and starts the function, returning
 * the callback code: EXIT (0), YIELD (1), or WAIT (2) | (waitable set << 4).
 * Each event for the task then arrives as export_async_callback(event, p1,
 * p2, which), answering with a code in turn; the interpreter finds its task
 * with `context.get` (it imports the built-ins, see "Async" above). When the
 * function finishes it pushes the result on cx and calls
 * export_funcs[which].task_return(cx), which pops it and returns it to the
 * caller; after EXIT the interpreter frees cx. Both are imported by every
 * bindings module, so an interpreter without async support defines them
 * anyway (to fail). */
uint32_t wit_dylib_export_async_call(void *cx, size_t which);
uint32_t wit_dylib_export_async_callback(uint32_t event, uint32_t p1, uint32_t p2, size_t which);
/* Task built-ins (componentize's extension; wit-dylib has no such
 * functions). The task context slot of the running task, as
 * `context.get`/`context.set` of slot 0, and what a task waits on its async
 * imports with: `waitable-set.new`/`.drop`, `waitable.join` and
 * `subtask.drop`; and what cancels: `subtask.cancel` (synchronous: it
 * returns the subtask's final state, RETURNED (2) once its result is
 * written, else START_CANCELLED (3) or RETURN_CANCELLED (4)) and
 * `task.cancel`, which ends an export's task without a result after its
 * caller cancelled it (event TASK_CANCELLED, 6). An interpreter that imports the `$root` built-ins itself
 * makes every component use component-model async, sync worlds too;
 * declared weak instead, these are defined by a library the link stage
 * adds only when the world has an async export, and are trapping stubs
 * otherwise. (With `--stack-pointer task-context` slot 0 holds the stack
 * pointer: keep the task in slot 1 then.) */
__attribute__((weak)) uint32_t componentize_task_context_get(void);
__attribute__((weak)) void componentize_task_context_set(uint32_t value);
__attribute__((weak)) uint32_t componentize_waitable_set_new(void);
__attribute__((weak)) void componentize_waitable_set_drop(uint32_t set);
__attribute__((weak)) void componentize_waitable_join(uint32_t waitable, uint32_t set);
__attribute__((weak)) void componentize_subtask_drop(uint32_t subtask);
__attribute__((weak)) uint32_t componentize_subtask_cancel(uint32_t subtask);
__attribute__((weak)) void componentize_task_cancel(void);
/* An exported resource's handle was dropped: `rep` is what was passed to
 * resources[ty].new. */
void wit_dylib_resource_dtor(size_t ty, size_t rep);

/* ---- Canonical ABI -> interpreter --------------------------------------- */

void wit_dylib_push_bool(void *cx, bool val);
void wit_dylib_push_char(void *cx, uint32_t val);
void wit_dylib_push_u8(void *cx, uint8_t val);
void wit_dylib_push_s8(void *cx, int8_t val);
void wit_dylib_push_u16(void *cx, uint16_t val);
void wit_dylib_push_s16(void *cx, int16_t val);
void wit_dylib_push_u32(void *cx, uint32_t val);
void wit_dylib_push_s32(void *cx, int32_t val);
void wit_dylib_push_u64(void *cx, uint64_t val);
void wit_dylib_push_s64(void *cx, int64_t val);
void wit_dylib_push_f32(void *cx, float val);
void wit_dylib_push_f64(void *cx, double val);
/* Takes ownership of `bytes` (from cabi_realloc, align 1, `len` bytes). */
void wit_dylib_push_string(void *cx, uint8_t *bytes, size_t len);
void wit_dylib_push_record(void *cx, size_t ty);
void wit_dylib_push_tuple(void *cx, size_t ty);
void wit_dylib_push_flags(void *cx, size_t ty, uint32_t flags);
void wit_dylib_push_enum(void *cx, size_t ty, uint32_t discr);
/* `handle` is the rep for resources this component exports. A borrow of an
 * imported resource received by an export is a handle the component must
 * release before the export returns: call resources[ty].drop(handle) once
 * done with it (at the latest in export_call), or the host traps with
 * "borrow handles still remain at the end of the call". */
void wit_dylib_push_borrow(void *cx, size_t ty, uint32_t handle);
void wit_dylib_push_own(void *cx, size_t ty, uint32_t handle);
void wit_dylib_push_future(void *cx, size_t ty, uint32_t handle);
void wit_dylib_push_stream(void *cx, size_t ty, uint32_t handle);
void wit_dylib_push_variant(void *cx, size_t ty, uint32_t discr);
void wit_dylib_push_option(void *cx, size_t ty, uint32_t discr); /* 0 none, 1 some */
void wit_dylib_push_result(void *cx, size_t ty, uint32_t discr); /* 0 ok, 1 err */
/* Return true to take ownership of the canonical buffer as is (fast path);
 * false to get the elements one by one: push an empty list, then each element
 * is pushed and list_append pops it onto the list below it. */
bool wit_dylib_push_list(void *cx, size_t ty, uint8_t *bytes, size_t len);
void wit_dylib_list_append(void *cx, size_t ty);
/* Push an empty map; then per entry the key and the value are pushed and
 * map_append pops the value, then the key. */
void wit_dylib_push_map(void *cx, size_t ty, size_t len);
void wit_dylib_map_append(void *cx, size_t ty);

/* ---- Interpreter -> canonical ABI --------------------------------------- */

uint8_t wit_dylib_pop_u8(void *cx);
uint16_t wit_dylib_pop_u16(void *cx);
uint32_t wit_dylib_pop_u32(void *cx);
uint64_t wit_dylib_pop_u64(void *cx);
int8_t wit_dylib_pop_s8(void *cx);
int16_t wit_dylib_pop_s16(void *cx);
int32_t wit_dylib_pop_s32(void *cx);
int64_t wit_dylib_pop_s64(void *cx);
bool wit_dylib_pop_bool(void *cx);
uint32_t wit_dylib_pop_char(void *cx);
float wit_dylib_pop_f32(void *cx);
double wit_dylib_pop_f64(void *cx);
/* Returns the length in bytes and writes a pointer that stays valid until the
 * import returns or export_finish (the bindings never free it). */
size_t wit_dylib_pop_string(void *cx, char **ptr);
void wit_dylib_pop_record(void *cx, size_t ty);
void wit_dylib_pop_tuple(void *cx, size_t ty);
uint32_t wit_dylib_pop_flags(void *cx, size_t ty);
uint32_t wit_dylib_pop_enum(void *cx, size_t ty);
uint32_t wit_dylib_pop_borrow(void *cx, size_t ty);
uint32_t wit_dylib_pop_own(void *cx, size_t ty);
uint32_t wit_dylib_pop_future(void *cx, size_t ty);
uint32_t wit_dylib_pop_stream(void *cx, size_t ty);
uint32_t wit_dylib_pop_variant(void *cx, size_t ty);
uint32_t wit_dylib_pop_option(void *cx, size_t ty);
uint32_t wit_dylib_pop_result(void *cx, size_t ty);
/* Returns the length. Write a pointer to data already in canonical layout
 * (borrowed, like strings), or NULL: then replace the list with an iterator;
 * pop_list_iter_next pushes each element, pop_list_iter drops the iterator. */
size_t wit_dylib_pop_list(void *cx, size_t ty, void **ptr);
void wit_dylib_pop_list_iter_next(void *cx, size_t ty);
void wit_dylib_pop_list_iter(void *cx, size_t ty);
/* Returns the number of entries and replaces the map with an iterator;
 * pop_map_iter_next pushes the value, then the key (key on top). */
size_t wit_dylib_pop_map(void *cx, size_t ty);
void wit_dylib_pop_map_iter_next(void *cx, size_t ty);
void wit_dylib_pop_map_iter(void *cx, size_t ty);

#endif /* COMPONENTIZE_H */
