//! Every export of the world comes from exactly one library: duplicates,
//! and exports that bindings leave out (`--exclude-interface`,
//! `--exclude-export`) with or without a library that implements them.
//!
//! Needs the toolchain build (`bash toolchain/build.sh`) for the tests that
//! link generated bindings with libtestinterp.so.

mod common;

use common::*;
use componentize_contract::excluded::{EXCLUDED_EXPORTS_SECTION, encode_excluded_exports};
use componentize_link::Link;
use componentize_testkit::{LIB_DIR, call_export, toolchain_path};
use wasmtime::component::Val;

/// A world exporting the interface `test:x/api` (one function, `f`).
const API_WORLD: &str =
    "package test:x; interface api { f: func() -> s32; } world native { export api; }";

/// A library implementing `test:x/api` natively: `f` returns `value`.
fn native(value: i32) -> Vec<u8> {
    Dylib {
        funcs: vec![("test:x/api#f", Body::Const(value))],
        world: Some(API_WORLD),
        ..Dylib::default()
    }
    .build()
}

/// Hand-made bindings whose world exports `run` (returning 7) and that
/// leave `excluded` to other libraries.
fn partial_bindings(excluded: &[&str]) -> Vec<u8> {
    Dylib {
        funcs: vec![("run", Body::Const(7))],
        world: Some("package test:app; world app { export run: func() -> s32; }"),
        custom_sections: vec![(EXCLUDED_EXPORTS_SECTION, encode_excluded_exports(excluded))],
        ..Dylib::default()
    }
    .build()
}

fn int(results: Vec<Val>) -> i32 {
    match results.as_slice() {
        [Val::S32(n)] => *n,
        other => panic!("expected one s32, got {other:?}"),
    }
}

// ------------------------------------------------------------- duplicates

/// Why the check exists: wit-component's linker, given two libraries that
/// export the same interface, trips an assertion of its encoder.
#[test]
fn wit_components_linker_panics_on_an_interface_exported_twice() {
    let mut linker = wit_component::Linker::default();
    linker
        .library("a.so", &native(1), false)
        .unwrap()
        .library("b.so", &native(2), false)
        .unwrap();
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| linker.encode()));
    assert!(panic.is_err(), "wit-component linked it");
}

#[test]
fn an_interface_exported_by_two_libraries_is_an_error() {
    let mut link = Link::new();
    link.search_env(false)
        .library("a.so", native(1))
        .library("b.so", native(2));
    assert_eq!(
        error(&link),
        "export `test:x/api` is defined by `a.so` and `b.so`: each export of the world must be defined by exactly one library (generate all but one of them without it: `componentize generate --exclude-export test:x/api`)"
    );

    // Also when one needs the other, which would make its core symbols
    // override the other's.
    let needs_a = Dylib {
        needed: vec!["a.so"],
        funcs: vec![("test:x/api#f", Body::Const(2))],
        world: Some(API_WORLD),
        ..Dylib::default()
    }
    .build();
    let mut link = Link::new();
    link.search_env(false)
        .library("a.so", native(1))
        .library("b.so", needs_a);
    assert!(
        error(&link).starts_with("export `test:x/api` is defined by `a.so` and `b.so`: "),
        "{}",
        error(&link)
    );
}

#[test]
fn a_function_exported_by_two_libraries_is_an_error_naming_the_export() {
    let probe = |value| {
        Dylib {
            funcs: vec![("probe", Body::Const(value))],
            world: Some("package test:p; world p { export probe: func() -> s32; }"),
            ..Dylib::default()
        }
        .build()
    };
    let mut link = Link::new();
    link.search_env(false)
        .library("one.so", probe(1))
        .library("two.so", probe(2))
        .library("three.so", probe(3))
        .library("api.so", native(1))
        .library("api2.so", native(2));
    // Every problem, in one message.
    assert_eq!(
        error(&link),
        "world exports:\n  \
         export `probe` is defined by `one.so`, `two.so` and `three.so`: each export of the world must be defined by exactly one library (generate all but one of them without it: `componentize generate --exclude-export probe`)\n  \
         export `test:x/api` is defined by `api.so` and `api2.so`: each export of the world must be defined by exactly one library (generate all but one of them without it: `componentize generate --exclude-export test:x/api`)"
    );
}

// ------------------------------------------------------------- excluded exports

