//! componentize-link end to end: generated bindings + the libdemo fixture
//! interpreter + libc.so into components run by wasmtime, the preview1
//! adapter, dl-openable libraries, determinism, and every error on purpose.
//!
//! Needs the toolchain build: `bash toolchain/build.sh`.

mod common;

use common::*;
use componentize_link::{AdapterFile, AdapterOrigin, Link, Options, Origin};
use wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER as P1_REACTOR;
use wasm_encoder::ValType::I32;
use wasmtime::component::{ComponentType, Lift, Lower};

#[derive(ComponentType, Lift, Lower, Clone, Copy, Debug, PartialEq)]
#[component(record)]
struct Point {
    x: i32,
    y: i32,
}

/// The core module wit-component makes of the preview1 adapter.
const P1_MODULE: &str = "wit-component:adapter:wasi_snapshot_preview1";

fn names(linked: &componentize_link::Linked) -> Vec<&str> {
    linked.libraries().iter().map(|l| l.name.as_str()).collect()
}

/// A library that imports `wasi_snapshot_preview1.sched_yield` and whose
/// world exports `probe: func() -> s32` (= sched_yield() + 42).
fn p1_probe() -> Vec<u8> {
    Dylib {
        imports: vec![("wasi_snapshot_preview1", "sched_yield", vec![], vec![I32])],
        funcs: vec![("probe", Body::CallPlus(0, 42))],
        world: Some("package test:p1; world p1 { export probe: func() -> s32; }"),
        ..Dylib::default()
    }
    .build()
}

/// A hand-made library whose world exports `probe: func() -> s32`.
fn root<'a>(d: Dylib<'a>) -> Dylib<'a> {
    let mut funcs = d.funcs;
    funcs.push(("probe", Body::Const(7)));
    Dylib {
        funcs,
        world: Some("package test:root; world root { export probe: func() -> s32; }"),
        ..d
    }
}

// ------------------------------------------------------------- running it

#[test]
fn demo_component_runs() {
    let linked = demo_link().encode().unwrap();
    // The interpreter defines cabi_realloc and the bindings only re-export
    // their import of it: the interpreter goes first, although the bindings
    // were given first; libc.so (found in the search folder because
    // libdemo.so needs it) also defines it, but libdemo.so needs libc.so,
    // so libdemo.so's definition overrides libc's.
    assert_eq!(names(&linked), ["libdemo.so", "demo.so", "libc.so"]);
    let libs = linked.libraries();
    assert_eq!(libs[0].origin, Origin::File(libdemo()));
    assert_eq!(libs[1].origin, Origin::Given);
    assert_eq!(
        libs[2].origin,
        Origin::Found {
            path: libc_dir().join("libc.so"),
            needed_by: Some("libdemo.so".into())
        }
    );
    assert!(linked.unused().is_empty());
    assert!(linked.adapters().is_empty(), "{:?}", linked.adapters());
    // libc.so's weak `__main_argc_argv` is defined by nobody: a stub.
    let stubs: Vec<(&str, &str)> = linked
        .stubs()
        .iter()
        .map(|s| (s.library.as_str(), s.symbol.as_str()))
        .collect();
    assert_eq!(stubs, [("libc.so", "__main_argc_argv")]);
    assert!(!core_module_names(linked.component()).contains(&P1_MODULE.into()));

    let (mut store, instance) = instantiate(linked.component());
    let greet = instance
        .get_typed_func::<(&str,), (String,)>(&mut store, "greet")
        .unwrap();
    let add = instance
        .get_typed_func::<(Point, Point), (Point,)>(&mut store, "add")
        .unwrap();
    let count = instance
        .get_typed_func::<(), (u32,)>(&mut store, "count")
        .unwrap();
    let allocations = instance
        .get_typed_func::<(), (u32,)>(&mut store, "allocations")
        .unwrap();

    assert_eq!(allocations.call(&mut store, ()).unwrap().0, 0);
    assert_eq!(greet.call(&mut store, ("wasm",)).unwrap().0, "hello, wasm!");
    assert_eq!(greet.call(&mut store, ("",)).unwrap().0, "hello, !");
    // The host passed the strings in through the component's cabi_realloc:
    // the interpreter's own.
    assert!(allocations.call(&mut store, ()).unwrap().0 >= 1);
    let sum = add
        .call(&mut store, (Point { x: 1, y: 2 }, Point { x: 30, y: -40 }))
        .unwrap()
        .0;
    assert_eq!(sum, Point { x: 31, y: -38 });
    for n in 1..=3 {
        assert_eq!(count.call(&mut store, ()).unwrap().0, n);
    }
}

