//! Where `needed` libraries are looked for, and finding them: every
//! library the inputs need, transitively, and the dl-openable ones.

use crate::abi::BUILT_IN_LIBDL;
use crate::dylib::{Dylib, check_name};
use crate::inputs::read_file;
use crate::report::Origin;
use anyhow::{Result, bail};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::OsString;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// One place to look, with why it is on the list (for error messages).
#[derive(Clone, Debug)]
pub struct SearchDir {
    why: String,
    /// `None` when the environment variable it comes from is not set.
    dir: Option<PathBuf>,
}

/// The search order: `explicit` (`-L`) folders, then the folders of the
/// inputs, then (with `env`) `$WASI_SYSROOT/lib/wasm32-wasip2`,
/// `$WASI_SYSROOT/lib/wasm32-wasip1`, `$WASI_SYSROOT/lib`,
/// `$WASI_SDK_PATH/share/wasi-sysroot/lib/wasm32-wasip2` and
/// `.../wasm32-wasip1`.
pub fn search_dirs(explicit: &[PathBuf], input_dirs: &[PathBuf], env: bool) -> Vec<SearchDir> {
    let mut dirs = Vec::new();
    for d in explicit {
        dirs.push(SearchDir {
            why: "search path".into(),
            dir: Some(d.clone()),
        });
    }
    for d in input_dirs {
        if !explicit.contains(d) {
            dirs.push(SearchDir {
                why: "folder of an input".into(),
                dir: Some(d.clone()),
            });
        }
    }
    if env {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let sysroot: Option<OsString> = var("WASI_SYSROOT");
        for sub in ["lib/wasm32-wasip2", "lib/wasm32-wasip1", "lib"] {
            dirs.push(SearchDir {
                why: format!("$WASI_SYSROOT/{sub}"),
                dir: sysroot.as_ref().map(|s| Path::new(s).join(sub)),
            });
        }
        let sdk = var("WASI_SDK_PATH");
        for sub in ["wasm32-wasip2", "wasm32-wasip1"] {
            let rel = format!("share/wasi-sysroot/lib/{sub}");
            dirs.push(SearchDir {
                why: format!("$WASI_SDK_PATH/{rel}"),
                dir: sdk.as_ref().map(|s| Path::new(s).join(&rel)),
            });
        }
    }
    dirs
}

/// The first `dir/name` that is a file.
fn find(dirs: &[SearchDir], name: &str) -> Option<PathBuf> {
    dirs.iter()
        .filter_map(|d| d.dir.as_ref())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The search list as indented lines, for "not found" errors.
fn describe(dirs: &[SearchDir]) -> String {
    let mut out = String::new();
    if dirs.is_empty() {
        out.push_str("\n    (no search paths: add one with -L)");
    }
    for d in dirs {
        match &d.dir {
            Some(p) => {
                let _ = write!(out, "\n    {} ({})", p.display(), d.why);
                if !p.is_dir() {
                    out.push_str(", does not exist");
                }
            }
            None => {
                let var = d.why.split('/').next().unwrap_or(&d.why);
                let _ = write!(out, "\n    {} ({var} is not set)", d.why);
            }
        }
    }
    out
}

/// Adds to `libs` (the inputs) the libraries their `needed` entries name
/// (breadth first, inputs in order), then each dl-openable one, with what
/// those need; with dl-openable libraries, or when a `needed` `libdl.so` is
/// on no search path, wit-component's built-in libdl too. Marks the dl-openable ones. What is found nowhere is one error
/// listing every missing library, who needs it and where it was looked for.
pub fn find_needed(
    libs: &mut Vec<Dylib>,
    dirs: &[SearchDir],
    dl_openable: &[String],
) -> Result<()> {
    let mut search = Search {
        libs,
        dirs,
        not_found: BTreeMap::new(),
        queue: VecDeque::new(),
    };
    search.queue.extend(0..search.libs.len());
    if !dl_openable.is_empty() {
        search.add_built_in_libdl(None);
    }
    let mut pending_dl: VecDeque<&String> = dl_openable.iter().collect();
    loop {
        while let Some(i) = search.queue.pop_front() {
            for n in search.libs[i].needed.clone() {
                search.look_for(&n, Some(i))?;
            }
        }
        match pending_dl.pop_front() {
            Some(n) => search.look_for(n, None)?,
            None => break,
        }
    }
    for name in dl_openable {
        if let Some(lib) = search.libs.iter_mut().find(|l| &l.name == name) {
            lib.dl_openable = true;
        }
    }
    search.not_found_error()
}

/// The state of [`find_needed`].
struct Search<'a> {
    libs: &'a mut Vec<Dylib>,
    dirs: &'a [SearchDir],
    /// Libraries whose `needed` entries are still to be looked at.
    queue: VecDeque<usize>,
    /// name -> who needed it first (`None`: named dl-openable).
    not_found: BTreeMap<String, Option<String>>,
}

