//! What componentize's interpreter crates (`componentize-lua`,
//! `componentize-js`) share: the type of the libraries they bundle, and
//! finding a build of `toolchain/build.sh` of an interpreter and the
//! libraries it needs, in the order a linker wants them.
//!
//! ```no_run
//! use componentize_interpreter::{Binding, Layout};
//! const LAYOUT: Layout = Layout {
//!     language: "Lua",
//!     libraries: &[
//!         ("lua.so", "lib/lua.so"),
//!         ("liblua.so", "lib/liblua.so"),
//!         ("libc.so", "sysroot/lib/wasm32-wasip2/libc.so"),
//!     ],
//! };
//! let binding = Binding::locate(&LAYOUT)?;
//! // The interpreter first (it defines cabi_realloc, which the bindings
//! // re-export), then the bindings made for it, then the rest.
//! println!("{}", binding.interpreter().path.display());
//! for lib in binding.dependencies() {
//!     println!("{} at {}", lib.name, lib.path.display());
//! }
//! # Ok::<(), componentize_interpreter::LocateError>(())
//! ```

#![deny(missing_docs)]

use std::fmt;
use std::path::{Path, PathBuf};

/// One library an interpreter crate embeds: its name (as `needed` lists
/// it) and its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundledLibrary {
    /// The library name, e.g. `liblua.so`.
    pub name: &'static str,
    /// The wasm shared library.
    pub bytes: &'static [u8],
}

/// The array of [`BundledLibrary`] for `(name, path)` pairs, each file
/// embedded with `include_bytes!` (so `path` is relative to the file that
/// uses the macro):
///
/// ```ignore
/// pub const BUNDLED: [BundledLibrary; 2] = componentize_interpreter::bundled_libraries![
///     ("js.so", "../bundled/js.so"),
///     ("libc.so", "../bundled/libc.so"),
/// ];
/// ```
#[macro_export]
macro_rules! bundled_libraries {
    ($(($name:expr, $path:literal)),* $(,)?) => {
        [$($crate::BundledLibrary { name: $name, bytes: include_bytes!($path) }),*]
    };
}

/// A shared library to link: its name (as other libraries' `needed` lists
/// it) and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Library {
    /// The library name, e.g. `liblua.so`.
    pub name: &'static str,
    /// The file.
    pub path: PathBuf,
}

/// Where a toolchain build keeps an interpreter and what it needs.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// The language, for messages ("Lua").
    pub language: &'static str,
    /// Library names and their paths relative to the build folder, in link
    /// order: the interpreter first, then what it needs, down to `libc.so`.
    pub libraries: &'static [(&'static str, &'static str)],
}

/// A built interpreter binding and the libraries it needs.
#[derive(Clone, Debug)]
pub struct Binding {
    dir: PathBuf,
    layout: &'static Layout,
}

/// Why [`Binding::locate`] or [`Binding::in_dir`] failed.
#[derive(Clone, Debug)]
pub struct LocateError {
    language: &'static str,
    dir: PathBuf,
    missing: Vec<PathBuf>,
}

impl fmt::Display for LocateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let missing: Vec<_> = self
            .missing
            .iter()
            .map(|m| m.display().to_string())
            .collect();
        write!(
            f,
            "the {} binding is not built in {} (missing: {}); build it with `bash toolchain/build.sh`",
            self.language,
            self.dir.display(),
            missing.join(", ")
        )
    }
}

impl std::error::Error for LocateError {}

impl Binding {
    /// Finds the build: `$TOOLCHAIN_DIR` if set, else
    /// `$CARGO_TARGET_DIR/toolchain/current`, else this workspace's
    /// `target/toolchain/current`.
    pub fn locate(layout: &'static Layout) -> Result<Binding, LocateError> {
        Binding::in_dir(layout, default_dir())
    }

    /// Uses the toolchain build in `dir` (the layout `toolchain/build.sh`
    /// makes: `lib/`, `sysroot/lib/wasm32-wasip2/`).
    pub fn in_dir(
        layout: &'static Layout,
        dir: impl Into<PathBuf>,
    ) -> Result<Binding, LocateError> {
        let dir = dir.into();
        let missing: Vec<PathBuf> = layout
            .libraries
            .iter()
            .map(|(_, rel)| dir.join(rel))
            .filter(|p| !p.is_file())
            .collect();
        if missing.is_empty() {
            Ok(Binding { dir, layout })
        } else {
            Err(LocateError {
                language: layout.language,
                dir,
                missing,
            })
        }
    }

    /// The toolchain build folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The interpreter library. Link it before the bindings.
    pub fn interpreter(&self) -> Library {
        self.libraries()
            .next()
            .expect("a layout names its interpreter first")
    }

    /// What the interpreter needs, in link order after the bindings.
    pub fn dependencies(&self) -> Vec<Library> {
        self.libraries().skip(1).collect()
    }

    fn libraries(&self) -> impl Iterator<Item = Library> + '_ {
        self.layout.libraries.iter().map(|(name, rel)| Library {
            name,
            path: self.dir.join(rel),
        })
    }
}

fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TOOLCHAIN_DIR") {
        return dir.into();
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => PathBuf::from(t),
        // This crate is `<repo>/crates/interpreter`.
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    };
    target.join("toolchain/current")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUT: Layout = Layout {
        language: "Test",
        libraries: &[
            ("test.so", "lib/test.so"),
            ("libc.so", "sysroot/lib/wasm32-wasip2/libc.so"),
        ],
    };

    #[test]
    fn missing_build_is_a_clear_error() {
        let dir = std::env::temp_dir().join("componentize-interpreter-no-such-dir");
        let err = Binding::in_dir(&LAYOUT, &dir).unwrap_err().to_string();
        assert!(err.starts_with("the Test binding is not built in"), "{err}");
        assert!(err.contains("lib/test.so"), "{err}");
        assert!(err.contains("bash toolchain/build.sh"), "{err}");
    }

    #[test]
    fn a_build_lists_the_interpreter_then_its_dependencies() {
        let dir = tempfile_dir();
        for (_, rel) in LAYOUT.libraries {
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"").unwrap();
        }
        let binding = Binding::in_dir(&LAYOUT, &dir).unwrap();
        assert_eq!(binding.interpreter().name, "test.so");
        let deps: Vec<_> = binding.dependencies().into_iter().map(|l| l.name).collect();
        assert_eq!(deps, ["libc.so"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("componentize-interpreter-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
