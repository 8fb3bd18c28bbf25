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
//! eprint!("{}", linked.report());
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
//!    and `$WASI_SDK_PATH/share/wasi-sysroot/lib/wasm32-wasip1`. A
//!    `libdl.so` found nowhere is wit-component's built-in one (the report
//!    says so); any other library found nowhere is an error that says who
//!    needs it and where it looked. When an interpreter imports
//!    `componentize_task_context_get`/`_set` (weakly, as componentize.h
//!    declares them) and the world has an async export, the link stage adds
//!    the library defining them over context slot 0 (`task_context`); a
//!    sync world does without, so it uses no component-model async.
//! 2. **Checks who implements the world**, the union of the libraries' WIT
//!    worlds: every export is defined by exactly one library, and every
//!    export that bindings leave out (generated with `--exclude-interface`
//!    or `--exclude-export`, which they list in their
//!    [`EXCLUDED_EXPORTS_SECTION`](componentize_contract::excluded::EXCLUDED_EXPORTS_SECTION))
//!    by exactly one other library.
//!
//!    **Checks duplicate definitions.** A symbol exported by several
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
//!
//!    Intrinsics of `componentize.h` that bindings import (they import all
//!    of them) and their interpreter lacks, because it was built against an
//!    older header, are judged by what the world needs: an intrinsic the
//!    bindings' code never calls, references or exports is not needed, and
//!    when none is, they become traps named after them and the report says
//!    so ([`Linked::missing_intrinsics`]). One the world needs is an error
//!    naming it and the WIT type and function that need it, e.g.
//!    "`wit_dylib_push_map` is needed for `map<string, u32>` in export
//!    `count`" (unless missing functions are to be stubbed).
//! 6. **Adds adapters.** The `wasi_snapshot_preview1` adapter (the reactor
//!    flavour bundled from `wasi-preview1-component-adapter-provider` 48) is
//!    added when, and only when, a kept library imports that namespace;
//!    [`adapter`](Link::adapter) replaces it or adds others, each again only
//!    when imported.
//! 7. **Links and validates** the component, after checking that the
//!    libraries' `dylink.0` mem-info and the stack fit a 32-bit memory and
//!    table (wit-component would overflow on them). If wit-component panics
//!    on an input these checks missed, the panic becomes an error.
//!
//! The output depends only on the inputs: the same inputs give the same
//! bytes. [`Link::resolve`] reads the inputs and adapters and does step 1
//! (everything the output depends on, e.g. for a cache key);
//! [`Resolved::encode`] does the rest.
//!
//! # Modules
//!
//! The data flows from the inputs ([`Link`], `inputs`, `adapter`) through
//! the search for needed libraries (`search`, and `task_context`) to one
//! `Dylib` per library
//! (`dylib`), checked by `exports` (who implements the world) and analysed
//! by `symbols` (with `intrinsics` for the interpreter interface) and
//! `layout` (memory and table areas), linked by [`Resolved::encode`] (with
//! the `trap_stubs` of missing intrinsics) and reported as [`Linked`]
//! (`report`).

#![warn(missing_docs)]

mod abi;
mod adapter;
mod dylib;
mod exports;
mod inputs;
mod intrinsics;
mod layout;
mod options;
mod quiet;
mod report;
mod resolved;
mod search;
mod symbols;
mod task_context;
mod trap_stubs;

use anyhow::{Result, anyhow, bail};
use std::path::{MAIN_SEPARATOR, Path, PathBuf};

pub use abi::{BUILT_IN_LIBDL, WASI_PREVIEW1};
pub use options::{AdapterFile, Options};
pub use report::{
    Adapter, AdapterOrigin, Library, Linked, MissingIntrinsics, NeededIntrinsic, Origin, Report,
    Stub,
};
pub use resolved::Resolved;

use inputs::{Blob, Input};

/// A library to make dl-openable, as given to [`Link::dl_openable`].
#[derive(Clone, Debug)]
enum DlOpenable {
    /// Looked for like a needed library (unless an input has the name).
    Name(String),
    /// Linked from this file, as its file name.
    File(PathBuf),
}

/// The link stage's builder: inputs and options, then [`Link::encode`].
///
/// Inputs given as files are read by `encode` (and [`resolve`](Link::resolve)),
/// so building never fails.
#[derive(Clone, Debug)]
pub struct Link {
    inputs: Vec<Input>,
    search_paths: Vec<PathBuf>,
    search_env: bool,
    dl_openable: Vec<DlOpenable>,
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

    /// Applies `options` (`componentize link`'s flags): adds their search
    /// paths, adapters and dl-openable libraries (see
    /// [`dl_openable`](Link::dl_openable)) and sets
    /// [`stub_missing_functions`](Link::stub_missing_functions) and, if
    /// given, [`stack_size`](Link::stack_size).
    pub fn options(&mut self, options: &Options) -> &mut Self {
        for dir in &options.search {
            self.search_path(dir.clone());
        }
        for a in &options.adapt {
            self.adapter_path(a.name.clone(), a.path.clone());
        }
        for lib in &options.dl_openable {
            self.dl_openable(lib.clone());
        }
        self.stub_missing_functions(options.stub_missing_functions);
        if let Some(bytes) = options.stack_size {
            self.stack_size(bytes);
        }
        self
    }

