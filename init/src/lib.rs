//! Snapshot pre-initialization of a linked component in wasmtime.
//!
//! [`Init`] takes a component (typically the output of componentize's link
//! stage) and an optional init call, and returns a component that behaves as
//! if instantiation and the init call had already happened:
//!
//! 1. **Instrument**: every mutable global and memory of every core module
//!    instance is made readable through accessor functions appended to the
//!    component (no index moves).
//! 2. **Run**: the instrumented component is instantiated in wasmtime with a
//!    closed WASI sandbox (see [`Init::dir`], [`Init::env`]); instantiation
//!    runs the libraries' constructors, then the init call runs: the
//!    interpreter contract [`INIT_INTERFACE`] with a script
//!    ([`Init::script`]) or any exported function ([`Init::init_func`]).
//! 3. **Measure**: libc is asked to drop its host handles, the host checks
//!    that no handle is left, and every global and memory is read.
//! 4. **Rewrite** the original component: globals start at their measured
//!    values, memories at their measured size with the non-zero bytes in
//!    active data segments, start functions (constructors) are gone, and the
//!    init export is removed.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let linked = std::fs::read("app.wasm")?;
//! let snapshot = componentize_init::Init::new(linked)
//!     .script("app.lua", std::fs::read("app.lua")?)
//!     .run()?;
//! std::fs::write("app.init.wasm", &snapshot.wasm)?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod instrument;
mod parse;
mod rewrite;
mod run;
pub mod segments;

use anyhow::{Context, Result, anyhow, bail};
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::Component;
use wasmtime::{CacheStore, Config, Engine};
use wit_parser::{Resolve, WorldId, WorldItem, WorldKey};

/// The interface of the init contract, as exported by a component.
pub const INIT_INTERFACE: &str = "componentize:init/init@0.1.0";

/// The WIT of the init contract (`fixtures/init/init.wit`): package
/// `componentize:init@0.1.0`, interface `init` with
/// `init: func(name: string, source: list<u8>) -> result<_, string>`.
pub const INIT_WIT: &str = include_str!("../../fixtures/init/init.wit");

/// Default of [`Init::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Default of [`Init::memory_limit`]: 2 GiB per linear memory.
pub const DEFAULT_MEMORY_LIMIT: usize = 2 << 30;

/// The wasmtime engine init runs components with, and a cache of compiled
/// components (the same instrumented component is compiled once).
///
/// Cloning is cheap and shares the engine and the cache.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

/// Compiled components by a hash of their bytes; the bytes are compared too.
type ComponentCache = HashMap<u64, Vec<(Vec<u8>, Component)>>;

struct RuntimeInner {
    engine: Engine,
    components: Mutex<ComponentCache>,
}

/// Cranelift's incremental cache, in memory (a [`CacheStore`] for
/// `Config::enable_incremental_compilation`): components that contain the
/// same libraries (libc, the interpreter) compile those functions once. The
/// instrumented component and the components of later runs share most
/// functions.
#[derive(Debug, Default)]
pub struct MemoryCache(Mutex<HashMap<Vec<u8>, Vec<u8>>>);

