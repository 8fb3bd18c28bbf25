/*
 * lib/lua.so: the Lua 5.4 binding of componentize.h.
 *
 * One translation unit, so the binding's internal functions stay static and
 * the compiler sees all of them (see ../README.md for the Lua mapping).
 * toolchain/build.sh compiles this file alone.
 */
#include "binding.c"
#include "tasks.c"
#include "ends.c"
#include "check.c"
#include "values.c"
#include "resources.c"
#include "imports.c"
#include "http.c"
#include "modules.c"
#include "stdlib.c"
