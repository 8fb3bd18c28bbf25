#!/usr/bin/env bash
# interpreters/js/bundle.sh: copy the JavaScript interpreter libraries that
# toolchain/build.sh built into interpreters/js/bundled/, the files the
# componentize-js crate embeds (`componentize --interpreter js`).
#
# Usage: bash toolchain/build.sh && bash interpreters/js/bundle.sh
#
# Run it after changing interpreters/js/c/ or the toolchain pins, and commit
# the result: the test `bundled` (interpreters/js/tests/bundled.rs) fails
# while the bundled files differ from what the sources build.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# Link order: the interpreter, then what it needs (see src/lib.rs, LAYOUT).
exec bash "$HERE/../../toolchain/bundle.sh" "$HERE/bundled" 'cc|libc|quickjs' \
  lib/js.so lib/libqjs.so sysroot/lib/wasm32-wasip2/libc.so
