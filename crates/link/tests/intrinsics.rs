//! Interpreters that lack intrinsics of componentize.h (built against an
//! older header: the liboldheader fixture), and a C library that needs
//! libdl.so (libdlprobe), linked and run in wasmtime.
//!
//! Needs the toolchain build: `bash toolchain/build.sh`.

mod common;

use common::*;
use componentize_link::{Link, Linked, Origin};
use componentize_testkit::{
    Captured, Host, HostBuilder, LIB_DIR, repo_file, toolchain_file, toolchain_path,
};
use std::path::PathBuf;
use wasmtime::Store;
use wasmtime::component::{ComponentType, Instance, Lift, Lower, Val};
use wit_parser::{Resolve, WorldId};

/// What liboldheader lacks: the map intrinsics and the list iterators.
const OLD_HEADER_LACKS: [&str; 7] = [
    "wit_dylib_map_append",
    "wit_dylib_pop_list_iter",
    "wit_dylib_pop_list_iter_next",
    "wit_dylib_pop_map",
    "wit_dylib_pop_map_iter",
    "wit_dylib_pop_map_iter_next",
    "wit_dylib_push_map",
];

const OLD_HEADER_INTERFACE: &str = "componentize:oldheader/text";

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq)]
#[component(record)]
struct Span {
    start: u32,
    text: String,
}

fn lib_dir() -> PathBuf {
    toolchain_path(LIB_DIR)
}

/// A library of the toolchain build, read once.
fn toolchain_lib(name: &str) -> Vec<u8> {
    toolchain_file(&format!("{LIB_DIR}/{name}")).to_vec()
}

/// The world `name` of the WIT file `file` (a path in the repository).
fn world_of(file: &str, name: &str) -> (Resolve, WorldId) {
    let mut resolve = Resolve::default();
    let pkg = resolve.push_file(repo_file(file)).unwrap();
    let world = resolve.select_world(&[pkg], Some(name)).unwrap();
    (resolve, world)
}

/// The world `name` of fixtures/libs/liboldheader/oldheader.wit.
fn old_header_world(name: &str) -> (Resolve, WorldId) {
    world_of("fixtures/libs/liboldheader/oldheader.wit", name)
}

/// componentize-generate's bindings for `world`, needing `interpreter`.
fn generated(world: &(Resolve, WorldId), interpreter: &str) -> Vec<u8> {
    let mut options = componentize_generate::Options::default();
    options.interpreter(interpreter);
    componentize_generate::generate(&world.0, world.1, &options)
        .unwrap()
        .into_wasm()
}

/// wit-dylib 0.263's bindings for `world`, with the world embedded (wit-dylib
/// leaves it out; the linker needs it).
fn wit_dylib_bindings(world: &(Resolve, WorldId), interpreter: &str) -> Vec<u8> {
    let mut opts = wit_dylib::DylibOpts {
        interpreter: Some(interpreter.into()),
        ..Default::default()
    };
    let mut wasm = wit_dylib::create(&world.0, world.1, Some(&mut opts)).unwrap();
    wit_component::embed_component_metadata(
        &mut wasm,
        &world.0,
        world.1,
        wit_component::StringEncoding::UTF8,
        false,
    )
    .unwrap();
    wasm
}

/// `bindings` (as `name`) linked with the interpreter found in the
/// toolchain's lib/ and libc.so.
fn interpreter_link(name: &str, bindings: Vec<u8>) -> Link {
    let mut link = Link::new();
    link.search_env(false)
        .bindings(name, bindings)
        .search_path(lib_dir())
        .search_path(libc_dir());
    link
}

/// Instantiates a component of an oldheader.wit world, with the host
/// implementing the imported text interface: `greet` says hello, `shift`
/// moves the span and upper-cases its text.
fn instantiate_text(linked: &Linked) -> (Store<Host>, Instance, Captured) {
    let component = componentize_testkit::compile(linked.component()).unwrap();
    let mut linker = componentize_testkit::linker::<()>();
    let mut text = linker.instance(OLD_HEADER_INTERFACE).unwrap();
    text.func_wrap("greet", |_, (name,): (String,)| {
        Ok((format!("hello, {name}"),))
    })
    .unwrap();
    text.func_wrap("shift", |_, (span, by): (Span, i64)| {
        let start = u32::try_from(i64::from(span.start) + by).unwrap_or(u32::MAX);
        Ok((Span {
            start,
            text: span.text.to_uppercase(),
        },))
    })
    .unwrap();
    let (mut store, output) = HostBuilder::new().store(());
    let instance = linker.instantiate(&mut store, &component).unwrap();
    (store, instance, output)
}

