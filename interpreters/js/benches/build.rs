//! Building a JavaScript component: our pipeline (`componentize
//! --interpreter js`) against ComponentizeJS 0.23.0 and componentize-qjs
//! 0.4.5, all measured in this one run (the machines are shared: only
//! ratios from one run mean anything).
//!
//! The input is the hello world in `benches/hello/` (`hello.wit`,
//! `hello.js`), which every tool builds. For each tool:
//!
//! - **cold**: no cache of any kind. Ours: the bundled interpreter through
//!   the `componentize` library with a fresh, empty cache folder (median of
//!   the iterations, a new folder each). A reference: the wall time of a
//!   fresh `node` process running its driver (`componentize-js.mjs`,
//!   `componentize-qjs.mjs`) with `HOME` and `XDG_CACHE_HOME` pointing at
//!   an empty folder (Wizer's Wasmtime keeps its code cache there), a new
//!   folder each time (median; every cold time is printed too). Ours runs
//!   in this process, so its times leave out a process start, which the
//!   references' include (Node's: tens of milliseconds).
//! - **warm**: the same inputs again with that cache in place (median).
//! - **script changed**: warm cache, a comment with a counter appended to
//!   the script (median).
//! - **size** of the output, and whether two builds of the same inputs
//!   (ours: two cold builds; a reference: its first cold and warm builds)
//!   are byte-identical.
//!
//! Then **startup**: instantiate + first call of `hello` in a fresh store,
//! for our snapshot against the same linked component without one, which
//! runs the script through the init export first; and for each reference's
//! output, on the same engine (testkit's) and host (`componentize run`'s:
//! WASI and wasi:http). Each is compiled once.
//!
//! Run it with
//!
//! ```sh
//! cargo bench -p componentize-js --bench build
//! ```
//!
//! (the release profile, as the `componentize` users run is built; `cargo
//! test -p componentize-js --bench build -- --bench` runs it in the test
//! profile, where our own crates are not optimized and our times are about
//! 1.5x longer).
//!
//! It needs Node and network access to the npm registry the first time:
//! it runs `benches/reference.sh`, which installs both references into
//! `target/bench-ref/` (a no-op once they are there). A reference that
//! cannot be installed or run gets its reason in its row. No toolchain
//! build is needed (the interpreter is the bundled one).
//! `JS_BUILD_BENCH_ITERS` sets our iterations (default 5),
//! `JS_BUILD_BENCH_REF_ITERS` the cold, warm and script-changed runs of
//! each reference (default 3; ComponentizeJS takes seconds per build),
//! `JS_BUILD_BENCH_CALLS` the startup samples (default 20).

use anyhow::{Context, Result, bail, ensure};
use componentize::cache::Cache;
use componentize::{Built, BundledInterpreter, Source};
use componentize_contract::{INIT_FUNCTION, INIT_INTERFACE};
use componentize_testkit::bench::{env_count, median, ratio};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use wasmtime::component::{InstancePre, Linker, Val};
use wasmtime_wasi::WasiCtx;

/// What `componentize run` gives an instance: WASI 0.2 and wasi:http.
/// ComponentizeJS's output imports wasi:http even for this world.
type Host = componentize_run::Host;

/// The export the hello world has, its argument and what it returns.
const EXPORT: &str = "hello";
const NAME: &str = "World";
const EXPECTED: &str = "Hello, World!";

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// `benches/hello/`.
fn hello_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/hello")
}

/// A copy of the hello world in `dir`, so the benchmark can edit the script
/// (and the tools' module folder holds nothing else). Returns the WIT and
/// the script, and the script's original text.
fn hello_copy(dir: &Path) -> Result<(PathBuf, PathBuf, String)> {
    std::fs::create_dir_all(dir)?;
    let (wit, js) = (dir.join("hello.wit"), dir.join("hello.js"));
    std::fs::copy(hello_dir().join("hello.wit"), &wit)?;
    let source = std::fs::read_to_string(hello_dir().join("hello.js"))?;
    std::fs::write(&js, &source)?;
    Ok((wit, js, source))
}

/// The script with edit number `n`: a change to its bytes only.
fn edited(source: &str, n: usize) -> String {
    format!("{source}\n// edit {n}\n")
}

