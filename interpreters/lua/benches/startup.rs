//! Startup of a Lua component: snapshotted by the init stage vs initialized
//! at runtime.
//!
//! The script (tests/lua/bench.lua) does real work at load time: it
//! sieves the primes below 1,000,000 into a table. The export `nth-prime`
//! reads that table. Both variants are compiled once, ahead of time. Each
//! sample is one cold start in a fresh store:
//!   - runtime init: instantiate, call init(script), then nth-prime;
//!   - snapshot:     instantiate, then nth-prime (init ran at build time);
//!     once with wasmtime's default engine, once with `componentize run`'s,
//!     which maps the snapshot's memory copy-on-write (see
//!     `componentize_run::DENSE_IMAGE_LIMIT`).
//!
//! `cargo bench -p componentize-lua` (needs `bash toolchain/build.sh`).
//! `LUA_BENCH_SAMPLES=N` sets the number of samples (default 10).

#[path = "../tests/common/mod.rs"]
mod common;

use anyhow::{Context, Result, bail};
use componentize_contract::{INIT_FUNCTION, INIT_INTERFACE};
use componentize_testkit::HostBuilder;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Instance, InstancePre, Linker, Val};
use wasmtime::{Config, Engine, Store};

type Host = componentize_testkit::Host<()>;

fn wt<T>(r: wasmtime::Result<T>) -> Result<T> {
    r.map_err(anyhow::Error::from)
}

/// Bindings for world `bench`, linked with the Lua binding.
fn link() -> Result<Vec<u8>> {
    common::link_world("bench")
}

fn store(engine: &Engine) -> Store<Host> {
    Store::new(engine, HostBuilder::new().build(()).0)
}

/// The single result of export `name`.
fn call(
    store: &mut Store<Host>,
    instance: &Instance,
    iface: Option<&str>,
    name: &str,
    args: &[Val],
) -> Result<Val> {
    componentize_testkit::call_export(store, instance, iface, name, args)?
        .pop()
        .with_context(|| format!("{name} returned nothing"))
}

/// Runs the script through the init contract, as the init stage would.
fn init(store: &mut Store<Host>, instance: &Instance, source: &[u8]) -> Result<()> {
    let args = [
        Val::String("bench.lua".into()),
        Val::List(source.iter().copied().map(Val::U8).collect()),
    ];
    let r = call(store, instance, Some(INIT_INTERFACE), INIT_FUNCTION, &args)?;
    if r != Val::Result(Ok(None)) {
        bail!("init failed: {r:?}");
    }
    Ok(())
}

const EXPECTED: Val = Val::U32(104729); // the 10,000th prime

/// One cold start; returns its duration.
fn sample(engine: &Engine, pre: &InstancePre<Host>, script: Option<&[u8]>) -> Result<Duration> {
    let t = Instant::now();
    let mut store = store(engine);
    let instance = wt(pre.instantiate(&mut store))?;
    if let Some(source) = script {
        init(&mut store, &instance, source)?;
    }
    let r = call(&mut store, &instance, None, "nth-prime", &[Val::U32(10000)])?;
    let elapsed = t.elapsed();
    if r != Val::Option(Some(Box::new(EXPECTED))) {
        bail!("nth-prime(10000) returned {r:?}");
    }
    Ok(elapsed)
}

fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    let median = samples[samples.len() / 2];
    println!(
        "{name:<14} median {median:>10.2?}  mean {mean:>10.2?}  min {:>10.2?}  max {:>10.2?}  ({} samples)",
        samples[0],
        samples[samples.len() - 1],
        samples.len()
    );
    median
}