#[test]
fn order_of_inputs_does_not_matter() {
    let linked = Link::new()
        .search_env(false)
        .library_path(libc_dir().join("libc.so"))
        .bindings("demo.so", bindings("demo", Some("libdemo.so")))
        .library_path(libdemo())
        .encode()
        .unwrap();
    assert_eq!(names(&linked), ["libdemo.so", "libc.so", "demo.so"]);
    let (mut store, instance) = instantiate(linked.component());
    let greet = instance
        .get_typed_func::<(&str,), (String,)>(&mut store, "greet")
        .unwrap();
    assert_eq!(
        greet.call(&mut store, ("order",)).unwrap().0,
        "hello, order!"
    );
}

/// Why the order matters: wit-component's linker, given the bindings
/// first, binds their `cabi_realloc` import to their own re-export of it.
#[test]
fn naive_order_recurses_until_the_stack_is_exhausted() {
    let mut linker = wit_component::Linker::default();
    linker
        .library("demo.so", &bindings("demo", Some("libdemo.so")), false)
        .unwrap()
        .library("libdemo.so", &libdemo_bytes(), false)
        .unwrap()
        .library("libc.so", &libc(), false)
        .unwrap();
    let wasm = linker.encode().unwrap();
    let (mut store, instance) = instantiate(&wasm);
    let greet = instance
        .get_typed_func::<(&str,), (String,)>(&mut store, "greet")
        .unwrap();
    let err = greet.call(&mut store, ("x",)).unwrap_err();
    assert!(
        format!("{err:?}").contains("call stack exhausted"),
        "{err:?}"
    );
}

#[test]
fn preview1_adapter_is_added_only_when_imported() {
    // Nothing imports wasi_snapshot_preview1 (libc.so speaks wasip2).
    let plain = demo_link().encode().unwrap();
    assert!(plain.adapters().is_empty());
    assert!(!core_module_names(plain.component()).contains(&P1_MODULE.into()));

    // A library importing it is unused (nothing needs it, no world): no adapter.
    let unused_p1 = Dylib {
        imports: vec![("wasi_snapshot_preview1", "sched_yield", vec![], vec![I32])],
        funcs: vec![("lonely", Body::CallPlus(0, 1))],
        ..Dylib::default()
    }
    .build();
    let linked = demo_link()
        .library("unused.so", unused_p1)
        .encode()
        .unwrap();
    assert_eq!(linked.unused().len(), 1);
    assert_eq!(linked.unused()[0].name, "unused.so");
    assert!(linked.adapters().is_empty());

    // Linked in: the bundled reactor adapter comes with it.
    let linked = demo_link().library("p1.so", p1_probe()).encode().unwrap();
    let adapters: Vec<(&str, &AdapterOrigin)> = linked
        .adapters()
        .iter()
        .map(|a| (a.name.as_str(), &a.origin))
        .collect();
    assert_eq!(
        adapters,
        [("wasi_snapshot_preview1", &AdapterOrigin::Bundled)]
    );
    let modules = core_module_names(linked.component());
    assert!(modules.contains(&P1_MODULE.into()), "{modules:?}");
    let (mut store, instance) = instantiate(linked.component());
    let probe = instance
        .get_typed_func::<(), (i32,)>(&mut store, "probe")
        .unwrap();
    assert_eq!(probe.call(&mut store, ()).unwrap().0, 42);
    let greet = instance
        .get_typed_func::<(&str,), (String,)>(&mut store, "greet")
        .unwrap();
    assert_eq!(greet.call(&mut store, ("p1",)).unwrap().0, "hello, p1!");

    // An adapter given explicitly replaces the bundled one.
    let given = demo_link()
        .library("p1.so", p1_probe())
        .adapter("wasi_snapshot_preview1", P1_REACTOR)
        .encode()
        .unwrap();
    assert_eq!(given.adapters()[0].origin, AdapterOrigin::Given);
}

