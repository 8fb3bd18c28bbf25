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
use componentize_generate::{Options, Wit, WitOptions, generate};
use std::collections::BTreeSet;
use wit_parser::{Resolve, WorldId};

fn ours(resolve: &Resolve, world: WorldId) -> Vec<u8> {
    let mut opts = Options::default();
    opts.interpreter("libinterp.so");
    generate(resolve, world, &opts).unwrap().into_wasm()
}

fn theirs(resolve: &Resolve, world: WorldId) -> Vec<u8> {
    let mut opts = wit_dylib::DylibOpts {
        interpreter: Some("libinterp.so".into()),
        ..Default::default()
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

fn compare(what: &str, resolve: &Resolve, world: WorldId) {
    let a = decode::decode_checked(&ours(resolve, world))
        .unwrap_or_else(|e| panic!("{what}: decoding our output: {e:?}"));
    let b = decode::decode_checked(&theirs(resolve, world))
        .unwrap_or_else(|e| panic!("{what}: decoding wit-dylib's output: {e:?}"));
    assert_eq!(a.metadata, b.metadata, "{what}: metadata differs");
    assert_eq!(a.import_set(), b.import_set(), "{what}: imports differ");
    assert_eq!(exports(&a), exports(&b), "{what}: exports differ");
    assert_eq!(a.needed, b.needed, "{what}: dylink.0 needed differs");
}

#[test]
fn corpus_matches_wit_dylib() {
    let dir = componentize_testkit::repo_file("fixtures/wit");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_stem()
            .is_some_and(|s| s == "unsupported" || s == "roundtrip")
        {
            continue;
        }
        let wit = Wit::load(&path, &WitOptions::default()).unwrap();
        let mut names: Vec<&String> = wit.resolve.packages[wit.package].worlds.keys().collect();
        names.sort();
        for name in names {
            let world = wit.world(Some(name)).unwrap();
            compare(&format!("{}#{name}", path.display()), &wit.resolve, world);
            n += 1;
        }
    }
    assert!(n >= 5);
}

#[test]
fn random_worlds_match_wit_dylib() {
    let count: u64 = std::env::var("COMPONENTIZE_DIFF_WORLDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let mut compared = 0;
    let mut seed = 0;
    while compared < count {
        if let Some((resolve, world)) = common::worlds::random_world(seed).unwrap() {
            compare(&format!("wit-smith seed {seed}"), &resolve, world);
            compared += 1;
        }
        seed += 1;
    }
}
