//! The JavaScript interpreter libraries that ship inside this crate, so
//! that `componentize --interpreter js` needs no C toolchain.
//!
//! The files are `interpreters/js/bundled/`, copied there from a toolchain
//! build by `interpreters/js/bundle.sh`; the test `bundled` checks that
//! they are byte for byte what the sources build. Their licenses are in
//! `interpreters/js/bundled/LICENSES.md`.

use componentize_interpreter::BundledLibrary;

/// The QuickJS-NG release the bundled `libqjs.so` is built from.
pub const QUICKJS_VERSION: &str = "0.16.2";

/// The bundled libraries in link order: `js.so` (the interpreter, linked
/// before the bindings), then `libqjs.so` and `libc.so`.
pub const BUNDLED: [BundledLibrary; 3] = componentize_interpreter::bundled_libraries![
    (crate::INTERPRETER, "../bundled/js.so"),
    ("libqjs.so", "../bundled/libqjs.so"),
    ("libc.so", "../bundled/libc.so"),
];