#[test]
fn dl_openable_library_is_found_and_loadable() {
    let lib_dir = libdemo().parent().unwrap().to_path_buf();
    let linked = Link::new()
        .search_env(false)
        .library("dl.so", dl_probe(&[]))
        .dl_openable("libcounter.so")
        .search_path(lib_dir.clone())
        .search_path(libc_dir())
        .encode()
        .unwrap();
    let counter = library(&linked, "libcounter.so");
    assert!(counter.dl_openable);
    assert_eq!(
        counter.origin,
        Origin::Found {
            path: lib_dir.join("libcounter.so"),
            needed_by: None
        }
    );
    let libdl = library(&linked, "libdl.so");
    assert_eq!(libdl.origin, Origin::BuiltIn { needed_by: None });
    assert_eq!(linked.libraries().last().unwrap().name, "libdl.so");

    let (mut store, instance) = instantiate(linked.component());
    let probe = instance
        .get_typed_func::<(), (i32,)>(&mut store, "dl-probe")
        .unwrap();
    assert_eq!(probe.call(&mut store, ()).unwrap().0, 1);
    assert_eq!(probe.call(&mut store, ()).unwrap().0, 2);
}

#[test]
fn a_needed_libdl_is_the_built_in_one_unless_one_is_found() {
    let lib_dir = libdemo().parent().unwrap().to_path_buf();
    // Needs libdl.so, which no search folder holds: the built-in one is
    // linked, and the report says why.
    let linked = Link::new()
        .search_env(false)
        .library("dl.so", dl_probe(&["libdl.so"]))
        .dl_openable("libcounter.so")
        .search_path(lib_dir.clone())
        .search_path(libc_dir())
        .encode()
        .unwrap();
    let libdl = library(&linked, "libdl.so");
    // dl-openable libraries brought it in first.
    assert_eq!(libdl.origin, Origin::BuiltIn { needed_by: None });
    let linked = Link::new()
        .search_env(false)
        .library("dl.so", dl_probe(&["libdl.so"]))
        .search_path(lib_dir)
        .search_path(libc_dir())
        .encode()
        .unwrap();
    let libdl = library(&linked, "libdl.so");
    assert_eq!(
        libdl.origin,
        Origin::BuiltIn {
            needed_by: Some("dl.so".into())
        }
    );
    let report = linked.report().to_string();
    assert!(
        report.contains("linked libdl.so (built into wit-component, needed by `dl.so`: no libdl.so on the search path)"),
        "{report}"
    );
    // It instantiates; with nothing dl-openable, dlopen finds nothing.
    let (mut store, instance) = instantiate(linked.component());
    let probe = instance
        .get_typed_func::<(), (i32,)>(&mut store, "dl-probe")
        .unwrap();
    assert!(probe.call(&mut store, ()).is_err());

    // A libdl.so on the search path is used instead: this one defines
    // nothing, so dlopen and dlsym are unresolved.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("libdl.so"), Dylib::default().build()).unwrap();
    let mut link = Link::new();
    link.search_env(false)
        .library("dl.so", dl_probe(&["libdl.so"]))
        .search_path(dir.path())
        .search_path(libc_dir());
    let msg = error(&link);
    assert!(msg.contains("dlopen"), "{msg}");
    let linked = link.stub_missing_functions(true).encode().unwrap();
    let libdl = library(&linked, "libdl.so");
    assert_eq!(
        libdl.origin,
        Origin::Found {
            path: dir.path().join("libdl.so"),
            needed_by: Some("dl.so".into())
        }
    );
}

#[test]
fn stub_missing_functions() {
    // Bindings without an interpreter: every wit_dylib_* import is missing.
    let mut link = Link::new();
    link.search_env(false)
        .bindings("demo.so", bindings("demo", None))
        .search_path(libc_dir())
        .library("libc.so", libc());
    let msg = error(&link);
    assert!(
        msg.starts_with("unresolved symbols:\n  `demo.so` needs:\n"),
        "{msg}"
    );
    assert!(
        msg.contains("\n    `wit_dylib_initialize` (function (i32))"),
        "{msg}"
    );
    assert!(
        msg.contains("\n    `wit_dylib_pop_string` (function (i32, i32) -> i32)"),
        "{msg}"
    );
    assert!(msg.contains("--stub-missing-functions"), "{msg}");

    let linked = link.stub_missing_functions(true).encode().unwrap();
    let stubbed: Vec<&str> = linked
        .stubs()
        .iter()
        .filter(|s| s.library == "demo.so")
        .map(|s| s.symbol.as_str())
        .collect();
    assert!(stubbed.contains(&"wit_dylib_initialize"), "{stubbed:?}");
    assert!(stubbed.contains(&"wit_dylib_export_call"), "{stubbed:?}");
}

