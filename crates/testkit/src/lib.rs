//! Test support shared by every crate of the workspace (not published).
//!
//! - where things are: [`repo_file`], [`toolchain_dir`] and
//!   [`toolchain_file`] (the output of `toolchain/build.sh`);
//! - one wasmtime [`engine`] per test binary, with an in-memory incremental
//!   compilation cache ([`MemoryCache`]) so components that share libraries
//!   compile those functions once, and [`compile`], which compiles the same
//!   bytes only once;
//! - a WASI p2 host ([`Host`], [`HostBuilder`]) with captured output, and
//!   [`run_command`] for `wasi:cli` commands;
//! - the [`fuzz`] driver every crate's fuzz targets run on;
//! - for the interpreter bindings' suites: the test worlds and the checks
//!   every interpreter passes ([`script`]), the host of the interface they
//!   import ([`host_api`]), and [`values`] to build and compare `Val`s.

#![warn(missing_docs)]

pub mod bench;
pub mod fuzz;
pub mod host_api;
pub mod script;
pub mod values;

use anyhow::{Context, Result};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use wasmtime::component::{Component, Func, Instance, Linker, ResourceTable, Val};
use wasmtime::{CacheStore, Config, Engine, Store};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Where the toolchain build keeps the wasip2 `libc.so`, relative to
/// [`toolchain_dir`].
pub const LIBC: &str = "sysroot/lib/wasm32-wasip2/libc.so";

/// The folder of the toolchain's shared libraries, relative to
/// [`toolchain_dir`].
pub const LIB_DIR: &str = "lib";

/// The folder of the sysroot's shared libraries (libc and its emulation
/// libraries), relative to [`toolchain_dir`].
pub const SYSROOT_LIB_DIR: &str = "sysroot/lib/wasm32-wasip2";

/// How much of stdout and stderr a [`Host`] keeps.
const CAPTURED_BYTES: usize = 16 << 20;

/// The workspace root.
pub fn repo_root() -> &'static Path {
    // This crate is `<repo>/crates/testkit`.
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// A path relative to the workspace root, such as `fixtures/wit`.
pub fn repo_file(rel: &str) -> PathBuf {
    repo_root().join(rel)
}

/// The toolchain build: `$TOOLCHAIN_DIR` if set, else
/// `$CARGO_TARGET_DIR/toolchain/current`, else
/// `<repo>/target/toolchain/current`.
pub fn toolchain_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TOOLCHAIN_DIR") {
        return dir.into();
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => PathBuf::from(t),
        None => repo_root().join("target"),
    };
    target.join("toolchain/current")
}

/// A path inside the toolchain build, e.g. `lib/libtestinterp.so`.
pub fn toolchain_path(rel: &str) -> PathBuf {
    toolchain_dir().join(rel)
}

/// The bytes of a file of the toolchain build (read once per test binary),
/// or a panic that says how to build it.
pub fn toolchain_file(rel: &str) -> &'static [u8] {
    static FILES: OnceLock<Mutex<HashMap<String, &'static [u8]>>> = OnceLock::new();
    let mut files = FILES.get_or_init(Default::default).lock().unwrap();
    if let Some(bytes) = files.get(rel) {
        return bytes;
    }
    let path = toolchain_path(rel);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); build the toolchain first: bash toolchain/build.sh",
            path.display()
        )
    });
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    files.insert(rel.to_string(), bytes);
    bytes
}

/// Cranelift's incremental compilation cache, in memory (a [`CacheStore`]):
/// components that contain the same libraries compile those functions once.
#[derive(Debug, Default)]
pub struct MemoryCache(Mutex<HashMap<Vec<u8>, Vec<u8>>>);

impl CacheStore for MemoryCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let map = self.0.lock().ok()?;
        map.get(key).cloned().map(Cow::Owned)
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        match self.0.lock() {
            Ok(mut map) => {
                map.insert(key.to_vec(), value);
                true
            }
            Err(_) => false,
        }
    }
}

/// The incremental cache every engine of this test binary shares.
pub fn memory_cache() -> Arc<MemoryCache> {
    static CACHE: OnceLock<Arc<MemoryCache>> = OnceLock::new();
    CACHE.get_or_init(Default::default).clone()
}

