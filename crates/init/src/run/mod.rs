//! Running the instrumented component in wasmtime: [`start`] compiles and
//! instantiates it in the sandbox (the constructors run), [`call`] makes the
//! init call, and the live [`Session`] is then measured by
//! [`crate::snapshot`].

pub(crate) mod call;
mod host;
mod runtime;

pub use call::{ExportCall, InitCall};
use runtime::CompileRequest;
pub use runtime::{CompileProgress, KEPT_COMPONENTS, Runtime, RuntimeBuilder, code_cache};

use crate::census::HandleKind;
use crate::instrument::{ACCESS_EXPORT, Accessor, Instrumented, accessor_name};
use crate::options::Options;
use crate::parse::ComponentInfo;
use crate::report::{Compilation, Failure};
use anyhow::{Result, anyhow};
use host::{Failures, Host, Ticker};
use std::time::{Duration, Instant};
use wasmtime::Store;
use wasmtime::component::{
    Component, ComponentExportIndex, ComponentNamedList, ComponentType, Instance, Lift, Lower,
    ResourceTable, TypedFunc, WasmList,
};

/// An instantiated instrumented component, its store and its timeout.
pub(crate) struct Session<'a> {
    component: Component,
    store: Store<Host>,
    instance: Instance,
    /// The instance of accessor functions the instrumentation added.
    access: ComponentExportIndex,
    accessors: &'a [Accessor],
    failures: Failures,
    /// Entries of wasmtime's table of async state (futures, streams,
    /// waitable sets, subtasks, tasks) right after instantiation.
    async_baseline: usize,
    /// The async census right after instantiation (see `census.rs`).
    census_baseline: Vec<(HandleKind, i64)>,
    /// Keeps the timeout running until the session ends.
    _ticker: Ticker,
    /// How long compiling took.
    pub compile: Duration,
    /// Which compiler compiled it, and why.
    pub compilation: Compilation,
    /// How long instantiating took.
    pub instantiate: Duration,
}

/// Compiles `instrumented` (the component `info` describes) on `runtime`,
/// with `options.compiler`, and instantiates it in the sandbox of
/// `options`, which runs the libraries' constructors.
pub(crate) fn start<'a>(
    runtime: &Runtime,
    instrumented: &'a Instrumented,
    info: &ComponentInfo,
    options: &Options,
) -> Result<Session<'a>> {
    let t = Instant::now();
    let winch_blocker = info.winch_blocker();
    let (component, compilation) = runtime.compile(CompileRequest {
        wasm: &instrumented.wasm,
        functions: info.defined_functions(),
        wanted: options.compiler,
        winch_blocker: winch_blocker.as_deref(),
    })?;
    let compile = t.elapsed();
    let engine = component.engine();

    let (mut store, linker, failures) = host::sandbox(engine, &component, options)?;
    let ticker = Ticker::start(engine.clone())?;
    let t = Instant::now();
    let instantiated = if store.data().concurrent {
        futures::executor::block_on(linker.instantiate_async(&mut store, &component))
    } else {
        linker.instantiate(&mut store, &component)
    };
    let instance = match instantiated {
        Ok(i) => i,
        Err(e) => {
            return Err(failures.guest_error(
                &store,
                "instantiating the component (this runs the libraries' constructors)",
                e,
            ));
        }
    };
    let instantiate = t.elapsed();
    let async_baseline = store.concurrent_state_table_size();
    let access = instance
        .get_export_index(&mut store, None, ACCESS_EXPORT)
        .ok_or_else(|| anyhow!("internal error: the accessor instance is missing"))?;
    let mut session = Session {
        component,
        store,
        instance,
        access,
        accessors: &instrumented.accessors,
        failures,
        async_baseline,
        census_baseline: Vec::new(),
        _ticker: ticker,
        compile,
        compilation,
        instantiate,
    };
    session.census_baseline = session.census()?;
    Ok(session)
}