/// One tool's figures (see the top of the file).
struct Row {
    cold: Duration,
    /// Every cold build's time, in order: the spread on a shared machine.
    cold_samples: Vec<Duration>,
    warm: Duration,
    script_changed: Duration,
    /// The output of the first build.
    wasm: Vec<u8>,
    /// Whether two builds of the same inputs gave the same bytes.
    identical: bool,
}

/// Our pipeline: the rows' figures, and the first cold build (for the
/// startup part).
fn ours(iters: usize, work: &Path) -> Result<(Row, Built)> {
    let js = BundledInterpreter::find("js").context("no bundled interpreter `js`")?;
    let (wit, script, source) = hello_copy(&work.join("src"))?;
    let build = |cache: &Cache| -> Result<(Duration, Built)> {
        let mut pipeline = js.pipeline(&wit);
        pipeline
            .script(Source::path(&script))
            .cache(Some(cache.clone()));
        let start = Instant::now();
        let built = pipeline.run(&mut |_| {})?;
        Ok((start.elapsed(), built))
    };
    let (mut cold, mut warm, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    let mut first: Option<Built> = None;
    let mut identical = true;
    for i in 0..iters {
        let cache = Cache::at(work.join(format!("cache{i}")));
        std::fs::write(&script, &source)?;
        let (t, built) = build(&cache)?;
        cold.push(t);
        let (t, cached) = build(&cache)?;
        warm.push(t);
        ensure!(
            cached.stages.iter().all(|s| s.cached),
            "the second build was not all from the cache"
        );
        std::fs::write(&script, edited(&source, i))?;
        let (t, rebuilt) = build(&cache)?;
        changed.push(t);
        // Only the script changed: generate and link come from the cache.
        ensure!(
            rebuilt.stages.iter().filter(|s| !s.cached).count() == 1,
            "a script change rebuilt more than init: {:?}",
            rebuilt.stages
        );
        match &first {
            Some(f) => identical &= f.component == built.component,
            None => first = Some(built),
        }
    }
    let first = first.context("no iterations")?;
    let stages: Vec<String> = first
        .stages
        .iter()
        .map(|s| format!("{} {}", s.stage.name(), ms(s.time)))
        .collect();
    println!("our first cold build: {}", stages.join(", "));
    let row = Row {
        cold: median(cold.clone()),
        cold_samples: cold,
        warm: median(warm),
        script_changed: median(changed),
        wasm: first.component.clone(),
        identical,
    };
    Ok((row, first))
}

/// A reference tool run by Node through its driver in `benches/`.
struct Reference {
    /// The name in the table.
    label: &'static str,
    /// The name `reference.sh` installs it under (and prints).
    name: &'static str,
    /// Its driver, in `benches/`.
    driver: &'static str,
    /// The variable that tells the driver where the package is.
    dir_var: &'static str,
}

/// ComponentizeJS first: the goals are against it.
const REFERENCES: [Reference; 2] = [
    Reference {
        label: "ComponentizeJS 0.23.0",
        name: "componentize-js",
        driver: "componentize-js.mjs",
        dir_var: "COMPONENTIZE_JS_DIR",
    },
    Reference {
        label: "componentize-qjs 0.4.5",
        name: "componentize-qjs",
        driver: "componentize-qjs.mjs",
        dir_var: "COMPONENTIZE_QJS_DIR",
    },
];

/// Runs `benches/reference.sh` and returns the folder of each installed
/// reference, by name, from its output lines `NAME VERSION: DIR`.
fn install_references() -> Result<Vec<(String, PathBuf)>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/reference.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .context("running bash")?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let (head, dir) = line.split_once(": ")?;
            let (name, _version) = head.split_once(' ')?;
            Some((name.to_string(), PathBuf::from(dir)))
        })
        .collect())
}