impl CacheStore for MemoryCache {
    fn get(&self, key: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
        let map = self.0.lock().ok()?;
        map.get(key).cloned().map(std::borrow::Cow::Owned)
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

impl Runtime {
    /// A runtime with the engine configuration init needs: the component
    /// model, wasm exceptions (setjmp/longjmp) and epoch interruption (for
    /// the timeout).
    pub fn new() -> Result<Runtime> {
        Runtime::with_config(false, None)
    }

    /// Like [`Runtime::new`], with wasmtime's compiled-code cache in `dir`:
    /// a rebuild whose component did not change (only the script did) does
    /// not compile it again.
    pub fn with_code_cache(dir: &std::path::Path) -> Result<Runtime> {
        Runtime::with_config(false, Some(dir))
    }

    /// Like [`Runtime::new`], plus Cranelift's incremental cache in memory:
    /// different components that share libraries (libc, the interpreter)
    /// compile those functions once. Worth it for a long-lived runtime that
    /// snapshots several different components; overhead for a single one.
    pub fn with_incremental_cache() -> Result<Runtime> {
        Runtime::with_config(true, None)
    }

    fn with_config(incremental: bool, code_cache: Option<&std::path::Path>) -> Result<Runtime> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .wasm_component_model_map(true)
            .wasm_exceptions(true)
            .epoch_interruption(true);
        if let Some(dir) = code_cache {
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(dir);
            let cache = wasmtime::Cache::new(cache)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot use `{}` as a code cache", dir.display()))?;
            config.cache(Some(cache));
        }
        if incremental {
            config
                .enable_incremental_compilation(Arc::new(MemoryCache::default()))
                .map_err(anyhow::Error::from)?;
        }
        let engine = Engine::new(&config).map_err(anyhow::Error::from)?;
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                components: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Compiles `wasm`, or returns the component compiled from the same bytes
    /// before.
    pub(crate) fn compile(&self, wasm: &[u8]) -> Result<Component> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        wasm.hash(&mut h);
        let key = h.finish();
        if let Ok(map) = self.inner.components.lock()
            && let Some(c) = map
                .get(&key)
                .and_then(|v| v.iter().find(|(b, _)| b == wasm))
        {
            return Ok(c.1.clone());
        }
        let component = Component::new(&self.inner.engine, wasm)
            .map_err(anyhow::Error::from)
            .context("compiling the instrumented component")?;
        if let Ok(mut map) = self.inner.components.lock() {
            map.entry(key)
                .or_default()
                .push((wasm.to_vec(), component.clone()));
        }
        Ok(component)
    }
}

/// What init calls after instantiating the component.
#[derive(Clone, Debug)]
pub enum InitCall {
    /// The interpreter contract: `componentize:init/init@0.1.0.init(name,
    /// source)`, whose `err(message)` fails init with the message.
    Script {
        /// The script's name, for messages (usually its file name).
        name: String,
        /// The script.
        source: Vec<u8>,
    },
    /// An exported function: a name (`f`, `iface.f`,
    /// `pkg:ns/iface.f@1.0.0`) of a function without parameters, or a WAVE
    /// call with arguments (`pkg:ns/iface.f("x", 3)`), as `wasmtime wizer
    /// --init-func` takes it.
    Func(String),
}

/// What the component may reach during init; closed by default.
#[derive(Clone, Debug, Default)]
pub struct Sandbox {
    /// Preopened directories: host path, guest path.
    pub dirs: Vec<(PathBuf, String)>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub call: Option<InitCall>,
    pub sandbox: Sandbox,
    pub timeout: Duration,
    pub memory_limit: usize,
    pub keep_init_export: bool,
}

/// A snapshot job: the component, the init call and the sandbox.
///
/// Defaults: no init call (only the constructors run), no directories, no
/// environment variables, no arguments, no network, empty stdin, captured
/// stdout/stderr, fixed random bytes and clocks, a timeout of
/// [`DEFAULT_TIMEOUT`] and a memory limit of [`DEFAULT_MEMORY_LIMIT`].
#[derive(Clone)]
pub struct Init {
    component: Vec<u8>,
    options: Options,
    runtime: Option<Runtime>,
}

impl Init {
    /// A job for `component` (the bytes of a WebAssembly component).
    pub fn new(component: impl Into<Vec<u8>>) -> Init {
        Init {
            component: component.into(),
            options: Options {
                call: None,
                sandbox: Sandbox::default(),
                timeout: DEFAULT_TIMEOUT,
                memory_limit: DEFAULT_MEMORY_LIMIT,
                keep_init_export: false,
            },
            runtime: None,
        }
    }

    /// Runs `source` through the interpreter's init contract
    /// ([`INIT_INTERFACE`]); the export is removed from the output.
    pub fn script(mut self, name: impl Into<String>, source: impl Into<Vec<u8>>) -> Init {
        self.options.call = Some(InitCall::Script {
            name: name.into(),
            source: source.into(),
        });
        self
    }

    /// Calls an exported function (see [`InitCall::Func`]); its export is
    /// removed from the output unless [`Init::keep_init_export`].
    pub fn init_func(mut self, call: impl Into<String>) -> Init {
        self.options.call = Some(InitCall::Func(call.into()));
        self
    }

    /// Sets the init call.
    pub fn call(mut self, call: Option<InitCall>) -> Init {
        self.options.call = call;
        self
    }

    /// Keeps the init export in the output (default: removed).
    pub fn keep_init_export(mut self, keep: bool) -> Init {
        self.options.keep_init_export = keep;
        self
    }

    /// Preopens host directory `host` as `guest` during init.
    pub fn dir(mut self, host: impl Into<PathBuf>, guest: impl Into<String>) -> Init {
        self.options.sandbox.dirs.push((host.into(), guest.into()));
        self
    }

    /// Sets an environment variable during init.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Init {
        self.options.sandbox.env.push((key.into(), value.into()));
        self
    }

    /// Replaces the whole sandbox.
    pub fn sandbox(mut self, sandbox: Sandbox) -> Init {
        self.options.sandbox = sandbox;
        self
    }

    /// Fails init when instantiation plus the init call take longer.
    pub fn timeout(mut self, timeout: Duration) -> Init {
        self.options.timeout = timeout;
        self
    }