#[test]
fn interposing_definition_wins_over_its_dependency() {
    // top.so needs base.so and both define `shared`: top.so's is used.
    let base = Dylib {
        funcs: vec![("shared", Body::Const(1))],
        ..Dylib::default()
    }
    .build();
    let top = root(Dylib {
        needed: vec!["base.so"],
        funcs: vec![("shared", Body::Const(2))],
        ..Dylib::default()
    })
    .build();
    let linked = Link::new()
        .search_env(false)
        .library("base.so", base)
        .library("top.so", top)
        .encode()
        .unwrap();
    assert_eq!(names(&linked), ["top.so", "base.so"]);
}

#[test]
fn same_inputs_give_identical_bytes() {
    let a = demo_link().library("p1.so", p1_probe()).encode().unwrap();
    let b = demo_link().library("p1.so", p1_probe()).encode().unwrap();
    assert!(
        a.component() == b.component(),
        "two links of the same inputs differ"
    );
    let link = demo_link();
    let c = link.encode().unwrap();
    let d = link.encode().unwrap();
    assert!(c.component() == d.component(), "encoding twice differs");
    // An option does change them.
    let bigger_stack = demo_link().stack_size(2 << 20).encode().unwrap();
    assert!(bigger_stack.component() != c.component());
}

#[test]
fn dl_openable_path_is_linked_as_its_file_name() {
    let counter = libdemo().parent().unwrap().join("libcounter.so");
    let linked = Link::new()
        .search_env(false)
        .library("dl.so", dl_probe(&[]))
        .dl_openable(counter.to_str().unwrap())
        .search_path(libc_dir())
        .encode()
        .unwrap();
    let lib = library(&linked, "libcounter.so");
    assert!(lib.dl_openable);
    assert_eq!(lib.origin, Origin::File(counter));

    let msg = error(
        Link::new()
            .library("dl.so", dl_probe(&[]))
            .dl_openable("dir/.."),
    );
    assert_eq!(msg, "dl-openable `dir/..` does not name a file");
}

#[test]
fn options_are_the_builder_calls() {
    let mut options = Options::default();
    options.search.push(libc_dir());
    options.stack_size = Some(2 << 20);
    options.stub_missing_functions = true;
    options.adapt.push(
        "wasi_snapshot_preview1=/nonexistent/adapter.wasm"
            .parse()
            .unwrap(),
    );
    let mut link = demo_link();
    link.options(&options);
    // The adapter is read: it is part of the link.
    let msg = error(&link);
    assert!(
        msg.starts_with("cannot read `/nonexistent/adapter.wasm`"),
        "{msg}"
    );

    options.adapt.clear();
    let with_options = demo_link().options(&options).encode().unwrap();
    let by_hand = demo_link()
        .search_path(libc_dir())
        .stack_size(2 << 20)
        .stub_missing_functions(true)
        .encode()
        .unwrap();
    assert!(with_options.component() == by_hand.component());

    let bad: Result<AdapterFile, _> = "no-equals-sign".parse();
    assert!(bad.unwrap_err().contains("expected NAME=FILE"));
    assert_eq!(
        "a=b=c".parse::<AdapterFile>().unwrap(),
        AdapterFile::new("a", "b=c")
    );
}

