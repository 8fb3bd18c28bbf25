//! Differential test against wit-dylib 0.263: for the corpus and for random
//! worlds, the decoded `wit_t` metadata of both generators is equal, the
//! modules import the same names with the same core types, and export the
//! same functions.
//!
//! Deliberate differences, excluded from the comparison:
//! - `__wasm_apply_data_relocs` is always exported by us (wit-dylib omits it
//!   when there is nothing to relocate); its body is a loop over a bitmap,
//!   which the decoder handles by running it.
//! - `dylink.0` mem-info sizes differ: our segment also holds the relocation
//!   bitmaps and reserves the static return area of exports.

mod common;

use common::decode::{self, Module};
use componentize_generate::{Options, StackPointer, Wit, WitOptions, generate};
use componentize_testkit::bench::env_count;
use std::collections::BTreeSet;
use wit_parser::{Resolve, WorldId, WorldItem};

/// The generate options under test, given to both generators.
#[derive(Clone, Default)]
struct Config {
    async_: Vec<&'static str>,
    task_context: bool,
}

impl Config {
    fn async_(directives: &[&'static str]) -> Config {
        Config {
            async_: directives.to_vec(),
            task_context: false,
        }
    }
}

fn ours(resolve: &Resolve, world: WorldId, config: &Config) -> Vec<u8> {
    let mut opts = Options::default();
    opts.interpreter("libinterp.so");
    for d in &config.async_ {
        opts.async_directive(d).unwrap();
    }
    if config.task_context {
        opts.stack_pointer(StackPointer::TaskContext);
    }
    generate(resolve, world, &opts).unwrap().into_wasm()
}

fn theirs(resolve: &Resolve, world: WorldId, config: &Config) -> Vec<u8> {
    let mut async_ = wit_dylib::AsyncFilterSet::default();
    for d in &config.async_ {
        async_.push(d);
    }
    let mut opts = wit_dylib::DylibOpts {
        interpreter: Some("libinterp.so".into()),
        async_,
        stack_pointer: match config.task_context {
            true => wit_dylib::StackPointer::TaskContext,
            false => wit_dylib::StackPointer::Global,
        },
    };
    wit_dylib::create(resolve, world, Some(&mut opts)).unwrap()
}

fn exports(m: &Module) -> BTreeSet<String> {
    m.export_set()
        .into_iter()
        .map(|(name, ..)| name)
        .filter(|n| n != "__wasm_apply_data_relocs")
        .collect()
}

fn compare(what: &str, resolve: &Resolve, world: WorldId, config: &Config) {
    let a = decode::decode_checked(&ours(resolve, world, config))
        .unwrap_or_else(|e| panic!("{what}: decoding our output: {e:?}"));
    let b = decode::decode_checked(&theirs(resolve, world, config))
        .unwrap_or_else(|e| panic!("{what}: decoding wit-dylib's output: {e:?}"));
    assert_eq!(a.metadata, b.metadata, "{what}: metadata differs");
    assert_eq!(a.import_set(), b.import_set(), "{what}: imports differ");
    assert_eq!(exports(&a), exports(&b), "{what}: exports differ");
    assert_eq!(a.needed, b.needed, "{what}: dylink.0 needed differs");
}

/// Every (file, world) of the corpus that both generators accept.
fn corpus() -> Vec<(String, Resolve, WorldId)> {
    let dir = componentize_testkit::repo_file("fixtures/wit");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_stem()
            .is_some_and(|s| s == "unsupported" || s == "roundtrip")
        {
            continue;
        }
        let wit = Wit::load(&path, &WitOptions::default()).unwrap();
        for name in wit.world_names() {
            let world = wit.world(Some(name)).unwrap();
            let what = format!("{}#{name}", path.display());
            out.push((what, wit.resolve.clone(), world));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 12, "corpus has {} worlds", out.len());
    out
}

#[test]
fn corpus_matches_wit_dylib() {
    for (what, resolve, world) in corpus() {
        compare(&what, &resolve, world, &Config::default());
    }
}

/// Whether every function of the world is an `async func`.
fn all_async(resolve: &Resolve, world: WorldId) -> bool {
    let w = &resolve.worlds[world];
    w.imports
        .values()
        .chain(w.exports.values())
        .all(|item| match item {
            WorldItem::Function(f) => f.kind.is_async(),
            WorldItem::Interface { id, .. } => resolve.interfaces[*id]
                .functions
                .values()
                .all(|f| f.kind.is_async()),
            WorldItem::Type { .. } => true,
        })
}

/// `-all` makes every function sync, `all` every function async, and the
/// first matching directive decides.
///
/// Where we differ: the component model lifts and lowers asynchronously
/// only functions whose type is `async func`, so `all` on a world with a
/// sync function gives wit-dylib 0.263 bindings that wit-component refuses
/// to link ("the `async` canonical option requires an async function
/// type"). We refuse them at generate, naming the function; on worlds of
/// async functions only, both generators agree.
#[test]
fn corpus_matches_wit_dylib_under_async_filters() {
    let mut refused = 0;
    for (what, resolve, world) in corpus() {
        compare(
            &format!("{what} with --async -all"),
            &resolve,
            world,
            &Config::async_(&["-all"]),
        );
        if all_async(&resolve, world) {
            compare(
                &format!("{what} with --async all"),
                &resolve,
                world,
                &Config::async_(&["all"]),
            );
        } else {
            let mut opts = Options::default();
            opts.async_directive("all").unwrap();
            let err = match generate(&resolve, world, &opts) {
                Ok(_) => panic!("{what}: `--async all` made a sync function async"),
                Err(e) => e.to_string(),
            };
            assert!(
                err.starts_with("`--async all` makes `") && err.contains("declares it `func`"),
                "{what}: {err}"
            );
            refused += 1;
        }
        if what.ends_with("async.wit#async-imports") {
            let filter = &[
                "-import:componentize:concurrency/jobs#submit",
                "import:sleep",
                "-all",
            ];
            compare(&what, &resolve, world, &Config::async_(filter));
        }
    }
    assert!(refused > 0, "no corpus world has a sync function");
}

/// With the stack pointer in the task context, `$root`'s
/// `[context-get-0]`/`[context-set-0]` replace `env.__stack_pointer`.
#[test]
fn corpus_matches_wit_dylib_with_the_stack_pointer_in_the_task_context() {
    let config = Config {
        task_context: true,
        ..Config::default()
    };
    for (what, resolve, world) in corpus() {
        compare(&what, &resolve, world, &config);
    }
}

#[test]
fn random_worlds_match_wit_dylib() {
    let count = env_count("COMPONENTIZE_DIFF_WORLDS", 300).unwrap();
    let mut compared = 0;
    let mut seed = 0;
    while compared < count {
        if let Some((resolve, world)) = common::worlds::random_world(seed).unwrap() {
            compare(
                &format!("wit-smith seed {seed}"),
                &resolve,
                world,
                &Config::default(),
            );
            compared += 1;
        }
        seed += 1;
    }
}

#[test]
fn random_async_worlds_match_wit_dylib() {
    let count = env_count("COMPONENTIZE_DIFF_ASYNC_WORLDS", 200).unwrap();
    let (mut compared, mut unused_transmits, mut seed) = (0, 0, 0);
    let (mut async_funcs, mut transmits) = (0, 0);
    while compared < count {
        seed += 1;
        let Some((resolve, world)) = common::worlds::random_async_world(seed).unwrap() else {
            continue;
        };
        let what = format!("wit-smith async seed {seed}");
        let config = Config::default();
        let reference = std::panic::catch_unwind(|| theirs(&resolve, world, &config));
        if let Err(payload) = &reference {
            let msg = common::worlds::panic_message(payload.as_ref());
            assert!(
                msg.contains(common::worlds::UNUSED_TRANSMIT_PANIC),
                "{what}: wit-dylib panicked: {msg}"
            );
            let m = decode::decode_checked(&ours(&resolve, world, &config)).unwrap();
            assert!(
                m.metadata
                    .futures
                    .iter()
                    .chain(&m.metadata.streams)
                    .any(|t| t.new.is_null()),
                "{what}: wit-dylib found an unused future or stream type, we did not"
            );
            unused_transmits += 1;
            continue;
        }
        compare(&what, &resolve, world, &config);
        let m = decode::decode_checked(&ours(&resolve, world, &config)).unwrap();
        async_funcs += m
            .metadata
            .import_funcs
            .iter()
            .filter(|f| !f.async_impl.is_null())
            .count()
            + m.metadata
                .export_funcs
                .iter()
                .filter(|f| !f.task_return.is_null())
                .count();
        transmits += m.metadata.futures.len() + m.metadata.streams.len();
        compared += 1;
    }
    println!(
        "{compared} async worlds equal ({async_funcs} async functions, {transmits} future/stream \
         types); {unused_transmits} more with an unused future/stream type, where wit-dylib panics"
    );
    // The comparison must have seen what it is about.
    assert!(
        async_funcs > 0 && transmits > 0,
        "no async functions or transmits in {compared} worlds"
    );
}

/// Where wit-dylib 0.263 panics we are right, and the test says so.
#[test]
fn where_wit_dylib_panics_we_bind_or_refuse_by_name() {
    let mut resolve = Resolve::default();
    let pkg = resolve
        .push_str(
            "panics.wit",
            "package a:b;
             interface i { type f = future<u32>; type s = stream<string>; g: func() -> u32; }
             world unused-transmits { import i; export i; }
             world error-contexts { export fail: async func() -> future<error-context>; }",
        )
        .unwrap();
    let config = Config::default();

    // A future or stream type no function holds: wit-dylib panics; our
    // metadata describes it, with no built-ins (none has a name).
    let world = resolve
        .select_world(&[pkg], Some("unused-transmits"))
        .unwrap();
    let panic = std::panic::catch_unwind(|| theirs(&resolve, world, &config)).unwrap_err();
    assert!(
        common::worlds::panic_message(panic.as_ref())
            .contains(common::worlds::UNUSED_TRANSMIT_PANIC)
    );
    let m = decode::decode_checked(&ours(&resolve, world, &config)).unwrap();
    let d = &m.metadata;
    // Imported and exported: one registration per side, as for other types.
    assert_eq!((d.futures.len(), d.streams.len()), (2, 2), "{d:#?}");
    for t in d.futures.iter().chain(&d.streams) {
        assert!(t.new.is_null() && t.read.is_null() && t.lift.is_null() && t.lower.is_null());
    }
    assert_eq!(d.futures[0].abi_payload_size, 4);
    assert_eq!(d.streams[0].abi_payload_size, 8);

    // `error-context`: wit-dylib's lowering is `todo!()`; we refuse it, naming
    // the function, since the v3 interface has no intrinsic to carry it.
    let world = resolve
        .select_world(&[pkg], Some("error-contexts"))
        .unwrap();
    assert!(std::panic::catch_unwind(|| theirs(&resolve, world, &config)).is_err());
    let mut opts = Options::default();
    opts.interpreter("libinterp.so");
    let err = generate(&resolve, world, &opts).unwrap_err().to_string();
    assert!(
        err.contains("exported function `fail` uses `error-context`"),
        "{err}"
    );
}

#[test]
fn an_async_directive_matching_nothing_is_refused() {
    let mut resolve = Resolve::default();
    let pkg = resolve
        .push_str(
            "a.wit",
            "package a:b; world w { export run: async func(); }",
        )
        .unwrap();
    let world = resolve.select_world(&[pkg], None).unwrap();
    let mut opts = Options::default();
    opts.async_directive("import:run").unwrap();
    let err = generate(&resolve, world, &opts).unwrap_err().to_string();
    assert!(
        err.starts_with("`--async import:run` matches no function of the world"),
        "{err}"
    );
    // `all` never needs a match; `export:run` does match.
    for directive in ["all", "export:run", "-run"] {
        let mut opts = Options::default();
        opts.async_directive(directive).unwrap();
        generate(&resolve, world, &opts).unwrap();
    }
}

/// A directive that makes a sync function async is refused by name (see
/// `corpus_matches_wit_dylib_under_async_filters`); forcing it sync is not.
#[test]
fn an_async_directive_on_a_sync_function_is_refused() {
    let mut resolve = Resolve::default();
    let pkg = resolve
        .push_str(
            "a.wit",
            "package a:b; interface i { get: func() -> u32; } \
             world w { import i; export run: func(); }",
        )
        .unwrap();
    let world = resolve.select_world(&[pkg], None).unwrap();
    for (directive, name) in [("export:run", "run"), ("import:a:b/i#get", "a:b/i#get")] {
        let mut opts = Options::default();
        opts.async_directive(directive).unwrap();
        let err = generate(&resolve, world, &opts).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "`--async {directive}` makes `{name}` async, but the WIT declares it `func`"
            )),
            "{err}"
        );
    }
    let mut opts = Options::default();
    opts.async_directive("-run").unwrap();
    generate(&resolve, world, &opts).unwrap();
}
