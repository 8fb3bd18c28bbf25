//! Where `needed` libraries are looked for.

use std::ffi::OsString;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// One place to look, with why it is on the list (for error messages).
#[derive(Clone, Debug)]
pub struct SearchDir {
    pub why: String,
    /// `None` when the environment variable it comes from is not set.
    pub dir: Option<PathBuf>,
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
pub fn find(dirs: &[SearchDir], name: &str) -> Option<PathBuf> {
    dirs.iter()
        .filter_map(|d| d.dir.as_ref())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The search list as indented lines, for "not found" errors.
pub fn describe(dirs: &[SearchDir]) -> String {
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
