//! The fixtures/wit corpus: every world generates a valid module, twice
//! identically, and unsupported constructs are refused by name.

use componentize_generate::{Options, Wit, WitOptions, generate};
use std::path::PathBuf;

fn corpus() -> PathBuf {
    componentize_testkit::repo_file("fixtures/wit")
}

/// Every (file, world name) of the supported corpus.
fn worlds() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_stem().is_some_and(|s| s != "unsupported"))
        .collect();
    entries.sort();
    for path in entries {
        let wit = Wit::load(&path, &WitOptions::default()).unwrap();
        for n in wit.world_names() {
            out.push((path.clone(), n.to_string()));
        }
    }
    assert!(out.len() >= 5, "corpus has {} worlds", out.len());
    out
}

fn validate(wasm: &[u8]) {
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(wasm)
        .unwrap();
}

#[test]
fn every_corpus_world_generates_a_valid_deterministic_module() {
    for (path, world) in worlds() {
        let wit = Wit::load(&path, &WitOptions::default()).unwrap();
        let id = wit.world(Some(&world)).unwrap();
        let mut opts = Options::default();
        opts.interpreter("libinterp.so");
        let a = generate(&wit.resolve, id, &opts)
            .unwrap_or_else(|e| panic!("{}: {world}: {e:?}", path.display()));
        validate(a.wasm());
        // A fresh load and generation gives the same bytes.
        let wit2 = Wit::load(&path, &WitOptions::default()).unwrap();
        let b = generate(&wit2.resolve, wit2.world(Some(&world)).unwrap(), &opts).unwrap();
        assert!(a.wasm() == b.wasm(), "{world}: output differs between runs");
    }
}

/// The module name of `wasm`'s name section.
fn module_name(wasm: &[u8]) -> Option<String> {
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let wasmparser::Payload::CustomSection(c) = payload.unwrap()
            && let wasmparser::KnownCustom::Name(names) = c.as_known()
        {
            for name in names {
                if let wasmparser::Name::Module { name, .. } = name.unwrap() {
                    return Some(name.to_string());
                }
            }
        }
    }
    None
}

#[test]
fn the_bindings_name_themselves_for_backtraces() {
    let (path, world) = worlds().remove(0);
    let wit = Wit::load(&path, &WitOptions::default()).unwrap();
    let id = wit.world(Some(&world)).unwrap();
    let bindings = generate(&wit.resolve, id, &Options::default()).unwrap();
    assert_eq!(
        module_name(bindings.wasm()).as_deref(),
        Some(componentize_generate::BINDINGS_MODULE_NAME)
    );
}

#[test]
fn unsupported_constructs_are_refused_by_name() {
    let wit = Wit::load(&corpus().join("unsupported.wit"), &WitOptions::default()).unwrap();
    let cases = [
        ("uses-error-context", "`fail` uses `error-context`"),
        ("streams-error-context", "`errors` uses `error-context`"),
        (
            "uses-fixed-list",
            "`vec` uses a fixed-length list (`list<_, 4>`)",
        ),
    ];
    for (world, expected) in cases {
        let id = wit.world(Some(world)).unwrap();
        let err = generate(&wit.resolve, id, &Options::default()).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains(expected),
            "{world}: `{msg}` lacks `{expected}`"
        );
    }
}

#[test]
fn missing_world_lists_the_available_ones() {
    let wit = Wit::load(&corpus().join("scalars.wit"), &WitOptions::default()).unwrap();
    let msg = format!("{:#}", wit.world(Some("nope")).unwrap_err());
    assert!(msg.contains("world `nope` not found"), "{msg}");
    assert!(
        msg.contains("available worlds in `componentize:scalars`: scalars"),
        "{msg}"
    );
    assert_eq!(msg.to_lowercase().matches("not found").count(), 1, "{msg}");
}

#[test]
fn paths_without_wit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let msg = format!(
        "{:#}",
        Wit::load(dir.path(), &WitOptions::default()).err().unwrap()
    );
    assert!(msg.contains("no WIT found in"), "{msg}");
    let msg = format!(
        "{:#}",
        Wit::load(&dir.path().join("x.wit"), &WitOptions::default())
            .err()
            .unwrap()
    );
    assert!(msg.contains("does not exist"), "{msg}");
}

#[test]
fn parse_errors_keep_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.wit");
    std::fs::write(
        &file,
        "package a:b;\n\nworld w {\n  export f: func(x: nosuchtype);\n}\n",
    )
    .unwrap();
    let msg = format!(
        "{:#}",
        Wit::load(&file, &WitOptions::default()).err().unwrap()
    );
    assert!(msg.contains("bad.wit:4:"), "{msg}");
    assert!(msg.contains("nosuchtype"), "{msg}");
}

#[test]
fn syntax_errors_keep_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.wit"),
        "package a:b;\nworld w {\n  export f: func(x: u32) -> ;\n}\n",
    )
    .unwrap();
    let msg = format!(
        "{:#}",
        Wit::load(dir.path(), &WitOptions::default()).err().unwrap()
    );
    assert!(msg.contains("a.wit:3:"), "{msg}");
}