/// Calls `greet` and `shift` of the exported text interface: the
/// interpreter answers each by calling the import of the same name.
fn run_text_exports(linked: &Linked) {
    let (mut store, instance, output) = instantiate_text(linked);
    let iface = instance
        .get_export_index(&mut store, None, OLD_HEADER_INTERFACE)
        .unwrap();
    let greet = instance
        .get_export_index(&mut store, Some(&iface), "greet")
        .unwrap();
    let greet = instance
        .get_typed_func::<(&str,), (String,)>(&mut store, greet)
        .unwrap();
    let shift = instance
        .get_export_index(&mut store, Some(&iface), "shift")
        .unwrap();
    let shift = instance
        .get_typed_func::<(Span, i64), (Span,)>(&mut store, shift)
        .unwrap();
    let greeting = greet.call(&mut store, ("old header",));
    assert_eq!(
        greeting
            .map(|r| r.0)
            .map_err(|e| format!("{e:?}\n{}", output.stderr())),
        Ok("hello, old header".to_string())
    );
    let span = Span {
        start: 40,
        text: "shifted".into(),
    };
    let shifted = shift.call(&mut store, (span, -2)).unwrap().0;
    assert_eq!(
        shifted,
        Span {
            start: 38,
            text: "SHIFTED".into()
        }
    );
}

// ------------------------------------------------------------- old header

#[test]
fn a_world_without_maps_links_with_an_old_interpreter_and_runs() {
    let world = old_header_world("no-maps");
    let linked = interpreter_link("no-maps.so", generated(&world, "liboldheader.so"))
        .encode()
        .unwrap();

    let [missing] = linked.missing_intrinsics() else {
        panic!("{:?}", linked.missing_intrinsics());
    };
    assert_eq!(missing.bindings, "no-maps.so");
    assert_eq!(missing.interpreter, ["liboldheader.so"]);
    assert_eq!(missing.missing, OLD_HEADER_LACKS);
    assert!(missing.needed.is_empty(), "{:?}", missing.needed);
    let stubbed: Vec<&str> = linked
        .stubs()
        .iter()
        .filter(|s| s.library == "no-maps.so")
        .map(|s| s.symbol.as_str())
        .collect();
    assert_eq!(stubbed, OLD_HEADER_LACKS);

    let report = linked.report().to_string();
    let names: Vec<String> = OLD_HEADER_LACKS.iter().map(|n| format!("`{n}`")).collect();
    let line = format!(
        "`liboldheader.so` lacks 7 intrinsics of componentize.h imported by `no-maps.so` ({}): the world needs none of them; stubbed\n",
        names.join(", ")
    );
    assert!(report.contains(&line), "{report}");
    assert!(
        report.contains("stub wit_dylib_push_map (imported by no-maps.so)\n"),
        "{report}"
    );

    run_text_exports(&linked);
}

#[test]
fn wit_dylib_bindings_link_with_an_old_interpreter_too() {
    let world = old_header_world("no-maps");
    let linked = interpreter_link("no-maps.so", wit_dylib_bindings(&world, "liboldheader.so"))
        .encode()
        .unwrap();
    let [missing] = linked.missing_intrinsics() else {
        panic!("{:?}", linked.missing_intrinsics());
    };
    assert_eq!(missing.missing, OLD_HEADER_LACKS);
    assert!(missing.needed.is_empty(), "{:?}", missing.needed);
    run_text_exports(&linked);
}

