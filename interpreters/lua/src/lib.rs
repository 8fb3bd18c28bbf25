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
//! let binding = componentize_lua::Binding::locate()?;
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

pub use bundled::{BUNDLED, BundledLibrary, LUA_VERSION};
use std::fmt;
use std::path::{Path, PathBuf};

/// The interpreter's library name, as recorded in the bindings' `needed`
/// (`componentize_generate::Options::interpreter`).
///
/// The binding implements the init contract (`componentize_contract`):
/// `init(name, source)` loads `source` as the Lua chunk `@name`, runs it and
/// checks that every export of the world has its Lua function.
pub const INTERPRETER: &str = "lua.so";

/// A shared library to link: its name (as other libraries' `needed` lists
/// it) and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Library {
    /// The library name, e.g. `liblua.so`.
    pub name: &'static str,
    /// The file.
    pub path: PathBuf,
}

/// A built Lua binding and the libraries it needs.
#[derive(Clone, Debug)]
pub struct Binding {
    dir: PathBuf,
}

/// Why [`Binding::locate`] or [`Binding::in_dir`] failed.
#[derive(Clone, Debug)]
pub struct LocateError {
    dir: PathBuf,
    missing: Vec<PathBuf>,
}

impl fmt::Display for LocateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the Lua binding is not built in {} (missing: ",
            self.dir.display()
        )?;
        for (i, m) in self.missing.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", m.display())?;
        }
        f.write_str("); build it with `bash toolchain/build.sh`")
    }
}

impl std::error::Error for LocateError {}

/// Paths relative to a toolchain build folder.
const LUA_SO: &str = "lib/lua.so";
const LIBLUA_SO: &str = "lib/liblua.so";
const LIBSETJMP_SO: &str = "lib/libsetjmp.so";
const LIBC_SO: &str = "sysroot/lib/wasm32-wasip2/libc.so";

impl Binding {
    /// Finds the build: `$TOOLCHAIN_DIR` if set, else
    /// `$CARGO_TARGET_DIR/toolchain/current`, else this workspace's
    /// `target/toolchain/current`.
    pub fn locate() -> Result<Binding, LocateError> {
        Binding::in_dir(default_dir())
    }

    /// Uses the toolchain build in `dir` (the layout `toolchain/build.sh`
    /// makes: `lib/`, `sysroot/lib/wasm32-wasip2/`).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Result<Binding, LocateError> {
        let dir = dir.into();
        let missing: Vec<PathBuf> = [LUA_SO, LIBLUA_SO, LIBSETJMP_SO, LIBC_SO]
            .iter()
            .map(|rel| dir.join(rel))
            .filter(|p| !p.is_file())
            .collect();
        if missing.is_empty() {
            Ok(Binding { dir })
        } else {
            Err(LocateError { dir, missing })
        }
    }

    /// The toolchain build folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `lua.so`. Link it before the bindings.
    pub fn interpreter(&self) -> Library {
        Library {
            name: INTERPRETER,
            path: self.dir.join(LUA_SO),
        }
    }

    /// What `lua.so` needs, in link order after the bindings: `liblua.so`,
    /// `libsetjmp.so`, `libc.so`.
    pub fn dependencies(&self) -> Vec<Library> {
        vec![
            Library {
                name: "liblua.so",
                path: self.dir.join(LIBLUA_SO),
            },
            Library {
                name: "libsetjmp.so",
                path: self.dir.join(LIBSETJMP_SO),
            },
            Library {
                name: "libc.so",
                path: self.dir.join(LIBC_SO),
            },
        ]
    }
}

fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TOOLCHAIN_DIR") {
        return dir.into();
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => PathBuf::from(t),
        // This crate is `<repo>/interpreters/lua`.
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    };
    target.join("toolchain/current")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_build_is_a_clear_error() {
        let dir = std::env::temp_dir().join("componentize-lua-no-such-dir");
        let err = Binding::in_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("lib/lua.so"), "{err}");
        assert!(err.contains("bash toolchain/build.sh"), "{err}");
    }
}
