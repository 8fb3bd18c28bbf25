#!/usr/bin/env bash
# interpreters/lua/bundle.sh: copy the Lua interpreter libraries that
# toolchain/build.sh built into interpreters/lua/bundled/, the files the
# componentize-lua crate embeds (`componentize --interpreter lua`).
#
# Usage: bash toolchain/build.sh && bash interpreters/lua/bundle.sh
#
# Run it after changing interpreters/lua/c/ or the toolchain pins, and commit
# the result: the test `bundled` (interpreters/lua/tests/bundled.rs) fails
# while the bundled files differ from what the sources build.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# Link order: the interpreter, then what it needs (see src/lib.rs, LAYOUT).
exec bash "$HERE/../../toolchain/bundle.sh" "$HERE/bundled" 'cc|libc|lua' \
  lib/lua.so lib/liblua.so lib/libsetjmp.so sysroot/lib/wasm32-wasip2/libc.so