    /// Fails init when a linear memory grows beyond `bytes`.
    pub fn memory_limit(mut self, bytes: usize) -> Init {
        self.options.memory_limit = bytes;
        self
    }

    /// Runs on `runtime` (sharing its engine and compiled components)
    /// instead of a fresh one.
    pub fn runtime(mut self, runtime: &Runtime) -> Init {
        self.runtime = Some(runtime.clone());
        self
    }

    /// Instruments, runs, measures and rewrites.
    ///
    /// Errors: refusals (what a snapshot cannot represent) and invalid input
    /// are plain errors with the reason; failures while running are an
    /// [`InitError`] (downcast it) carrying the captured stdout and stderr.
    pub fn run(&self) -> Result<Snapshot> {
        let t = Instant::now();
        let wasm = &self.component;
        let info = parse::parse(wasm)?;
        let parse_time = t.elapsed();

        let t = Instant::now();
        let instrumented = instrument::instrument(wasm, &info)?;
        if cfg!(debug_assertions) {
            wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
                .validate_all(&instrumented.wasm)
                .context("internal error: the instrumented component does not validate")?;
        }
        let instrument_time = t.elapsed();

        let runtime = match &self.runtime {
            Some(r) => r.clone(),
            None => Runtime::new()?,
        };
        let measured = run::run(&runtime, &info, &instrumented, &self.options)?;

        let t = Instant::now();
        let removal = match &measured.remove {
            None => None,
            Some(name) => {
                let export = info
                    .exports
                    .iter()
                    .find(|e| &e.name == name)
                    .ok_or_else(|| {
                        anyhow!("cannot remove `{name}`: it is not a top-level export")
                    })?;
                Some(rewrite::Removal { export })
            }
        };
        let out = rewrite::rewrite_component(wasm, &info, &measured.states, removal)?;
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&out)
            .context("internal error: the snapshot does not validate")?;
        let rewrite_time = t.elapsed();

        let mut stats = Stats {
            memory_bytes: 0,
            data_bytes: 0,
            segments: 0,
            globals: 0,
            timings: Timings {
                parse: parse_time,
                instrument: instrument_time,
                compile: measured.compile,
                instantiate: measured.instantiate,
                init: measured.init,
                measure: measured.measure,
                rewrite: rewrite_time,
            },
        };
        for state in &measured.states {
            stats.globals += state.globals.len();
            for m in &state.memories {
                stats.memory_bytes += m.image.len() as u64;
                stats.segments += m.segments.len();
                stats.data_bytes += m.segments.iter().map(|r| r.len() as u64).sum::<u64>();
            }
        }
        Ok(Snapshot {
            wasm: out,
            stdout: measured.stdout,
            stderr: measured.stderr,
            results: measured.results,
            stats,
        })
    }
}

/// The pre-initialized component and what init printed.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The output component.
    pub wasm: Vec<u8>,
    /// What the component wrote to stdout during init.
    pub stdout: Vec<u8>,
    /// What the component wrote to stderr during init.
    pub stderr: Vec<u8>,
    /// The results of an [`InitCall::Func`] call, in WAVE.
    pub results: Vec<String>,
    /// Sizes and timings.
    pub stats: Stats,
}

/// Sizes and timings of a snapshot.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Bytes of linear memory measured.
    pub memory_bytes: u64,
    /// Bytes stored in the new data segments.
    pub data_bytes: u64,
    /// Number of new data segments.
    pub segments: usize,
    /// Number of mutable globals measured.
    pub globals: usize,
    /// Where the time went.
    pub timings: Timings,
}

/// Where the time of [`Init::run`] went.
#[derive(Clone, Debug)]
pub struct Timings {
    /// Validating and reading the input.
    pub parse: Duration,
    /// Building the instrumented component.
    pub instrument: Duration,
    /// Compiling it (zero when the runtime had it cached).
    pub compile: Duration,
    /// Instantiating it (the constructors).
    pub instantiate: Duration,
    /// The init call.
    pub init: Duration,
    /// Resetting libc, checking host handles, reading globals and memories.
    pub measure: Duration,
    /// Writing and validating the output.
    pub rewrite: Duration,
}

/// Why running init failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The init contract returned `err(message)`.
    ScriptError,
    /// The component trapped (or called `exit`) during instantiation, the
    /// init call, or libc's reset.
    Trap,
    /// The timeout passed.
    Timeout,
    /// A memory or table grew beyond its limit.
    MemoryLimit,
    /// A host handle was still live after init.
    LiveHandle,
}

