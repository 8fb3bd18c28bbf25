//! Snapshot pre-initialization of a linked component in wasmtime.
//!
//! [`Init`] takes a component (typically the output of componentize's link
//! stage) and an optional init call, and returns a component that behaves as
//! if instantiation and the init call had already happened:
//!
//! 1. **Instrument**: every mutable global and memory of every core module
//!    instance is made readable through accessor functions appended to the
//!    component (no index moves), and every import of a built-in that makes
//!    or drops a component-model async handle is wrapped to count them by
//!    kind (the async census), so that one left over can be named.
//! 2. **Run**: the instrumented component is instantiated in wasmtime with a
//!    closed WASI sandbox (see [`Init::dir`], [`Init::env`]); instantiation
//!    runs the libraries' constructors, then the init call runs: the
//!    interpreter contract
//!    ([`componentize_contract::INIT_INTERFACE`]) with a script
//!    ([`Init::script`]) or any exported function ([`Init::init_func`]).
//! 3. **Measure**: libc is asked to drop its host handles, the host checks
//!    that no handle (host or async) is left, and every global and memory is
//!    read.
//! 4. **Rewrite** the original component: globals start at their measured
//!    values, memories at their measured size with the non-zero bytes in
//!    active data segments, start functions (constructors) are gone, and the
//!    init export is removed: a top-level function, or an interface whose
//!    only function it is, goes whole; a function of an exported interface
//!    with other functions goes from that interface alone (wit-component's
//!    shim component loses its import and export), so the output exports
//!    the interface without it. A shape that cannot lose the function
//!    (an imported interface, a shim instantiated twice, an alias of the
//!    function, ...) is refused before the init call, naming the export.
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

// The phases, in the order the data flows through them.
mod census;
mod instrument;
mod parse;
mod rewrite;
mod run;
mod snapshot;
// Shared by them and public API.
mod options;
mod report;
pub mod segments;

pub use options::{
    Compiler, DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT, EnvVar, Options, PreopenDir, parse_dir,
    parse_env, parse_memory_limit, parse_timeout,
};
pub use report::{Compilation, Failure, InitError, Snapshot, Stats, Timings};
pub use run::{
    CompileProgress, ExportCall, InitCall, KEPT_COMPONENTS, Runtime, RuntimeBuilder, code_cache,
};
/// The trait of a [`RuntimeBuilder::function_cache`]: wasmtime's.
pub use wasmtime::CacheStore;

