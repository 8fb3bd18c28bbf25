//! Build speed and startup, each figure measured side by side with its
//! reference in this one run (the machines are shared: only ratios from one
//! run mean anything).
//!
//! 1. **Snapshot stage** against wasmtime-wizer 48 on the same linked
//!    component (generated bindings + libsnapinterp + libsnaptable + libc,
//!    no wasm exceptions), cold: time and output size.
//! 2. **The Lua hello pipeline** (interpreters/lua/examples/hello): cold,
//!    fully cached, script changed, and a new world with the same
//!    interpreter, as ratios to cold. With `COMPONENTIZE_PY=<componentize-py>`
//!    set, componentize-py 0.25's hello world too.
//! 3. **A large interpreter**: the same component with the test interpreter
//!    grown by generated C to about 10 MB of code (many functions, no
//!    exceptions), cold snapshot against wasmtime-wizer 48.
//! 4. **Startup of the output**: instantiate + first call of the snapshot
//!    from 1, loaded as `.wasm` through the code cache and as `.cwasm`
//!    (`componentize compile`), against the un-initialized component (which
//!    runs the script at runtime) and wasmtime-wizer's snapshot.
//!
//! `cargo bench -p componentize --bench speed` (needs `bash
//! toolchain/build.sh`; the large interpreter is built once and kept under
//! `target/bench-large/` by content hash). `SPEED_BENCH_ITERS` sets the
//! iterations of 1-3 (default 5), `SPEED_BENCH_CALLS` those of 4 (default 50).

#[path = "../tests/common/mod.rs"]
mod common;

use common::copy_dir;
use componentize::cache::Cache;
use componentize::{Pipeline, Source, Stage};
use componentize_contract::{INIT_FUNCTION, INIT_INTERFACE};
use componentize_testkit::bench::{env_count, median, ratio};
use componentize_testkit::{Host, toolchain_path};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

fn ms(d: Duration) -> String {
    format!("{:>9.1} ms", d.as_secs_f64() * 1e3)
}

/// The init script of 1, 3 and 4: a table of 3000 entries and a counter.
/// It prints nothing: a wasmtime-wizer snapshot of a component that printed
/// during init traps at its first print at runtime (libc's cached stdout
/// handle).
fn snap_script() -> String {
    let mut s = String::from("count 42\n");
    for i in 0..3000 {
        s.push_str(&format!(
            "set key{i} value number {i} of the benchmark table\n"
        ));
    }
    s
}

/// The same init call as WAVE, for wasmtime-wizer's `--init-func`.
fn wave_call(script: &str) -> String {
    let bytes: Vec<String> = script.bytes().map(|b| b.to_string()).collect();
    // wasmtime-wizer spells the version after the function name.
    let (iface, version) = INIT_INTERFACE.split_once('@').unwrap();
    format!(
        "{iface}.{INIT_FUNCTION}@{version}(\"bench.snap\", [{}])",
        bytes.join(", ")
    )
}

/// The snapdemo component linked by the pipeline, with `interpreter`.
fn link_snapdemo(interpreter: &Path) -> Vec<u8> {
    let mut pipeline = Pipeline::new(
        Source::path(interpreter),
        componentize_testkit::repo_file("fixtures/init/snapdemo.wit"),
    );
    pipeline
        .world("snapdemo")
        .library(Source::path(toolchain_path("lib/libsnaptable.so")))
        .script(Source::bytes("bench.snap", "count 1\n"))
        .search_path(toolchain_path(componentize_testkit::SYSROOT_LIB_DIR));
    pipeline.run(&mut |_| {}).expect("linking snapdemo").linked
}

/// A host with `wasi` and nothing else.
fn host(wasi: WasiCtx) -> Host {
    Host {
        wasi,
        table: ResourceTable::new(),
        data: (),
    }
}

/// wasmtime-wizer's engine, as its CLI configures it (Cranelift optimizing).
fn wizer_engine() -> Engine {
    let mut config = Config::new();
    config.wasm_component_model(true).wasm_exceptions(true);
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
    let mut wizer = wasmtime_wizer::Wizer::new();
    wizer.init_func(call);
    let (wasm, _results) = wasmtime_wasi::runtime::in_tokio(wizer.run_component(
        &mut store,
        linked,
        async |store, component| linker.instantiate_async(store, component).await,
    ))
    // Not `expect`: the error repeats the whole call.
    .unwrap_or_else(|e| panic!("wasmtime-wizer snapshot: {}", e.root_cause()));
    wasm
}