#[test]
fn an_excluded_export_implemented_by_another_library_links_and_runs() {
    let linked = Link::new()
        .search_env(false)
        .bindings("app.so", partial_bindings(&["test:x/api"]))
        .library("native.so", native(41))
        .encode()
        .unwrap();
    let (mut store, instance) = instantiate(linked.component());
    assert_eq!(
        int(call_export(&mut store, &instance, None, "run", &[]).unwrap()),
        7
    );
    let f = call_export(&mut store, &instance, Some("test:x/api"), "f", &[]).unwrap();
    assert_eq!(int(f), 41);
}

#[test]
fn an_excluded_export_nobody_implements_is_an_error() {
    let mut link = Link::new();
    link.search_env(false)
        .bindings("app.so", partial_bindings(&["test:x/api"]));
    assert_eq!(
        error(&link),
        "export `test:x/api`: the bindings `app.so` leave it out (generated with --exclude-interface or --exclude-export), and no linked library defines it; link the library that implements it (one whose WIT world, its `component-type` section, exports `test:x/api`)"
    );

    // A library whose world only imports it does not implement it; each
    // missing export is named.
    let importer = Dylib {
        world: Some(
            "package test:x; interface api { f: func() -> s32; } world user { import api; }",
        ),
        ..Dylib::default()
    }
    .build();
    let mut link = Link::new();
    link.search_env(false)
        .bindings("app.so", partial_bindings(&["test:x/api", "other"]))
        .library("user.so", importer);
    let msg = error(&link);
    // In the order the section lists them.
    assert!(
        msg.starts_with(
            "world exports:\n  export `test:x/api`: the bindings `app.so` leave it out"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("\n  export `other`: the bindings `app.so` leave it out"),
        "{msg}"
    );
}

#[test]
fn an_excluded_export_also_defined_twice_is_one_error() {
    let mut link = Link::new();
    link.search_env(false)
        .bindings("app.so", partial_bindings(&["test:x/api"]))
        .library("a.so", native(1))
        .library("b.so", native(2));
    assert!(
        error(&link).starts_with("export `test:x/api` is defined by `a.so` and `b.so`: "),
        "{}",
        error(&link)
    );
}

#[test]
fn a_malformed_excluded_exports_section_is_an_error() {
    let broken = Dylib {
        world: Some("package test:app; world app { export run: func() -> s32; }"),
        funcs: vec![("run", Body::Const(7))],
        custom_sections: vec![(EXCLUDED_EXPORTS_SECTION, b"a\n\nb\n".to_vec())],
        ..Dylib::default()
    }
    .build();
    let msg = error(Link::new().search_env(false).bindings("app.so", broken));
    assert_eq!(
        msg,
        format!(
            "bindings `app.so` (given as bytes): the `{EXCLUDED_EXPORTS_SECTION}` section holds a malformed export name"
        )
    );
}

/// The generator's own output: bindings for `test:x/api` plus `run`, with
/// the interface excluded, linked with libtestinterp.so.
#[test]
fn generated_partial_bindings_need_the_library_that_implements_the_exclusion() {
    let mut resolve = wit_parser::Resolve::default();
    let pkg = resolve
        .push_str(
            "partial.wit",
            "package test:x; interface api { f: func() -> s32; } world app { export api; export run: func() -> s32; }",
        )
        .unwrap();
    let world = resolve.select_world(&[pkg], None).unwrap();
    let mut options = componentize_generate::Options::default();
    options
        .interpreter("libtestinterp.so")
        .exclude_export("test:x/api");
    let bindings = componentize_generate::generate(&resolve, world, &options)
        .unwrap()
        .into_wasm();
    let mut link = Link::new();
    link.search_env(false)
        .bindings("app.so", bindings)
        .search_path(toolchain_path(LIB_DIR))
        .search_path(libc_dir());
    assert!(
        error(&link).starts_with(
            "export `test:x/api`: the bindings `app.so` leave it out (generated with --exclude-interface or --exclude-export), and no linked library defines it"
        ),
        "{}",
        error(&link)
    );

    let linked = link.library("native.so", native(5)).encode().unwrap();
    let (mut store, instance) = instantiate(linked.component());
    let f = call_export(&mut store, &instance, Some("test:x/api"), "f", &[]).unwrap();
    assert_eq!(int(f), 5);
}