/// The engine test components run on, one per test binary: [`config`] as
/// it is.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(&config()).expect("wasmtime engine"))
}

/// The configuration of [`engine`], for a test that needs one more setting
/// (fuel, say): the component model with maps and `implements` (wit-smith's
/// `@external-id`), wasm exceptions (setjmp/longjmp of the Lua binding), no
/// epoch interruption (like a user's host), and [`memory_cache`].
pub fn config() -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .wasm_component_model_map(true)
        .wasm_component_model_implements(true)
        .wasm_exceptions(true);
    config
        .enable_incremental_compilation(memory_cache())
        .expect("incremental compilation");
    config
}

/// Compiles `wasm` with [`engine`], once per test binary: the same bytes
/// give the same (cheaply cloned) component.
pub fn compile(wasm: &[u8]) -> Result<Component> {
    type Compiled = Arc<OnceLock<Result<Component, String>>>;
    static COMPILED: OnceLock<Mutex<HashMap<Vec<u8>, Compiled>>> = OnceLock::new();
    // One cell per component, so tests compiling different components run
    // in parallel and tests wanting the same one wait for the first.
    let cell = COMPILED
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(wasm.to_vec())
        .or_default()
        .clone();
    cell.get_or_init(|| Component::new(engine(), wasm).map_err(|e| format!("{e:?}")))
        .clone()
        .map_err(|e| anyhow::anyhow!("compiling a test component: {e}"))
}

/// A WASI p2 host for tests, with room for the test's own state in `data`.
pub struct Host<T = ()> {
    /// The WASI context.
    pub wasi: WasiCtx,
    /// The resource table WASI and the test's host functions share.
    pub table: ResourceTable,
    /// The test's own host state.
    pub data: T,
}

impl<T: Send + 'static> WasiView for Host<T> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// What a guest wrote to stdout and stderr.
#[derive(Clone)]
pub struct Captured {
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl Captured {
    /// Everything written to stdout so far, as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.contents()).into_owned()
    }

    /// Everything written to stderr so far, as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }
}

/// Builds a [`Host`]: no environment, arguments, folders or network unless
/// asked for; stdout and stderr captured.
pub struct HostBuilder {
    wasi: WasiCtxBuilder,
    captured: Captured,
}

impl Default for HostBuilder {
    fn default() -> Self {
        HostBuilder::new()
    }
}

impl HostBuilder {
    /// A closed host with captured output.
    pub fn new() -> HostBuilder {
        let captured = Captured {
            stdout: MemoryOutputPipe::new(CAPTURED_BYTES),
            stderr: MemoryOutputPipe::new(CAPTURED_BYTES),
        };
        let mut wasi = WasiCtx::builder();
        wasi.stdout(captured.stdout.clone())
            .stderr(captured.stderr.clone());
        HostBuilder { wasi, captured }
    }

    /// Sets an environment variable.
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.wasi.env(key, value);
        self
    }

    /// Sets the arguments (the first is the program name).
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.wasi.args(args);
        self
    }

    /// Gives the guest `bytes` on stdin.
    pub fn stdin(&mut self, bytes: &[u8]) -> &mut Self {
        self.wasi.stdin(MemoryInputPipe::new(bytes.to_vec()));
        self
    }

    /// Preopens host folder `host` as `guest`, read-write.
    pub fn dir(&mut self, host: &Path, guest: &str) -> Result<&mut Self> {
        self.wasi
            .preopened_dir(host, guest, wasmtime_wasi::FsPerms::ReadWrite)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("preopening {}", host.display()))?;
        Ok(self)
    }

    /// The host with `data`, and the captured output; for a store of
    /// another engine than [`engine`].
    pub fn build<T>(&mut self, data: T) -> (Host<T>, Captured) {
        let host = Host {
            wasi: self.wasi.build(),
            table: ResourceTable::new(),
            data,
        };
        (host, self.captured.clone())
    }

    /// A store of [`engine`] holding the host with `data`, and the captured
    /// output.
    pub fn store<T: Send + 'static>(&mut self, data: T) -> (Store<Host<T>>, Captured) {
        let (host, captured) = self.build(data);
        (Store::new(engine(), host), captured)
    }
}

