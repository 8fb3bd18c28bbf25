//! componentize-init against wasmtime-wizer 48 on the same linked component
//! (generated bindings + libsnapinterp + libsnaptable + libc) and the same
//! init call: snapshot time, output size, and instantiate + first call of
//! each output against the un-initialized component (which has to run the
//! script at runtime).
//!
//! `cargo bench -p componentize-init` (needs `bash toolchain/build.sh`).
//! `INIT_BENCH_ITERS` sets the iteration count (default 5 for snapshots, 50
//! for instantiation).

#[path = "../tests/common/mod.rs"]
mod common;

use componentize_contract::{INIT_FUNCTION, INIT_INTERFACE};
use componentize_testkit::Host;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// The init script: a table of 3000 entries and a counter. It prints
/// nothing: a wasmtime-wizer snapshot of a component that printed during
/// init traps at its first print at runtime (libc's cached stdout handle).
fn script() -> String {
    let mut s = String::from("count 42\n");
    for i in 0..3000 {
        s.push_str(&format!(
            "set key{i} value number {i} of the benchmark table\n"
        ));
    }
    s
}

fn iters(default: usize) -> usize {
    std::env::var("INIT_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// A host with `wasi` and nothing else.
fn host(wasi: WasiCtx) -> Host {
    Host {
        wasi,
        table: ResourceTable::new(),
        data: (),
    }
}

/// wasmtime-wizer's engine: as its CLI configures it, or with epoch
/// interruption like componentize-init's (which needs it for the timeout,
/// and pays for it in compile time).
fn wizer_engine(epochs: bool) -> Engine {
    let mut config = Config::new();
    config.wasm_component_model(true).wasm_exceptions(true);
    config.epoch_interruption(epochs);
    Engine::new(&config).unwrap()
}

/// One wasmtime-wizer snapshot, with the same closed sandbox (captured
/// stdout/stderr, no env, no preopens); compile included, like ours cold.
fn wizer_snapshot(engine: &Engine, linked: &[u8], call: &str) -> Vec<u8> {
    let mut linker = Linker::<Host>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    let mut wasi = WasiCtx::builder();
    wasi.stdout(MemoryOutputPipe::new(1 << 20))
        .stderr(MemoryOutputPipe::new(1 << 20));
    let mut store = Store::new(engine, host(wasi.build()));
    store.set_epoch_deadline(u64::MAX / 2);
    let mut wizer = wasmtime_wizer::Wizer::new();
    wizer.init_func(call);
    let (wasm, _results) = wasmtime_wasi::runtime::in_tokio(wizer.run_component(
        &mut store,
        linked,
        async |store, component| linker.instantiate_async(store, component).await,
    ))
    .expect("wasmtime-wizer snapshot");
    wasm
}

/// Median time of instantiate (+ init call when `init` is given) + `state()`.
fn first_call(component: &Component, init: Option<&[u8]>, n: usize) -> (Duration, String) {
    let engine = componentize_testkit::engine();
    let mut linker = Linker::<Host>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    let pre = linker.instantiate_pre(component).unwrap();
    let mut times = Vec::new();
    let mut state = String::new();
    for _ in 0..n {
        let t = Instant::now();
        let mut store = Store::new(engine, host(WasiCtx::builder().build()));
        let instance = pre.instantiate(&mut store).unwrap();
        if let Some(source) = init {
            let iface = instance
                .get_export_index(&mut store, None, INIT_INTERFACE)
                .unwrap();
            let f = instance
                .get_export_index(&mut store, Some(&iface), INIT_FUNCTION)
                .unwrap();
            let f = instance
                .get_typed_func::<(&str, &[u8]), (Result<(), String>,)>(&mut store, &f)
                .unwrap();
            f.call(&mut store, ("bench.snap", source))
                .unwrap()
                .0
                .unwrap();
        }
        let f = instance
            .get_typed_func::<(), (String,)>(&mut store, "state")
            .unwrap();
        state = f.call(&mut store, ()).unwrap().0;
        times.push(t.elapsed());
    }
    (median(times), state)
}

fn main() {
    // `cargo test --benches` runs this with `--bench`-less arguments; only
    // measure under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("snapshot benchmark: run with `cargo bench -p componentize-init`");
        return;
    }
    let linked = common::linked();
    let source = script();
    let snapshot_iters = iters(5);
    let call_iters = iters(50);
    println!(
        "linked component: {} bytes; script: {} bytes; {snapshot_iters} snapshot runs, {call_iters} instantiations",
        linked.len(),
        source.len()
    );

    // componentize-init with a fresh runtime (compile included, like a CLI
    // run) interleaved with wasmtime-wizer (same call as a WAVE function
    // call), so that both see the same machine load; then ours with a
    // runtime that has the instrumented component compiled already.
    let bytes: Vec<String> = source.bytes().map(|b| b.to_string()).collect();
    let call = format!(
        "componentize:init/init.init@0.1.0(\"bench.snap\", [{}])",
        bytes.join(", ")
    );
    let engine = wizer_engine(false);
    let engine_epochs = wizer_engine(true);
    let mut cold = Vec::new();
    let mut ours = Vec::new();
    let mut wizer_times = Vec::new();
    let mut wizer_epoch_times = Vec::new();
    let mut wizer = Vec::new();
    let mut wizer_deterministic = true;
    let mut ours_deterministic = true;
    for _ in 0..snapshot_iters {
        let t = Instant::now();
        let snap = componentize_init::Init::new(linked.to_vec())
            .script("bench.snap", source.clone())
            .run()
            .unwrap();
        cold.push(t.elapsed());
        if ours.is_empty() {
            println!("componentize-init, first run: {:?}", snap.stats.timings);
        }
        ours_deterministic &= ours.is_empty() || ours == snap.wasm;
        ours = snap.wasm;
        let t = Instant::now();
        wizer = wizer_snapshot(&engine, linked, &call);
        wizer_times.push(t.elapsed());
        let t = Instant::now();
        let again = wizer_snapshot(&engine_epochs, linked, &call);
        wizer_epoch_times.push(t.elapsed());
        wizer_deterministic &= again == wizer;
    }
    let runtime = componentize_init::Runtime::new().unwrap();
    let mut warm = Vec::new();
    for _ in 0..snapshot_iters + 1 {
        let t = Instant::now();
        componentize_init::Init::new(linked.to_vec())
            .runtime(&runtime)
            .script("bench.snap", source.clone())
            .run()
            .unwrap();
        warm.push(t.elapsed());
    }
    warm.remove(0);
    let wizer_valid = wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&wizer)
        .is_ok();

    let (t_cold, t_warm, t_wizer, t_wizer_epochs) = (
        median(cold),
        median(warm),
        median(wizer_times),
        median(wizer_epoch_times),
    );
    println!("\nsnapshot time (median; compile included unless cached)");
    println!("  componentize-init, fresh runtime        {}", ms(t_cold));
    println!("  componentize-init, cached compile       {}", ms(t_warm));
    println!("  wasmtime-wizer 48                       {}", ms(t_wizer));
    println!(
        "  wasmtime-wizer 48 + epoch interruption  {}",
        ms(t_wizer_epochs)
    );
    println!(
        "  ratio wizer / ours: {:.2} (fresh), {:.2} (same engine config), {:.1} (ours cached)",
        t_wizer.as_secs_f64() / t_cold.as_secs_f64(),
        t_wizer_epochs.as_secs_f64() / t_cold.as_secs_f64(),
        t_wizer.as_secs_f64() / t_warm.as_secs_f64()
    );

    println!("\noutput size");
    println!("  un-initialized      {:>9} bytes", linked.len());
    println!("  componentize-init   {:>9} bytes", ours.len());
    println!(
        "  wasmtime-wizer 48   {:>9} bytes{}",
        wizer.len(),
        if wizer_valid {
            ""
        } else {
            " (does not validate)"
        }
    );
    println!(
        "  ratio ours / wizer: {:.3}",
        ours.len() as f64 / wizer.len() as f64
    );
    println!(
        "  identical bytes on every run: componentize-init {}, wasmtime-wizer {} (with the \
         host's clocks and random, as its embedder sets them up here)",
        if ours_deterministic { "yes" } else { "NO" },
        if wizer_deterministic { "yes" } else { "no" }
    );

    println!("\ninstantiate + first call (median, compile excluded)");
    let plain_c = componentize_testkit::compile(linked).unwrap();
    let ours_c = componentize_testkit::compile(&ours).unwrap();
    let (t_plain, s_plain) = first_call(&plain_c, Some(source.as_bytes()), call_iters);
    let (t_ours, s_ours) = first_call(&ours_c, None, call_iters);
    println!("  un-initialized (+ init call)  {}", ms(t_plain));
    println!("  componentize-init             {}", ms(t_ours));
    let mut t_wiz = None;
    if wizer_valid {
        let wizer_c = componentize_testkit::compile(&wizer).unwrap();
        let (t, s_wizer) = first_call(&wizer_c, None, call_iters);
        println!("  wasmtime-wizer 48             {}", ms(t));
        assert_eq!(s_wizer, s_ours, "the two snapshots disagree");
        t_wiz = Some(t);
    }
    assert_eq!(s_plain, s_ours, "the snapshot differs from init at runtime");
    println!(
        "  speed-up un-initialized / ours: {:.1}x",
        t_plain.as_secs_f64() / t_ours.as_secs_f64()
    );
    if let Some(t) = t_wiz {
        println!(
            "  ratio wizer / ours: {:.2}",
            t.as_secs_f64() / t_ours.as_secs_f64()
        );
    }
    println!("\nstate after init: {s_ours}");
}
