//! The Lua interpreter libraries that ship inside this crate, so that
//! `componentize --interpreter lua` needs no C toolchain.
//!
//! The files are `interpreters/lua/bundled/`, copied there from a toolchain
//! build by `interpreters/lua/bundle.sh`; the test `bundled` checks that
//! they are byte for byte what the sources build. Their licenses are in
//! `interpreters/lua/bundled/LICENSES.md`.

/// The Lua release the bundled `liblua.so` is built from.
pub const LUA_VERSION: &str = "5.4.9";

use componentize_interpreter::BundledLibrary;

/// The bundled libraries in link order: `lua.so` (the interpreter, linked
/// before the bindings), then `liblua.so`, `libsetjmp.so` and `libc.so`.
pub const BUNDLED: [BundledLibrary; 4] = componentize_interpreter::bundled_libraries![
    (crate::INTERPRETER, "../bundled/lua.so"),
    ("liblua.so", "../bundled/liblua.so"),
    ("libsetjmp.so", "../bundled/libsetjmp.so"),
    ("libc.so", "../bundled/libc.so"),
];