impl Reference {
    /// One build in a fresh `node` process, with `home` as its `HOME` and
    /// cache folder; returns the wall time and the output.
    fn build(
        &self,
        package: &Path,
        home: &Path,
        wit: &Path,
        script: &Path,
        out: &Path,
    ) -> Result<(Duration, Vec<u8>)> {
        let driver = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("benches")
            .join(self.driver);
        let start = Instant::now();
        let o = Command::new("node")
            .arg(&driver)
            .arg(script)
            .arg(wit)
            .arg(out)
            .env(self.dir_var, package)
            .env("HOME", home)
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .output()
            .context("running node")?;
        let elapsed = start.elapsed();
        if !o.status.success() {
            bail!(
                "{} failed ({}): {}",
                self.driver,
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        let wasm = std::fs::read(out).with_context(|| format!("reading {}", out.display()))?;
        Ok((elapsed, wasm))
    }

    /// `iters` cold builds (a fresh `HOME` each), then `iters` warm and
    /// `iters` script-changed builds with the last one's caches.
    fn measure(&self, package: &Path, iters: usize, work: &Path) -> Result<Row> {
        let work = work.join(self.name);
        let (wit, script, source) = hello_copy(&work.join("src"))?;
        let out = work.join("out.wasm");
        let build = |home: &Path| self.build(package, home, &wit, &script, &out);
        let mut cold = Vec::new();
        let mut first = None;
        let mut home = PathBuf::new();
        for i in 0..iters {
            home = work.join(format!("home{i}"));
            std::fs::create_dir_all(&home)?;
            let (t, wasm) = build(&home)?;
            cold.push(t);
            first.get_or_insert(wasm);
        }
        let first = first.context("no iterations")?;
        let mut warm = Vec::new();
        let mut identical = None;
        for _ in 0..iters {
            let (t, wasm) = build(&home)?;
            warm.push(t);
            identical.get_or_insert(wasm == first);
        }
        let mut changed = Vec::new();
        for i in 0..iters {
            std::fs::write(&script, edited(&source, i))?;
            changed.push(build(&home)?.0);
        }
        Ok(Row {
            cold: median(cold.clone()),
            cold_samples: cold,
            warm: median(warm),
            script_changed: median(changed),
            wasm: first,
            identical: identical.context("no warm iterations")?,
        })
    }
}

fn print_row(label: &str, r: &Row) {
    println!(
        "{label:<30}{:>12}{:>12}{:>16}{:>14}  {}",
        ms(r.cold),
        ms(r.warm),
        ms(r.script_changed),
        r.wasm.len(),
        if r.identical { "yes" } else { "no" }
    );
}

fn print_cold_samples(label: &str, r: &Row) {
    let samples: Vec<String> = r.cold_samples.iter().map(|&d| ms(d)).collect();
    println!("cold builds of {label}: {}", samples.join(", "));
}

fn size_ratio(theirs: &Row, ours: &Row) -> f64 {
    theirs.wasm.len() as f64 / ours.wasm.len() as f64
}

/// The reference's figures as multiples of ours.
fn print_ratios(label: &str, theirs: &Row, ours: &Row) {
    println!(
        "{label} / ours: cold x{:.1}, warm x{:.1}, script changed x{:.1}, size x{:.1}",
        ratio(theirs.cold, ours.cold),
        ratio(theirs.warm, ours.warm),
        ratio(theirs.script_changed, ours.script_changed),
        size_ratio(theirs, ours)
    );
}

/// The goals against ComponentizeJS, the main reference: a cold build at
/// least 20 times faster, an output at least 4 times smaller.
fn print_goals(theirs: &Row, ours: &Row) {
    let met = |yes: bool| if yes { "met" } else { "NOT met" };
    let cold = ratio(theirs.cold, ours.cold);
    let size = size_ratio(theirs, ours);
    println!(
        "goals against ComponentizeJS: cold >= x20 {} (x{cold:.1}), size >= x4 {} (x{size:.1})",
        met(cold >= 20.0),
        met(size >= 4.0)
    );
}

/// One cold start: a fresh store, instantiate, the init call with `script`
/// when given, then the first call of `hello`.
fn start(pre: &InstancePre<Host>, script: Option<&[u8]>) -> Result<Duration> {
    let t = Instant::now();
    let mut store = wasmtime::Store::new(
        componentize_testkit::engine(),
        Host::new(WasiCtx::builder().build()),
    );
    let instance = pre.instantiate(&mut store)?;
    if let Some(source) = script {
        let args = [
            Val::String("hello.js".into()),
            Val::List(source.iter().copied().map(Val::U8).collect()),
        ];
        let r = componentize_testkit::call_export(
            &mut store,
            &instance,
            Some(INIT_INTERFACE),
            INIT_FUNCTION,
            &args,
        )?;
        ensure!(r == [Val::Result(Ok(None))], "init failed: {r:?}");
    }
    let r = componentize_testkit::call_export(
        &mut store,
        &instance,
        None,
        EXPORT,
        &[Val::String(NAME.into())],
    )?;
    let elapsed = t.elapsed();
    ensure!(
        r == [Val::String(EXPECTED.into())],
        "{EXPORT}({NAME:?}) returned {r:?}"
    );
    Ok(elapsed)
}

/// Startup of our snapshot, of our linked component initialized at
/// runtime, and of the references' outputs: the median of `calls` samples
/// after one warm-up, each component compiled once beforehand.
fn startup(built: &Built, references: &[(&str, &[u8])], calls: usize) -> Result<()> {
    let script = std::fs::read(hello_dir().join("hello.js"))?;
    // Synchronous, unlike `componentize run`'s: no async runtime in the
    // measured time.
    let mut linker = Linker::<Host>::new(componentize_testkit::engine());
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
    let measure = |wasm: &[u8], script: Option<&[u8]>| -> Result<Duration> {
        let pre = linker.instantiate_pre(&componentize_testkit::compile(wasm)?)?;
        start(&pre, script)?;
        let times = (0..calls)
            .map(|_| start(&pre, script))
            .collect::<Result<Vec<_>>>()?;
        Ok(median(times))
    };
    let snap = measure(&built.component, None)?;
    let init = measure(&built.linked, Some(&script))?;
    println!("\nstartup: instantiate + first call of {EXPORT} (median of {calls})");
    // Sub-millisecond: Duration's own format keeps the digits.
    println!("  {:<36}{snap:>12.2?}", "ours, snapshot");
    println!(
        "  {:<36}{init:>12.2?}  x{:.1} the snapshot",
        "ours, no snapshot (init at runtime)",
        ratio(init, snap)
    );
    for (label, wasm) in references {
        match measure(wasm, None) {
            Ok(t) => println!("  {label:<36}{t:>12.2?}  x{:.1} ours", ratio(t, snap)),
            Err(e) => println!("  {label:<36}failed: {e:#}"),
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    // `cargo test --benches` runs this without `--bench`: only measure when
    // asked to.
    if !std::env::args().any(|a| a == "--bench") {
        println!("JS build benchmark: run with `cargo bench -p componentize-js --bench build`");
        return Ok(());
    }
    let iters = env_count("JS_BUILD_BENCH_ITERS", 5)?;
    let ref_iters = env_count("JS_BUILD_BENCH_REF_ITERS", 3)?;
    let calls = env_count("JS_BUILD_BENCH_CALLS", 20)?;
    // Ours needs two cold builds to compare their bytes.
    ensure!(
        iters >= 2 && ref_iters > 0 && calls > 0,
        "JS_BUILD_BENCH_ITERS must be at least 2, the others at least 1"
    );
    let work = tempfile::tempdir()?;

    let (ours, built) = ours(iters, &work.path().join("ours"))?;
    let installed = install_references();
    let references: Vec<Result<Row>> = REFERENCES
        .iter()
        .map(|r| {
            let installed = installed.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
            let (_, package) = installed
                .iter()
                .find(|(name, _)| name == r.name)
                .with_context(|| format!("reference.sh did not install {}", r.name))?;
            r.measure(package, ref_iters, work.path())
        })
        .collect();

    println!(
        "\nJS hello world (benches/hello): medians of {iters} builds (ours), \
         of {ref_iters} (references)"
    );
    println!(
        "{:<30}{:>12}{:>12}{:>16}{:>14}  identical",
        "tool", "cold", "warm", "script changed", "bytes"
    );
    print_row("componentize --interpreter js", &ours);
    for (r, row) in REFERENCES.iter().zip(&references) {
        match row {
            Ok(row) => print_row(r.label, row),
            // The reason, and on to the next: one reference failing does
            // not make the others' figures wrong.
            Err(e) => println!("{:<30}failed: {e:#}", r.label),
        }
    }
    println!();
    print_cold_samples("componentize --interpreter js", &ours);
    for (r, row) in REFERENCES.iter().zip(&references) {
        if let Ok(row) = row {
            print_cold_samples(r.label, row);
        }
    }
    for (r, row) in REFERENCES.iter().zip(&references) {
        if let Ok(row) = row {
            print_ratios(r.label, row, &ours);
        }
    }
    if let Ok(componentize_js) = &references[0] {
        print_goals(componentize_js, &ours);
    }

    let outputs: Vec<(&str, &[u8])> = REFERENCES
        .iter()
        .zip(&references)
        .filter_map(|(r, row)| Some((r.label, row.as_ref().ok()?.wasm.as_slice())))
        .collect();
    startup(&built, &outputs, calls)
}
