//! Shared-everything linking: bindings dylib + interpreter + libraries →
//! one WebAssembly component.
//!
//! [`Link`] collects the inputs (core wasm dynamic libraries: modules with a
//! `dylink.0` section), finds every library they need, checks the symbols
//! and hands everything to [`wit_component::Linker`] in an order that makes
//! each import resolve to the right definition. The result, [`Linked`],
//! holds the component and a report of what went into it.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let linked = componentize_link::Link::new()
//!     .bindings_path("app-bindings.so")
//!     .library_path("libinterp.so")
//!     .search_path("/opt/wasi-sysroot/lib/wasm32-wasip2")
//!     .encode()?;
//! for lib in linked.libraries() {
//!     println!("{} ({:?})", lib.name, lib.origin);
//! }
//! std::fs::write("app.wasm", linked.component())?;
//! # Ok(()) }
//! ```
//!
//! # What `encode` does
//!
//! 1. **Finds libraries.** Every `needed` entry of every library, transitively,
//!    names a library. One given as an input (by its name, or its file name)
//!    is used; otherwise it is looked for, in this order, in: the
//!    [search paths](Link::search_path), the folders of the inputs given as
//!    files, and (unless [turned off](Link::search_env)) in
//!    `$WASI_SYSROOT/lib/wasm32-wasip2`, `$WASI_SYSROOT/lib/wasm32-wasip1`,
//!    `$WASI_SYSROOT/lib`, `$WASI_SDK_PATH/share/wasi-sysroot/lib/wasm32-wasip2`
//!    and `$WASI_SDK_PATH/share/wasi-sysroot/lib/wasm32-wasip1`. A library
//!    found nowhere is an error that says who needs it and where it looked.
//! 2. **Checks duplicate definitions.** A symbol exported by several
//!    libraries must have the same type everywhere, must not be one of the
//!    core exports implementing a WIT world's exports (a world export named
//!    `getenv` would take over libc's `getenv`), and one definition must be
//!    able to override the others: the one whose library needs (directly or
//!    not) every other defining library, e.g. an interpreter's
//!    `cabi_realloc` over libc's. Weak definitions (`dylink.0` export info)
//!    give way to strong ones, and an export that merely hands on the
//!    library's own import of the same name (bindings re-export their
//!    imported `cabi_realloc`) is not a definition.
//! 3. **Orders the libraries.** wit-component resolves an import to the first
//!    library exporting it, so the overriding definition goes before every
//!    other library exporting the symbol; otherwise the input order is kept
//!    (inputs first, then found libraries in the order they were needed).
//!    This is what puts the interpreter before the bindings, whose
//!    `cabi_realloc` import would otherwise bind to their own re-export and
//!    recurse until the stack runs out.
//! 4. **Leaves out unused libraries** the way wit-component does: a library
//!    is kept if its WIT world has exports, it is dl-openable or it exports
//!    `_start`, or a kept library needs it or imports a function from it.
//!    Data symbols are not links: a library that only provides data must be
//!    in the `needed` list of its users.
//! 5. **Checks that every import resolves** among the kept libraries and
//!    reports what does not, grouped by library. With
//!    [`stub_missing_functions`](Link::stub_missing_functions) missing
//!    functions become traps instead (weak ones always do).
//! 6. **Adds adapters.** The `wasi_snapshot_preview1` adapter (the reactor
//!    flavour bundled from `wasi-preview1-component-adapter-provider` 48) is
//!    added when, and only when, a kept library imports that namespace;
//!    [`adapter`](Link::adapter) replaces it or adds others, each again only
//!    when imported.
//! 7. **Links and validates** the component. If wit-component panics on an
//!    input these checks missed, the panic becomes an error.
//!
//! The output depends only on the inputs: the same inputs give the same
//! bytes.

mod module;
mod quiet;
mod search;
mod symbols;

use anyhow::{Context, Result, anyhow, bail};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write;
use std::path::{Path, PathBuf};

use module::ModuleInfo;
use symbols::Lib;

/// Name of the preview1 adapter's module namespace.
pub const WASI_PREVIEW1: &str =
    wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME;