#[test]
fn report_lists_what_went_in() {
    let linked = demo_link().library("p1.so", p1_probe()).encode().unwrap();
    assert_eq!(
        linked.report().to_string(),
        format!(
            "linked libdemo.so (`{}`)\n\
             linked demo.so (given as bytes)\n\
             linked p1.so (given as bytes)\n\
             linked libc.so (found at `{}`, needed by `libdemo.so`)\n\
             adapter wasi_snapshot_preview1 (bundled (wasi-preview1-component-adapter-provider 48, reactor))\n\
             stub __main_argc_argv (imported by libc.so)\n",
            libdemo().display(),
            libc_dir().join("libc.so").display()
        )
    );
    let mut link = demo_link();
    link.library("unused.so", Dylib::default().build());
    let report = link.encode().unwrap().report().to_string();
    assert!(
        report.contains("\nunused unused.so (given as bytes): nothing needs it\n"),
        "{report}"
    );
}

#[test]
fn key_parts_cover_what_changes_the_output() {
    let link = demo_link();
    let parts = link.resolve().unwrap().key_parts();
    assert_eq!(parts, link.resolve().unwrap().key_parts());
    let labels: Vec<&str> = parts.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        labels,
        [
            "library:demo.so",
            "library:libdemo.so",
            "library:libc.so",
            "adapter:wasi_snapshot_preview1",
            "stub-missing-functions",
            "stack-size"
        ]
    );
    assert_eq!(parts[2].1, libc());
    // Encoding the resolved link is encoding the link.
    let resolved = link.resolve().unwrap();
    assert!(resolved.encode().unwrap().component() == link.encode().unwrap().component());

    let mut other = demo_link();
    other.stack_size(2 << 20).dl_openable("libdemo.so");
    let other_parts = other.resolve().unwrap().key_parts();
    assert!(other_parts.contains(&("library:libdl.so".into(), Vec::new())));
    assert!(other_parts.contains(&("dl-openable".into(), b"libdemo.so".to_vec())));
    assert!(other_parts.contains(&("stack-size".into(), b"2097152".to_vec())));
}

// ------------------------------------------------------------- errors

#[test]
fn error_library_not_found() {
    // Given as bytes: nowhere to look.
    let mut link = Link::new();
    link.search_env(false)
        .bindings("demo.so", bindings("demo", Some("libdemo.so")));
    let msg = error(&link);
    assert_eq!(
        msg,
        "library `libdemo.so` not found; needed by `demo.so`; looked in:\n    (no search paths: add one with -L)"
    );

    // libdemo.so found in a search folder, libc.so not: the chain and the
    // folders are listed.
    let lib_dir = libdemo().parent().unwrap().to_path_buf();
    let mut link = Link::new();
    link.search_env(false)
        .bindings("demo.so", bindings("demo", Some("libdemo.so")))
        .search_path(lib_dir.clone())
        .search_path("/nonexistent/dir");
    let msg = error(&link);
    assert_eq!(
        msg,
        format!(
            "library `libc.so` not found; needed by `libdemo.so` (which is needed by `demo.so`); looked in:\n    {} (search path)\n    /nonexistent/dir (search path), does not exist",
            lib_dir.display()
        )
    );

    // The folder of an input is searched, after the search paths.
    let mut link = Link::new();
    link.search_env(false).library_path(libdemo());
    let msg = error(&link);
    assert!(
        msg.ends_with(&format!(
            "looked in:\n    {} (folder of an input)",
            lib_dir.display()
        )),
        "{msg}"
    );

    let mut link = demo_link();
    link.dl_openable("libnope.so");
    let msg = error(&link);
    assert!(
        msg.starts_with("library `libnope.so` (to be dl-openable) not found; looked in:"),
        "{msg}"
    );
}

#[test]
fn error_unresolved_symbols_grouped_by_library() {
    let a = root(Dylib {
        imports: vec![("env", "gone", vec![I32], vec![])],
        data_imports: vec!["no_data"],
        ..Dylib::default()
    })
    .build();
    let b = root(Dylib {
        needed: vec!["a.so"],
        imports: vec![("env", "also_gone", vec![], vec![I32])],
        ..Dylib::default()
    });
    // b.so's world would clash with a.so's `probe`: give it another name.
    let b = Dylib {
        funcs: vec![("probe2", Body::Const(1))],
        world: Some("package test:b; world b { export probe2: func() -> s32; }"),
        ..b
    }
    .build();
    let mut link = Link::new();
    link.search_env(false).library("a.so", a).library("b.so", b);
    let msg = error(&link);
    assert_eq!(
        msg,
        "unresolved symbols:\n  `a.so` needs:\n    `gone` (function (i32))\n    data `no_data`\n  `b.so` needs:\n    `also_gone` (function () -> i32)"
    );
    // Data cannot be stubbed.
    let msg = error(link.stub_missing_functions(true));
    assert_eq!(
        msg,
        "unresolved symbols:\n  `a.so` needs:\n    data `no_data`"
    );
}

