//! The Lua 5.4 binding of componentize: `lua.so`, an interpreter library
//! that implements `componentize.h` on top of Lua 5.4.
//!
//! The C sources are in `interpreters/lua/c/` (the mapping between WIT and
//! Lua is the Lua guide, `interpreters/lua/README.md`). The crate carries
//! the built libraries ([`BUNDLED`], what `componentize --interpreter lua`
//! uses), and finds a build of `toolchain/build.sh`
//! (`<target>/toolchain/current/lib/lua.so`) and the libraries it needs, in
//! the order a linker wants them:
//!
//! ```no_run
//! let binding = componentize_lua::binding()?;
//! // lua.so first (it defines cabi_realloc, which the bindings re-export),
//! // then the bindings made for it, then the rest.
//! println!("{}", binding.interpreter().path.display());
//! for lib in binding.dependencies() {
//!     println!("{} at {}", lib.name, lib.path.display());
//! }
//! # Ok::<(), componentize_lua::LocateError>(())
//! ```

#![warn(missing_docs)]

mod bundled;

pub use bundled::{BUNDLED, LUA_VERSION};
pub use componentize_interpreter::{Binding, BundledLibrary, Layout, Library, LocateError};

/// The interpreter's library name, as recorded in the bindings' `needed`
/// (`componentize_generate::Options::interpreter`).
///
/// The binding implements the init contract (`componentize_contract`):
/// `init(name, source)` loads `source` as the Lua chunk `@name`, runs it and
/// checks that every export of the world has its Lua function.
pub const INTERPRETER: &str = "lua.so";

/// Where a toolchain build keeps `lua.so` and what it needs, in link order:
/// `lua.so`, then (after the bindings) `liblua.so`, `libsetjmp.so`,
/// `libc.so`.
pub const LAYOUT: Layout = Layout {
    language: "Lua",
    libraries: &[
        (INTERPRETER, "lib/lua.so"),
        ("liblua.so", "lib/liblua.so"),
        ("libsetjmp.so", "lib/libsetjmp.so"),
        ("libc.so", "sysroot/lib/wasm32-wasip2/libc.so"),
    ],
};

/// The toolchain build of the Lua binding (see [`Binding::locate`]).
pub fn binding() -> Result<Binding, LocateError> {
    Binding::locate(&LAYOUT)
}
