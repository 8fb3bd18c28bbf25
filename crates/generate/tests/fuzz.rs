//! Fuzz targets of the generate stage (issue 17), on the stable-Rust driver
//! of `componentize_testkit::fuzz`: each seed is one input, a failure prints
//! its seed and the command that replays it.
//!
//! - `generate`: wit-smith packages with every feature wit-smith offers
//!   (async functions, futures, streams, `error-context`, fixed-length
//!   lists, resources, `implements`; lists turned into maps by
//!   `add_maps`). Every world of the packages, and a world
//!   synthesized from all their interfaces, goes through
//!   `componentize_generate::generate`: it never panics; it returns a
//!   module that validates and that `wit_component::Linker` links with the
//!   test interpreter (`libtestinterp.so`) and libc, or an error naming the
//!   construct it cannot carry, one the world really has. Async functions,
//!   futures and streams are bound (and linked: wit-component accepts
//!   their built-ins).
//! - `roundtrip`: mirror worlds of wit-smith packages (the synchronous
//!   subset or, for half the inputs, with async functions, futures and
//!   streams; with maps) built with both generators and called with random
//!   values through the test interpreter, in lockstep, exactly as the
//!   round-trip suite (tests/roundtrip.rs) does, concurrently too in async
//!   worlds.
//!
//! Needs the toolchain build: `bash toolchain/build.sh`.
//!
//! CI runs each target on its first seeds. To run longer, or other seeds:
//!
//! ```sh
//! COMPONENTIZE_FUZZ_SECONDS=600 cargo test -p componentize-generate --test fuzz -- --nocapture
//! COMPONENTIZE_FUZZ_FIRST_SEED=100000 COMPONENTIZE_FUZZ_SECONDS=600 cargo test -p componentize-generate --test fuzz generate
//! COMPONENTIZE_FUZZ_SEED=17 cargo test -p componentize-generate --test fuzz roundtrip
//! ```

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

use arbitrary::Unstructured;
use componentize_generate::{Options, generate};
use componentize_testkit::fuzz::Target;
use pair::Outcome;
use std::time::Duration;
use wit_parser::{Function, Resolve, Type, TypeDefKind, WorldId, WorldItem};

/// The words of generate's refusals: each names one of these.
const UNSUPPORTED: [&str; 3] = [
    "`error-context`",
    "fixed-length list",
    "`map` whose values hold a handle",
];

/// Whether `ty` is or holds an `error-context`, a fixed-length list, or a
/// map whose values hold a handle.
fn has_unsupported_type(resolve: &Resolve, ty: &Type) -> bool {
    smith::parts(resolve, ty).iter().any(|t| match t {
        Type::ErrorContext => true,
        Type::Id(id) => match &resolve.types[*id].kind {
            TypeDefKind::FixedLengthList(..) => true,
            TypeDefKind::Map(_, value) => smith::holds_handle(resolve, value),
            _ => false,
        },
        _ => false,
    })
}

/// Whether `world` holds what generate cannot carry (a type
/// [`has_unsupported_type`]), looking at the functions and types of every
/// item.
fn has_unsupported_parts(resolve: &Resolve, world: WorldId) -> bool {
    let w = &resolve.worlds[world];
    let mut funcs: Vec<&Function> = Vec::new();
    let mut types: Vec<Type> = Vec::new();
    for item in w.imports.values().chain(w.exports.values()) {
        match item {
            WorldItem::Function(f) => funcs.push(f),
            WorldItem::Interface { id, .. } => {
                let iface = &resolve.interfaces[*id];
                funcs.extend(iface.functions.values());
                types.extend(iface.types.values().map(|t| Type::Id(*t)));
            }
            WorldItem::Type { id, .. } => types.push(Type::Id(*id)),
        }
    }
    for f in &funcs {
        types.extend(f.params.iter().map(|p| p.ty).chain(f.result));
    }
    types.iter().any(|t| has_unsupported_type(resolve, t))
}

/// What the generate target saw, for the closing figures.
#[derive(Debug, Default)]
struct Worlds {
    generated: u64,
    linked: u64,
    refused: u64,
}

/// Generates the bindings of `world` and checks the outcome (see the file
/// header); links them too when `link` is set.
fn check_world(resolve: &Resolve, world: WorldId, link: bool, tally: &mut Worlds) {
    let name = &resolve.worlds[world].name;
    // The WIT, for the failure messages.
    let wit = || {
        let package = resolve.worlds[world].package.unwrap();
        smith::wit_text(resolve, package).unwrap_or_else(|e| format!("(cannot print: {e:#})"))
    };
    let unsupported = has_unsupported_parts(resolve, world);
    let mut options = Options::default();
    options.interpreter(component::INTERPRETER);
    match generate(resolve, world, &options) {
        Ok(bindings) => {
            if let Err(e) =
                wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
                    .validate_all(bindings.wasm())
            {
                panic!(
                    "world `{name}`: the bindings do not validate: {e}\n{}",
                    wit()
                );
            }
            tally.generated += 1;
            if link {
                if let Err(e) = component::link_with(bindings.wasm(), component::SYNC_BUILD) {
                    panic!(
                        "world `{name}`: wit-component does not link the bindings: {e:#}\n{}",
                        wit()
                    );
                }
                tally.linked += 1;
            }
        }
        Err(e) => {
            let msg = format!("{e:#}");
            assert!(
                unsupported,
                "world `{name}` uses nothing generate refuses, yet: {msg}\n{}",
                wit()
            );
            assert!(
                UNSUPPORTED.iter().any(|word| msg.contains(word)),
                "world `{name}`: the refusal names no unsupported construct: {msg}\n{}",
                wit()
            );
            tally.refused += 1;
        }
    }
}