/// Name of wit-component's built-in libdl, used with dl-openable libraries.
pub const BUILT_IN_LIBDL: &str = "libdl.so";

/// Name wit-component gives its library of trapping stubs.
const STUBS_LIBRARY: &str = "wit-component:stubs";

#[derive(Clone, Debug)]
enum Blob {
    Bytes(Vec<u8>),
    File(PathBuf),
}

#[derive(Clone, Debug)]
struct Input {
    name: Option<String>,
    blob: Blob,
    bindings: bool,
}

/// The link stage's builder: inputs and options, then [`Link::encode`].
///
/// Inputs given as files are read by `encode`, so building never fails.
#[derive(Clone, Debug)]
pub struct Link {
    inputs: Vec<Input>,
    search_paths: Vec<PathBuf>,
    search_env: bool,
    dl_openable: Vec<String>,
    adapters: Vec<(String, Blob)>,
    stub_missing_functions: bool,
    stack_size: Option<u32>,
}

impl Default for Link {
    fn default() -> Self {
        Link::new()
    }
}

impl Link {
    /// An empty link: no inputs, no search paths, the environment's WASI
    /// sysroot searched, missing functions an error.
    pub fn new() -> Link {
        Link {
            inputs: Vec::new(),
            search_paths: Vec::new(),
            search_env: true,
            dl_openable: Vec::new(),
            adapters: Vec::new(),
            stub_missing_functions: false,
            stack_size: None,
        }
    }

