#!/usr/bin/env bash
# Installs the references that benches/build.rs measures our JS build
# against, and prints where they are:
#
#   - ComponentizeJS 0.23.0 (@bytecodealliance/componentize-js on npm:
#     StarlingMonkey + Wizer 10, run by Node), the main reference;
#   - componentize-qjs 0.4.5 (npm: QuickJS via rquickjs + wit-dylib + Wizer,
#     a prebuilt native Node addon), a second reference row.
#
# Each goes to <target>/bench-ref/<name> (<target> is $CARGO_TARGET_DIR or
# <repo>/target), pinned to an exact version; a rerun with that version in
# place installs nothing. Node and npm come from apt when missing (this runs
# as root). Everything comes from the npm registry: neither package
# downloads anything at install time. The drivers that call them are kept
# in the repository next to this script (componentize-js.mjs,
# componentize-qjs.mjs).
#
# Usage: bash interpreters/js/benches/reference.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
ref="$target/bench-ref"

# Node: ComponentizeJS's parser (oxc-parser 0.76) declares node >= 20.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "reference.sh: installing nodejs and npm with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
    echo "reference.sh: warning: node $(node --version) is older than ComponentizeJS's" \
        "oxc-parser wants (>= 20); the build may fail" >&2
fi

# install NAME PACKAGE VERSION: `npm install PACKAGE@VERSION` into
# $ref/NAME unless that exact version is already there.
install() {
    local name="$1" package="$2" version="$3"
    local dir="$ref/$name"
    local manifest="$dir/node_modules/$package/package.json"
    local have=""
    if [ -f "$manifest" ]; then
        have="$(node -p "require(process.argv[1]).version" "$manifest")"
    fi
    if [ "$have" != "$version" ]; then
        echo "reference.sh: installing $package@$version into $dir" >&2
        mkdir -p "$dir"
        npm install --prefix "$dir" --save-exact --no-audit --no-fund --loglevel=error \
            "$package@$version" >&2
        have="$(node -p "require(process.argv[1]).version" "$manifest")"
        if [ "$have" != "$version" ]; then
            echo "reference.sh: $package installed as '$have', not $version" >&2
            exit 1
        fi
    fi
    echo "$name $version: $dir"
}

install componentize-js @bytecodealliance/componentize-js 0.23.0
install componentize-qjs componentize-qjs 0.4.5

# Both run native code that npm picks per platform through optional
# dependencies (Wizer's binary; componentize-qjs's addon). Check they came,
# so a missing one fails here and not in the middle of the bench.
node -e '
  const { createRequire } = require("node:module");
  const [cjs, qjs] = process.argv.slice(1);
  const wizer = createRequire(cjs + "/node_modules/@bytecodealliance/wizer/package.json");
  const pkg = `@bytecodealliance/wizer-${process.platform}-${process.arch}`;
  try { wizer.resolve(pkg + "/package.json"); } catch {
    console.error(`reference.sh: ${pkg} (Wizer for this platform) was not installed`);
    process.exit(1);
  }
  try { createRequire(qjs + "/package.json")("componentize-qjs"); } catch (e) {
    console.error(`reference.sh: componentize-qjs does not load here: ${e.message}`);
    process.exit(1);
  }
' "$ref/componentize-js" "$ref/componentize-qjs"

echo "node $(node --version): $(command -v node)"
echo "drivers: $here/componentize-js.mjs $here/componentize-qjs.mjs"
