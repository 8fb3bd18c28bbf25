//! Runtime round trips of WIT values through wasmtime (issue 4).
//!
//! Each test world imports and exports the same interfaces. Its bindings are
//! linked with `libtestinterp.so` (fixtures/libs/libtestinterp), a generic
//! interpreter that answers every export by calling the matching import with
//! the same arguments and returning its result. The host calls the exports
//! with random values, implements the imports, and checks that every value
//! crosses the boundary unchanged in both directions and that nothing leaks
//! (see `roundtrip/driver.rs`).
//!
//! Every world is built twice, with componentize's bindings and with
//! wit-dylib 0.263's, and both run the same calls with the same values in
//! lockstep: each must pass on its own, and after every call the
//! interpreter's traces of the two (every push, pop, allocation and drop, in
//! order, with type indices and values) must be identical.
//!
//! Worlds: the hand-written ones of fixtures/wit/roundtrip/, and mirror
//! worlds built from wit-smith packages (`roundtrip/mirror.rs`), without and
//! with wit-smith's async functions, futures and streams. Async worlds link
//! the async build of the interpreter (libasyncinterp), and their handle-free
//! exports also run concurrently (see `roundtrip/driver.rs`).
//!
//! Needs the toolchain build: `bash toolchain/build.sh`.
//!
//! Environment:
//!   COMPONENTIZE_ROUNDTRIP_WORLDS=n   random worlds (default 200)
//!   COMPONENTIZE_ROUNDTRIP_SEED=n     run only the random world of seed n
//!   COMPONENTIZE_ROUNDTRIP_CALLS=n    calls per random world (default 20)
//!   COMPONENTIZE_ASYNC_WORLDS=n       random async worlds (default 100)
//!   COMPONENTIZE_ASYNC_SEED=n         run only the random async world of seed n

#[path = "roundtrip/component.rs"]
mod component;
#[path = "roundtrip/driver.rs"]
mod driver;
#[path = "roundtrip/mirror.rs"]
mod mirror;
#[path = "roundtrip/pair.rs"]
mod pair;
#[path = "roundtrip/transmit.rs"]
mod transmit;
#[path = "roundtrip/values.rs"]
mod values;

#[path = "common/reference.rs"]
mod reference;
#[path = "common/worlds.rs"]
mod smith;

use pair::{Outcome, run_pair};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use values::Rng;

fn env_number(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
    )
}

fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Every hand-written world: each export called 12 times, every fourth call
/// with 10,000-element lists of scalars and strings and long strings.
#[test]
fn handwritten_worlds() {
    let dir = componentize_testkit::repo_file("fixtures/wit/roundtrip");
    let wit = componentize_generate::Wit::load(&dir, &Default::default()).unwrap();
    let names = wit.world_names();
    assert!(names.len() >= 6, "{names:?}");
    let every_export = |_: &mut Rng, n: usize| -> Vec<(usize, bool)> {
        (0..n)
            .flat_map(|e| (0..12).map(move |round| (e, round % 4 == 3)))
            .collect()
    };
    let mut failures = Vec::new();
    for &name in &names {
        let start = Instant::now();
        let world = wit.world(Some(name)).unwrap();
        match run_pair(&wit.resolve, world, seed_of(name), &every_export) {
            Outcome::Passed(s) => eprintln!(
                "{name}: ok, {} calls x 2 generators (build {:.1?}, total {:.1?})",
                s.calls,
                s.build,
                start.elapsed()
            ),
            Outcome::Failed(e) | Outcome::Unlinkable(e) => {
                eprintln!("{name}: FAILED");
                failures.push(format!("world {name}: {e}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Mirror worlds of wit-smith packages (fixed seeds from 0): 20 calls each,
/// cycling through the exports in a random order.
#[test]
fn random_worlds() {
    random_mirror_worlds(&Random {
        package: smith::random_package,
        worlds: "COMPONENTIZE_ROUNDTRIP_WORLDS",
        default_worlds: 200,
        seed: "COMPONENTIZE_ROUNDTRIP_SEED",
        test: "random_worlds",
        concurrent: false,
    });
}

/// Mirror worlds of wit-smith packages with async functions, futures and
/// streams (fixed seeds from 0): 20 sequential calls each as above, then
/// three concurrent rounds with every handle-free export in flight at once,
/// its import answering after a few executor turns (out of order); and the
/// same calls with wit-dylib's bindings driving the interpreter alike.
#[test]
fn random_async_worlds() {
    random_mirror_worlds(&Random {
        package: smith::random_async_package,
        worlds: "COMPONENTIZE_ASYNC_WORLDS",
        default_worlds: 100,
        seed: "COMPONENTIZE_ASYNC_SEED",
        test: "random_async_worlds",
        concurrent: true,
    });
}

/// The wit-smith packages of a seed and the main one, or `None` if the
/// seed is declined.
type PackagesOf = fn(u64) -> anyhow::Result<Option<(wit_parser::Resolve, wit_parser::PackageId)>>;

/// Where a random suite's worlds come from and how it is scaled.
struct Random {
    package: PackagesOf,
    /// The variables giving the number of worlds and a single seed.
    worlds: &'static str,
    default_worlds: u64,
    seed: &'static str,
    /// The test's name, for the replay line.
    test: &'static str,
    /// Whether the worlds are async, so that concurrent rounds must have
    /// had calls overlap.
    concurrent: bool,
}

fn random_mirror_worlds(random: &Random) {
    let single = env_number(random.seed);
    let count = env_number(random.worlds).unwrap_or(random.default_worlds) as usize;
    let calls = env_number("COMPONENTIZE_ROUNDTRIP_CALLS").unwrap_or(20) as usize;
    let start = Instant::now();

    // The worlds first (cheap), then the builds and runs on every core.
    let mut worlds = Vec::new();
    let mut declined = 0;
    let seeds: Box<dyn Iterator<Item = u64>> = match single {
        Some(s) => Box::new(std::iter::once(s)),
        None => Box::new(0..),
    };
    for seed in seeds {
        if worlds.len() >= count {
            break;
        }
        let world = (random.package)(seed)
            .and_then(|p| p.map_or(Ok(None), |(resolve, _)| mirror::mirror_of(resolve)));
        match world {
            Ok(Some(w)) if w.function_count() > 0 => worlds.push((seed, w)),
            Ok(_) => {
                declined += 1;
                assert!(
                    single.is_none(),
                    "seed {seed} gives no world with functions"
                );
            }
            Err(e) => panic!("seed {seed}: making the world: {e:#}"),
        }
    }

    let schedule = pair::shuffled(calls);
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((seed, w)) = worlds.get(i) else {
                        break;
                    };
                    let outcome = run_pair(&w.resolve, w.world, *seed, &schedule);
                    if let Outcome::Failed(_) = outcome {
                        eprintln!("seed {seed}: FAILED");
                    }
                    results.lock().unwrap().push((*seed, outcome));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(seed, _)| *seed);

    let (mut calls_made, mut handles, mut with_handles, mut build) = (0, 0, 0, Duration::ZERO);
    let (mut skipped, mut concurrent, mut most_in_flight, mut alone) = (0, 0, 0, 0);
    let (mut transmits, mut cancelled_imports, mut cancelled_copies) = (0, 0, 0);
    let (mut compound_transmits, mut nested_transmits) = (0, 0);
    let mut peer_transmits = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    let mut unlinkable = Vec::new();
    for (seed, outcome) in &results {
        match outcome {
            Outcome::Passed(s) => {
                calls_made += s.calls;
                handles += s.handles;
                with_handles += usize::from(s.handles > 0);
                build += s.build;
                skipped += s.skipped;
                transmits += s.transmits;
                compound_transmits += s.compound_transmits;
                nested_transmits += s.nested_transmits;
                pair::add_counts(&mut peer_transmits, &s.peer_transmits);
                cancelled_imports += s.cancelled_imports;
                cancelled_copies += s.cancelled_copies;
                concurrent += s.concurrent_calls;
                most_in_flight = most_in_flight.max(s.most_in_flight);
                alone += usize::from(s.alone);
            }
            Outcome::Unlinkable(e) => {
                eprintln!("seed {seed}: skipped, neither component links: {e}");
                unlinkable.push(*seed);
            }
            Outcome::Failed(e) => {
                let world = worlds
                    .iter()
                    .find(|(s, _)| s == seed)
                    .map(|(_, w)| w)
                    .unwrap();
                let wit = if failures.len() < 3 || single.is_some() {
                    format!("\n--- WIT of seed {seed} ---\n{}", world.wit_text())
                } else {
                    String::new()
                };
                failures.push(format!(
                    "seed {seed}: {e}\nreplay: {}={seed} cargo test -p componentize-generate --test roundtrip {}{wit}",
                    random.seed, random.test
                ));
            }
        }
    }
    eprintln!(
        "{} random worlds ({declined} seeds declined, {} unlinkable: {unlinkable:?}) x 2 generators in {:.1?} \
         on {threads} threads (building {build:.1?}); {calls_made} checked calls per generator \
         ({concurrent} in concurrent rounds, up to {most_in_flight} imports waiting at once), \
         {handles} handles in {with_handles} worlds, {transmits} futures and streams written \
         and read back ({compound_transmits} of a list or option payload, {nested_transmits} of futures or streams; through the peers, of other compound payloads: {}); cancelled by the interpreter: {cancelled_imports} async import calls \
         (made again), {cancelled_copies} reads and writes of its copies and the peers' (at least); {skipped} exports left out (see roundtrip/driver.rs); {alone} worlds ran with our \
         bindings alone (wit-dylib panics on a future or stream type no function holds); \
         {} failed",
        results.len(),
        unlinkable.len(),
        start.elapsed(),
        pair::show_counts(&peer_transmits),
        failures.len()
    );
    let seeds: Vec<String> = failures
        .iter()
        .filter_map(|f| f.split(':').next().map(str::to_string))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} random worlds failed ({}):\n\n{}",
        failures.len(),
        results.len(),
        seeds.join(", "),
        failures.join("\n\n")
    );
    // One seed replayed may have nothing to run concurrently.
    if random.concurrent && single.is_none() {
        assert!(
            concurrent > 0 && most_in_flight >= 2,
            "the concurrent rounds did not overlap: {concurrent} calls, at most {most_in_flight} \
             import waiting at a time"
        );
    }
    // Only async worlds cancel and have peers, and only a run of several
    // worlds surely has something to cancel and compound payloads.
    if random.concurrent && single.is_none() && results.len() >= 20 {
        assert!(
            cancelled_imports > 0 && cancelled_copies > 0,
            "nothing was cancelled: {cancelled_imports} async import calls, \
             {cancelled_copies} reads and writes"
        );
        assert!(
            !peer_transmits.is_empty(),
            "no future or stream of a compound payload went through the peers"
        );
    }
}
