/*
 * lib/js.so: the JavaScript (QuickJS-NG) binding of componentize.h.
 *
 * One translation unit, so the binding's internal functions stay static and
 * the compiler sees all of them (see ../README.md for the JS mapping).
 * toolchain/build.sh compiles this file alone, against libqjs.so.
 */
#include "binding.c"
#include "values.c"
#include "resources.c"
#include "imports.c"
#include "globals.c"
#include "http.c"
