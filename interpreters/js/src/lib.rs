//! The JavaScript binding of componentize: `js.so`, an interpreter library
//! that implements `componentize.h` on top of QuickJS-NG (`libqjs.so`).
//!
//! The C sources are in `interpreters/js/c/`; the mapping between WIT and
//! JavaScript, which follows jco's conventions, is the JS guide
//! (`interpreters/js/README.md`). The crate carries the built libraries
//! ([`BUNDLED`], what `componentize --interpreter js` uses), and finds a
//! build of `toolchain/build.sh` ([`binding`]).

#![deny(missing_docs)]

mod bundled;

pub use bundled::{BUNDLED, QUICKJS_VERSION};
pub use componentize_interpreter::{Binding, BundledLibrary, Layout, Library, LocateError};

/// The interpreter's library name, as recorded in the bindings' `needed`
/// (`componentize_generate::Options::interpreter`).
///
/// The binding implements the init contract (`componentize_contract`):
/// `init(name, source)` evaluates `source` as the ES module `name`, with
/// its relative imports read from the module folders, and checks that the
/// module exports everything the world's exports need.
pub const INTERPRETER: &str = "js.so";

/// Where a toolchain build keeps `js.so` and what it needs, in link order:
/// `js.so`, then (after the bindings) `libqjs.so` and `libc.so`.
pub const LAYOUT: Layout = Layout {
    language: "JavaScript",
    libraries: &[
        (INTERPRETER, "lib/js.so"),
        ("libqjs.so", "lib/libqjs.so"),
        ("libc.so", "sysroot/lib/wasm32-wasip2/libc.so"),
    ],
};

/// The toolchain build of the JavaScript binding (see [`Binding::locate`]).
pub fn binding() -> Result<Binding, LocateError> {
    Binding::locate(&LAYOUT)
}