#[test]
fn an_interpreter_with_every_intrinsic_lacks_none() {
    let world = old_header_world("no-maps");
    let linked = interpreter_link("no-maps.so", generated(&world, "libtestinterp.so"))
        .encode()
        .unwrap();
    assert!(linked.missing_intrinsics().is_empty());
    assert!(linked.stubs().iter().all(|s| s.library != "no-maps.so"));
    assert!(!linked.report().to_string().contains("componentize.h"));
}

#[test]
fn a_world_with_a_map_is_refused_naming_the_intrinsics_and_the_type() {
    let world = old_header_world("with-map");
    let mut link = interpreter_link("with-map.so", generated(&world, "liboldheader.so"));
    let names: Vec<String> = OLD_HEADER_LACKS.iter().map(|n| format!("`{n}`")).collect();
    // The export takes a map: the bindings push it into the interpreter;
    // nothing pops a map or lowers a list.
    assert_eq!(
        error(&link),
        format!(
            "`liboldheader.so` lacks 7 intrinsics of componentize.h imported by `with-map.so` ({}); the world needs 2 of them:\n  \
             `wit_dylib_map_append` is needed for `map<string, u32>` in export `count`\n  \
             `wit_dylib_push_map` is needed for `map<string, u32>` in export `count`\n\
             `liboldheader.so` was probably built against an older componentize.h: rebuild it against the current one (`componentize header` prints it), or change the world so that it does not use what needs these intrinsics",
            names.join(", ")
        )
    );

    // Asked to stub missing functions, it links, and says what will trap.
    let linked = link.stub_missing_functions(true).encode().unwrap();
    let [missing] = linked.missing_intrinsics() else {
        panic!("{:?}", linked.missing_intrinsics());
    };
    let needed: Vec<&str> = missing.needed.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(needed, ["wit_dylib_map_append", "wit_dylib_push_map"]);
    let report = linked.report().to_string();
    assert!(
        report.contains(
            ": `wit_dylib_map_append` is needed for `map<string, u32>` in export `count`, `wit_dylib_push_map` is needed for `map<string, u32>` in export `count`; stubbed as asked (stub-missing-functions): calling them traps\n"
        ),
        "{report}"
    );

    // The rest of the world works; passing a map traps in the stub, and the
    // backtrace names it.
    run_text_exports(&linked);
    let (mut store, instance, _) = instantiate_text(&linked);
    let words = Val::Map(vec![(Val::String("word".into()), Val::U32(2))]);
    let err = componentize_testkit::call_export(&mut store, &instance, None, "count", &[words])
        .unwrap_err();
    let err = format!("{err:?}");
    assert!(
        err.contains("componentize:missing-intrinsics!wit_dylib_push_map"),
        "{err}"
    );
    assert!(
        err.contains("wasm `unreachable` instruction executed"),
        "{err}"
    );
}

#[test]
fn the_intrinsic_error_comes_with_other_unresolved_symbols() {
    // A second library with an import nobody defines: one error says both.
    let other = Dylib {
        imports: vec![("env", "nowhere", vec![], vec![])],
        world: Some("package test:other; world other { export other-probe: func() -> s32; }"),
        funcs: vec![("other-probe", Body::Const(1))],
        ..Dylib::default()
    }
    .build();
    let world = old_header_world("with-map");
    let mut link = interpreter_link("with-map.so", generated(&world, "liboldheader.so"));
    link.library("other.so", other);
    let msg = error(&link);
    assert!(
        msg.starts_with("`liboldheader.so` lacks 7 intrinsics of componentize.h"),
        "{msg}"
    );
    assert!(
        msg.ends_with(
            "\nunresolved symbols:\n  `other.so` needs:\n    `nowhere` (function ())\n(if these functions are never called, link with stub_missing_functions / --stub-missing-functions to make them trap instead)"
        ),
        "{msg}"
    );
}

// ------------------------------------------------------------- libdl

/// The `needed` list of a dylib's `dylink.0` section.
fn needed(module: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let Ok(wasmparser::Payload::CustomSection(s)) = payload
            && let wasmparser::KnownCustom::Dylink0(reader) = s.as_known()
        {
            for sub in reader {
                if let Ok(wasmparser::Dylink0Subsection::Needed(names)) = sub {
                    out.extend(names.iter().map(|n| n.to_string()));
                }
            }
        }
    }
    out
}

