//! Serving HTTP with the Lua HTTP example (examples/http), built with the
//! componentize pipeline:
//!   - `GET /hello` through componentize-run's server (what `componentize
//!     serve` runs) on 127.0.0.1, with 1 and with 16 keep-alive
//!     connections: requests per second, p50 and p99 latency;
//!   - in process, one request without the network: a fresh instance of the
//!     snapshot and `handle`, against a fresh instance of the linked
//!     component without the snapshot that first runs the script through the
//!     init export, then `handle` (what every request would cost without
//!     init at build time);
//!   - instantiating the snapshot from the server's pre-instantiated
//!     component alone (no call), in microseconds;
//!   - the same `GET /hello` from the wasi:http 0.3 example
//!     (examples/http-p3), whose instances answer many requests each, with
//!     16 connections: requests per second against the 0.2 example's.
//!
//! `cargo bench -p componentize-lua --bench serve` (needs `bash
//! toolchain/build.sh`). `LUA_BENCH_SAMPLES=N` sets the number of requests
//! (and instantiations) per measurement (default 2000; 20 without
//! `--bench`, as `cargo test --benches` runs it).

use anyhow::{Context, Result, bail};
use componentize::{Pipeline, Source};
use componentize_contract::{INIT_FUNCTION, INIT_INTERFACE};
use componentize_run::{Host, Sandbox, ServeOptions, Server};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use wasmtime::component::{Component, ComponentExportIndex, InstancePre};
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::Proxy;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

const PATH: &str = "/hello?name=bench";
const EXPECTED: &[u8] = b"hello, bench!\n";

fn wt<T>(r: wasmtime::Result<T>) -> Result<T> {
    r.map_err(anyhow::Error::from)
}

/// An example's folder: `http` (wasi:http 0.2) or `http-p3`.
fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// Serves `server` on a free port of 127.0.0.1 until the sender is used or
/// dropped: the address, the sender, and the server's task.
async fn start(
    server: Server,
) -> Result<(
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        server
            .run(listener, async {
                let _ = stopped.await;
            })
            .await
    });
    Ok((addr, stop, serving))
}

/// Sorted latencies: the value at `fraction` (0.5 = median).
fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let i = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[i]
}

/// `requests` GETs of [`PATH`] spread over `connections` keep-alive
/// connections to `addr`: every request's latency, and the wall time.
async fn load(
    addr: &str,
    connections: usize,
    requests: usize,
) -> Result<(Vec<Duration>, Duration)> {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..connections {
        // Connection c sends requests c, c + connections, ...
        let count = (c..requests).step_by(connections).count();
        let addr = addr.to_string();
        tasks.spawn(async move {
            let stream = TcpStream::connect(&addr).await?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            let mut latencies = Vec::with_capacity(count);
            for _ in 0..count {
                let request = http::Request::get(PATH)
                    .header(http::header::HOST, &addr)
                    .body(Empty::<Bytes>::new())?;
                let t = Instant::now();
                let response = sender.send_request(request).await?;
                let body = response.into_body().collect().await?.to_bytes();
                latencies.push(t.elapsed());
                if body != EXPECTED {
                    bail!("GET {PATH} answered {body:?}");
                }
            }
            anyhow::Ok(latencies)
        });
    }
    let mut latencies = Vec::with_capacity(requests);
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done??);
    }
    let wall = start.elapsed();
    latencies.sort();
    Ok((latencies, wall))
}

/// One request in process on a fresh instance of `pre`: with `init`, the
/// script first goes through the init export (`init_func`). Returns how
/// long instantiating, init and `handle` with its whole response took.
async fn in_process(
    engine: &Engine,
    pre: &InstancePre<Host>,
    init: Option<(ComponentExportIndex, &[u8])>,
) -> Result<Duration> {
    let t = Instant::now();
    let mut store = Store::new(engine, Host::new(Sandbox::default().handler()?));
    let instance = wt(pre.instantiate_async(&mut store).await)?;
    if let Some((init_func, script)) = init {
        let init =
            wt(instance
                .get_typed_func::<(&str, &[u8]), (Result<(), String>,)>(&mut store, &init_func))?;
        if let (Err(message),) = wt(init.call_async(&mut store, ("app.lua", script)).await)? {
            bail!("init failed: {message}");
        }
    }
    let proxy = wt(Proxy::new(&mut store, &instance))?;
    let request = http::Request::get(format!("http://localhost{PATH}")).body(
        Empty::<Bytes>::new().map_err(|never| -> wasmtime_wasi_http::Error { match never {} }),
    )?;
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let request = wt(store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, request))?;
    let out = wt(store.data_mut().http().new_response_outparam(sender))?;
    // The handler runs on while the body is read, as in the server.
    let handled = tokio::spawn(async move {
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, request, out)
            .await
    });
    let response = receiver.await.context("the handler set no response")??;
    let body = response.into_body().collect().await?.to_bytes();
    wt(handled.await?)?;
    let elapsed = t.elapsed();
    if body != EXPECTED {
        bail!("in process, {PATH} answered {body:?}");
    }
    Ok(elapsed)
}