use anyhow::{Context, Result};
use snapshot::ModuleState;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A snapshot job: the component, the init call, the [`Options`] (sandbox
/// and limits) and the [`Runtime`].
///
/// Defaults: no init call (only the constructors run) and
/// [`Options::default`] (a closed sandbox, a timeout of [`DEFAULT_TIMEOUT`]
/// and a memory limit of [`DEFAULT_MEMORY_LIMIT`]) on a fresh runtime.
#[derive(Clone)]
pub struct Init {
    component: Vec<u8>,
    call: Option<InitCall>,
    options: Options,
    runtime: Option<Runtime>,
}

impl Init {
    /// A job for `component` (the bytes of a WebAssembly component).
    pub fn new(component: impl Into<Vec<u8>>) -> Init {
        Init {
            component: component.into(),
            call: None,
            options: Options::default(),
            runtime: None,
        }
    }

    /// Runs `source` through the interpreter's init contract
    /// ([`componentize_contract::INIT_INTERFACE`]); the export is removed
    /// from the output unless [`Init::keep_init_export`].
    pub fn script(&mut self, name: impl Into<String>, source: impl Into<Vec<u8>>) -> &mut Self {
        self.call(Some(InitCall::Script {
            name: name.into(),
            source: source.into(),
        }))
    }

    /// Calls an exported function (see [`InitCall::Func`]); its export is
    /// removed from the output unless [`Init::keep_init_export`] (only the
    /// function, when its interface exports others).
    pub fn init_func(&mut self, call: impl Into<String>) -> &mut Self {
        self.call(Some(InitCall::Func(call.into())))
    }

    /// Sets the init call (`None`: only the constructors run).
    pub fn call(&mut self, call: Option<InitCall>) -> &mut Self {
        self.call = call;
        self
    }

    /// Replaces all options (sandbox, limits, keeping the init export).
    pub fn options(&mut self, options: Options) -> &mut Self {
        self.options = options;
        self
    }

    /// Keeps the init export in the output (default: removed).
    pub fn keep_init_export(&mut self, keep: bool) -> &mut Self {
        self.options.keep_init_export = keep;
        self
    }

    /// Lets init make outgoing HTTP requests (default: each one fails init).
    pub fn allow_http(&mut self, allow: bool) -> &mut Self {
        self.options.allow_http = allow;
        self
    }

    /// Preopens host directory `host` as `guest` during init.
    pub fn dir(&mut self, host: impl Into<PathBuf>, guest: impl Into<String>) -> &mut Self {
        self.options.dirs.push(PreopenDir::new(host, guest));
        self
    }

    /// Sets an environment variable during init.
    pub fn env(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.options.env.push(EnvVar::new(key, value));
        self
    }

    /// Fails init when instantiation plus the init call take longer.
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.options.timeout = timeout;
        self
    }

    /// Fails init when a linear memory grows beyond `bytes`.
    pub fn memory_limit(&mut self, bytes: usize) -> &mut Self {
        self.options.memory_limit = bytes;
        self
    }

    /// Runs on `runtime` (sharing its engine and compiled components)
    /// instead of a fresh one.
    pub fn runtime(&mut self, runtime: &Runtime) -> &mut Self {
        self.runtime = Some(runtime.clone());
        self
    }

    /// Instruments, runs, measures and rewrites.
    ///
    /// Errors: refusals (what a snapshot cannot represent) and invalid input
    /// are plain errors with the reason; failures while running are an
    /// [`InitError`] (downcast it) carrying the captured stdout and stderr.
    pub fn run(&self) -> Result<Snapshot> {
        let wasm = &self.component;
        let mut timings = Timings::default();

        let t = Instant::now();
        let info = parse::parse(wasm)?;
        timings.parse = t.elapsed();

        let t = Instant::now();
        let instrumented = instrument::instrument(wasm, &info)?;
        if cfg!(debug_assertions) {
            validate(&instrumented.wasm)
                .context("internal error: the instrumented component does not validate")?;
        }
        timings.instrument = t.elapsed();

        let runtime = match &self.runtime {
            Some(r) => r.clone(),
            None => Runtime::new()?,
        };
        let mut session = run::start(&runtime, &instrumented, &info, &self.options)?;
        timings.compile = session.compile;
        let compilation = session.compilation.clone();
        timings.instantiate = session.instantiate;
        let prepared = session.prepare(self.call.as_ref())?;
        // Refuse before the call runs when its export cannot be removed.
        let removal = match prepared.export() {
            Some(export) if !self.options.keep_init_export => {
                Some(rewrite::Removal::plan(wasm, &info, export)?)
            }
            _ => None,
        };
        let called = session.call(&prepared)?;
        timings.init = called.time;

        let t = Instant::now();
        let preopens = self.options.dirs.len() + self.options.module_paths.len();
        let states = snapshot::snapshot(&mut session, &info, preopens)?;
        timings.measure = t.elapsed();
        let (stdout, stderr) = session.output();
        drop(session);

        let t = Instant::now();
        let out = rewrite::rewrite_component(wasm, &info, &states, removal.as_ref())?;
        validate(&out).context("internal error: the snapshot does not validate")?;
        timings.rewrite = t.elapsed();

        Ok(Snapshot {
            wasm: out,
            stdout,
            stderr,
            results: called.results,
            stats: stats(&states, compilation, timings),
        })
    }
}

/// Validates a component with every feature init accepts.
fn validate(wasm: &[u8]) -> Result<()> {
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(wasm)
        .map(drop)
        .map_err(anyhow::Error::from)
}

/// The sizes of the measured `states`, with how the run was compiled.
fn stats(states: &[ModuleState], compilation: Compilation, timings: Timings) -> Stats {
    let mut stats = Stats {
        memory_bytes: 0,
        data_bytes: 0,
        segments: 0,
        globals: 0,
        compilation,
        timings,
    };
    for state in states {
        stats.globals += state.globals.len();
        for m in &state.memories {
            stats.memory_bytes += m.image.len() as u64;
            stats.segments += m.segments.len();
            stats.data_bytes += m.segments.iter().map(|r| r.len() as u64).sum::<u64>();
        }
    }
    stats
}