    /// Adds the bindings dylib (from `componentize generate`) as `name`.
    /// Same as [`library`](Link::library), plus a check that the module
    /// carries a WIT world (`component-type` section).
    pub fn bindings(mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Link {
        self.inputs.push(Input {
            name: Some(name.into()),
            blob: Blob::Bytes(bytes.into()),
            bindings: true,
        });
        self
    }

    /// Adds the bindings dylib from a file, named after the file.
    pub fn bindings_path(mut self, path: impl Into<PathBuf>) -> Link {
        self.inputs.push(Input {
            name: None,
            blob: Blob::File(path.into()),
            bindings: true,
        });
        self
    }

    /// Adds a library (interpreter, libc, ...) as `name`: the name other
    /// libraries' `needed` entries refer to it by, e.g. `libc.so`.
    pub fn library(mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Link {
        self.inputs.push(Input {
            name: Some(name.into()),
            blob: Blob::Bytes(bytes.into()),
            bindings: false,
        });
        self
    }

    /// Adds a library from a file, named after the file (`dir/libc.so` is
    /// `libc.so`). Its folder becomes a search folder.
    pub fn library_path(mut self, path: impl Into<PathBuf>) -> Link {
        self.inputs.push(Input {
            name: None,
            blob: Blob::File(path.into()),
            bindings: false,
        });
        self
    }

    /// Adds a folder to look for needed libraries in, searched before the
    /// inputs' folders and the environment's sysroot, in the order added.
    pub fn search_path(mut self, dir: impl Into<PathBuf>) -> Link {
        self.search_paths.push(dir.into());
        self
    }

    /// Whether to search `$WASI_SYSROOT` and `$WASI_SDK_PATH` (read by
    /// `encode`) after the other folders; on by default.
    pub fn search_env(mut self, yes: bool) -> Link {
        self.search_env = yes;
        self
    }

    /// Makes the library `name` loadable at run time with `dlopen`/`dlsym`
    /// (wit-component's built-in `libdl.so` is then linked in). The library
    /// is an input of that name, or is looked for like a needed one.
    pub fn dl_openable(mut self, name: impl Into<String>) -> Link {
        self.dl_openable.push(name.into());
        self
    }

    /// Uses `bytes` as the adapter for the import namespace `name` (a core
    /// module such as `wasi_snapshot_preview1.reactor.wasm`), replacing the
    /// bundled one for `wasi_snapshot_preview1`. Added only if a linked
    /// library imports from `name`.
    pub fn adapter(mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Link {
        self.adapters.push((name.into(), Blob::Bytes(bytes.into())));
        self
    }

    /// Like [`adapter`](Link::adapter), reading the module from a file.
    pub fn adapter_path(mut self, name: impl Into<String>, path: impl Into<PathBuf>) -> Link {
        self.adapters.push((name.into(), Blob::File(path.into())));
        self
    }

    /// Whether functions no library defines become stubs that trap when
    /// called, instead of an error. Off by default. Missing data and tags
    /// are always an error.
    pub fn stub_missing_functions(mut self, yes: bool) -> Link {
        self.stub_missing_functions = yes;
        self
    }

    /// Size in bytes of the shadow stack (wit-component's default: 1 MiB).
    pub fn stack_size(mut self, bytes: u32) -> Link {
        self.stack_size = Some(bytes);
        self
    }

    /// Every library [`encode`](Link::encode) would link, with its bytes,
    /// after finding the needed ones (steps 1 of the crate documentation),
    /// in a stable order: what determines the output, e.g. for a cache key.
    /// The built-in libdl has no bytes of its own and is listed with none.
    pub fn resolve(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let set = self.find_libraries()?;
        Ok(set
            .libs
            .into_iter()
            .map(|l| (l.name, l.bytes.unwrap_or_default()))
            .collect())
    }

    fn find_libraries(&self) -> Result<LibrarySet> {
        let mut set = self.collect_inputs()?;
        let built_in_libdl = !self.dl_openable.is_empty();
        let dirs = search::search_dirs(&self.search_paths, &set.input_dirs, self.search_env);
        set.find_needed(&dirs, &self.dl_openable, built_in_libdl)?;
        Ok(set)
    }

    /// Links everything into a component (see the crate documentation for
    /// the steps). Errors name the library and, where it applies, the
    /// symbol.
    pub fn encode(&self) -> Result<Linked> {
        let set = self.find_libraries()?;
        let adapters = self.load_adapters()?;
        for name in adapters.keys().map(String::as_str).chain([WASI_PREVIEW1]) {
            if set.libs.iter().any(|l| l.name == name) {
                bail!("library name `{name}` is also the name of an adapter's import namespace");
            }
        }

        let libs: Vec<Lib> = set
            .libs
            .iter()
            .map(|l| Lib {
                name: &l.name,
                info: &l.info,
                dl_openable: l.dl_openable,
                built_in: matches!(l.origin, Origin::BuiltIn),
            })
            .collect();
        let order = symbols::order(&libs)?;
        let keep = symbols::reachable(&libs, &order);
        let stubs = symbols::resolve(&libs, &order, &keep, self.stub_missing_functions)?;

        // Adapters: those whose namespace a kept library imports.
        let imported: BTreeSet<&str> = order
            .iter()
            .filter(|&&i| keep[i])
            .flat_map(|&i| set.libs[i].info.namespaces.iter().map(String::as_str))
            .collect();
        let mut used_adapters: Vec<(String, AdapterOrigin, &[u8])> = Vec::new();
        for (name, (origin, bytes)) in &adapters {
            if imported.contains(name.as_str()) {
                used_adapters.push((name.clone(), origin.clone(), bytes));
            }
        }
        if imported.contains(WASI_PREVIEW1) && !adapters.contains_key(WASI_PREVIEW1) {
            used_adapters.push((
                WASI_PREVIEW1.to_string(),
                AdapterOrigin::Bundled,
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            ));
            used_adapters.sort_by(|a, b| a.0.cmp(&b.0));
        }

        let kept: Vec<&Loaded> = order
            .iter()
            .filter(|&&i| keep[i])
            .map(|&i| &set.libs[i])
            .collect();
        let run_linker = || -> Result<Vec<u8>> {
            let mut linker = wit_component::Linker::default();
            let mut uses_libdl = false;
            for l in &kept {
                match &l.bytes {
                    Some(bytes) => {
                        linker.library(&l.name, bytes, l.dl_openable)?;
                    }
                    None => uses_libdl = true,
                }
            }
            linker
                .stub_missing_functions(self.stub_missing_functions)
                .use_built_in_libdl(uses_libdl);
            if let Some(size) = self.stack_size {
                linker.stack_size(size);
            }
            for (name, _, bytes) in &used_adapters {
                linker
                    .encoder()
                    .adapter(name, bytes)
                    .with_context(|| format!("cannot use the adapter for `{name}`"))?;
            }
            linker.encoder().validate(true);
            linker
                .encode()
                .context("wit-component failed to link the libraries")
        };
        let component = match quiet::catch(run_linker) {
            Ok(result) => result?,
            Err(panic) => bail!(
                "wit-component's linker panicked on these inputs ({panic}); the checks before it did not catch the problem, please report it with the inputs"
            ),
        };
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&component)
            .map_err(|e| anyhow!("internal error: the linked component does not validate: {e}"))?;

        let mut libraries = Vec::new();
        let mut unused = Vec::new();
        for &i in &order {
            let l = &set.libs[i];
            let entry = Library {
                name: l.name.clone(),
                origin: l.origin.clone(),
                dl_openable: l.dl_openable,
            };
            if keep[i] {
                libraries.push(entry);
            } else {
                unused.push(entry);
            }
        }
        Ok(Linked {
            component,
            libraries,
            unused,
            adapters: used_adapters
                .into_iter()
                .map(|(name, origin, _)| Adapter { name, origin })
                .collect(),
            stubs: stubs
                .into_iter()
                .map(|s| Stub {
                    library: s.library,
                    symbol: s.symbol,
                })
                .collect(),
        })
    }

    fn collect_inputs(&self) -> Result<LibrarySet> {
        let mut set = LibrarySet::default();
        if self.inputs.is_empty() {
            bail!("nothing to link: no libraries given");
        }
        for input in &self.inputs {
            let (name, bytes, origin) = match &input.blob {
                Blob::Bytes(b) => (
                    input.name.clone().unwrap_or_default(),
                    b.clone(),
                    Origin::Given,
                ),
                Blob::File(path) => {
                    let name = match &input.name {
                        Some(n) => n.clone(),
                        None => path
                            .file_name()
                            .and_then(|n| n.to_str())
                            .map(str::to_string)
                            .ok_or_else(|| anyhow!("`{}` does not name a file", path.display()))?,
                    };
                    let bytes = std::fs::read(path)
                        .with_context(|| format!("cannot read `{}`", path.display()))?;
                    let dir = match path.parent() {
                        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                        _ => PathBuf::from("."),
                    };
                    if !set.input_dirs.contains(&dir) {
                        set.input_dirs.push(dir);
                    }
                    (name, bytes, Origin::File(path.clone()))
                }
            };
            check_name(&name)?;
            if let Some(other) = set.libs.iter().find(|l| l.name == name) {
                bail!(
                    "two inputs are named `{name}` ({} and {}): library names must be unique",
                    other.origin.describe(),
                    origin.describe()
                );
            }
            let what = if input.bindings {
                "bindings"
            } else {
                "library"
            };
            let info = module::inspect(&bytes)
                .with_context(|| format!("{what} `{name}` ({})", origin.describe()))?;
            if input.bindings && !info.has_world {
                bail!(
                    "bindings `{name}` carry no WIT world (no `component-type` custom section): expected the output of `componentize generate`"
                );
            }
            set.libs.push(Loaded {
                name,
                bytes: Some(bytes),
                info,
                origin,
                dl_openable: false,
            });
        }
        if self.dl_openable.iter().any(|n| n == BUILT_IN_LIBDL)
            || (!self.dl_openable.is_empty() && set.libs.iter().any(|l| l.name == BUILT_IN_LIBDL))
        {
            bail!(
                "a library named `{BUILT_IN_LIBDL}` cannot be linked with dl-openable libraries: they bring in wit-component's built-in `{BUILT_IN_LIBDL}`"
            );
        }
        Ok(set)
    }

    fn load_adapters(&self) -> Result<BTreeMap<String, (AdapterOrigin, Vec<u8>)>> {
        let mut out = BTreeMap::new();
        for (name, blob) in &self.adapters {
            if name.is_empty() {
                bail!("an adapter needs the name of the import namespace it implements");
            }
            let (origin, bytes) = match blob {
                Blob::Bytes(b) => (AdapterOrigin::Given, b.clone()),
                Blob::File(p) => (
                    AdapterOrigin::File(p.clone()),
                    std::fs::read(p).with_context(|| format!("cannot read `{}`", p.display()))?,
                ),
            };
            module::check_adapter(&bytes).with_context(|| format!("adapter `{name}`"))?;
            if out.insert(name.clone(), (origin, bytes)).is_some() {
                bail!("two adapters given for `{name}`");
            }
        }
        Ok(out)
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        bail!("a library needs a name (e.g. `libfoo.so`)");
    }
    if name == STUBS_LIBRARY {
        bail!("`{STUBS_LIBRARY}` is reserved for wit-component's stub library");
    }
    Ok(())
}

struct Loaded {
    name: String,
    /// `None` for the built-in libdl.
    bytes: Option<Vec<u8>>,
    info: ModuleInfo,
    origin: Origin,
    dl_openable: bool,
}

#[derive(Default)]
struct LibrarySet {
    libs: Vec<Loaded>,
    input_dirs: Vec<PathBuf>,
}

impl LibrarySet {
    fn index(&self, name: &str) -> Option<usize> {
        self.libs.iter().position(|l| l.name == name)
    }

    /// Resolves `needed` entries (breadth first, inputs in order) and
    /// dl-openable names, loading what is found.
    fn find_needed(
        &mut self,
        dirs: &[search::SearchDir],
        dl_openable: &[String],
        built_in_libdl: bool,
    ) -> Result<()> {
        // name -> who needed it first (None: named by dl_openable).
        let mut not_found: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut queue: VecDeque<usize> = (0..self.libs.len()).collect();
        if built_in_libdl {
            self.libs.push(Loaded {
                name: BUILT_IN_LIBDL.into(),
                bytes: None,
                info: module::built_in_libdl(),
                origin: Origin::BuiltIn,
                dl_openable: false,
            });
            queue.push_back(self.libs.len() - 1);
        }
        let mut pending_dl: VecDeque<&String> = dl_openable.iter().collect();
        loop {
            while let Some(i) = queue.pop_front() {
                for n in self.libs[i].info.needed.clone() {
                    if self.index(&n).is_none() && !not_found.contains_key(&n) {
                        self.load_found(dirs, &n, Some(i), &mut queue, &mut not_found)?;
                    }
                }
            }
            match pending_dl.pop_front() {
                Some(n) => {
                    if self.index(n).is_none() && !not_found.contains_key(n) {
                        self.load_found(dirs, n, None, &mut queue, &mut not_found)?;
                    }
                }
                None => break,
            }
        }
        for name in dl_openable {
            if let Some(i) = self.index(name) {
                self.libs[i].dl_openable = true;
            }
        }
        if !not_found.is_empty() {
            let mut msg = String::new();
            for (name, needed_by) in &not_found {
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
                let _ = write!(msg, "; looked in:{}", search::describe(dirs));
            }
            bail!(msg);
        }
        Ok(())
    }

    /// Looks for `name`; loads it (and queues it) or records it as not found.
    fn load_found(
        &mut self,
        dirs: &[search::SearchDir],
        name: &str,
        needed_by: Option<usize>,
        queue: &mut VecDeque<usize>,
        not_found: &mut BTreeMap<String, Option<String>>,
    ) -> Result<()> {
        let by = needed_by.map(|i| self.libs[i].name.clone());
        let Some(path) = search::find(dirs, name) else {
            not_found.insert(name.to_string(), by);
            return Ok(());
        };
        check_name(name)?;
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read `{}`", path.display()))?;
        let origin = Origin::Found {
            path: path.clone(),
            needed_by: by,
        };
        let info = module::inspect(&bytes)
            .with_context(|| format!("library `{name}` ({})", origin.describe()))?;
        self.libs.push(Loaded {
            name: name.to_string(),
            bytes: Some(bytes),
            info,
            origin,
            dl_openable: false,
        });
        queue.push_back(self.libs.len() - 1);
        Ok(())
    }

    /// "`a.so` (needed by `b.so`, needed by `c.so`)" back to an input.
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

/// Where a linked library came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Given as bytes ([`Link::library`], [`Link::bindings`]).
    Given,
    /// Given as a file ([`Link::library_path`], [`Link::bindings_path`]).
    File(PathBuf),
    /// Found in a search folder, because `needed_by` lists it in its
    /// `needed` (`None`: because it was named dl-openable).
    Found {
        /// The file.
        path: PathBuf,
        /// The library that needed it first.
        needed_by: Option<String>,
    },
    /// wit-component's built-in `libdl.so`.
    BuiltIn,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Found {
                path,
                needed_by: Some(by),
            } => write!(f, "found at `{}`, needed by `{by}`", path.display()),
            Origin::Found {
                path,
                needed_by: None,
            } => write!(f, "found at `{}`, dl-openable", path.display()),
            other => f.write_str(&other.describe()),
        }
    }
}