#[test]
fn generate_fuzz() {
    let mut tally = Worlds::default();
    Target::new(
        "generate",
        "cargo test -p componentize-generate --test fuzz generate_fuzz",
    )
    .iterations(500)
    .budget(Duration::from_secs(20))
    .run(|u| {
        let bytes = smith::biased_bytes(u)?;
        let mut u = Unstructured::new(&bytes);
        let config = smith::all_features_config(&mut u)?;
        let wasm = wit_smith::smith(&config, &mut u)?;
        let (mut resolve, _) = smith::decode_package(&wasm).expect("wit-smith's output decodes");
        smith::add_maps(&mut resolve, &mut u, true)?;
        let synthesized = smith::synthesized_world(&resolve, u.arbitrary()?);
        for (world, _) in resolve.worlds.iter() {
            check_world(&resolve, world, false, &mut tally);
        }
        if let Some((resolve, world)) = synthesized {
            check_world(&resolve, world, true, &mut tally);
        }
        Ok(())
    });
    eprintln!("generate: {tally:?}");
}

#[test]
fn roundtrip_fuzz() {
    let (mut calls_made, mut handles, mut build) = (0, 0, Duration::ZERO);
    let (mut concurrent, mut most_in_flight, mut skipped, mut alone) = (0, 0, 0, 0);
    let (mut transmits, mut compound, mut cancelled) = (0, 0, 0);
    let mut peer = std::collections::BTreeMap::new();
    Target::new(
        "roundtrip",
        "cargo test -p componentize-generate --test fuzz roundtrip_fuzz",
    )
    .iterations(8)
    .budget(Duration::from_secs(60))
    .run(|u| {
        let bytes = smith::biased_bytes(u)?;
        let mut u = Unstructured::new(&bytes);
        let config = if u.arbitrary()? {
            smith::async_config(&mut u)?
        } else {
            smith::smith_config(&mut u)?
        };
        let wasm = wit_smith::smith(&config, &mut u)?;
        let (mut resolve, _) = smith::decode_package(&wasm).expect("wit-smith's output decodes");
        // Both generators must build the world: no maps the component
        // model refuses.
        smith::add_maps(&mut resolve, &mut u, false)?;
        let seed = u.arbitrary()?;
        let calls = u.int_in_range(1..=20)?;
        let world = mirror::mirror_of(resolve)
            .expect("the mirror world resolves")
            .filter(|w| w.function_count() > 0)
            .ok_or(arbitrary::Error::IncorrectFormat)?;
        match pair::run_pair(&world.resolve, world.world, seed, &pair::shuffled(calls)) {
            Outcome::Passed(stats) => {
                calls_made += stats.calls;
                handles += stats.handles;
                build += stats.build;
                concurrent += stats.concurrent_calls;
                most_in_flight = most_in_flight.max(stats.most_in_flight);
                skipped += stats.skipped;
                transmits += stats.transmits;
                compound += stats.compound_transmits + stats.nested_transmits;
                pair::add_counts(&mut peer, &stats.peer_transmits);
                cancelled += stats.cancelled_imports + stats.cancelled_copies;
                alone += usize::from(stats.alone);
                Ok(())
            }
            // Not the bindings' fault: the suite skips these too.
            Outcome::Unlinkable(e) => {
                eprintln!("neither component links: {e}");
                Err(arbitrary::Error::IncorrectFormat)
            }
            Outcome::Failed(e) => panic!("{e}\n--- WIT ---\n{}", world.wit_text()),
        }
    });
    eprintln!(
        "roundtrip: {calls_made} checked calls per generator ({concurrent} concurrent, up to \
         {most_in_flight} imports waiting at once), {handles} handles, {transmits} futures and streams ({compound} of a list, option, future or stream; through the peers: {}), {cancelled} cancels, building {build:.1?}; \
         {skipped} exports left out, {alone} worlds with our bindings alone",
        pair::show_counts(&peer)
    );
}

/// Found by `generate_fuzz` (seed 48: a `map<bool, error-context>` in an
/// interface type no function uses): the bindings of a map of handles did
/// not link (wit-component: "map value type cannot contain a handle").
#[test]
fn a_map_of_handles_is_refused() {
    let wit = "package a:b;
        interface store { resource thing; get: func() -> map<string, list<thing>>; }
        interface keyed { resource key; type by-name = map<string, option<key>>; }
        interface errors { type by-code = map<u32, error-context>; }
        world uses-store { import store; }
        world uses-keyed { export keyed; }
        world uses-errors { import errors; }";
    let mut resolve = Resolve::default();
    let pkg = resolve.push_str("maps.wit", wit).unwrap();
    for (world, expected) in [
        (
            "uses-store",
            "imported function `get` in interface `a:b/store` uses a `map` whose values hold a handle (of a resource, future, stream or `error-context`), which the component model forbids",
        ),
        (
            "uses-errors",
            "imported interface `a:b/errors` defines type `by-code` using a `map` whose values hold a handle",
        ),
        (
            "uses-keyed",
            "exported interface `a:b/keyed` defines type `by-name` using a `map` whose values hold a handle",
        ),
    ] {
        let id = resolve.select_world(&[pkg], Some(world)).unwrap();
        let err = generate(&resolve, id, &Options::default()).unwrap_err();
        assert!(format!("{err:#}").contains(expected), "{world}: {err:#}");
    }
}
