#!/usr/bin/env bash
# toolchain/bundle.sh: copy an interpreter's libraries from the toolchain
# build into its crate's bundled/ folder, the files the crate embeds
# (`componentize --interpreter NAME`), and record where they came from.
#
# Usage (from an interpreter's own bundle.sh):
#   bash toolchain/bundle.sh OUT_DIR MANIFEST_KEYS FILE...
#     OUT_DIR        the crate's bundled/ folder
#     MANIFEST_KEYS  the manifest.txt lines to record, as a regex of keys ("cc|libc|lua")
#     FILE           paths relative to the toolchain build, in link order
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BUILD=${TOOLCHAIN_DIR:-$REPO/target/toolchain/current}
[ $# -ge 3 ] || { echo "usage: bundle.sh OUT_DIR MANIFEST_KEYS FILE..." >&2; exit 2; }
OUT=$1 KEYS=$2
shift 2
[ -f "$BUILD/manifest.txt" ] || { echo "bundle.sh: no toolchain build at $BUILD; run bash toolchain/build.sh" >&2; exit 1; }
names=()
for f in "$@"; do
  install -m 0644 "$BUILD/$f" "$OUT/$(basename "$f")"
  names+=("$(basename "$f")")
done
{
  parent=$(dirname "$OUT"); echo "# What $(basename "$(dirname "$parent")")/$(basename "$parent")/bundle.sh copied, from the toolchain build below."
  grep -E "^($KEYS)=" "$BUILD/manifest.txt"
  (cd "$OUT" && sha256sum "${names[@]}")
} > "$OUT/SOURCES.txt"
echo "bundle.sh: updated $OUT from $BUILD"
