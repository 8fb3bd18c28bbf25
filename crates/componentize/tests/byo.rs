//! Bringing your own interpreter through the one command: partial bindings
//! next to a library that implements an interface natively, and a library
//! that needs `libdl.so`. Needs the toolchain build: `bash
//! toolchain/build.sh`.

mod common;

use common::{componentize, failed, libc_dir, ok, toolchain};
use componentize::{Pipeline, Source};
use std::sync::OnceLock;
use wasmtime::component::Val;

/// The partial-bindings fixture: fixtures/libs/libnative/native.wit.
const NATIVE_WIT: &str = "fixtures/libs/libnative/native.wit";
/// The interface libnative implements.
const GREET: &str = "componentize:partial/greet";

/// A toolchain library with `world` of the WIT file `wit` embedded as its
/// component-type section, as a language runtime's build would leave a
/// library with hand-written bindings.
fn with_world(lib: &str, wit: &str, world: &str) -> Source {
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve
        .push_path(componentize_testkit::repo_file(wit))
        .unwrap();
    let world = resolve.select_world(&[pkg], Some(world)).unwrap();
    let mut wasm = std::fs::read(toolchain(&format!("lib/{lib}"))).unwrap();
    wit_component::embed_component_metadata(
        &mut wasm,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )
    .unwrap();
    Source::bytes(lib, wasm)
}

/// libnative.so, which implements `greet` natively.
fn libnative() -> Source {
    static LIB: OnceLock<Source> = OnceLock::new();
    LIB.get_or_init(|| with_world("libnative.so", NATIVE_WIT, "native"))
        .clone()
}

/// A pipeline for the toolchain library `interpreter` and the WIT at `wit`
/// (relative to the repository), with libc.so's folder to search.
fn pipeline(interpreter: &str, wit: &str) -> Pipeline {
    let mut pipeline = Pipeline::new(
        Source::path(toolchain(&format!("lib/{interpreter}"))),
        componentize_testkit::repo_file(wit),
    );
    pipeline.search_path(libc_dir());
    pipeline
}

/// Runs `pipeline`: what it built, and the details it reported (the link
/// report among them).
fn run(pipeline: &Pipeline) -> (anyhow::Result<componentize::Built>, String) {
    let mut details = String::new();
    let built = pipeline.run(&mut |event| {
        if let componentize::Event::Detail(_, text) = event {
            details.push_str(&text)
        }
    });
    (built, details)
}

/// The world `partial` with libsnapinterp as the interpreter and `greet`
/// left out of the bindings.
fn partial_pipeline() -> Pipeline {
    let mut pipeline = pipeline("libsnapinterp.so", NATIVE_WIT);
    let mut generate = componentize_generate::Options::default();
    generate.exclude_interface(GREET);
    pipeline
        .world("partial")
        .generate_options(generate)
        .script(Source::bytes("setup", b"count 5\nset who world\n".to_vec()));
    pipeline
}

