//! The host side of init: a closed WASI sandbox with fixed clocks and random
//! bytes, wasi:http that refuses every outgoing request (naming its URL)
//! unless `--allow-http` opens the network,
//! the memory and table limits, the epoch ticker behind the timeout, stubs
//! for every import that neither provides, and the classification of guest
//! failures into [`InitError`]s.

use crate::options::Options;
use crate::report::{Failure, InitError};
use anyhow::{Context, Result};
use componentize_outgoing::{Connection, PlainHttp};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Accessor, Component, Linker, ResourceTable, ResourceType, Val};
use wasmtime::{Engine, Store, StoreContextMut, UpdateDeadline};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// Capacity of the captured stdout and stderr, each.
const OUTPUT_CAPACITY: usize = 16 << 20;

/// Wall clock during init: 2000-01-01T00:00:00Z, advancing 1 µs per reading.
const WALL_CLOCK_BASE: Duration = Duration::from_secs(946_684_800);

/// Seed of the fixed random bytes handed out during init.
const RANDOM_SEED: u64 = 0x636f_6d70_6f6e_656e;

/// How many fixed random bytes each random source cycles through.
const RANDOM_BYTES: usize = 64 << 10;

/// Tables may grow to this many elements (far beyond any real program; a
/// guard against runaway growth, not a tunable).
const TABLE_LIMIT: usize = 10_000_000;