impl Session<'_> {
    /// The accessors the instrumentation added, in export order.
    pub fn accessors(&self) -> &[Accessor] {
        self.accessors
    }

    /// Calls accessor `i` (which takes no parameters and returns `R`).
    pub fn read<R>(&mut self, i: usize) -> Result<R>
    where
        R: ComponentType + Lift + Send + Sync + 'static,
    {
        let index = self.accessor_index(i)?;
        let f = self
            .instance
            .get_typed_func::<(), (R,)>(&mut self.store, &index)
            .map_err(anyhow::Error::from)?;
        Ok(call_typed(&mut self.store, f, ())
            .map_err(anyhow::Error::from)?
            .0)
    }

    /// The export index of accessor `i`.
    fn accessor_index(&mut self, i: usize) -> Result<ComponentExportIndex> {
        self.instance
            .get_export_index(&mut self.store, Some(&self.access), &accessor_name(i))
            .ok_or_else(|| anyhow!("internal error: accessor {i} is missing"))
    }

    /// Calls accessor `i`, which returns a `list<u8>`, and copies the list.
    pub fn read_bytes(&mut self, i: usize) -> Result<Vec<u8>> {
        let list = self.read::<WasmList<u8>>(i)?;
        Ok(list.as_le_slice(&self.store).to_vec())
    }

    /// The host resources the component holds.
    pub fn resources(&mut self) -> &mut ResourceTable {
        &mut self.store.data_mut().table
    }

    /// How many entries of wasmtime's async state (future and stream ends,
    /// waitable sets, subtasks) init added and left: none can be carried
    /// over, since they live in the runtime, not in linear memory.
    pub fn async_state_left(&mut self) -> usize {
        self.store
            .concurrent_state_table_size()
            .saturating_sub(self.async_baseline)
    }

    /// The async census: for each kind some module counts, the handles of
    /// it the component holds (made by built-ins less those dropped).
    fn census(&mut self) -> Result<Vec<(HandleKind, i64)>> {
        let mut counts: Vec<(HandleKind, i64)> = Vec::new();
        for (i, accessor) in self.accessors.iter().enumerate() {
            if let Accessor::Census { kind } = *accessor {
                let n = i64::from(self.read::<i32>(i)?);
                match counts.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, total)) => *total += n,
                    None => counts.push((kind, n)),
                }
            }
        }
        counts.sort();
        Ok(counts)
    }

    /// The async handles built-ins made since instantiation and nobody
    /// dropped, by kind (only kinds with some left).
    pub fn async_handles_made(&mut self) -> Result<Vec<(HandleKind, i64)>> {
        let now = self.census()?;
        Ok(now
            .into_iter()
            .map(|(kind, n)| {
                let before = self.census_baseline.iter().find(|(k, _)| *k == kind);
                (kind, n - before.map_or(0, |(_, b)| *b))
            })
            .filter(|(_, n)| *n > 0)
            .collect())
    }

    /// An init failure of `kind`, with the output so far.
    pub fn fail(&self, kind: Failure, message: String) -> anyhow::Error {
        self.failures.fail(kind, message)
    }

    /// The init failure for `err`, raised by guest code running `what`.
    pub fn guest_error(&self, what: &str, err: wasmtime::Error) -> anyhow::Error {
        self.failures.guest_error(&self.store, what, err)
    }

    /// Everything the component wrote: stdout and stderr.
    pub fn output(&self) -> (Vec<u8>, Vec<u8>) {
        let output = &self.failures.output;
        (output.stdout(), output.stderr())
    }
}

/// Calls `f`: directly, or, in a store with concurrent host functions
/// (which takes only async calls), through wasmtime's async call on a plain
/// executor. Not on tokio: the sync WASI host blocks on a tokio runtime of
/// its own, which cannot start inside another.
pub(crate) fn call_typed<P, R>(
    store: &mut Store<Host>,
    f: TypedFunc<P, R>,
    params: P,
) -> wasmtime::Result<R>
where
    P: ComponentNamedList + Lower + Send + Sync,
    R: ComponentNamedList + Lift + Send + Sync + 'static,
{
    if store.data().concurrent {
        futures::executor::block_on(f.call_async(store, params))
    } else {
        f.call(store, params)
    }
}