#[test]
fn error_data_symbol_needs_needed() {
    let user = |needed| {
        root(Dylib {
            needed,
            data_imports: vec!["shared_data"],
            ..Dylib::default()
        })
        .build()
    };
    let provider = Dylib {
        data_exports: vec!["shared_data"],
        ..Dylib::default()
    }
    .build();
    let mut link = Link::new();
    link.search_env(false)
        .library("user.so", user(vec![]))
        .library("data.so", provider.clone());
    let msg = error(&link);
    assert_eq!(
        msg,
        "unresolved symbols:\n  `user.so` needs:\n    data `shared_data` (defined by `data.so`, which is left out because no kept library needs it: data symbols resolve only through dylink.0 `needed`, so link `user.so` against `data.so`)"
    );
    // With `needed`, it links.
    Link::new()
        .search_env(false)
        .library("user.so", user(vec!["data.so"]))
        .library("data.so", provider)
        .encode()
        .unwrap();
}

#[test]
fn error_world_export_named_like_a_libc_function() {
    let mut link = Link::new();
    link.search_env(false)
        .bindings("clash.so", bindings("clash", Some("libdemo.so")))
        .library_path(libdemo())
        .search_path(libc_dir());
    let msg = error(&link);
    assert_eq!(
        msg,
        "duplicate symbol definitions:\n  `getenv` is exported by `clash.so` (function (i32, i32) -> i32), `libc.so` (function (i32) -> i32); in `clash.so` it implements the WIT world's export `getenv`, so no other library may define that name (rename the WIT export, e.g. with a dash, or move it into an interface)"
    );
}

#[test]
fn error_duplicate_definitions() {
    let one = |name| {
        Dylib {
            funcs: vec![(name, Body::Const(1))],
            ..Dylib::default()
        }
        .build()
    };
    // Neither needs the other.
    let mut link = Link::new();
    link.search_env(false)
        .library("a.so", one("twice"))
        .library("b.so", one("twice"));
    assert_eq!(
        error(&link),
        "duplicate symbol definitions:\n  `twice` is defined by `a.so` and `b.so`, and none of them needs all the others, so which definition is used would depend on the link order"
    );
    // Different types.
    let other = Dylib {
        data_exports: vec!["twice"],
        ..Dylib::default()
    }
    .build();
    let mut link = Link::new();
    link.search_env(false)
        .library("a.so", one("twice"))
        .library("c.so", other);
    assert_eq!(
        error(&link),
        "duplicate symbol definitions:\n  `twice` is exported with different types: `a.so` (function () -> i32), `c.so` (global i32)"
    );
    // Two entry points.
    let start = || {
        Dylib {
            start: true,
            ..Dylib::default()
        }
        .build()
    };
    let mut link = Link::new();
    link.search_env(false)
        .library("s1.so", start())
        .library("s2.so", start());
    assert_eq!(
        error(&link),
        "several libraries export the program entry point `_start`: `s1.so` and `s2.so`"
    );
    // The built-in libdl's functions.
    let own_dlopen = Dylib {
        funcs: vec![("dlopen", Body::Const(0))],
        ..Dylib::default()
    }
    .build();
    let mut link = demo_link();
    link.library("mydl.so", own_dlopen)
        .dl_openable("libdemo.so");
    let msg = error(&link);
    assert!(
        msg.contains("`dlopen` is defined by `mydl.so` and by the built-in `libdl.so` that dl-openable libraries bring in"),
        "{msg}"
    );
}

