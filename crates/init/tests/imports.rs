//! Init provides or stubs every import: wasi:http from wasmtime-wasi-http,
//! stubs that trap for what no host provides (in any namespace), sharing
//! WASI's resources where an interface `use`s them. Needs the toolchain
//! build: `bash toolchain/build.sh`.

mod common;

use common::{init, link_world};
use wit_parser::Resolve;

/// The world of fixtures/init/imports/ with the init export, linked.
fn linked() -> Vec<u8> {
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve
        .push_path(componentize_testkit::repo_file("fixtures/init/imports"))
        .expect("fixtures/init/imports");
    let world = resolve.select_world(&[pkg], Some("imports")).unwrap();
    let world = componentize_contract::add_init_export(&mut resolve, world).unwrap();
    link_world(&resolve, world).expect("linking the imports world")
}

/// The names the component `wasm` imports.
fn imports(wasm: &[u8]) -> Vec<String> {
    let component = componentize_testkit::compile(wasm).unwrap();
    component
        .component_type()
        .imports(componentize_testkit::engine())
        .map(|(name, _)| name.to_string())
        .collect()
}

#[test]
fn http_unknown_interfaces_and_world_resources_do_not_stop_init() {
    let wasm = linked();
    let names = imports(&wasm);
    for expected in [
        "wasi:http/types@0.2.12",
        "wasi:http/outgoing-handler@0.2.12",
        "wasi:io/streams@0.2.12",
        "acme:db/query",
        "session",
        "login",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }
    let snapshot = init(&wasm)
        .script("setup", b"count 3\nset k v\n".to_vec())
        .run()
        .unwrap();
    // The snapshot still imports all of it and holds what the script did:
    // init's own host (which stubs the same imports) runs it again.
    assert_eq!(imports(&snapshot.wasm), names);
    let state = init(&snapshot.wasm)
        .init_func("state")
        .keep_init_export(true)
        .run()
        .unwrap();
    assert!(
        state.results[0].contains("counter=3 entries=1"),
        "{:?}",
        state.results
    );
}

#[test]
fn an_import_that_cannot_be_stubbed_is_named() {
    // An instance that exports a core module: no host provides one, and no
    // stub can stand in for a module.
    let wasm = wat::parse_str(
        r#"(component
             (import "acme:plugins/engine" (instance (export "m" (core module))))
           )"#,
    )
    .unwrap();
    let err = format!("{:#}", init(&wasm).run().unwrap_err());
    assert!(
        err.contains("init cannot provide the component's imports"),
        "{err}"
    );
    assert!(err.contains("`acme:plugins/engine`"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_wasi_import_of_another_type_is_stubbed_not_refused() {
    // wasmtime-wasi's `get-environment` returns a list: this one, a u32, does
    // not type-check against it, so it becomes a stub that traps naming it.
    let wasm = wat::parse_str(
        r#"(component
             (import "wasi:cli/environment@0.2.0" (instance $env
               (export "get-environment" (func (result u32)))))
             (core func $get (canon lower (func $env "get-environment")))
             (core module $m
               (import "" "get" (func $get (result i32)))
               (func (export "probe") (result i32) (call $get)))
             (core instance $args (export "get" (func $get)))
             (core instance $i (instantiate $m (with "" (instance $args))))
             (func (export "probe") (result u32) (canon lift (core func $i "probe"))))"#,
    )
    .unwrap();
    let err = format!("{:#}", init(&wasm).init_func("probe").run().unwrap_err());
    assert!(
        err.contains("init called the import `wasi:cli/environment@0.2.0#get-environment`"),
        "{err}"
    );
}
