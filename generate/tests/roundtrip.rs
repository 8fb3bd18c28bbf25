//! Runtime round trips of WIT values through wasmtime (issue 4).
//!
//! Each test world imports and exports the same interfaces. Its bindings
//! (made by componentize, or by wit-dylib 0.263 for comparison) are linked
//! with `libtestinterp.so` (fixtures/libs/libtestinterp), a generic
//! interpreter that answers every export by calling the matching import with
//! the same arguments and returning its result. The host calls the exports
//! with random values, implements the imports, and checks that every value
//! crosses the boundary unchanged in both directions and that nothing leaks
//! (see `roundtrip/driver.rs`).
//!
//! Worlds: the hand-written ones of fixtures/wit/roundtrip/, and mirror
//! worlds built from wit-smith packages (`roundtrip/mirror.rs`).
//!
//! Needs the fixtures: `bash fixtures/toolchain.sh`.
//!
//! Environment:
//!   COMPONENTIZE_ROUNDTRIP_WORLDS=n   random worlds per generator (default 200)
//!   COMPONENTIZE_ROUNDTRIP_SEED=n     run only the random world of seed n
//!   COMPONENTIZE_ROUNDTRIP_CALLS=n    calls per random world (default 20)

#[path = "roundtrip/component.rs"]
mod component;
#[path = "roundtrip/driver.rs"]
mod driver;
#[path = "roundtrip/mirror.rs"]
mod mirror;
#[path = "roundtrip/values.rs"]
mod values;

#[path = "common/worlds.rs"]
mod smith;

use anyhow::Result;
use component::Generator;
use driver::Driver;
use std::path::Path;
use std::time::{Duration, Instant};
use wasmtime::component::Component;
use wit_parser::{Resolve, WorldId};

fn env_number(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(v.trim().parse().unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

/// Calls every export `per_export` times (every fourth call with 10,000-element
/// lists and long strings when `big`).
fn run_every_export(driver: &mut Driver<'_>, per_export: usize, big: bool) -> Result<()> {
    for e in 0..driver.exports.len() {
        for round in 0..per_export {
            driver.round(e, big && round % 4 == 3)?;
        }
    }
    Ok(())
}

/// `calls` calls, cycling through the exports in a random order.
fn run_random_calls(driver: &mut Driver<'_>, calls: usize) -> Result<()> {
    let n = driver.exports.len();
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = driver.rng.index(i + 1);
        order.swap(i, j);
    }
    for i in 0..calls {
        driver.round(order[i % n], false)?;
    }
    Ok(())
}

fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

fn handwritten(generator: Generator) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/wit/roundtrip");
    let wit = componentize_generate::Wit::load(&dir, &[], false).unwrap();
    let mut names: Vec<String> = wit.resolve.packages[wit.package].worlds.keys().cloned().collect();
    names.sort();
    assert!(names.len() >= 6, "{names:?}");
    let mut failures = Vec::new();
    for name in &names {
        let start = Instant::now();
        let world = wit.world(Some(name)).unwrap();
        let outcome = component::build(&wit.resolve, world, generator).and_then(|c| {
            let built = start.elapsed();
            let mut driver = Driver::new(&wit.resolve, world, &c, seed_of(name))?;
            run_every_export(&mut driver, 12, true)?;
            Ok((built, driver.calls))
        });
        match outcome {
            Ok((built, calls)) => eprintln!(
                "{} {name}: ok, {calls} calls (build {built:.1?}, total {:.1?})",
                generator.name(),
                start.elapsed()
            ),
            Err(e) => failures.push(format!("world {name}: {e:#}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s) with {} bindings:\n\n{}",
        failures.len(),
        generator.name(),
        failures.join("\n\n")
    );
}

#[test]
fn handwritten_worlds_componentize() {
    handwritten(Generator::Componentize);
}

#[test]
fn handwritten_worlds_wit_dylib() {
    handwritten(Generator::WitDylib);
}

/// Runs `calls` random calls; returns (checked calls, handles made).
fn run_world(
    resolve: &Resolve,
    world: WorldId,
    component: &Component,
    seed: u64,
    calls: usize,
) -> Result<(usize, usize)> {
    let mut driver = Driver::new(resolve, world, component, seed)?;
    run_random_calls(&mut driver, calls)?;
    Ok((driver.calls, driver.handles))
}

fn random(generator: Generator) {
    let single = env_number("COMPONENTIZE_ROUNDTRIP_SEED");
    let count = env_number("COMPONENTIZE_ROUNDTRIP_WORLDS").unwrap_or(200) as usize;
    let calls = env_number("COMPONENTIZE_ROUNDTRIP_CALLS").unwrap_or(20) as usize;
    let seeds: Box<dyn Iterator<Item = u64>> = match single {
        Some(s) => Box::new(std::iter::once(s)),
        None => Box::new(0..),
    };
    let start = Instant::now();
    let (mut worlds, mut declined) = (0, 0);
    let mut build_time = Duration::ZERO;
    let (mut checked, mut handles, mut with_handles) = (0, 0, 0);
    let mut failures = Vec::new();
    for seed in seeds {
        if worlds >= count {
            break;
        }
        let mirror = match mirror::mirror_world(seed) {
            Ok(Some(w)) if w.function_count() > 0 => w,
            Ok(_) => {
                declined += 1;
                assert!(single.is_none(), "seed {seed} gives no world with functions");
                continue;
            }
            Err(e) => {
                failures.push(format!("seed {seed}: no world: {e:#}"));
                continue;
            }
        };
        worlds += 1;
        let t = Instant::now();
        let outcome = component::build(&mirror.resolve, mirror.world, generator).and_then(|c| {
            build_time += t.elapsed();
            run_world(&mirror.resolve, mirror.world, &c, seed, calls)
        });
        if let Ok((c, h)) = outcome {
            checked += c;
            handles += h;
            with_handles += usize::from(h > 0);
        }
        if let Err(e) = outcome {
            let wit = if failures.len() < 3 || single.is_some() {
                format!("\n--- WIT of seed {seed} ---\n{}", mirror.wit_text())
            } else {
                String::new()
            };
            eprintln!("{} seed {seed}: FAILED", generator.name());
            failures.push(format!(
                "seed {seed}: {e:#}\nreplay: COMPONENTIZE_ROUNDTRIP_SEED={seed} cargo test -p componentize-generate --test roundtrip random_worlds_{}{wit}",
                generator.name().replace('-', "_")
            ));
        }
    }
    eprintln!(
        "{}: {worlds} random worlds x {calls} calls ({declined} seeds declined) in {:.1?} (building {build_time:.1?}), {} failed; \
         {checked} checked calls, {handles} handles in {with_handles} worlds",
        generator.name(),
        start.elapsed(),
        failures.len()
    );
    let seeds: Vec<&str> = failures.iter().filter_map(|f| f.split(':').next()).collect();
    assert!(
        failures.is_empty(),
        "{} of {worlds} random worlds failed with {} bindings ({}):\n\n{}",
        failures.len(),
        generator.name(),
        seeds.join(", "),
        failures.join("\n\n")
    );
}

#[test]
fn random_worlds_componentize() {
    random(Generator::Componentize);
}

#[test]
fn random_worlds_wit_dylib() {
    random(Generator::WitDylib);
}