#[test]
fn a_c_library_needing_libdl_links_with_the_built_in_one_and_dlopen_works() {
    let mut dlprobe = toolchain_lib("libdlprobe.so");
    assert_eq!(needed(&dlprobe), ["libdl.so", "libc.so"]);
    // No libdl.so where the link looks: the built-in one is the only one.
    for dir in [lib_dir(), libc_dir()] {
        assert!(!dir.join("libdl.so").exists(), "{}", dir.display());
    }
    let wit = std::fs::read_to_string(repo_file("fixtures/libs/libdlprobe/dlprobe.wit")).unwrap();
    embed_world(&mut dlprobe, &wit);

    let linked = Link::new()
        .search_env(false)
        .library("libdlprobe.so", dlprobe)
        .dl_openable("libcounter.so")
        .search_path(lib_dir())
        .search_path(libc_dir())
        .encode()
        .unwrap();
    assert_eq!(
        library(&linked, "libdl.so").origin,
        Origin::BuiltIn { needed_by: None }
    );
    let report = linked.report().to_string();
    assert!(
        report.contains(
            "\nlinked libdl.so (built into wit-component, for the dl-openable libraries)\n"
        ),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "linked libcounter.so (found at `{}`, dl-openable)\n",
            lib_dir().join("libcounter.so").display()
        )),
        "{report}"
    );

    let (mut store, instance) = instantiate(linked.component());
    let probe = instance
        .get_typed_func::<(), (i32,)>(&mut store, "dl-probe")
        .unwrap();
    // counter_next through dlsym: the loaded library keeps its state.
    for n in 1..=3 {
        assert_eq!(probe.call(&mut store, ()).unwrap().0, n);
    }
    let misses = instance
        .get_typed_func::<(), (i32,)>(&mut store, "dl-misses")
        .unwrap();
    assert_eq!(misses.call(&mut store, ()).unwrap().0, 2);
}

/// lua.so imports componentize_task_context_get/set weakly. With async
/// exports in the world the link stage adds the library defining them (it
/// imports `$root` context.get/set); without, it is left out and the weak
/// imports become traps, so a sync world uses no component-model async.
#[test]
fn the_task_context_library_is_linked_for_async_exports_only() {
    const LIBRARY: &str = "componentize-task-context.so";
    let weak = [
        "componentize_task_context_get",
        "componentize_task_context_set",
    ];
    let linked = interpreter_link(
        "bindings.so",
        generated(&world_of("fixtures/wit/async.wit", "async-run"), "lua.so"),
    )
    .encode()
    .unwrap();
    let provided = linked.libraries().iter().find(|l| l.name == LIBRARY);
    assert_eq!(
        provided.map(|l| &l.origin),
        Some(&Origin::Provided {
            needed_by: "lua.so".into()
        }),
        "{:?}",
        linked.libraries()
    );
    assert!(
        linked
            .stubs()
            .iter()
            .all(|s| !weak.contains(&s.symbol.as_str()))
    );
    assert!(uses_context_get(linked.component()), "no context.get");

    let linked = interpreter_link(
        "bindings.so",
        generated(&old_header_world("no-maps"), "lua.so"),
    )
    .encode()
    .unwrap();
    assert!(linked.libraries().iter().all(|l| l.name != LIBRARY));
    let stubbed: Vec<&str> = linked.stubs().iter().map(|s| s.symbol.as_str()).collect();
    for name in weak {
        assert!(
            stubbed.contains(&name),
            "{name} is not stubbed: {stubbed:?}"
        );
    }
    assert!(
        !uses_context_get(linked.component()),
        "a sync world uses context.get"
    );
}

/// Whether `component` has a `context.get` canonical function.
fn uses_context_get(component: &[u8]) -> bool {
    use wasmparser::{CanonicalFunction, Parser, Payload};
    Parser::new(0)
        .parse_all(component)
        .any(|payload| match payload {
            Ok(Payload::ComponentCanonicalSection(reader)) => reader
                .into_iter()
                .any(|f| matches!(f, Ok(CanonicalFunction::ContextGet { .. }))),
            _ => false,
        })
}