    fn input(&mut self, name: Option<String>, blob: Blob, bindings: bool) -> &mut Self {
        self.inputs.push(Input {
            name,
            blob,
            bindings,
        });
        self
    }

    /// Adds the bindings dylib (from `componentize generate`) as `name`.
    /// Same as [`library`](Link::library), plus a check that the module
    /// carries a WIT world (`component-type` section).
    pub fn bindings(&mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> &mut Self {
        self.input(Some(name.into()), Blob::Bytes(bytes.into()), true)
    }

    /// Adds the bindings dylib from a file, named after the file.
    pub fn bindings_path(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.input(None, Blob::File(path.into()), true)
    }

    /// Adds a library (interpreter, libc, ...) as `name`: the name other
    /// libraries' `needed` entries refer to it by, e.g. `libc.so`.
    pub fn library(&mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> &mut Self {
        self.input(Some(name.into()), Blob::Bytes(bytes.into()), false)
    }

    /// Adds a library from a file, named after the file (`dir/libc.so` is
    /// `libc.so`). Its folder becomes a search folder.
    pub fn library_path(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.input(None, Blob::File(path.into()), false)
    }

    /// Adds a folder to look for needed libraries in, searched before the
    /// inputs' folders and the environment's sysroot, in the order added.
    pub fn search_path(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.search_paths.push(dir.into());
        self
    }

    /// Whether to search `$WASI_SYSROOT` and `$WASI_SDK_PATH` (read by
    /// `encode`) after the other folders; on by default.
    pub fn search_env(&mut self, yes: bool) -> &mut Self {
        self.search_env = yes;
        self
    }

    /// Makes the library `lib` loadable at run time with `dlopen`/`dlsym`
    /// (wit-component's built-in `libdl.so` is then linked in). A name is
    /// an input of that name, or is looked for like a needed library; a
    /// path (it contains a path separator, or is an existing file) is also
    /// linked, as its file name, after the other inputs.
    pub fn dl_openable(&mut self, lib: impl Into<String>) -> &mut Self {
        let lib = lib.into();
        let is_path =
            lib.contains(MAIN_SEPARATOR) || lib.contains('/') || Path::new(&lib).is_file();
        self.dl_openable.push(if is_path {
            DlOpenable::File(lib.into())
        } else {
            DlOpenable::Name(lib)
        });
        self
    }

    /// Uses `bytes` as the adapter for the import namespace `name` (a core
    /// module such as `wasi_snapshot_preview1.reactor.wasm`), replacing the
    /// bundled one for `wasi_snapshot_preview1`. Added only if a linked
    /// library imports from `name`.
    pub fn adapter(&mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> &mut Self {
        self.adapters.push((name.into(), Blob::Bytes(bytes.into())));
        self
    }

    /// Like [`adapter`](Link::adapter), reading the module from a file.
    pub fn adapter_path(&mut self, name: impl Into<String>, path: impl Into<PathBuf>) -> &mut Self {
        self.adapters.push((name.into(), Blob::File(path.into())));
        self
    }

    /// Whether functions no library defines become stubs that trap when
    /// called, instead of an error. Off by default. Missing data and tags
    /// are always an error.
    pub fn stub_missing_functions(&mut self, yes: bool) -> &mut Self {
        self.stub_missing_functions = yes;
        self
    }

    /// Size in bytes of the shadow stack (wit-component's default: 1 MiB).
    pub fn stack_size(&mut self, bytes: u32) -> &mut Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Reads the inputs and adapters and finds every needed library (step 1
    /// of the crate documentation): everything [`encode`](Link::encode)
    /// depends on, e.g. for a cache key ([`Resolved::key_parts`]).
    /// [`Resolved::encode`] then links without reading files again.
    pub fn resolve(&self) -> Result<Resolved> {
        let mut dl_names = Vec::new();
        let mut dl_files = Vec::new();
        for spec in &self.dl_openable {
            match spec {
                DlOpenable::Name(name) => dl_names.push(name.clone()),
                DlOpenable::File(path) => {
                    let name = inputs::file_name(path).ok_or_else(|| {
                        anyhow!("dl-openable `{}` does not name a file", path.display())
                    })?;
                    dl_names.push(name.to_string());
                    dl_files.push(Input {
                        name: None,
                        blob: Blob::File(path.clone()),
                        bindings: false,
                    });
                }
            }
        }
        let mut loaded = inputs::load(self.inputs.iter().chain(&dl_files), &dl_names)?;
        let dirs = search::search_dirs(&self.search_paths, &loaded.dirs, self.search_env);
        search::find_needed(&mut loaded.libs, &dirs, &dl_names)?;
        task_context::add_if_needed(&mut loaded.libs)?;
        let adapters = adapter::load(&self.adapters)?;
        for a in &adapters {
            if loaded.libs.iter().any(|l| l.name == a.name) {
                bail!(
                    "library name `{}` is also the name of an adapter's import namespace",
                    a.name
                );
            }
        }
        Ok(Resolved {
            libs: loaded.libs,
            adapters,
            dl_openable: dl_names,
            stub_missing_functions: self.stub_missing_functions,
            stack_size: self.stack_size,
        })
    }

    /// Links everything into a component (see the crate documentation for
    /// the steps). Errors name the library and, where it applies, the
    /// symbol.
    pub fn encode(&self) -> Result<Linked> {
        self.resolve()?.encode()
    }
}