fn main() -> Result<()> {
    // `cargo bench` passes --bench; `cargo test --benches` runs one sample.
    let quick = !std::env::args().any(|a| a == "--bench");
    let samples: usize = match std::env::var("LUA_BENCH_SAMPLES") {
        Ok(s) => s.parse().context("LUA_BENCH_SAMPLES")?,
        Err(_) if quick => 1,
        Err(_) => 10,
    };
    let script = common::script("bench.lua").into_bytes();

    let t = Instant::now();
    let linked = link()?;
    println!(
        "link:          {:>10.2?}  component {} bytes",
        t.elapsed(),
        linked.len()
    );

    let t = Instant::now();
    let snapshot = componentize_init::Init::new(linked.clone())
        .script("bench.lua", script.clone())
        .run()?;
    println!(
        "snapshot:      {:>10.2?}  component {} bytes (init call {:.2?}, {} bytes of memory saved)",
        t.elapsed(),
        snapshot.wasm.len(),
        snapshot.stats.timings.init,
        snapshot.stats.data_bytes
    );

    let mut config = Config::new();
    config.wasm_component_model(true);
    config.wasm_exceptions(true);
    let engine = wt(Engine::new(&config))?;
    let mut linker = Linker::<Host>::new(&engine);
    wt(wasmtime_wasi::p2::add_to_linker_sync(&mut linker))?;
    let t = Instant::now();
    let runtime = wt(Component::new(&engine, &linked))?;
    let snapshotted = wt(Component::new(&engine, &snapshot.wasm))?;
    println!("compile both:  {:>10.2?}", t.elapsed());
    let runtime_pre = wt(linker.instantiate_pre(&runtime))?;
    let snapshot_pre = wt(linker.instantiate_pre(&snapshotted))?;

    // One warm-up each (page faults, lazy init in wasmtime).
    sample(&engine, &runtime_pre, Some(&script))?;
    sample(&engine, &snapshot_pre, None)?;
    let runtime_samples = (0..samples)
        .map(|_| sample(&engine, &runtime_pre, Some(&script)))
        .collect::<Result<Vec<_>>>()?;
    let snapshot_samples = (0..samples)
        .map(|_| sample(&engine, &snapshot_pre, None))
        .collect::<Result<Vec<_>>>()?;

    // The snapshot's heap spans more than wasmtime's default 16 MiB of
    // always-dense image, and less than half of its pages hold data, so by
    // default its segments are copied at instantiation instead of being
    // mapped copy-on-write. The engine of `componentize run`/`serve` allows
    // larger dense images (componentize_run::DENSE_IMAGE_LIMIT):
    let dense_engine = componentize_run::engine(None)?;
    let mut dense_linker = Linker::<Host>::new(&dense_engine);
    wt(wasmtime_wasi::p2::add_to_linker_sync(&mut dense_linker))?;
    let dense = wt(Component::new(&dense_engine, &snapshot.wasm))?;
    let dense_pre = wt(dense_linker.instantiate_pre(&dense))?;
    sample(&dense_engine, &dense_pre, None)?;
    let dense_samples = (0..samples)
        .map(|_| sample(&dense_engine, &dense_pre, None))
        .collect::<Result<Vec<_>>>()?;

    println!("instantiate + first call of nth-prime(10000):");
    let a = report("runtime init", runtime_samples);
    let b = report("snapshot", snapshot_samples);
    let c = report("snapshot, CoW", dense_samples);
    println!(
        "speed-up (median): {:.0}x; with a copy-on-write image {:.0}x",
        a.as_secs_f64() / b.as_secs_f64(),
        a.as_secs_f64() / c.as_secs_f64()
    );

    // Per-call cost of a small export on one running instance (the same
    // for both: after startup they hold the same state).
    let calls = if quick { 100 } else { 100_000 };
    for (name, pre) in [("runtime init", &runtime_pre), ("snapshot", &snapshot_pre)] {
        let mut store = store(&engine);
        let instance = wt(pre.instantiate(&mut store))?;
        if name == "runtime init" {
            init(&mut store, &instance, &script)?;
        }
        let t = Instant::now();
        for _ in 0..calls {
            call(&mut store, &instance, None, "nth-prime", &[Val::U32(10)])?;
        }
        println!(
            "per call of nth-prime(10), {name:<12}: {:>8.2?} ({calls} calls)",
            t.elapsed() / calls
        );
    }
    Ok(())
}