/// A linker for [`Host`] with WASI p2 (synchronous) in it.
pub fn linker<T: Send + 'static>() -> Linker<Host<T>> {
    let mut linker = Linker::new(engine());
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("adding WASI to the linker");
    linker
}

/// A linker for [`Host`] with WASI p2 (asynchronous) in it: for stores
/// whose calls run on tokio (`call_async`, `run_concurrent`).
pub fn async_linker<T: Send + 'static>() -> Linker<Host<T>> {
    let mut linker = Linker::new(engine());
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("adding WASI to the linker");
    linker
}

/// How a `wasi:cli` command ended.
pub struct CommandOutput {
    /// What `wasi:cli/run.run` returned: `Ok(())` or `Err(())`; a trap (or
    /// `exit`) is the `Err` of [`run_command`].
    pub status: Result<(), ()>,
    /// What it wrote.
    pub output: Captured,
}

/// Runs the `wasi:cli` command component `wasm` with `args` (after the
/// program name `app.wasm`) and `host`'s configuration.
pub fn run_command(wasm: &[u8], args: &[&str], host: &mut HostBuilder) -> Result<CommandOutput> {
    let component = compile(wasm)?;
    let mut all = vec!["app.wasm"];
    all.extend(args);
    let (mut store, output) = host.args(&all).store(());
    let command =
        wasmtime_wasi::p2::bindings::sync::Command::instantiate(&mut store, &component, &linker())
            .map_err(anyhow::Error::from)
            .context("instantiating the command")?;
    let status = command
        .wasi_cli_run()
        .call_run(&mut store)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("running the command; stderr:\n{}", output.stderr()))?;
    Ok(CommandOutput { status, output })
}

/// The exported function `name`: at the top level, or in the exported
/// instance `iface` (such as `componentize:init/init@0.1.0`).
pub fn export_func<T: 'static>(
    store: &mut Store<T>,
    instance: &Instance,
    iface: Option<&str>,
    name: &str,
) -> Result<Func> {
    let parent = match iface {
        Some(i) => Some(
            instance
                .get_export_index(&mut *store, None, i)
                .with_context(|| format!("the component exports no `{i}`"))?,
        ),
        None => None,
    };
    let index = instance
        .get_export_index(&mut *store, parent.as_ref(), name)
        .with_context(|| match iface {
            Some(i) => format!("`{i}` exports no `{name}`"),
            None => format!("the component exports no `{name}`"),
        })?;
    instance
        .get_func(&mut *store, index)
        .with_context(|| format!("export `{name}` is not a function"))
}

/// Calls [`export_func`] with `args` and returns its results (after
/// `post-return`).
pub fn call_export<T: 'static>(
    store: &mut Store<T>,
    instance: &Instance,
    iface: Option<&str>,
    name: &str,
    args: &[Val],
) -> Result<Vec<Val>> {
    let func = export_func(store, instance, iface, name)?;
    let mut results = vec![Val::Bool(false); func.ty(&*store).results().len()];
    func.call(&mut *store, args, &mut results)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("calling `{name}`"))?;
    Ok(results)
}

/// The names of the functions the component `wasm` exports in its exported
/// instance `instance` (such as `pkg:ns/iface`), in order; panics if it has
/// no such instance or the instance exports something else.
pub fn instance_functions(wasm: &[u8], instance: &str) -> Vec<String> {
    use wasmtime::component::types::ComponentItem;
    let engine = engine();
    let component = compile(wasm).unwrap();
    let ty = component.component_type();
    let Some(ComponentItem::ComponentInstance(exported)) =
        ty.get_export(engine, instance).map(|e| e.ty)
    else {
        panic!("the component does not export the instance `{instance}`");
    };
    exported
        .exports(engine)
        .map(|(name, item)| {
            assert!(
                matches!(item.ty, ComponentItem::ComponentFunc(_)),
                "`{instance}` exports `{name}`, which is not a function"
            );
            name.to_string()
        })
        .collect()
}