/// `requests` GETs over `connections` connections to `addr`, printed as
/// one line after `label`: requests per second, p50 and p99. Returns the
/// requests per second.
async fn throughput(addr: &str, connections: usize, requests: usize, label: &str) -> Result<f64> {
    let (latencies, wall) = load(addr, connections, requests).await?;
    let rps = latencies.len() as f64 / wall.as_secs_f64();
    println!(
        "  {label}{rps:>8.0} requests/s  p50 {:>9.2?}  p99 {:>9.2?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    );
    Ok(rps)
}

/// Median of `samples` runs of `f`, after one warm-up.
async fn median<F, Fut>(samples: usize, mut f: F) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Duration>>,
{
    f().await?;
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        times.push(f().await?);
    }
    times.sort();
    Ok(percentile(&times, 0.5))
}

fn main() -> Result<()> {
    // `cargo bench` passes --bench; `cargo test --benches` runs a few.
    let quick = !std::env::args().any(|a| a == "--bench");
    let samples: usize = match std::env::var("LUA_BENCH_SAMPLES") {
        Ok(s) => s.parse().context("LUA_BENCH_SAMPLES")?,
        Err(_) if quick => 20,
        Err(_) => 2000,
    };
    let binding = componentize_lua::binding()?;
    let libc = binding
        .dependencies()
        .pop()
        .context("the Lua binding lists no libc")?;
    let script = std::fs::read(example("http").join("app.lua"))?;
    let build = |name: &str| {
        Pipeline::new(Source::path(binding.interpreter().path), example(name))
            .script(Source::path(example(name).join("app.lua")))
            .search_path(libc.path.parent().context("libc's folder")?)
            .run(&mut |_| {})
    };

    let t = Instant::now();
    let built = build("http")?;
    println!(
        "build:         {:>10.2?}  snapshot {} bytes, linked (no snapshot) {} bytes",
        t.elapsed(),
        built.component.len(),
        built.linked.len()
    );

    let engine = componentize_run::engine(None)?;
    let t = Instant::now();
    let snapshot = wt(Component::new(&engine, &built.component))?;
    let linked = wt(Component::new(&engine, &built.linked))?;
    println!("compile both:  {:>10.2?}", t.elapsed());
    let init_func = linked
        .get_export_index(None, INIT_INTERFACE)
        .and_then(|iface| linked.get_export_index(Some(&iface), INIT_FUNCTION))
        .context("the linked component lacks the init export")?;
    let linker = componentize_run::linker(&engine)?;
    let snapshot_pre = wt(linker.instantiate_pre(&snapshot))?;
    let linked_pre = wt(linker.instantiate_pre(&linked))?;
    let server = Server::new(&engine, &snapshot, &ServeOptions::default())?;
    let p3 = wt(Component::new(&engine, &build("http-p3")?.component))?;
    let p3_server = Server::new(&engine, &p3, &ServeOptions::default())?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (addr, stop, serving) = start(server.clone()).await?;

        // Warm up: page faults, lazily initialized wasmtime state.
        load(&addr, 1, 10).await?;
        let mut rates = Vec::new();
        println!("GET {PATH} over HTTP on 127.0.0.1, {samples} requests each:");
        for connections in [1, 16] {
            let label = format!("{connections:>2} connection(s): ");
            rates.push(throughput(&addr, connections, samples, &label).await?);
        }
        println!(
            "  16 connections / 1 connection: {:.2}x the requests per second",
            rates[1] / rates[0]
        );

        let with = median(samples, || in_process(&engine, &snapshot_pre, None)).await?;
        let without = median(samples, || {
            in_process(&engine, &linked_pre, Some((init_func, &script)))
        })
        .await?;
        println!("one request in process (fresh instance + handle + body), median:");
        println!("  snapshot:                              {with:>9.2?}");
        println!("  no snapshot (init export, then handle): {without:>9.2?}");
        println!(
            "  without the snapshot a request takes {:.1}x as long",
            without.as_secs_f64() / with.as_secs_f64()
        );

        let instantiate = median(samples, || async {
            let mut store = server.store()?;
            let t = Instant::now();
            let pre = server.pre().context("the 0.2 example is served from a ProxyPre")?;
            wt(pre.instantiate_async(&mut store).await)?;
            Ok(t.elapsed())
        })
        .await?;
        println!(
            "instantiate from the ProxyPre (no call), median: {:.1} µs ({:.0}% of the in-process request)",
            instantiate.as_secs_f64() * 1e6,
            100.0 * instantiate.as_secs_f64() / with.as_secs_f64()
        );

        let _ = stop.send(());
        serving.await?;

        // The 0.3 example: the same route, its instances shared by up to 16
        // requests at once (the default, as `wasmtime serve`).
        let (addr, stop, serving) = start(p3_server).await?;
        load(&addr, 16, 10).await?;
        println!("GET {PATH}, wasi:http 0.3 (examples/http-p3):");
        let rps = throughput(&addr, 16, samples, "16 connection(s): ").await?;
        println!(
            "  wasi:http 0.3 / 0.2 with 16 connections: {:.2}x the requests per second",
            rps / rates[1]
        );
        let _ = stop.send(());
        serving.await?;
        anyhow::Ok(())
    })
}