impl Search<'_> {
    /// Looks for `name` unless it is already known; loads it (and queues
    /// it) or records it as not found.
    fn look_for(&mut self, name: &str, needed_by: Option<usize>) -> Result<()> {
        if self.libs.iter().any(|l| l.name == name) || self.not_found.contains_key(name) {
            return Ok(());
        }
        let by = needed_by.map(|i| self.libs[i].name.clone());
        let Some(path) = find(self.dirs, name) else {
            if name == BUILT_IN_LIBDL {
                // Nothing on the search path provides libdl.so: wit-component's
                // own does (dlopen finds the dl-openable libraries, if any).
                self.add_built_in_libdl(by);
            } else {
                self.not_found.insert(name.to_string(), by);
            }
            return Ok(());
        };
        check_name(name)?;
        let bytes = read_file(&path)?;
        let origin = Origin::Found {
            path,
            needed_by: by,
        };
        self.libs
            .push(Dylib::read("library", name.to_string(), bytes, origin)?);
        self.queue.push_back(self.libs.len() - 1);
        Ok(())
    }

    /// Adds wit-component's built-in libdl, brought in by `needed_by` (or,
    /// with `None`, by dl-openable libraries), and queues what it needs.
    fn add_built_in_libdl(&mut self, needed_by: Option<String>) {
        let mut libdl = Dylib::built_in_libdl();
        libdl.origin = Origin::BuiltIn { needed_by };
        self.libs.push(libdl);
        self.queue.push_back(self.libs.len() - 1);
    }

    fn not_found_error(&self) -> Result<()> {
        if self.not_found.is_empty() {
            return Ok(());
        }
        let mut msg = String::new();
        for (name, needed_by) in &self.not_found {
            if !msg.is_empty() {
                msg.push('\n');
            }
            match needed_by {
                Some(by) => {
                    let _ = write!(
                        msg,
                        "library `{name}` not found; needed by {}",
                        self.chain(by)
                    );
                }
                None => {
                    let _ = write!(msg, "library `{name}` (to be dl-openable) not found");
                }
            }
            let _ = write!(msg, "; looked in:{}", describe(self.dirs));
        }
        bail!(msg)
    }

    /// "`a.so` (which is needed by `b.so`, needed by `c.so`)", back to an
    /// input.
    fn chain(&self, name: &str) -> String {
        let mut out = format!("`{name}`");
        let mut seen = BTreeSet::from([name.to_string()]);
        let mut current = name.to_string();
        let mut parts = Vec::new();
        while let Some(l) = self.libs.iter().find(|l| l.name == current) {
            match &l.origin {
                Origin::Found {
                    needed_by: Some(by),
                    ..
                } if seen.insert(by.clone()) => {
                    parts.push(format!("`{by}`"));
                    current = by.clone();
                }
                _ => break,
            }
        }
        if !parts.is_empty() {
            let _ = write!(out, " (which is needed by {})", parts.join(", needed by "));
        }
        out
    }
}