impl std::fmt::Display for AdapterOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdapterOrigin::Bundled => {
                f.write_str("bundled (wasi-preview1-component-adapter-provider 48, reactor)")
            }
            AdapterOrigin::Given => f.write_str("given as bytes"),
            AdapterOrigin::File(p) => write!(f, "`{}`", p.display()),
        }
    }
}

impl Origin {
    fn describe(&self) -> String {
        match self {
            Origin::Given => "given as bytes".into(),
            Origin::File(p) => format!("`{}`", p.display()),
            Origin::Found { path, .. } => format!("found at `{}`", path.display()),
            Origin::BuiltIn => "built into wit-component".into(),
        }
    }

    /// The file the library was read from, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Origin::File(p) | Origin::Found { path: p, .. } => Some(p),
            Origin::Given | Origin::BuiltIn => None,
        }
    }
}

/// A library of the link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Library {
    /// Its name in the component (what `needed` entries refer to).
    pub name: String,
    /// Where it came from.
    pub origin: Origin,
    /// Loadable with `dlopen`.
    pub dl_openable: bool,
}

/// Where an adapter came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdapterOrigin {
    /// The reactor `wasi_snapshot_preview1` adapter bundled with this crate
    /// (`wasi-preview1-component-adapter-provider` 48.0.0).
    Bundled,
    /// Given as bytes ([`Link::adapter`]).
    Given,
    /// Read from a file ([`Link::adapter_path`]).
    File(PathBuf),
}

