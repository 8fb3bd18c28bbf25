//! Running the instrumented component in wasmtime: the sandbox, the init
//! call, the reset of libc's host handles, the host-handle check, and the
//! measurement of every global and memory.

use crate::instrument::{ACCESS_EXPORT, Accessor, Hook, Instrumented, accessor_name};
use crate::parse::ComponentInfo;
use crate::rewrite::{GlobalValue, MemoryState, ModuleState};
use crate::{Failure, InitCall, InitError, Options, Runtime, Sandbox};
use anyhow::{Context, Result, anyhow};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wasmtime::component::{
    Component, ComponentExportIndex, Instance, Linker, ResourceTable, Val, WasmList,
};
use wasmtime::{Store, StoreContextMut, UpdateDeadline};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Capacity of the captured stdout and stderr, each.
pub(crate) const OUTPUT_CAPACITY: usize = 16 << 20;

/// Wall clock during init: 2000-01-01T00:00:00Z, advancing 1 µs per reading.
const WALL_CLOCK_BASE: Duration = Duration::from_secs(946_684_800);

/// Seed of the fixed random bytes handed out during init.
const RANDOM_SEED: u64 = 0x636f_6d70_6f6e_656e;

pub(crate) struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The memory and table caps; remembers what hit them.
struct Limiter {
    memory_cap: usize,
    table_cap: usize,
    memory_hit: Option<usize>,
    table_hit: Option<usize>,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_hit = Some(desired);
            return Err(wasmtime::format_err!(
                "a memory tried to grow to {desired} bytes, over the init memory limit of {} bytes",
                self.memory_cap
            ));
        }
        Ok(maximum.is_none_or(|max| desired <= max))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_cap {
            self.table_hit = Some(desired);
            return Err(wasmtime::format_err!(
                "a table tried to grow to {desired} elements, over the limit of {}",
                self.table_cap
            ));
        }
        Ok(maximum.is_none_or(|max| desired <= max))
    }
}

/// A wall clock that starts at [`WALL_CLOCK_BASE`] and ticks 1 µs per read.
struct FixedWallClock(AtomicU64);

impl wasmtime_wasi::HostWallClock for FixedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_micros(1)
    }
    fn now(&self) -> Duration {
        WALL_CLOCK_BASE + Duration::from_micros(self.0.fetch_add(1, Ordering::Relaxed))
    }
}

/// A monotonic clock that starts at 0 and ticks 1 µs per read.
struct FixedMonotonicClock(AtomicU64);

impl wasmtime_wasi::HostMonotonicClock for FixedMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000
    }
    fn now(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) * 1_000
    }
}

/// 64 KiB of fixed pseudo-random bytes (splitmix64).
fn fixed_random_bytes(seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(64 << 10);
    while out.len() < 64 << 10 {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out
}

/// What running the component produced.
pub(crate) struct Measured {
    pub states: Vec<ModuleState>,
    pub results: Vec<String>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Name of the component export to remove, if any.
    pub remove: Option<String>,
    pub compile: Duration,
    pub instantiate: Duration,
    pub init: Duration,
    pub measure: Duration,
}

/// Turns errors into [`InitError`]s with the captured output.
struct Failures {
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    timed_out: Arc<AtomicBool>,
    timeout: Duration,
    memory_cap: usize,
}

impl Failures {
    fn fail(&self, kind: Failure, message: String) -> anyhow::Error {
        anyhow::Error::new(InitError {
            kind,
            message,
            stdout: self.stdout.contents().to_vec(),
            stderr: self.stderr.contents().to_vec(),
        })
    }

    /// Classifies a wasmtime error from running guest code.
    fn guest_error(&self, store: &Store<Host>, what: &str, err: wasmtime::Error) -> anyhow::Error {
        if self.timed_out.load(Ordering::SeqCst) {
            return self.fail(
                Failure::Timeout,
                format!(
                    "{what} did not finish within the init timeout of {} s",
                    self.timeout.as_secs_f64()
                ),
            );
        }
        let limiter = &store.data().limiter;
        if let Some(desired) = limiter.memory_hit {
            return self.fail(
                Failure::MemoryLimit,
                format!(
                    "{what} exceeded the init memory limit of {} bytes (a memory tried to grow to \
                     {desired} bytes)",
                    self.memory_cap
                ),
            );
        }
        if let Some(desired) = limiter.table_hit {
            return self.fail(
                Failure::MemoryLimit,
                format!(
                    "{what} exceeded the table limit (a table tried to grow to {desired} elements)"
                ),
            );
        }
        if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return self.fail(
                Failure::Trap,
                format!("{what} called exit({}); init must return instead", exit.0),
            );
        }
        self.fail(Failure::Trap, format!("{what} failed: {err:?}"))
    }
}

