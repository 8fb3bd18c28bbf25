//! Rebuild times of the Lua demo (interpreters/lua/examples/hello) through the
//! pipeline: cold (empty cache), fully cached, and script-changed, as ratios
//! to the cold run. With `COMPONENTIZE_PY=<path to componentize-py>` set, also
//! times componentize-py 0.25 on its hello world in the same run.
//! `cargo bench -p componentize --bench pipeline`.

use componentize::cache::Cache;
use componentize::{Pipeline, Source};
use std::path::Path;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let binding = componentize_lua::Binding::locate().unwrap_or_else(|e| panic!("{e}"));
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interpreters/lua/examples/hello");
    let work = tempfile::tempdir().unwrap();
    let script = work.path().join("app.lua");
    let original = std::fs::read_to_string(example.join("app.lua")).unwrap();
    let pipeline = |cache: &Cache| {
        let mut pipeline = Pipeline::new(Source::path(binding.interpreter().path), &example);
        pipeline
            .script(Source::path(&script))
            .search_path(binding.dir().join("sysroot/lib/wasm32-wasip2"))
            .cache(Some(cache.clone()));
        pipeline
    };
    let time = |cache: &Cache| {
        let start = Instant::now();
        pipeline(cache).run(&mut |_| {}).unwrap();
        start.elapsed()
    };
    let runs = 5;
    let (mut cold, mut cached, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let cache = Cache::at(work.path().join(format!("cache{i}")));
        std::fs::write(&script, &original).unwrap();
        cold.push(time(&cache));
        cached.push(time(&cache));
        std::fs::write(&script, format!("{original}\n-- edit {i}\n")).unwrap();
        changed.push(time(&cache));
    }
    let cold = median(cold);
    println!("Lua demo through the pipeline (median of {runs}; ratio to cold)");
    println!("  cold            {cold:>10.1?}  x1.000");
    for (name, t) in [
        ("fully cached", median(cached)),
        ("script changed", median(changed)),
    ] {
        println!(
            "  {name:<15} {t:>10.1?}  x{:.3}",
            t.as_secs_f64() / cold.as_secs_f64()
        );
    }

    if let Some(py) = std::env::var_os("COMPONENTIZE_PY") {
        // componentize-py's hello world: export hello(name) -> string.
        let dir = work.path().join("py");
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
            "  componentize-py hello (cold, median of 3) {t:>10.1?}  = x{:.2} our cold run",
            t.as_secs_f64() / cold.as_secs_f64()
        );
    }
}