/// An adapter in the component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adapter {
    /// The import namespace it implements, e.g. `wasi_snapshot_preview1`.
    pub name: String,
    /// Where it came from.
    pub origin: AdapterOrigin,
}

/// A function replaced by a trapping stub (weak and undefined, or missing
/// with [`Link::stub_missing_functions`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stub {
    /// The library importing it.
    pub library: String,
    /// The function.
    pub symbol: String,
}

/// The result of [`Link::encode`]: the component and what went into it.
#[derive(Clone, Debug)]
pub struct Linked {
    component: Vec<u8>,
    libraries: Vec<Library>,
    unused: Vec<Library>,
    adapters: Vec<Adapter>,
    stubs: Vec<Stub>,
}

impl Linked {
    /// The component's bytes.
    pub fn component(&self) -> &[u8] {
        &self.component
    }

    /// Takes the component's bytes.
    pub fn into_component(self) -> Vec<u8> {
        self.component
    }

    /// The libraries linked in, in the order given to wit-component's
    /// linker (the first library exporting a symbol provides it).
    pub fn libraries(&self) -> &[Library] {
        &self.libraries
    }

    /// Libraries given or found but left out because nothing uses them.
    pub fn unused(&self) -> &[Library] {
        &self.unused
    }

    /// The adapters added, by name.
    pub fn adapters(&self) -> &[Adapter] {
        &self.adapters
    }

    /// Functions that trap when called, by library and name.
    pub fn stubs(&self) -> &[Stub] {
        &self.stubs
    }
}