/// Increments the engine's epoch every few milliseconds until dropped.
struct Ticker {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: wasmtime::Engine) -> Result<Ticker> {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("componentize-init-epoch".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    rx.recv_timeout(Duration::from_millis(10))
                {
                    engine.increment_epoch();
                }
            })
            .context("cannot start the timeout thread")?;
        Ok(Ticker {
            stop: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn build_wasi(
    sandbox: &Sandbox,
    stdout: &MemoryOutputPipe,
    stderr: &MemoryOutputPipe,
) -> Result<WasiCtx> {
    let mut b = WasiCtx::builder();
    b.stdin(MemoryInputPipe::new(Vec::<u8>::new()))
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .secure_random(wasmtime_wasi::Deterministic::new(fixed_random_bytes(
            RANDOM_SEED,
        )))
        .insecure_random(wasmtime_wasi::Deterministic::new(fixed_random_bytes(
            RANDOM_SEED ^ 1,
        )))
        .insecure_random_seed(u128::from(RANDOM_SEED) << 64 | u128::from(RANDOM_SEED))
        .wall_clock(FixedWallClock(AtomicU64::new(0)))
        .monotonic_clock(FixedMonotonicClock(AtomicU64::new(0)))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    for (k, v) in &sandbox.env {
        b.env(k, v);
    }
    for (host, guest) in &sandbox.dirs {
        b.preopened_dir(host, guest, wasmtime_wasi::FsPerms::ReadWrite)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("cannot open `{}` for --dir", host.display()))?;
    }
    Ok(b.build())
}

/// Stands for resources of imports that init does not provide.
struct StubResource;

/// Defines every non-WASI import of `component` (functions and resources of
/// imported instances, and top-level functions) as a stub that traps with a
/// message naming it: the component instantiates, and calling such an import
/// during init fails clearly. WASI comes from wasmtime-wasi, which matches
/// `wasi:*@0.2.x` imports by semver.
fn stub_imports(
    linker: &mut Linker<Host>,
    component: &Component,
    engine: &wasmtime::Engine,
) -> Result<()> {
    use wasmtime::component::ResourceType;
    use wasmtime::component::types::ComponentItem;
    let trap = |name: String| {
        move |_: StoreContextMut<'_, Host>,
              _: wasmtime::component::types::ComponentFunc,
              _: &[Val],
              _: &mut [Val]|
              -> wasmtime::Result<()> {
            Err(wasmtime::format_err!(
                "init called the import `{name}`, which is not available during init (only WASI is)"
            ))
        }
    };
    let ty = component.component_type();
    for (name, item) in ty.imports(engine) {
        if name.starts_with("wasi:") {
            continue;
        }
        match item.ty {
            ComponentItem::ComponentFunc(_) => {
                linker
                    .root()
                    .func_new(name, trap(name.to_string()))
                    .map_err(anyhow::Error::from)?;
            }
            ComponentItem::ComponentInstance(instance) => {
                let mut li = linker.instance(name).map_err(anyhow::Error::from)?;
                for (item_name, item) in instance.exports(engine) {
                    match item.ty {
                        ComponentItem::ComponentFunc(_) => li
                            .func_new(item_name, trap(format!("{name}#{item_name}")))
                            .map_err(anyhow::Error::from)?,
                        ComponentItem::Resource(_) => li
                            .resource(item_name, ResourceType::host::<StubResource>(), |_, _| {
                                Ok(())
                            })
                            .map_err(anyhow::Error::from)?,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The name of a live host resource, if this crate knows its type.
fn resource_name(entry: &(dyn std::any::Any + Send)) -> Option<&'static str> {
    use wasmtime_wasi::filesystem::Descriptor;
    use wasmtime_wasi::p2;
    Some(if let Some(d) = entry.downcast_ref::<Descriptor>() {
        match d {
            Descriptor::File(_) => "an open file (wasi:filesystem/types.descriptor)",
            Descriptor::Dir(_) => "an open directory (wasi:filesystem/types.descriptor)",
        }
    } else if entry.is::<p2::DynOutputStream>() {
        "an output stream (wasi:io/streams.output-stream; stdout, stderr or a file)"
    } else if entry.is::<p2::DynInputStream>() {
        "an input stream (wasi:io/streams.input-stream; stdin or a file)"
    } else if entry.is::<p2::DynPollable>() {
        "a pollable (wasi:io/poll.pollable)"
    } else if entry.is::<p2::ReaddirIterator>() {
        "a directory listing (wasi:filesystem/types.directory-entry-stream)"
    } else if entry.is::<p2::TcpSocket>() {
        "a TCP socket (wasi:sockets/tcp.tcp-socket)"
    } else if entry.is::<p2::UdpSocket>() {
        "a UDP socket (wasi:sockets/udp.udp-socket)"
    } else if entry.is::<p2::Network>() {
        "a network handle (wasi:sockets/network.network)"
    } else if entry.is::<p2::IoError>() {
        "an I/O error (wasi:io/error.error)"
    } else {
        return None;
    })
}

/// Live entries of the host's resource table, named where possible.
fn live_resources(table: &mut ResourceTable) -> Vec<String> {
    if table.is_empty() {
        return Vec::new();
    }
    let mut named: Vec<String> = Vec::new();
    let mut unknown = 0usize;
    for entry in table.iter_mut() {
        match resource_name(entry) {
            Some(n) => named.push(n.to_string()),
            None => unknown += 1,
        }
    }
    if named.is_empty() {
        named.push(format!(
            "{unknown} host resource(s) of a type init does not know"
        ));
    }
    named
}

/// Open files and non-preopened directories: what resetting libc would
/// silently close.
fn open_files(table: &mut ResourceTable, preopens: usize) -> Vec<String> {
    use wasmtime_wasi::filesystem::Descriptor;
    let mut files = 0usize;
    let mut dirs = 0usize;
    for entry in table.iter_mut() {
        match entry.downcast_ref::<Descriptor>() {
            Some(Descriptor::File(_)) => files += 1,
            Some(Descriptor::Dir(_)) => dirs += 1,
            None => {}
        }
    }
    let mut out = Vec::new();
    if files > 0 {
        out.push(format!(
            "{files} open file(s) (wasi:filesystem/types.descriptor)"
        ));
    }
    if dirs > preopens {
        out.push(format!(
            "{} open directory handle(s) besides the preopens (wasi:filesystem/types.descriptor)",
            dirs - preopens
        ));
    }
    out
}

/// Calls `wanted` if the component has it: `None` if not.
fn call_hook(
    store: &mut Store<Host>,
    instance: &Instance,
    access: &ComponentExportIndex,
    accessors: &[Accessor],
    wanted: Hook,
) -> Result<Option<wasmtime::Result<()>>> {
    for (i, a) in accessors.iter().enumerate() {
        if let Accessor::Hook { hook, .. } = a
            && *hook == wanted
        {
            let index = access_index(store, instance, access, i)?;
            let r = match wanted {
                Hook::Fflush => instance
                    .get_typed_func::<(i32,), (i32,)>(&mut *store, &index)
                    .and_then(|f| f.call(&mut *store, (0,)).map(|_| ())),
                _ => instance
                    .get_typed_func::<(), ()>(&mut *store, &index)
                    .and_then(|f| f.call(&mut *store, ())),
            };
            return Ok(Some(r));
        }
    }
    Ok(None)
}

fn access_index(
    store: &mut Store<Host>,
    instance: &Instance,
    access: &ComponentExportIndex,
    i: usize,
) -> Result<ComponentExportIndex> {
    instance
        .get_export_index(&mut *store, Some(access), &accessor_name(i))
        .ok_or_else(|| anyhow!("internal error: accessor {i} is missing"))
}

fn call0<R>(
    store: &mut Store<Host>,
    instance: &Instance,
    index: &ComponentExportIndex,
) -> Result<R, wasmtime::Error>
where
    R: wasmtime::component::ComponentType + wasmtime::component::Lift + Send + Sync + 'static,
{
    let f = instance.get_typed_func::<(), (R,)>(&mut *store, index)?;
    Ok(f.call(&mut *store, ())?.0)
}

pub(crate) fn run(
    runtime: &Runtime,
    info: &ComponentInfo,
    instrumented: &Instrumented,
    options: &Options,
) -> Result<Measured> {
    let engine = runtime.engine();
    let t = Instant::now();
    let component = runtime.compile(&instrumented.wasm)?;
    let compile = t.elapsed();

    let stdout = MemoryOutputPipe::new(OUTPUT_CAPACITY);
    let stderr = MemoryOutputPipe::new(OUTPUT_CAPACITY);
    let wasi = build_wasi(&options.sandbox, &stdout, &stderr)?;
    let mut linker = Linker::<Host>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(anyhow::Error::from)?;
    stub_imports(&mut linker, &component, engine)?;

    let mut store = Store::new(
        engine,
        Host {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter {
                memory_cap: options.memory_limit,
                table_cap: 10_000_000,
                memory_hit: None,
                table_hit: None,
            },
        },
    );
    store.limiter(|h| &mut h.limiter);
    let timed_out = Arc::new(AtomicBool::new(false));
    // No deadline when the timeout is too large to represent.
    let deadline = Instant::now().checked_add(options.timeout);
    {
        let timed_out = timed_out.clone();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_: StoreContextMut<'_, Host>| {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                timed_out.store(true, Ordering::SeqCst);
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
    }
    let cx = Failures {
        stdout: stdout.clone(),
        stderr: stderr.clone(),
        timed_out,
        timeout: options.timeout,
        memory_cap: options.memory_limit,
    };
    let _ticker = Ticker::start(engine.clone())?;

    let t = Instant::now();
    let instance = match linker.instantiate(&mut store, &component) {
        Ok(i) => i,
        Err(e) => {
            return Err(cx.guest_error(
                &store,
                "instantiating the component (this runs the libraries' constructors)",
                e,
            ));
        }
    };
    let instantiate = t.elapsed();

    let access = instance
        .get_export_index(&mut store, None, ACCESS_EXPORT)
        .ok_or_else(|| anyhow!("internal error: the accessor instance is missing"))?;
    let hook = |store: &mut Store<Host>, wanted: Hook| {
        call_hook(store, &instance, &access, &instrumented.accessors, wanted)
    };

    // The init call.
    let t = Instant::now();
    let mut results = Vec::new();
    let mut remove = None;
    match &options.call {
        None => {}
        Some(InitCall::Script { name, source }) => {
            let iface = component
                .get_export_index(None, crate::INIT_INTERFACE)
                .ok_or_else(|| {
                    anyhow!(
                        "the component does not export `{}`: generate its bindings from the world \
                         that componentize_init::add_init_export returns",
                        crate::INIT_INTERFACE
                    )
                })?;
            let func = component
                .get_export_index(Some(&iface), "init")
                .ok_or_else(|| anyhow!("`{}` has no function `init`", crate::INIT_INTERFACE))?;
            let func = instance
                .get_typed_func::<(&str, &[u8]), (Result<(), String>,)>(&mut store, &func)
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!(
                        "`{}.init` does not have the type `func(name: string, source: list<u8>) -> \
                         result<_, string>`",
                        crate::INIT_INTERFACE
                    )
                })?;
            match func.call(&mut store, (name.as_str(), &source[..])) {
                Ok((Ok(()),)) => {}
                Ok((Err(message),)) => {
                    // Show what the script printed before it failed.
                    let _ = hook(&mut store, Hook::Fflush);
                    return Err(cx.fail(
                        Failure::ScriptError,
                        format!("the script `{name}` failed: {message}"),
                    ));
                }
                Err(e) => return Err(cx.guest_error(&store, &format!("init of `{name}`"), e)),
            }
            if !options.keep_init_export {
                remove = Some(crate::INIT_INTERFACE.to_string());
            }
        }
        Some(InitCall::Func(call)) => {
            let (func, params, nresults, to_remove) = prepare_call(engine, &component, call)?;
            // Refuse before running when the export cannot be removed.
            if !options.keep_init_export {
                remove = Some(to_remove.map_err(|e| anyhow!(e))?);
            }
            let func = instance
                .get_func(&mut store, func)
                .ok_or_else(|| anyhow!("`{call}` is not a function"))?;
            let mut rets = vec![Val::Bool(false); nresults];
            if let Err(e) = func.call(&mut store, &params, &mut rets) {
                return Err(cx.guest_error(&store, &format!("the init call `{call}`"), e));
            }
            for v in &rets {
                results.push(
                    wasmtime::component::wasm_wave::to_string(v)
                        .unwrap_or_else(|e| format!("<unprintable: {e}>")),
                );
            }
        }
    }
    let init = t.elapsed();

    // Host handles: flush stdio, make sure nothing but stdio and preopens is
    // open, let libc drop those, and check that nothing is left.
    let t = Instant::now();
    if let Some(Err(e)) = hook(&mut store, Hook::Fflush)? {
        return Err(cx.guest_error(&store, "flushing stdio after init (fflush)", e));
    }
    let preopens = options.sandbox.dirs.len();
    let files = open_files(&mut store.data_mut().table, preopens);
    if !files.is_empty() {
        return Err(cx.fail(
            Failure::LiveHandle,
            format!(
                "init left {} open; a snapshot cannot hold host handles (its copy of the handle \
                 would be invalid at runtime): close them before init returns",
                files.join(" and ")
            ),
        ));
    }
    for wanted in [Hook::ResetPreopens, Hook::DeinitEnviron] {
        if let Some(Err(e)) = hook(&mut store, wanted)? {
            return Err(cx.guest_error(
                &store,
                &format!("resetting libc after init ({})", wanted.symbol()),
                e,
            ));
        }
    }
    let live = live_resources(&mut store.data_mut().table);
    if !live.is_empty() {
        let has_reset = instrumented.accessors.iter().any(|a| {
            matches!(
                a,
                Accessor::Hook {
                    hook: Hook::ResetPreopens,
                    ..
                }
            )
        });
        let why = if has_reset {
            "they are still held after libc's reset"
        } else {
            "the component has no wasi-libc `__wasilibc_reset_preopens` that could drop them"
        };
        return Err(cx.fail(
            Failure::LiveHandle,
            format!(
                "init left live host handles, which a snapshot cannot hold ({why}): {}",
                live.join(", ")
            ),
        ));
    }

    // Measure.
    let mut states = vec![ModuleState::default(); info.modules.len()];
    let mut i = 0;
    let accessors = &instrumented.accessors;
    while i < accessors.len() {
        match accessors[i] {
            Accessor::Global { module, global, ty } => {
                let index = access_index(&mut store, &instance, &access, i)?;
                let value = match ty {
                    wasmparser::ValType::I32 => GlobalValue::I32(
                        call0::<i32>(&mut store, &instance, &index).map_err(anyhow::Error::from)?,
                    ),
                    wasmparser::ValType::I64 => GlobalValue::I64(
                        call0::<i64>(&mut store, &instance, &index).map_err(anyhow::Error::from)?,
                    ),
                    wasmparser::ValType::F32 => GlobalValue::F32(
                        call0::<i32>(&mut store, &instance, &index).map_err(anyhow::Error::from)?
                            as u32,
                    ),
                    _ => GlobalValue::F64(
                        call0::<i64>(&mut store, &instance, &index).map_err(anyhow::Error::from)?
                            as u64,
                    ),
                };
                states[module as usize].globals.push((global, value));
                i += 1;
            }
            Accessor::MemorySize { module, memory } => {
                let m = &info.modules[module as usize];
                let ty = m
                    .memories
                    .iter()
                    .find(|x| x.index == memory)
                    .map(|x| x.ty)
                    .ok_or_else(|| anyhow!("internal error: unknown memory"))?;
                let log2 = ty.page_size_log2.unwrap_or(16);
                let size_index = access_index(&mut store, &instance, &access, i)?;
                let size = call0::<i64>(&mut store, &instance, &size_index)
                    .map_err(anyhow::Error::from)? as u64;
                let image = if size == 0 {
                    Vec::new()
                } else {
                    if size < 8 {
                        anyhow::bail!(
                            "cannot read memory {memory} of {}: it is only {size} bytes",
                            m.label
                        );
                    }
                    if size > u64::from(u32::MAX) {
                        anyhow::bail!(
                            "cannot read memory {memory} of {}: it is 4 GiB or larger",
                            m.label
                        );
                    }
                    let tail_index = access_index(&mut store, &instance, &access, i + 1)?;
                    let tail = call0::<i64>(&mut store, &instance, &tail_index)
                        .map_err(anyhow::Error::from)?;
                    let list_index = access_index(&mut store, &instance, &access, i + 2)?;
                    let list = call0::<WasmList<u8>>(&mut store, &instance, &list_index)
                        .map_err(anyhow::Error::from)?;
                    let mut image = list.as_le_slice(&store).to_vec();
                    let ret = ((size - 8) & !3) as usize;
                    image
                        .get_mut(ret..ret + 8)
                        .ok_or_else(|| anyhow!("internal error: short memory read"))?
                        .copy_from_slice(&tail.to_le_bytes());
                    image
                };
                let segments = crate::segments::segments(&image);
                states[module as usize].memories.push(MemoryState {
                    index: memory,
                    pages: size >> log2,
                    image,
                    segments,
                });
                i += 3;
            }
            _ => i += 1,
        }
    }
    for (module, state) in info.modules.iter().zip(states.iter_mut()) {
        zero_dead_stack(module, state);
    }
    let measure = t.elapsed();
    drop(_ticker);
    Ok(Measured {
        states,
        results,
        stdout: stdout.contents().to_vec(),
        stderr: stderr.contents().to_vec(),
        remove,
        compile,
        instantiate,
        init,
        measure,
    })
}

/// Zeroes the part of the shadow stack below the stack pointer, which holds
/// only dead frames of init (garbage that would otherwise be stored in the
/// snapshot), then recomputes the memory's segments.
///
/// Applies to a module laid out by wasm-ld/wit-component's linker: it
/// defines memory 0 and exports the globals `__stack_pointer`,
/// `__stack_low` and `__stack_high`; the stack grows down from
/// `__stack_high`. When init returns no frame is live, and whatever lies in
/// `[__stack_low, __stack_pointer)` is dead by the C ABI (wasm32 has no red
/// zone).
fn zero_dead_stack(module: &crate::parse::ModuleInfo, state: &mut ModuleState) {
    // The value of an exported i32 global: measured if mutable, else its
    // constant initializer.
    let value = |name: &str| {
        let index = module.exported_global(name)?;
        let g = module.globals.iter().find(|g| g.index == index)?;
        if !g.ty.mutable {
            return g.init_i32.map(|v| v as u32 as usize);
        }
        state.globals.iter().find_map(|(i, v)| match v {
            GlobalValue::I32(v) if *i == index => Some(*v as u32 as usize),
            _ => None,
        })
    };
    let (Some(low), Some(high), Some(sp)) = (
        value("__stack_low"),
        value("__stack_high"),
        value("__stack_pointer"),
    ) else {
        return;
    };
    let Some(memory) = state.memories.iter_mut().find(|m| m.index == 0) else {
        return;
    };
    if low <= sp && sp <= high && sp <= memory.image.len() {
        memory.image[low..sp].fill(0);
        memory.segments = crate::segments::segments(&memory.image);
    }
}

type PreparedCall = (
    ComponentExportIndex,
    Vec<Val>,
    usize,
    std::result::Result<String, String>,
);

/// Parses `--init-func`: an export name (`f`, `iface.f`, `pkg:ns/iface.f@1.0`)
/// or a WAVE call (`iface.f("x", 3)`); returns the function, its arguments,
/// its result count and the export to remove (or why it cannot be removed).
fn prepare_call(
    engine: &wasmtime::Engine,
    component: &Component,
    call: &str,
) -> Result<PreparedCall> {
    use wasmtime::component::types::ComponentItem;
    use wasmtime::component::wasm_wave::{untyped::UntypedFuncCall, wasm::WasmFunc};
    use wasmtime::component::wit_parser::ItemName;
    let (item, parsed) = if call.contains('(') {
        let parsed = UntypedFuncCall::parse(call)
            .map_err(|e| anyhow!("cannot parse `{call}` as a WAVE function call: {e}"))?;
        let item = parsed
            .item_name()
            .map_err(|e| anyhow!("cannot parse the function name in `{call}`: {e}"))?;
        (item, Some(parsed))
    } else {
        let item = call
            .parse::<ItemName>()
            .map_err(|e| anyhow!("cannot parse `{call}` as a function name: {e}"))?;
        (item, None)
    };
    let (ty, index) = component
        .get_export(None, &item)
        .ok_or_else(|| anyhow!("the component does not export the function `{call}`"))?;
    let ComponentItem::ComponentFunc(ty) = ty else {
        anyhow::bail!("the component's export `{call}` is not a function");
    };
    let params = match parsed {
        Some(parsed) => {
            let types: Vec<_> = WasmFunc::params(&ty).collect();
            parsed
                .to_wasm_params::<Val>(&types)
                .map_err(|e| anyhow!("the arguments of `{call}` do not fit its parameters: {e}"))?
        }
        None => {
            if ty.params().len() != 0 {
                anyhow::bail!(
                    "`{call}` takes {} parameter(s): give them as a WAVE call, e.g. `{}(...)`",
                    ty.params().len(),
                    item.name
                );
            }
            Vec::new()
        }
    };
    let to_remove = match item.instance_name() {
        None => Ok(item.name.clone()),
        Some(instance) => match component.get_export(None, instance.as_str()) {
            Some((ComponentItem::ComponentInstance(t), _)) => {
                let n = t.exports(engine).count();
                if n == 1 {
                    Ok(instance)
                } else {
                    Err(format!(
                        "cannot remove the init export `{call}` alone: `{instance}` exports {n} \
                         functions; keep the init export (--keep-init-export) or use a world \
                         where the init function has an interface of its own"
                    ))
                }
            }
            _ => Err(format!("cannot find the exported instance `{instance}`")),
        },
    };
    Ok((index, params, ty.results().len(), to_remove))
}
