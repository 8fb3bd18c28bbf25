//! The libraries given to [`Link`](crate::Link), read and checked: named,
//! loaded, and their folders noted for the search.

use crate::abi::BUILT_IN_LIBDL;
use crate::dylib::{Dylib, check_name};
use crate::report::Origin;
use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};

/// A module given as bytes or as a file read when linking.
#[derive(Clone, Debug)]
pub enum Blob {
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// A library given to the link.
#[derive(Clone, Debug)]
pub struct Input {
    /// `None`: named after its file.
    pub name: Option<String>,
    pub blob: Blob,
    /// Given as the bindings, which must carry a WIT world.
    pub bindings: bool,
}

/// The inputs, loaded, in the order given.
pub struct Loaded {
    pub libs: Vec<Dylib>,
    /// The folders of the inputs given as files, in order, once each.
    pub dirs: Vec<PathBuf>,
}

/// Reads a file, saying which one it could not read.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))
}

/// A file's name as a library name (`dir/libc.so` is `libc.so`).
pub fn file_name(path: &Path) -> Option<&str> {
    path.file_name().and_then(|n| n.to_str())
}

/// Reads and checks every input; `dl_openable` are the names to be made
/// dl-openable, which must not bring the built-in libdl in next to a
/// library of that name.
pub fn load<'a>(
    inputs: impl IntoIterator<Item = &'a Input>,
    dl_openable: &[String],
) -> Result<Loaded> {
    let mut loaded = Loaded {
        libs: Vec::new(),
        dirs: Vec::new(),
    };
    for input in inputs {
        let (name, bytes, origin) = match &input.blob {
            Blob::Bytes(b) => (
                input.name.clone().unwrap_or_default(),
                b.clone(),
                Origin::Given,
            ),
            Blob::File(path) => {
                let name = match &input.name {
                    Some(n) => n.clone(),
                    None => file_name(path)
                        .map(str::to_string)
                        .ok_or_else(|| anyhow!("`{}` does not name a file", path.display()))?,
                };
                let bytes = read_file(path)?;
                let dir = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                if !loaded.dirs.contains(&dir) {
                    loaded.dirs.push(dir);
                }
                (name, bytes, Origin::File(path.clone()))
            }
        };
        check_name(&name)?;
        if let Some(other) = loaded.libs.iter().find(|l| l.name == name) {
            bail!(
                "two inputs are named `{name}` ({} and {}): library names must be unique",
                other.origin.describe(),
                origin.describe()
            );
        }
        let kind = if input.bindings {
            "bindings"
        } else {
            "library"
        };
        let lib = Dylib::read(kind, name, bytes, origin)?;
        if input.bindings && !lib.has_world {
            bail!(
                "bindings `{}` carry no WIT world (no `component-type` custom section): expected the output of `componentize generate`",
                lib.name
            );
        }
        loaded.libs.push(lib);
    }
    if loaded.libs.is_empty() {
        bail!("nothing to link: no libraries given");
    }
    if dl_openable.iter().any(|n| n == BUILT_IN_LIBDL)
        || (!dl_openable.is_empty() && loaded.libs.iter().any(|l| l.name == BUILT_IN_LIBDL))
    {
        bail!(
            "a library named `{BUILT_IN_LIBDL}` cannot be linked with dl-openable libraries: they bring in wit-component's built-in `{BUILT_IN_LIBDL}`"
        );
    }
    Ok(loaded)
}