#[test]
fn error_import_resolves_to_nothing_but_itself_or_a_wrong_type() {
    // Imports `helper` and re-exports it: nothing defines it.
    let a = root(Dylib {
        imports: vec![("env", "helper", vec![], vec![I32])],
        reexports: vec![0],
        ..Dylib::default()
    })
    .build();
    let msg = error(Link::new().search_env(false).library("a.so", a.clone()));
    assert_eq!(
        msg,
        "unresolved symbols:\n  `a.so` needs:\n    `helper` (function () -> i32): no library defines it (`a.so` only re-exports an import of the same name, which would call itself)"
    );
    // ... not even with stubs: the linker would bind it to the re-export.
    let msg = error(
        Link::new()
            .search_env(false)
            .stub_missing_functions(true)
            .library("a.so", a),
    );
    assert!(msg.contains("no library defines it"), "{msg}");

    // Imported with another type than defined.
    let user = root(Dylib {
        imports: vec![("env", "f", vec![I32], vec![I32])],
        ..Dylib::default()
    })
    .build();
    let def = Dylib {
        funcs: vec![("f", Body::Const(3))],
        ..Dylib::default()
    }
    .build();
    let msg = error(
        Link::new()
            .search_env(false)
            .library("user.so", user)
            .library("def.so", def),
    );
    assert_eq!(
        msg,
        "unresolved symbols:\n  `user.so` needs:\n    `f` (function (i32) -> i32), but `def.so` exports it as function () -> i32"
    );
}

#[test]
fn error_inputs_that_are_not_dylibs() {
    let plain = Dylib {
        no_dylink: true,
        ..Dylib::default()
    }
    .build();
    let msg = error(
        Link::new()
            .search_env(false)
            .library("plain.so", plain.clone()),
    );
    assert_eq!(
        msg,
        "library `plain.so` (given as bytes): is not a dynamic library: it has no `dylink.0` section (compile with -fPIC and link with -shared)"
    );

    let component = wasm_encoder::Component::new().finish();
    let msg = error(
        Link::new()
            .search_env(false)
            .library("c.wasm", component.clone()),
    );
    assert!(
        msg.starts_with("library `c.wasm` (given as bytes): is a component, not a core module"),
        "{msg}"
    );

    let msg = error(
        Link::new()
            .search_env(false)
            .library("junk.so", b"not wasm".to_vec()),
    );
    assert_eq!(
        msg,
        "library `junk.so` (given as bytes): not a WebAssembly file (no `\\0asm` header)"
    );

    let mut broken = plain.clone();
    broken.extend([1, 5, 0]); // a type section cut short
    let msg = error(Link::new().search_env(false).library("broken.so", broken));
    assert!(
        msg.starts_with("library `broken.so` (given as bytes): is not a valid core wasm module: "),
        "{msg}"
    );

    // A dylib without a world given as the bindings.
    let no_world = Dylib::default().build();
    let msg = error(Link::new().search_env(false).bindings("b.so", no_world));
    assert!(
        msg.starts_with("bindings `b.so` carry no WIT world"),
        "{msg}"
    );

    // A component given as an adapter.
    let msg = error(demo_link().adapter("wasi_snapshot_preview1", component));
    assert!(
        msg.starts_with("adapter `wasi_snapshot_preview1`: is a component; an adapter must be a core wasm module"),
        "{msg}"
    );

    // A file that does not exist.
    let msg = error(Link::new().library_path("/nonexistent/libx.so"));
    assert!(
        msg.starts_with("cannot read `/nonexistent/libx.so`"),
        "{msg}"
    );
}

#[test]
fn error_library_names() {
    let lib = Dylib::default().build();
    let msg = error(
        Link::new()
            .search_env(false)
            .library("libx.so", lib.clone())
            .library("libx.so", lib.clone()),
    );
    assert_eq!(
        msg,
        "two inputs are named `libx.so` (given as bytes and given as bytes): library names must be unique"
    );
    let msg = error(
        demo_link()
            .library("libdl.so", lib.clone())
            .dl_openable("libdemo.so"),
    );
    assert!(
        msg.starts_with("a library named `libdl.so` cannot be linked with dl-openable libraries"),
        "{msg}"
    );
    let msg = error(
        Link::new()
            .search_env(false)
            .library("wit-component:stubs", lib.clone()),
    );
    assert!(msg.contains("reserved"), "{msg}");
    let msg = error(
        Link::new()
            .search_env(false)
            .library("wasi_snapshot_preview1", lib),
    );
    assert!(msg.contains("also the name of an adapter"), "{msg}");
    let msg = error(&Link::new());
    assert_eq!(msg, "nothing to link: no libraries given");
}
