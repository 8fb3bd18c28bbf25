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
REPO=$(cd "$HERE/../.." && pwd -P)
BUILD=${TOOLCHAIN_DIR:-$REPO/target/toolchain/current}
[ -f "$BUILD/manifest.txt" ] || { echo "bundle.sh: no toolchain build at $BUILD; run bash toolchain/build.sh" >&2; exit 1; }
OUT=$HERE/bundled
# Link order: the interpreter, then what it needs (see src/bundled.rs).
for f in lib/lua.so lib/liblua.so lib/libsetjmp.so sysroot/lib/wasm32-wasip2/libc.so; do
  install -m 0644 "$BUILD/$f" "$OUT/$(basename "$f")"
done
{
  echo "# What interpreters/lua/bundle.sh copied, from the toolchain build below."
  grep -E '^(cc|libc|lua)=' "$BUILD/manifest.txt"
  (cd "$OUT" && sha256sum lua.so liblua.so libsetjmp.so libc.so)
} > "$OUT/SOURCES.txt"
echo "bundle.sh: updated $OUT from $BUILD"
