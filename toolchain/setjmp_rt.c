/*
 * setjmp/longjmp support library for wasm32-wasi libraries (built as
 * lib/libsetjmp.so by toolchain/build.sh).
 *
 * With `-mllvm -wasm-enable-sjlj` LLVM rewrites every setjmp()/longjmp() into
 * calls to the three functions below and implements the non-local jump with a
 * WebAssembly exception carrying the `__c_longjmp` tag. Code compiled with
 * `-mllvm -wasm-use-legacy-eh=false` catches it with `try_table`/exnref, which
 * is what current runtimes (wasmtime 49) accept.
 *
 * The calling convention is the one of wasi-libc's libsetjmp, so objects built
 * against wasi-libc's <setjmp.h> link against this library unchanged.
 */
#include <stddef.h>
#include <stdint.h>

/* What LLVM stores in the jmp_buf (which is larger than this). */
typedef struct {
  void *invocation; /* identifies the function activation that called setjmp */
  uint32_t label;   /* which setjmp call site inside that activation */
  struct {
    void *env;      /* the jmp_buf being jumped to; compared by the catcher */
    int val;        /* the value setjmp() returns on the second return */
  } payload;        /* address of this is the exception's i32 payload */
} sjlj_buf;

/* Called at each setjmp() site: remember who set the buffer. */
void __wasm_setjmp(void *env, uint32_t label, void *invocation) {
  sjlj_buf *b = (sjlj_buf *)env;
  if (label == 0 || invocation == NULL)
    __builtin_trap();
  b->invocation = invocation;
  b->label = label;
}

/* Called by the catcher: does this buffer belong to the current activation?
   Returns the setjmp label to resume at, or 0 to keep unwinding. */
uint32_t __wasm_setjmp_test(void *env, void *invocation) {
  sjlj_buf *b = (sjlj_buf *)env;
  if (b->label == 0 || invocation == NULL)
    __builtin_trap();
  return b->invocation == invocation ? b->label : 0;
}

/* longjmp(): throw the `__c_longjmp` exception; never returns. */
void __wasm_longjmp(void *env, int val) {
  sjlj_buf *b = (sjlj_buf *)env;
  b->payload.env = env;
  b->payload.val = val == 0 ? 1 : val; /* longjmp(env, 0) makes setjmp return 1 */
  __builtin_wasm_throw(1 /* C_LONGJMP */, &b->payload);
}

/* The exception tag itself. Recent LLVM (22) no longer emits its definition,
   so this library defines and exports it; every other library imports it. */
__asm__(".globl __c_longjmp\n"
        ".tagtype __c_longjmp i32\n"
        "__c_longjmp:\n");