#[test]
fn an_interface_left_out_of_the_bindings_comes_from_a_native_library() {
    let mut pipeline = partial_pipeline();
    pipeline.library(libnative());
    let built = pipeline.run(&mut |_| {}).unwrap();
    // The bindings neither implement nor declare `greet`.
    let bindings = wit_component::metadata::decode(&built.bindings).unwrap().1;
    let world = &bindings.resolve.worlds[bindings.world];
    let exports: Vec<String> = world
        .exports
        .keys()
        .map(|k| bindings.resolve.name_world_key(k))
        .collect();
    assert!(!exports.iter().any(|e| e.starts_with(GREET)), "{exports:?}");
    assert!(exports.contains(&"state".to_string()), "{exports:?}");
    let core_exports: Vec<String> = wasmparser::Parser::new(0)
        .parse_all(&built.bindings)
        .filter_map(|p| match p.unwrap() {
            wasmparser::Payload::ExportSection(s) => Some(
                s.into_iter()
                    .map(|e| e.unwrap().name.to_string())
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(
        !core_exports.iter().any(|e| e.starts_with(GREET)),
        "{core_exports:?}"
    );

    // The component exports the whole world; each part works.
    let (mut store, instance) = instantiate(&built.component);
    let call = |store: &mut _, iface, name, args: &[Val]| {
        componentize_testkit::call_export(store, &instance, iface, name, args).unwrap()
    };
    let hello = call(
        &mut store,
        Some(GREET),
        "hello",
        &[Val::String("you".into())],
    );
    assert_eq!(hello, [Val::String("hello, you".into())]);
    let sum = call(&mut store, Some(GREET), "add", &[Val::U32(40), Val::U32(2)]);
    assert_eq!(sum, [Val::U32(42)]);
    // The snapshot holds what the script did.
    assert_eq!(call(&mut store, None, "bump", &[]), [Val::U32(6)]);
    let [Val::String(state)] = &call(&mut store, None, "state", &[])[..] else {
        panic!("state returned no string");
    };
    assert!(state.contains("counter=6 entries=1"), "{state}");
}

#[test]
fn a_left_out_export_that_no_library_defines_is_an_error() {
    // Without libnative nobody implements `greet`: link says so.
    let err = partial_pipeline().run(&mut |_| {}).err().unwrap();
    let err = format!("{err:#}");
    assert!(err.contains(GREET), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn generate_takes_exclusions_and_names_what_does_not_match() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bindings.so");
    let wit = componentize_testkit::repo_file(NATIVE_WIT);
    ok(&componentize()
        .args([
            "generate",
            "--world",
            "partial",
            "--exclude-export",
            GREET,
            "-o",
        ])
        .arg(&out)
        .arg(&wit)
        .output()
        .unwrap());
    let bindings = std::fs::read(&out).unwrap();
    let section = wasmparser::Parser::new(0)
        .parse_all(&bindings)
        .find_map(|p| match p.unwrap() {
            wasmparser::Payload::CustomSection(c)
                if c.name() == componentize_contract::excluded::EXCLUDED_EXPORTS_SECTION =>
            {
                Some(c.data().to_vec())
            }
            _ => None,
        })
        .expect("the bindings name what they leave out");
    assert_eq!(
        componentize_contract::excluded::decode_excluded_exports(&section).unwrap(),
        [GREET]
    );

    let stderr = failed(
        &componentize()
            .args(["generate", "--world", "partial", "--exclude-interface"])
            .arg(format!("{GREET}@0.2"))
            .arg("-o")
            .arg(&out)
            .arg(&wit)
            .output()
            .unwrap(),
    );
    assert!(
        stderr.contains(&format!(
            "--exclude-interface `{GREET}@0.2` matches no interface of world `partial` (its \
             interfaces: {GREET})"
        )),
        "{stderr}"
    );
}

#[test]
fn exclusions_are_part_of_the_generate_key() {
    let dir = tempfile::tempdir().unwrap();
    let cache = componentize::cache::Cache::at(dir.path().join("cache"));
    let run = |generate: componentize_generate::Options| {
        let mut pipeline = partial_pipeline();
        pipeline
            .library(libnative())
            .generate_options(generate)
            .cache(Some(cache.clone()));
        let built = pipeline.run(&mut |_| {}).unwrap();
        let stages: Vec<bool> = built.stages.iter().map(|s| s.cached).collect();
        (built.component, stages)
    };
    let mut by_interface = componentize_generate::Options::default();
    by_interface.exclude_interface(GREET);
    let (first, stages) = run(by_interface.clone());
    assert_eq!(stages, [false, false, false]);
    assert_eq!(run(by_interface).1, [true, true, true]);
    // `greet` is only exported: leaving out the export instead gives the
    // same bindings, but generate must run again to know it.
    let mut by_export = componentize_generate::Options::default();
    by_export.exclude_export(GREET);
    let (second, stages) = run(by_export);
    assert_eq!(stages, [false, true, true]);
    assert_eq!(first, second);
}

/// Instantiates `component` in a WASI host.
fn instantiate(
    component: &[u8],
) -> (
    wasmtime::Store<componentize_testkit::Host>,
    wasmtime::component::Instance,
) {
    let component = componentize_testkit::compile(component).unwrap();
    let (mut store, _) = componentize_testkit::HostBuilder::new().store(());
    let instance = componentize_testkit::linker::<()>()
        .instantiate(&mut store, &component)
        .unwrap();
    (store, instance)
}

/// snapdemo with libdlprobe, linked with `dl_openable`; the component and
/// the link report.
fn build_dlprobe(dl_openable: &[&str]) -> (Vec<u8>, String) {
    let mut pipeline = pipeline("libsnapinterp.so", "fixtures/init/snapdemo.wit");
    let mut link = componentize_link::Options::default();
    link.search.push(libc_dir());
    link.dl_openable = dl_openable.iter().map(|s| s.to_string()).collect();
    pipeline
        .library(with_world(
            "libdlprobe.so",
            "fixtures/libs/libdlprobe/dlprobe.wit",
            "dlprobe",
        ))
        .link_options(link);
    let (built, details) = run(&pipeline);
    (built.unwrap().component, details)
}

#[test]
fn a_library_that_needs_libdl_builds_with_the_one_command() {
    // libdlprobe needs libdl.so, which no search folder has: the built-in
    // one is linked. Nothing is dl-openable, so its dlopen fails.
    let (component, details) = build_dlprobe(&[]);
    assert!(
        details.contains("libdl.so (built into wit-component, needed by `libdlprobe.so`"),
        "{details}"
    );
    let component = componentize_testkit::compile(&component).unwrap();
    let (mut store, stdio) = componentize_testkit::HostBuilder::new().store(());
    let instance = componentize_testkit::linker::<()>()
        .instantiate(&mut store, &component)
        .unwrap();
    let probe = componentize_testkit::call_export(&mut store, &instance, None, "dl-probe", &[]);
    assert!(probe.is_err());
    assert!(
        stdio.stderr().contains("dlopen(\"libcounter.so\") failed"),
        "{}",
        stdio.stderr()
    );

    // With libcounter.so dl-openable, dlopen and dlsym find it, and miss
    // what is not there.
    let (component, details) = build_dlprobe(&["libcounter.so"]);
    assert!(details.contains("libcounter.so (found at"), "{details}");
    let (mut store, instance) = instantiate(&component);
    for expected in 1..=2 {
        let got = componentize_testkit::call_export(&mut store, &instance, None, "dl-probe", &[]);
        assert_eq!(got.unwrap(), [Val::S32(expected)]);
    }
    let misses = componentize_testkit::call_export(&mut store, &instance, None, "dl-misses", &[]);
    assert_eq!(misses.unwrap(), [Val::S32(2)]);
}

#[test]
fn an_init_function_inside_an_interface_is_removed_by_the_one_command() {
    const API: &str = "componentize:snapshared/api";
    let build = |call: &str| {
        let mut pipeline = pipeline("libsnapinterp.so", "fixtures/init/shared.wit");
        pipeline.init_func(call);
        pipeline.run(&mut |_| {}).unwrap().component
    };
    for (call, removed, effect) in [
        (
            format!("{API}.setup"),
            "setup",
            "marker=set by setup counter=100",
        ),
        (
            format!("{API}.configure(\"count 7\")"),
            "configure",
            "marker=set by configure counter=7",
        ),
    ] {
        let component = build(&call);
        let functions = componentize_testkit::instance_functions(&component, API);
        assert_eq!(functions.len(), 9, "{functions:?}");
        assert!(!functions.iter().any(|f| f == removed), "{functions:?}");
        let (mut store, instance) = instantiate(&component);
        let state =
            componentize_testkit::call_export(&mut store, &instance, Some(API), "state", &[]);
        let [Val::String(state)] = &state.unwrap()[..] else {
            panic!("state returned no string");
        };
        assert!(state.contains(effect), "{call}: {state}");
        let echo = componentize_testkit::call_export(
            &mut store,
            &instance,
            Some(API),
            "echo",
            &[Val::String("still here".into())],
        );
        assert_eq!(echo.unwrap(), [Val::String("still here".into())]);
    }
}

#[test]
fn an_interpreter_built_against_an_older_header_builds_when_the_world_allows() {
    const WIT: &str = "fixtures/libs/liboldheader/oldheader.wit";
    let build = |world: &str| {
        let mut pipeline = pipeline("liboldheader.so", WIT);
        pipeline.world(world);
        run(&pipeline)
    };
    // No maps, no lists of lists: the 7 missing intrinsics are not needed.
    let (built, details) = build("no-maps");
    let built = built.unwrap();
    assert!(
        details.contains("`liboldheader.so` lacks 7 intrinsics"),
        "{details}"
    );
    assert!(
        details.contains("the world needs none of them"),
        "{details}"
    );
    let component = componentize_testkit::compile(&built.component).unwrap();
    let exports: Vec<String> = component
        .component_type()
        .exports(componentize_testkit::engine())
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(exports, ["componentize:oldheader/text"]);
    // A map parameter needs two of them: the error says which and why.
    let (built, _) = build("with-map");
    let err = format!("{:#}", built.err().unwrap());
    let absent: Vec<&str> = [
        "wit_dylib_push_map",
        "wit_dylib_map_append",
        "map<string, u32>",
        "count",
    ]
    .into_iter()
    .filter(|expected| !err.contains(expected))
    .collect();
    assert!(absent.is_empty(), "{absent:?} not in: {err}");
}
