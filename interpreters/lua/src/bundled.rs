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
pub const BUNDLED: [BundledLibrary; 4] = [
    BundledLibrary {
        name: crate::INTERPRETER,
        bytes: include_bytes!("../bundled/lua.so"),
    },
    BundledLibrary {
        name: "liblua.so",
        bytes: include_bytes!("../bundled/liblua.so"),
    },
    BundledLibrary {
        name: "libsetjmp.so",
        bytes: include_bytes!("../bundled/libsetjmp.so"),
    },
    BundledLibrary {
        name: "libc.so",
        bytes: include_bytes!("../bundled/libc.so"),
    },
];