/// A failure while running init, with what the component printed.
#[derive(Clone, Debug)]
pub struct InitError {
    /// What went wrong.
    pub kind: Failure,
    /// The message (names the function, the limit or the handle).
    pub message: String,
    /// Everything written to stdout before the failure.
    pub stdout: Vec<u8>,
    /// Everything written to stderr before the failure.
    pub stderr: Vec<u8>,
}

/// At most this much of each stream is shown in an [`InitError`]'s message.
const SHOWN_OUTPUT: usize = 16 << 10;

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for (name, bytes) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            if bytes.is_empty() {
                continue;
            }
            let shown = &bytes[bytes.len().saturating_sub(SHOWN_OUTPUT)..];
            let cut = if shown.len() < bytes.len() {
                format!(" (last {} of {} bytes)", shown.len(), bytes.len())
            } else {
                String::new()
            };
            write!(
                f,
                "\n--- {name} of init{cut} ---\n{}",
                String::from_utf8_lossy(shown).trim_end()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for InitError {}

/// Parses a `--dir` argument in wasmtime's style: `HOST[::GUEST]` (the guest
/// path defaults to the host path).
pub fn parse_dir(spec: &str) -> Result<(PathBuf, String)> {
    let (host, guest) = match spec.split_once("::") {
        Some((h, g)) => (h, g),
        None => (spec, spec),
    };
    if host.is_empty() || guest.is_empty() {
        bail!("invalid --dir `{spec}`: expected HOST[::GUEST]");
    }
    Ok((PathBuf::from(host), guest.to_string()))
}

/// Parses an `--env` argument in wasmtime's style: `KEY=VALUE`, or `KEY` to
/// pass the host's value of `KEY` (an explicit opt-in).
pub fn parse_env(spec: &str) -> Result<(String, String)> {
    let (key, value) = match spec.split_once('=') {
        Some((k, v)) => (k.to_string(), v.to_string()),
        None => {
            let v = std::env::var(spec)
                .map_err(|_| anyhow!("--env {spec}: `{spec}` is not set in the environment"))?;
            (spec.to_string(), v)
        }
    };
    if key.is_empty() {
        bail!("invalid --env `{spec}`: expected KEY=VALUE");
    }
    Ok((key, value))
}

/// A world that exports everything `world` does plus [`INIT_INTERFACE`]
/// (last), for the pipeline: generate the bindings from it, link, and run
/// [`Init::script`]; the output then exports exactly `world`.
///
/// Adds the contract package to `resolve` if it is not there yet. The new
/// world is named like `world` and belongs to a package of its own.
pub fn add_init_export(resolve: &mut Resolve, world: WorldId) -> Result<WorldId> {
    let contract = match resolve
        .package_names
        .iter()
        .find(|(n, _)| n.namespace == "componentize" && n.name == "init")
        .map(|(_, id)| *id)
    {
        Some(id) => id,
        None => resolve
            .push_str("componentize-init.wit", INIT_WIT)
            .context("adding the init contract's WIT")?,
    };
    let iface = *resolve.packages[contract]
        .interfaces
        .get("init")
        .ok_or_else(|| anyhow!("package componentize:init has no interface `init`"))?;
    if resolve.worlds[world]
        .exports
        .contains_key(&WorldKey::Interface(iface))
    {
        return Ok(world);
    }
    let name = resolve.worlds[world].name.clone();
    let mut suffix = String::new();
    let mut n = 1;
    while resolve
        .package_names
        .keys()
        .any(|p| p.namespace == "componentize" && p.name == format!("init-world{suffix}"))
    {
        n += 1;
        suffix = format!("-n{n}");
    }
    let source = format!(
        "package componentize:init-world{suffix};\n\nworld {} {{\n  export {INIT_INTERFACE};\n}}\n",
        wit_ident(&name)
    );
    let pkg = resolve
        .push_str("componentize-init-world.wit", &source)
        .context("creating the world with the init export")?;
    let new = *resolve.packages[pkg]
        .worlds
        .values()
        .next()
        .ok_or_else(|| anyhow!("internal error: no world was created"))?;
    resolve
        .merge_worlds(world, new, &mut wit_parser::CloneMaps::default())
        .with_context(|| format!("adding `{INIT_INTERFACE}` to world `{name}`"))?;
    // The init export goes last.
    let exports = &mut resolve.worlds[new].exports;
    let key = WorldKey::Interface(iface);
    if let Some(item) = exports.shift_remove(&key) {
        exports.insert(key, item);
    }
    debug_assert!(matches!(
        resolve.worlds[new].exports.get(&WorldKey::Interface(iface)),
        Some(WorldItem::Interface { .. })
    ));
    Ok(new)
}

/// `name` as a WIT identifier (escaped with `%` when it is a keyword).
fn wit_ident(name: &str) -> String {
    format!("%{name}")
}
