//! Generation time and output size, ours against wit-dylib 0.263 in the same
//! run: a small world, the WASI 0.2 command world, and a large world built by
//! merging many wit-smith packages. `cargo bench -p componentize-generate`.

#[path = "../tests/common/reference.rs"]
mod reference;
#[path = "../tests/common/worlds.rs"]
mod worlds;

use componentize_generate::{Options, Wit, WitOptions, generate};
use std::time::{Duration, Instant};
use wit_parser::{Resolve, WorldId};

fn time(mut f: impl FnMut() -> usize) -> (Duration, usize) {
    // Warm up, then take the median of enough runs to last ~1 s.
    let size = f();
    let start = Instant::now();
    f();
    let once = start.elapsed().max(Duration::from_micros(1));
    let runs = (Duration::from_secs(1).as_nanos() / once.as_nanos()).clamp(5, 2000) as usize;
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    samples.sort();
    (samples[runs / 2], size)
}

fn bench(name: &str, resolve: &Resolve, world: WorldId) {
    let mut opts = Options::default();
    opts.interpreter("libinterp.so");
    let (ours_t, ours_n) = time(|| generate(resolve, world, &opts).unwrap().wasm().len());
    // Same deliverable as ours: with the component-type section.
    let (theirs_t, theirs_n) = time(|| {
        reference::wit_dylib_bindings(resolve, world, "libinterp.so")
            .unwrap()
            .len()
    });
    println!(
        "{name:<28} time {:>9.1?} vs {:>9.1?} (x{:.2})   size {:>8} vs {:>8} B (x{:.2})",
        ours_t,
        theirs_t,
        ours_t.as_secs_f64() / theirs_t.as_secs_f64(),
        ours_n,
        theirs_n,
        ours_n as f64 / theirs_n as f64
    );
}

fn main() {
    println!(
        "componentize generate vs wit-dylib 0.263 (median; ratio = ours / wit-dylib, lower is better)"
    );
    let dir = componentize_testkit::repo_file("fixtures/wit");
    for (file, world) in [
        ("scalars.wit", "scalars"),
        ("compound.wit", "compound"),
        ("wasi-command", "command"),
    ] {
        let wit = Wit::load(&dir.join(file), &WitOptions::default()).unwrap();
        bench(
            &format!("{file} ({world})"),
            &wit.resolve,
            wit.world(Some(world)).unwrap(),
        );
    }
    // The largest of the first 300 random worlds, by function count.
    let (seed, resolve, world) = (0..400)
        .filter_map(|seed| {
            worlds::random_world(seed)
                .unwrap()
                .map(|(r, w)| (seed, r, w))
        })
        .max_by_key(|(_, r, w)| worlds::world_function_count(r, *w))
        .unwrap();
    let n = worlds::world_function_count(&resolve, world);
    bench(&format!("wit-smith seed {seed} ({n} fns)"), &resolve, world);
}