/// How often the ticker advances the engine's epoch, i.e. how late a timeout
/// may be noticed.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The store's data: WASI, wasi:http and the limits.
pub(crate) struct Host {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    http_hooks: InitHttp,
    /// The host resources the component holds (checked after init).
    pub table: ResourceTable,
    limiter: Limiter,
    /// The linker has concurrent host functions (the stubs of async
    /// imports), so the store takes only wasmtime's async calls
    /// ([`call_typed`](super::call_typed)).
    pub concurrent: bool,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl Host {
    /// The outgoing HTTP requests init refused, as `METHOD URL`.
    pub fn refused_requests(&self) -> &[String] {
        &self.http_hooks.refused
    }
}

/// wasi:http's outgoing side during init. The network is closed unless
/// [`Options::allow_http`] opens it: then requests go out over plain HTTP.
/// Otherwise every request fails with `HTTP-request-denied`, and its method
/// and URL are kept so init can fail naming them (a script that catches the
/// error must not snapshot a state built without the response).
struct InitHttp {
    allow: bool,
    refused: Vec<String>,
}

impl WasiHttpHooks for InitHttp {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        response_error: Connection,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (http::Response<wasmtime_wasi_http::WasiBody>, Connection),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        if self.allow {
            return PlainHttp.send_request(request, options, response_error);
        }
        self.refused
            .push(format!("{} {}", request.method(), request.uri()));
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

/// The memory and table caps; remembers what hit them.
struct Limiter {
    memory_cap: usize,
    memory_hit: Option<usize>,
    table_hit: Option<usize>,
}

/// What grows, in which unit: `("memory", "bytes")`.
type Growing = (&'static str, &'static str);

/// Refuses growth beyond `cap` (remembering the size asked for in `hit`)
/// and beyond the declared `maximum`.
fn allow_growth(
    (what, unit): Growing,
    cap: usize,
    desired: usize,
    maximum: Option<usize>,
    hit: &mut Option<usize>,
) -> wasmtime::Result<bool> {
    if desired > cap {
        *hit = Some(desired);
        return Err(wasmtime::format_err!(
            "a {what} tried to grow to {desired} {unit}, over the init {what} limit of {cap} {unit}"
        ));
    }
    Ok(maximum.is_none_or(|max| desired <= max))
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let cap = self.memory_cap;
        allow_growth(
            ("memory", "bytes"),
            cap,
            desired,
            maximum,
            &mut self.memory_hit,
        )
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let hit = &mut self.table_hit;
        allow_growth(("table", "elements"), TABLE_LIMIT, desired, maximum, hit)
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

/// [`RANDOM_BYTES`] fixed pseudo-random bytes (splitmix64).
fn fixed_random_bytes(seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(RANDOM_BYTES);
    while out.len() < RANDOM_BYTES {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out
}

/// The WASI context: only what `options` grants, output captured.
fn build_wasi(options: &Options, output: &Output) -> Result<WasiCtx> {
    let mut b = WasiCtx::builder();
    b.stdin(MemoryInputPipe::new(Vec::<u8>::new()))
        .stdout(output.stdout.clone())
        .stderr(output.stderr.clone())
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
    for var in &options.env {
        b.env(&var.key, &var.value);
    }
    for dir in &options.dirs {
        b.preopened_dir(&dir.host, &dir.guest, wasmtime_wasi::FsPerms::ReadWrite)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("cannot open `{}` for --dir", dir.host.display()))?;
    }
    if !options.module_paths.is_empty() {
        let mut guests = Vec::new();
        for (i, dir) in options.module_paths.iter().enumerate() {
            let guest = componentize_contract::module_folder(i);
            b.preopened_dir(dir, &guest, wasmtime_wasi::FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot open the module folder `{}`", dir.display()))?;
            guests.push(guest);
        }
        b.env(componentize_contract::MODULE_PATH_ENV, guests.join(":"));
    }
    Ok(b.build())
}

/// What the component writes to stdout and stderr.
#[derive(Clone)]
pub(crate) struct Output {
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl Output {
    fn new() -> Output {
        Output {
            stdout: MemoryOutputPipe::new(OUTPUT_CAPACITY),
            stderr: MemoryOutputPipe::new(OUTPUT_CAPACITY),
        }
    }

    /// Everything written to stdout so far.
    pub fn stdout(&self) -> Vec<u8> {
        self.stdout.contents().to_vec()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> Vec<u8> {
        self.stderr.contents().to_vec()
    }
}

/// A store for `engine` with the sandbox and limits of `options`, the
/// timeout armed, and a linker with WASI and stubs for `component`'s other
/// imports.
pub(crate) fn sandbox(
    engine: &Engine,
    component: &Component,
    options: &Options,
) -> Result<(Store<Host>, Linker<Host>, Failures)> {
    let output = Output::new();
    let wasi = build_wasi(options, &output)?;
    let mut linker = Linker::<Host>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(anyhow::Error::from)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)
        .map_err(anyhow::Error::from)?;
    let concurrent = stub_imports(&mut linker, component, engine)?;

    let mut store = Store::new(
        engine,
        Host {
            wasi,
            http: WasiHttpCtx::new(),
            http_hooks: InitHttp {
                allow: options.allow_http,
                refused: Vec::new(),
            },
            table: ResourceTable::new(),
            limiter: Limiter {
                memory_cap: options.memory_limit,
                memory_hit: None,
                table_hit: None,
            },
            concurrent,
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
    let failures = Failures {
        output,
        timed_out,
        timeout: options.timeout,
        memory_cap: options.memory_limit,
    };
    Ok((store, linker, failures))
}

/// Turns errors into [`InitError`]s with the captured output.
pub(crate) struct Failures {
    /// The captured output.
    pub output: Output,
    timed_out: Arc<AtomicBool>,
    timeout: Duration,
    memory_cap: usize,
}

impl Failures {
    /// An [`InitError`] of `kind` with the output so far.
    pub fn fail(&self, kind: Failure, message: String) -> anyhow::Error {
        anyhow::Error::new(InitError {
            kind,
            message,
            stdout: self.output.stdout(),
            stderr: self.output.stderr(),
        })
    }

    /// Classifies a wasmtime error from running guest code for `what`.
    pub fn guest_error(
        &self,
        store: &Store<Host>,
        what: &str,
        err: wasmtime::Error,
    ) -> anyhow::Error {
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

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped, so the
/// store's deadline callback can check the timeout.
pub(crate) struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Starts ticking `engine`'s epoch.
    pub fn start(engine: Engine) -> Result<Ticker> {
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("componentize-init-epoch".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(EPOCH_TICK) {
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

/// Stands for resources of imports that init does not provide.
struct StubResource;

/// The error of calling the stubbed import `name` during init.
fn unavailable(name: &str) -> wasmtime::Error {
    wasmtime::format_err!(
        "init called the import `{name}`, which is not available during init (only WASI and \
         wasi:http are)"
    )
}

/// A host function that traps with a message naming the import `name`.
fn trap(
    name: String,
) -> impl Fn(StoreContextMut<'_, Host>, ComponentFunc, &[Val], &mut [Val]) -> wasmtime::Result<()>
+ Send
+ Sync
+ 'static {
    move |_: StoreContextMut<'_, Host>, _: ComponentFunc, _: &[Val], _: &mut [Val]| {
        Err(unavailable(&name))
    }
}

/// What a concurrent host function returns.
type HostFuture<'a> = Pin<Box<dyn Future<Output = wasmtime::Result<()>> + Send + 'a>>;

/// The concurrent host function for an `async func` import `name`: it
/// traps, like [`trap`], when called.
fn trap_async(
    name: String,
) -> impl for<'a> Fn(&'a Accessor<Host>, ComponentFunc, &'a [Val], &'a mut [Val]) -> HostFuture<'a>
+ Send
+ Sync
+ 'static {
    move |_, _, _, _| {
        let error = unavailable(&name);
        Box::pin(async move { Err(error) })
    }
}

/// Defines every import of `component` that neither wasmtime-wasi nor
/// wasmtime-wasi-http provides, in any namespace (functions, resources of
/// imported instances, top-level functions), as a stub that traps with a
/// message naming it: the component instantiates, and calling such an import
/// during init fails clearly.
///
/// What is provided is what the linker type-checks: WASI matches `wasi:*`
/// imports by semver, so names alone cannot tell. Each round type-checks
/// the component and stubs the first import that fails, until it passes.
/// A resource that is another import's resource under a second name (an
/// interface that `use`s `wasi:io/streams.{input-stream}`) is not
/// defined again: the linker takes it from its first import. An `async
/// func` import gets a concurrent stub; whether there is one is returned.
fn stub_imports(linker: &mut Linker<Host>, component: &Component, engine: &Engine) -> Result<bool> {
    let ty = component.component_type();
    let imports: Vec<(&str, ComponentItem)> = ty
        .imports(engine)
        .map(|(name, item)| (name, item.ty))
        .collect();
    let mut stubbed: Vec<&str> = Vec::new();
    let mut concurrent = false;
    loop {
        let err = match linker.instantiate_pre(component) {
            Ok(_) => return Ok(concurrent),
            Err(e) => e,
        };
        // The type check names the import it stopped at; a stub for it is
        // the next step, unless it is a stub already.
        let message = err.to_string();
        let failing = imports
            .iter()
            .position(|(name, _)| message.contains(&format!("`{name}`")));
        let Some(index) = failing.filter(|&i| !stubbed.contains(&imports[i].0)) else {
            let cause = format!("{err:#}");
            return Err(anyhow::anyhow!(
                "init cannot provide the component's imports: {cause}"
            ));
        };
        let (name, item) = &imports[index];
        // Resources of the imports before this one, stubs included.
        let earlier: Vec<ResourceType> = imports[..index]
            .iter()
            .flat_map(|(_, item)| resources(item, engine))
            .collect();
        concurrent |= stub_import(linker, name, item, &earlier, engine)
            .with_context(|| format!("defining a stub for the import `{name}`"))?;
        stubbed.push(name);
    }
}

/// The resource types `item` introduces or names.
fn resources(item: &ComponentItem, engine: &Engine) -> Vec<ResourceType> {
    match item {
        ComponentItem::Resource(r) => vec![*r],
        ComponentItem::ComponentInstance(instance) => instance
            .exports(engine)
            .filter_map(|(_, e)| match e.ty {
                ComponentItem::Resource(r) => Some(r),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Defines the import `name` as traps; resources already introduced by
/// `earlier` imports are left to them. Whether a stub is concurrent (of an
/// `async func`).
fn stub_import(
    linker: &mut Linker<Host>,
    name: &str,
    item: &ComponentItem,
    earlier: &[ResourceType],
    engine: &Engine,
) -> Result<bool> {
    // A stub replaces whatever the linker has under that exact name.
    linker.allow_shadowing(true);
    let mut concurrent = false;
    let result = (|| -> wasmtime::Result<()> {
        match item {
            ComponentItem::ComponentFunc(ty) if ty.async_() => {
                concurrent = true;
                linker
                    .root()
                    .func_new_concurrent(name, trap_async(name.to_string()))?;
            }
            ComponentItem::ComponentFunc(_) => {
                linker.root().func_new(name, trap(name.to_string()))?;
            }
            ComponentItem::Resource(r) if !earlier.contains(r) => {
                linker.root().resource(
                    name,
                    ResourceType::host::<StubResource>(),
                    |_, _| Ok(()),
                )?;
            }
            ComponentItem::ComponentInstance(instance) => {
                let mut li = linker.instance(name)?;
                for (item_name, item) in instance.exports(engine) {
                    match item.ty {
                        ComponentItem::ComponentFunc(ty) if ty.async_() => {
                            concurrent = true;
                            let full = format!("{name}#{item_name}");
                            li.func_new_concurrent(item_name, trap_async(full))?
                        }
                        ComponentItem::ComponentFunc(_) => {
                            let full = format!("{name}#{item_name}");
                            li.func_new(item_name, trap(full))?
                        }
                        ComponentItem::Resource(r) if !earlier.contains(&r) => {
                            li.resource(item_name, ResourceType::host::<StubResource>(), |_, _| {
                                Ok(())
                            })?
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        Ok(())
    })();
    linker.allow_shadowing(false);
    result.map_err(anyhow::Error::from)?;
    Ok(concurrent)
}