/// Cold snapshots of `linked` by componentize-init (a fresh runtime each
/// time, the default compiler choice) and by wasmtime-wizer, interleaved so
/// both see the same machine load. Prints the comparison and returns both
/// outputs.
fn snapshot_stage(title: &str, linked: &[u8], iters: usize) -> (Vec<u8>, Vec<u8>) {
    let script = snap_script();
    let call = wave_call(&script);
    let engine = wizer_engine();
    let (mut ours_t, mut wizer_t, mut cranelift_t) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ours, mut wizer) = (Vec::new(), Vec::new());
    let mut first = None;
    let mut cranelift = componentize_init::Options::default();
    cranelift.compiler = componentize_init::Compiler::Cranelift;
    for _ in 0..iters {
        let t = Instant::now();
        let snap = componentize_init::Init::new(linked.to_vec())
            .script("bench.snap", script.clone())
            .run()
            .unwrap();
        ours_t.push(t.elapsed());
        assert!(
            ours.is_empty() || ours == snap.wasm,
            "ours is not deterministic"
        );
        first.get_or_insert(snap.stats.clone());
        ours = snap.wasm;

        let t = Instant::now();
        let forced = componentize_init::Init::new(linked.to_vec())
            .options(cranelift.clone())
            .script("bench.snap", script.clone())
            .run()
            .unwrap();
        cranelift_t.push(t.elapsed());
        assert_eq!(forced.wasm, ours, "Cranelift and Winch snapshots differ");

        let t = Instant::now();
        wizer = wizer_snapshot(&engine, linked, &call);
        wizer_t.push(t.elapsed());
    }
    let stats = first.unwrap();
    let (o, c, w) = (median(ours_t), median(cranelift_t), median(wizer_t));
    println!(
        "\n{title}: {} bytes in, {} functions; median of {iters}",
        linked.len(),
        count_functions(linked)
    );
    println!(
        "  componentize-init ({})",
        stats.compilation.compiler.name()
    );
    println!("                                 {}", ms(o));
    println!(
        "    of which compile             {}",
        ms(stats.timings.compile)
    );
    println!("  componentize-init, cranelift   {}", ms(c));
    println!("  wasmtime-wizer 48              {}", ms(w));
    println!(
        "  time ours / wizer:  x{:.2} (aim <= 0.5 for 1, <= 0.3 for 3); cranelift / wizer x{:.2}",
        ratio(o, w),
        ratio(c, w)
    );
    println!(
        "  size ours / wizer:  {} / {} bytes = x{:.3}",
        ours.len(),
        wizer.len(),
        ours.len() as f64 / wizer.len() as f64
    );
    println!("  where our time goes (first run): {:?}", stats.timings);
    (ours, wizer)
}

fn count_functions(wasm: &[u8]) -> usize {
    wasmparser::Parser::new(0)
        .parse_all(wasm)
        .filter(|p| matches!(p, Ok(wasmparser::Payload::CodeSectionEntry(_))))
        .count()
}

/// Builds (once, kept by content hash) a large interpreter: the snapdemo
/// test interpreter (fixtures/libs/libsnapinterp) plus `FUNCTIONS`
/// generated distinct functions, about 10 MB of wasm code, and a
/// constructor that calls some of them, so the init run executes their
/// code. Named `libsnapinterp.so`, like the interpreter it extends.
fn large_interpreter() -> PathBuf {
    const FUNCTIONS: usize = 33_000;
    let mut c = String::from("// Generated by benches/speed.rs.\nunsigned big_sink;\n");
    for i in 0..FUNCTIONS {
        // Distinct constants and shapes, so no two functions are the same.
        c.push_str(&format!(
            "unsigned big_f{i}(unsigned x) {{ unsigned a = x * {m}u + {i}u, b = x ^ {k}u;\n\
             for (unsigned j = 0; j < (x & 7u) + {r}u; j++) {{\n\
             switch ((a + j) % 5u) {{ case 0: a += b * {i}u; break; case 1: b ^= a >> {s}; break;\n\
             case 2: a = a * 33u + j; break; case 3: b += a % {d}u; break; default: a ^= b << 3; }}\n\
             }} return a ^ b; }}\n",
            m = 2 * i + 1,
            k = i * 7919,
            r = i % 3 + 1,
            s = i % 13 + 1,
            d = i % 97 + 2,
        ));
    }
    c.push_str("__attribute__((constructor)) static void big_init(void) {\n");
    for i in (0..FUNCTIONS).step_by(97) {
        c.push_str(&format!("  big_sink += big_f{i}(big_sink + {i}u);\n"));
    }
    c.push_str("}\n");
    let interpreter = componentize_testkit::repo_file("fixtures/libs/libsnapinterp/snapinterp.c");
    let mut hasher = std::hash::DefaultHasher::new();
    for part in [
        c.as_bytes(),
        &std::fs::read(&interpreter).unwrap(),
        &std::fs::read(toolchain_path("manifest.txt")).unwrap_or_default(),
    ] {
        std::hash::Hash::hash(part, &mut hasher);
    }
    let dir = componentize_testkit::repo_file("target/bench-large")
        .join(format!("{:016x}", std::hash::Hasher::finish(&hasher)));
    let lib = dir.join("libsnapinterp.so");
    if lib.exists() {
        return lib;
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("big.c"), &c).unwrap();
    let t = Instant::now();
    let tmp = dir.join("building.so");
    // -O0: unoptimized C gives about 10 MB of wasm from these functions.
    let status = std::process::Command::new(toolchain_path("bin/wasi-so"))
        .arg("-o")
        .arg(&tmp)
        .args(["--needs", "libsnaptable", "-O0", "-I"])
        .arg(componentize_testkit::repo_file("fixtures/libs/common"))
        .arg(&interpreter)
        .arg(dir.join("big.c"))
        .status()
        .expect("running the toolchain's wasi-so");
    assert!(status.success(), "building the large interpreter failed");
    std::fs::rename(&tmp, &lib).unwrap();
    println!(
        "(built the large interpreter, {} bytes, in {:.1?})",
        std::fs::metadata(&lib).unwrap().len(),
        t.elapsed()
    );
    lib
}

