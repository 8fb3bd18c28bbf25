/*
 * Force-included (clang -include) into every Lua source file when building
 * lib/liblua.so for wasm32-wasi (see toolchain/build.sh).
 *
 * lstate.h pulls in <signal.h> only to get sig_atomic_t for the hook flag
 * (l_signalT) unless l_signalT is already defined. wasi-libc's <signal.h>
 * stops with #error unless the program opts into emulated signals, and Lua
 * never raises signals on WASI, so a plain int is enough.
 */
#ifndef COMPONENTIZE_LUA_WASI_COMPAT_H
#define COMPONENTIZE_LUA_WASI_COMPAT_H
#define l_signalT int
#endif