/// The Lua hello pipeline: cold, cached, script changed, new world.
fn lua_pipeline(iters: usize, work: &Path) -> Duration {
    let binding = componentize_lua::binding().unwrap_or_else(|e| panic!("{e}"));
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interpreters/lua/examples/hello");
    let original = std::fs::read_to_string(example.join("app.lua")).unwrap();
    let wit = std::fs::read_to_string(example.join("app.wit")).unwrap();
    // The same world with one more export, and its own script folder.
    let world = work.join("world");
    copy_dir(&example, &world);
    let script = world.join("app.lua");
    let other = work.join("other");
    copy_dir(&example, &other);
    std::fs::write(
        other.join("app.wit"),
        wit.replacen(
            "world app {",
            "world app {\n  export extra: func() -> u32;",
            1,
        ),
    )
    .unwrap();
    std::fs::write(
        other.join("app.lua"),
        format!("{original}\nfunction extra() return 7 end\n"),
    )
    .unwrap();
    let time = |wit: &Path, script: &Path, cache: &Cache| {
        let mut pipeline = Pipeline::new(Source::path(binding.interpreter().path), wit);
        pipeline
            .script(Source::path(script))
            .search_path(binding.dir().join("sysroot/lib/wasm32-wasip2"))
            .cache(Some(cache.clone()));
        let start = Instant::now();
        let built = pipeline.run(&mut |_| {}).unwrap();
        let stages: Vec<(Stage, Duration)> =
            built.stages.iter().map(|s| (s.stage, s.time)).collect();
        (start.elapsed(), stages)
    };
    /// A scenario's name, total times and, per run, its stage times.
    type Row = (&'static str, Vec<Duration>, Vec<Vec<(Stage, Duration)>>);
    let mut rows: [Row; 4] = [
        ("cold", Vec::new(), Vec::new()),
        ("fully cached", Vec::new(), Vec::new()),
        ("script changed", Vec::new(), Vec::new()),
        ("new world", Vec::new(), Vec::new()),
    ];
    for i in 0..iters {
        let cache = Cache::at(work.join(format!("cache{i}")));
        std::fs::write(&script, &original).unwrap();
        let runs = [
            time(&world, &script, &cache),
            time(&world, &script, &cache),
            {
                std::fs::write(&script, format!("{original}\n-- edit {i}\n")).unwrap();
                time(&world, &script, &cache)
            },
            time(&other, &other.join("app.lua"), &cache),
        ];
        for (row, (t, stages)) in rows.iter_mut().zip(runs) {
            row.1.push(t);
            row.2.push(stages);
        }
    }
    let cold = median(rows[0].1.clone());
    println!("\nLua hello through the pipeline (median of {iters}; ratio to cold)");
    for (name, times, stages) in &rows {
        let t = median(times.clone());
        // The stages of the run whose total is the median.
        let at = times.iter().position(|x| *x == t).unwrap();
        let detail: Vec<String> = stages[at]
            .iter()
            .map(|(s, d)| format!("{} {:.1?}", s.name(), d))
            .collect();
        println!(
            "  {name:<15}{}  x{:.3}   ({})",
            ms(t),
            ratio(t, cold),
            detail.join(", ")
        );
    }
    println!("  aims: new world <= x0.05, script changed <= x0.05");
    cold
}

/// Median time of load (`load`) + instantiate (+ init call when `init`) +
/// `state()`, in a fresh store each time.
fn first_call(
    engine: &Engine,
    load: &dyn Fn() -> Component,
    init: Option<&[u8]>,
    n: usize,
) -> (Duration, String) {
    let mut linker = Linker::<Host>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    let mut times = Vec::new();
    let mut state = String::new();
    for _ in 0..n {
        let t = Instant::now();
        let component = load();
        let mut store = Store::new(engine, host(WasiCtx::builder().build()));
        let instance = linker.instantiate(&mut store, &component).unwrap();
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

/// 4: startup of the snapshot from 1.
fn startup(linked: &[u8], ours: &[u8], wizer: &[u8], work: &Path, n: usize) {
    let script = snap_script();
    let code = std::path::absolute(work.join("code")).unwrap();
    let engine = componentize_run::engine(Some(&code)).unwrap();
    // Fill the code cache, then every load is a cache hit.
    Component::new(&engine, ours).unwrap();
    let cwasm = work.join("ours.cwasm");
    std::fs::write(&cwasm, componentize_run::precompile(&engine, ours).unwrap()).unwrap();
    let plain = Component::new(&engine, linked).unwrap();
    let wizer_c = Component::new(&engine, wizer).unwrap();
    let compiled_ours = Component::new(&engine, ours).unwrap();

    println!("\nstartup: instantiate + first call (median of {n}, fresh store each)");
    let (t_plain, s_plain) = first_call(&engine, &|| plain.clone(), Some(script.as_bytes()), n);
    let (t_ours, s_ours) = first_call(&engine, &|| compiled_ours.clone(), None, n);
    let (t_wizer, s_wizer) = first_call(&engine, &|| wizer_c.clone(), None, n);
    assert_eq!(s_plain, s_ours, "the snapshot differs from init at runtime");
    assert_eq!(s_wizer, s_ours, "the two snapshots disagree");
    println!("  compiled in memory:");
    println!("    un-initialized (+ init call) {}", ms(t_plain));
    println!(
        "    componentize                 {}  (x{:.1} faster)",
        ms(t_ours),
        ratio(t_plain, t_ours)
    );
    println!(
        "    wasmtime-wizer 48            {}  (wizer / ours x{:.2})",
        ms(t_wizer),
        ratio(t_wizer, t_ours)
    );
    let (t_cached, _) = first_call(&engine, &|| Component::new(&engine, ours).unwrap(), None, n);
    let (t_cwasm, _) = first_call(
        &engine,
        &|| componentize_run::load(&engine, &cwasm).unwrap(),
        None,
        n,
    );
    println!("  loaded and started (what `componentize run` does):");
    println!("    .wasm via the code cache     {}", ms(t_cached));
    println!(
        "    .cwasm                       {}  (x{:.1} faster)",
        ms(t_cwasm),
        ratio(t_cached, t_cwasm)
    );
    println!("  state after init: {s_ours}");
}

/// componentize-py's hello world, when `COMPONENTIZE_PY` names it.
fn componentize_py(work: &Path, our_cold: Duration) {
    let Some(py) = std::env::var_os("COMPONENTIZE_PY") else {
        return;
    };
    let dir = work.join("py");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("hello.wit"),
        "package example:hello;\nworld hello { export hello: func(name: string) -> string; }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("app.py"),
        "import wit_world\nclass WitWorld(wit_world.WitWorld):\n    def hello(self, name: str) -> str:\n        return f\"hello, {name}\"\n",
    )
    .unwrap();
    let mut times = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let status = std::process::Command::new(&py)
            .args([
                "-q",
                "-d",
                "hello.wit",
                "-w",
                "hello",
                "componentize",
                "app",
                "-o",
                "app.wasm",
            ])
            .current_dir(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "componentize-py failed");
        times.push(start.elapsed());
    }
    let t = median(times);
    println!(
        "  componentize-py hello (cold, median of 3) {}  = x{:.2} our cold Lua build",
        ms(t),
        ratio(t, our_cold)
    );
}

fn main() {
    // `cargo test --benches` runs this without `--bench`: only measure
    // under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("speed benchmark: run with `cargo bench -p componentize --bench speed`");
        return;
    }
    let iters = env_count("SPEED_BENCH_ITERS", 5).unwrap_or_else(|e| panic!("{e:#}"));
    let calls = env_count("SPEED_BENCH_CALLS", 50).unwrap_or_else(|e| panic!("{e:#}"));
    let work = tempfile::tempdir().unwrap();

    let linked = link_snapdemo(&toolchain_path("lib/libsnapinterp.so"));
    let (ours, wizer) = snapshot_stage("1. snapshot stage, snapdemo", &linked, iters);

    let cold = lua_pipeline(iters, work.path());
    componentize_py(work.path(), cold);

    let large = link_snapdemo(&large_interpreter());
    snapshot_stage("3. snapshot stage, a 10 MB interpreter", &large, iters);

    startup(&linked, &ours, &wizer, work.path(), calls);
}
