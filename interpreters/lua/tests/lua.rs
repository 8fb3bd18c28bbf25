//! End-to-end tests of the Lua binding (lua.so).
//!
//! World -> bindings (componentize-generate) -> component linked with
//! `wit_component::Linker` from lua.so, the bindings, liblua.so,
//! libsetjmp.so and libc.so -> wasmtime. The script is handed to the init
//! export (componentize:init/init@0.1.0) before other exports are called, as
//! the init stage will do (without the snapshot).
//!
//! Inputs: interpreters/lua/tests/wit/ (worlds `hello` and `full`) and the
//! scripts in tests/lua/. Each world is compiled once per test binary; every
//! test makes its own instance (and may give it a different script).

mod common;

use anyhow::{Context, Result, bail};
use common::{example, script};
use componentize_contract::INIT_INTERFACE;
use componentize_testkit::{Captured, HostBuilder};
use std::sync::OnceLock;
use wasmtime::component::{
    Component, Func, Instance, Linker, Resource, ResourceAny, ResourceType, Val,
};
use wasmtime::{Store, StoreContextMut};
use wit_parser::{PackageId, Resolve};

const TYPES: &str = "componentize:lua-tests/types";
const HOST_API: &str = "componentize:lua-tests/host-api";

// ---------------------------------------------------------------- building

struct Wit {
    resolve: Resolve,
    package: PackageId,
}

fn wit() -> &'static Wit {
    static WIT: OnceLock<Wit> = OnceLock::new();
    WIT.get_or_init(|| {
        let (resolve, package) = common::test_wit().expect("the test worlds");
        Wit { resolve, package }
    })
}

/// The compiled component of `world`, built once per test binary.
fn component(world: &'static str) -> Component {
    let wit = wit();
    let world_id = wit
        .resolve
        .select_world(&[wit.package], Some(world))
        .unwrap_or_else(|e| panic!("world `{world}`: {e}"));
    let t = std::time::Instant::now();
    let wasm = common::link(&wit.resolve, world_id)
        .unwrap_or_else(|e| panic!("building world `{world}`: {e:#}"));
    let component = componentize_testkit::compile(&wasm)
        .unwrap_or_else(|e| panic!("building world `{world}`: {e:#}"));
    eprintln!(
        "world `{world}`: {} byte component, linked and compiled in {:.2?}",
        wasm.len(),
        t.elapsed()
    );
    component
}

// ---------------------------------------------------------------- the host

struct Blob(Vec<u8>);

/// The test host's own state, next to WASI.
#[derive(Default)]
struct LuaHost {
    log: Vec<String>,
    live_blobs: i64,
}

type Host = componentize_testkit::Host<LuaHost>;

fn new_blob(host: &mut Host, bytes: Vec<u8>) -> wasmtime::Result<Resource<Blob>> {
    host.data.live_blobs += 1;
    Ok(host.table.push(Blob(bytes))?)
}

fn blob_bytes(host: &Host, b: &Resource<Blob>) -> wasmtime::Result<Vec<u8>> {
    Ok(host.table.get(b)?.0.clone())
}

/// componentize:lua-tests/host-api, implemented here.
fn add_host_api(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    let mut inst = linker.instance(HOST_API)?;
    inst.resource("blob", ResourceType::host::<Blob>(), |mut store, rep| {
        let host = store.data_mut();
        host.table.delete(Resource::<Blob>::new_own(rep))?;
        host.data.live_blobs -= 1;
        Ok(())
    })?;
    inst.func_wrap(
        "[constructor]blob",
        |mut store: StoreContextMut<'_, Host>, (init,): (Vec<u8>,)| {
            Ok((new_blob(store.data_mut(), init)?,))
        },
    )?;
    inst.func_wrap(
        "[method]blob.size",
        |store: StoreContextMut<'_, Host>, (b,): (Resource<Blob>,)| {
            Ok((blob_bytes(store.data(), &b)?.len() as u32,))
        },
    )?;
    inst.func_wrap(
        "[method]blob.append",
        |mut store: StoreContextMut<'_, Host>, (b, data): (Resource<Blob>, Vec<u8>)| {
            store.data_mut().table.get_mut(&b)?.0.extend(data);
            Ok(())
        },
    )?;
    inst.func_wrap(
        "[method]blob.read",
        |store: StoreContextMut<'_, Host>, (b,): (Resource<Blob>,)| {
            Ok((blob_bytes(store.data(), &b)?,))
        },
    )?;
    inst.func_wrap(
        "[static]blob.concat",
        |mut store: StoreContextMut<'_, Host>, (a, b): (Resource<Blob>, Resource<Blob>)| {
            let host = store.data_mut();
            let mut bytes = blob_bytes(host, &a)?;
            bytes.extend(blob_bytes(host, &b)?);
            Ok((new_blob(host, bytes)?,))
        },
    )?;
    inst.func_wrap(
        "log",
        |mut store: StoreContextMut<'_, Host>, (msg,): (String,)| {
            store.data_mut().data.log.push(msg);
            Ok(())
        },
    )?;
    inst.func_wrap("add", |_: StoreContextMut<'_, Host>, (a, b): (i32, i32)| {
        Ok((a.wrapping_add(b),))
    })?;
    inst.func_new("swap", |_store, _ty, params, results| {
        let Some(Val::Record(fields)) = params.first() else {
            return Err(wasmtime::Error::msg(format!(
                "swap: expected a record, got {params:?}"
            )));
        };
        let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let (Some(x), Some(y)) = (get("x"), get("y")) else {
            return Err(wasmtime::Error::msg(format!("swap: bad record {fields:?}")));
        };
        results[0] = Val::Record(vec![("x".into(), y), ("y".into(), x)]);
        Ok(())
    })?;
    inst.func_wrap("classify", |_: StoreContextMut<'_, Host>, (n,): (i32,)| {
        let r: Result<String, String> = if n < 0 {
            Err("negative".into())
        } else if n % 2 == 0 {
            Ok("even".into())
        } else {
            Ok("odd".into())
        };
        Ok((r,))
    })?;
    inst.func_wrap(
        "maybe-double",
        |_: StoreContextMut<'_, Host>, (n,): (Option<u32>,)| Ok((n.map(|x| x.wrapping_mul(2)),)),
    )?;
    Ok(())
}

/// One instance of a component, with captured stdout and stderr.
struct Run {
    store: Store<Host>,
    instance: Instance,
    output: Captured,
}

impl Run {
    fn new(component: &Component) -> Result<Run> {
        let mut linker: Linker<Host> = componentize_testkit::linker();
        add_host_api(&mut linker).map_err(anyhow::Error::from)?;
        let (mut store, output) = HostBuilder::new()
            .env("LUA_TEST", "hello env")
            .args(&["app", "two words"])
            .store(LuaHost::default());
        let instance = linker
            .instantiate(&mut store, component)
            .map_err(anyhow::Error::from)
            .context("instantiating")?;
        Ok(Run {
            store,
            instance,
            output,
        })
    }

    /// `new` and a successful init with `source`.
    fn with_script(component: &Component, source: &str) -> Result<Run> {
        let mut run = Run::new(component)?;
        if let Err(e) = run.init("app.lua", source)? {
            bail!("init failed: {e}\nstderr: {}", run.stderr());
        }
        Ok(run)
    }

    fn func(&mut self, iface: Option<&str>, name: &str) -> Result<Func> {
        componentize_testkit::export_func(&mut self.store, &self.instance, iface, name)
    }

    fn call(&mut self, iface: Option<&str>, name: &str, args: &[Val]) -> Result<Option<Val>> {
        let mut results =
            componentize_testkit::call_export(&mut self.store, &self.instance, iface, name, args)
                .with_context(|| format!("stderr: {:?}", self.stderr()))?;
        Ok(results.pop())
    }

    /// Calls `name` of interface `types` and returns its result.
    fn types(&mut self, name: &str, args: &[Val]) -> Result<Val> {
        self.call(Some(TYPES), name, args)?
            .with_context(|| format!("{name} returned nothing"))
    }

    fn init(&mut self, name: &str, source: &str) -> Result<Result<(), String>> {
        let args = [
            Val::String(name.into()),
            Val::List(source.bytes().map(Val::U8).collect()),
        ];
        match self.call(
            Some(INIT_INTERFACE),
            componentize_contract::INIT_FUNCTION,
            &args,
        )? {
            Some(Val::Result(Ok(None))) => Ok(Ok(())),
            Some(Val::Result(Err(Some(e)))) => match *e {
                Val::String(s) => Ok(Err(s)),
                other => bail!("init: err payload {other:?}"),
            },
            other => bail!("init returned {other:?}"),
        }
    }

    fn stdout(&self) -> String {
        self.output.stdout()
    }

    fn stderr(&self) -> String {
        self.output.stderr()
    }
}

// ---------------------------------------------------------------- values

fn rec(fields: &[(&str, Val)]) -> Val {
    Val::Record(
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

fn string(s: &str) -> Val {
    Val::String(s.into())
}

fn some(v: Val) -> Val {
    Val::Option(Some(Box::new(v)))
}

fn bytes(b: &[u8]) -> Val {
    Val::List(b.iter().copied().map(Val::U8).collect())
}

fn point(x: i32, y: i32) -> Val {
    rec(&[("x", Val::S32(x)), ("y", Val::S32(y))])
}

/// Map entries and flags in a fixed order, so values compare.
fn normalize(v: Val) -> Val {
    match v {
        Val::Map(mut entries) => {
            entries.sort_by(|a, b| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)));
            Val::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (normalize(k), normalize(v)))
                    .collect(),
            )
        }
        Val::Flags(mut names) => {
            names.sort();
            Val::Flags(names)
        }
        Val::Record(fields) => {
            Val::Record(fields.into_iter().map(|(k, v)| (k, normalize(v))).collect())
        }
        Val::List(items) => Val::List(items.into_iter().map(normalize).collect()),
        Val::Tuple(items) => Val::Tuple(items.into_iter().map(normalize).collect()),
        Val::Option(o) => Val::Option(o.map(|v| Box::new(normalize(*v)))),
        other => other,
    }
}

/// The value the host sends to check-everything (the script checks each field).
fn host_everything() -> Val {
    rec(&[
        ("a-u8", Val::U8(200)),
        ("a-u16", Val::U16(60000)),
        ("a-u32", Val::U32(4_000_000_000)),
        ("a-u64", Val::U64(u64::MAX)),
        ("a-s8", Val::S8(-5)),
        ("a-s16", Val::S16(-300)),
        ("a-s32", Val::S32(-70000)),
        ("a-s64", Val::S64(i64::MIN)),
        ("a-f32", Val::Float32(0.25)),
        ("a-f64", Val::Float64(-2.5)),
        ("a-bool", Val::Bool(false)),
        ("a-char", Val::Char('ß')),
        ("a-string", string("ünïcödé")),
        ("bytes", bytes(b"\0abc\xff")),
        ("words", Val::List(vec![string("x"), string("y")])),
        (
            "nums",
            Val::List(vec![Val::S32(-1), Val::S32(0), Val::S32(100000)]),
        ),
        ("floats", Val::List(vec![Val::Float64(1.25)])),
        ("pair", Val::Tuple(vec![string("p"), Val::U32(9)])),
        ("maybe", some(string("m"))),
        ("nested", some(some(Val::U32(5)))),
        ("outcome", Val::Result(Ok(Some(Box::new(Val::U32(7)))))),
        ("empty-outcome", Val::Result(Err(None))),
        ("color", Val::Enum("dark-blue".into())),
        ("perms", Val::Flags(vec!["write".into(), "exec-all".into()])),
        (
            "shape",
            Val::Variant("circle".into(), Some(Box::new(Val::Float64(2.5)))),
        ),
        ("points", Val::List(vec![point(5, 6)])),
        (
            "sparse",
            Val::List(vec![
                Val::Option(None),
                some(Val::U32(4)),
                Val::Option(None),
            ]),
        ),
        (
            "table",
            Val::Map(vec![(string("k"), Val::U32(1)), (string("v"), Val::U32(2))]),
        ),
        ("ident", Val::U64(7)),
    ])
}

/// What make-everything must return (the Lua literal in full.lua).
fn lua_everything() -> Val {
    rec(&[
        ("a-u8", Val::U8(255)),
        ("a-u16", Val::U16(65535)),
        ("a-u32", Val::U32(u32::MAX)),
        ("a-u64", Val::U64(u64::MAX)),
        ("a-s8", Val::S8(-128)),
        ("a-s16", Val::S16(-32768)),
        ("a-s32", Val::S32(i32::MIN)),
        ("a-s64", Val::S64(i64::MIN)),
        ("a-f32", Val::Float32(1.5)),
        ("a-f64", Val::Float64(std::f64::consts::PI)),
        ("a-bool", Val::Bool(true)),
        ("a-char", Val::Char('€')),
        ("a-string", string("héllo wörld")),
        ("bytes", bytes(&[0, 1, 2, 255])),
        (
            "words",
            Val::List(vec![string("alpha"), string("beta"), string("")]),
        ),
        (
            "nums",
            Val::List(vec![Val::S32(1), Val::S32(-2), Val::S32(3)]),
        ),
        (
            "floats",
            Val::List(vec![
                Val::Float64(0.5),
                Val::Float64(-1e300),
                Val::Float64(3.0),
            ]),
        ),
        ("pair", Val::Tuple(vec![string("two"), Val::U32(2)])),
        ("maybe", Val::Option(None)),
        ("nested", some(Val::Option(None))),
        ("outcome", Val::Result(Err(Some(Box::new(string("bad")))))),
        ("empty-outcome", Val::Result(Ok(None))),
        ("color", Val::Enum("dark-blue".into())),
        ("perms", Val::Flags(vec!["read".into(), "exec-all".into()])),
        (
            "shape",
            Val::Variant("rect".into(), Some(Box::new(point(1, -1)))),
        ),
        ("points", Val::List(vec![point(1, 2), point(3, 4)])),
        (
            "sparse",
            Val::List(vec![
                some(Val::U32(7)),
                Val::Option(None),
                some(Val::U32(9)),
            ]),
        ),
        (
            "table",
            Val::Map(vec![
                (string("one"), Val::U32(1)),
                (string("two"), Val::U32(2)),
            ]),
        ),
        ("ident", Val::U64(42)),
    ])
}

fn full() -> Component {
    component("full")
}

fn full_run() -> Run {
    Run::with_script(&full(), &script("full.lua")).unwrap()
}

fn resource(v: Option<Val>) -> ResourceAny {
    match v {
        Some(Val::Resource(r)) => r,
        other => panic!("expected a resource, got {other:?}"),
    }
}

// ---------------------------------------------------------------- 1. hello
// examples/hello under wasmtime-wasi's command runner.

/// Runs the hello example's `wasi:cli/run` on `run` and checks what it
/// printed.
fn assert_hello_runs(run: &mut Run) {
    let command =
        wasmtime_wasi::p2::bindings::sync::Command::new(&mut run.store, &run.instance).unwrap();
    let status = command.wasi_cli_run().call_run(&mut run.store).unwrap();
    assert_eq!(status, Ok(()), "stderr: {}", run.stderr());
    assert_eq!(
        run.stdout(),
        "hello from Lua\nargument: app\nargument: two words\n"
    );
}

#[test]
fn hello_command_prints() {
    let component = component("hello");
    let mut run = Run::new(&component).unwrap();
    run.init("app.lua", &common::read(&example("hello").join("app.lua")))
        .unwrap()
        .unwrap();
    assert_hello_runs(&mut run);
}

// ---------------------------------------------------------------- 2. values

#[test]
fn lua_values_lower_to_wit() {
    let mut run = full_run();
    let got = run.types("make-everything", &[]).unwrap();
    assert_eq!(normalize(got), normalize(lua_everything()));
}

#[test]
fn wit_values_lift_to_lua() {
    let mut run = full_run();
    let fails = run.types("check-everything", &[host_everything()]).unwrap();
    assert_eq!(fails, Val::List(vec![]), "fields Lua saw wrongly");
}

#[test]
fn values_round_trip() {
    let mut run = full_run();
    for v in [host_everything(), lua_everything()] {
        let got = run
            .types("echo-everything", std::slice::from_ref(&v))
            .unwrap();
        assert_eq!(normalize(got), normalize(v));
    }
    for shape in [
        Val::Variant("circle".into(), Some(Box::new(Val::Float64(-0.5)))),
        Val::Variant("rect".into(), Some(Box::new(point(7, 8)))),
        Val::Variant("nothing".into(), None),
    ] {
        assert_eq!(
            run.types("echo-shape", std::slice::from_ref(&shape))
                .unwrap(),
            shape
        );
    }
    for n in [
        Val::Option(None),
        some(Val::Option(None)),
        some(some(Val::U32(3))),
    ] {
        assert_eq!(
            run.types("echo-nested", std::slice::from_ref(&n)).unwrap(),
            n
        );
    }
    for n in [0, 1, i64::MAX as u64, 1 << 63, u64::MAX] {
        assert_eq!(run.types("echo-u64", &[Val::U64(n)]).unwrap(), Val::U64(n));
    }
}

#[test]
fn exported_resource_is_a_lua_class() {
    let mut run = full_run();
    let a = resource(
        run.call(Some(TYPES), "[constructor]counter", &[Val::S64(5)])
            .unwrap(),
    );
    let b = resource(
        run.call(Some(TYPES), "[constructor]counter", &[Val::S64(7)])
            .unwrap(),
    );
    let r = run.types(
        "[method]counter.increment",
        &[Val::Resource(a), Val::S64(2)],
    );
    assert_eq!(r.unwrap(), Val::S64(7));
    let sum = resource(
        run.call(
            Some(TYPES),
            "[static]counter.sum",
            &[Val::Resource(a), Val::Resource(b)],
        )
        .unwrap(),
    );
    assert_eq!(
        run.types("[method]counter.get", &[Val::Resource(sum)])
            .unwrap(),
        Val::S64(14)
    );
    // own<counter> back into the component: the object, handle gone, no __close.
    assert_eq!(
        run.types("consume", &[Val::Resource(sum)]).unwrap(),
        Val::S64(14)
    );
    assert_eq!(run.types("closed-count", &[]).unwrap(), Val::U32(0));
    a.resource_drop(&mut run.store).unwrap();
    assert_eq!(run.types("closed-count", &[]).unwrap(), Val::U32(1));
    b.resource_drop(&mut run.store).unwrap();
    assert_eq!(run.types("closed-count", &[]).unwrap(), Val::U32(2));
}

/// The script's `blob-grow(blob, suffix)`.
fn blob_grow(run: &mut Run, blob: ResourceAny, suffix: &str) -> ResourceAny {
    resource(
        run.call(
            Some(TYPES),
            "blob-grow",
            &[Val::Resource(blob), string(suffix)],
        )
        .unwrap(),
    )
}

#[test]
fn imported_resource_in_exports() {
    let mut run = full_run();
    let made = resource(run.call(Some(TYPES), "make-blob", &[string("hi")]).unwrap());
    assert_eq!(
        run.types("blob-size", &[Val::Resource(made)]).unwrap(),
        Val::U32(2)
    );
    let grown = blob_grow(&mut run, made, "!!");
    assert_eq!(
        run.types("blob-size", &[Val::Resource(grown)]).unwrap(),
        Val::U32(4)
    );
    let typed = Resource::<Blob>::try_from_resource_any(grown, &mut run.store).unwrap();
    assert_eq!(blob_bytes(run.store.data(), &typed).unwrap(), b"hi!!");
    // A host-made blob given to the script and back.
    let host_blob = new_blob(run.store.data_mut(), b"x".to_vec()).unwrap();
    let any = ResourceAny::try_from_resource(host_blob, &mut run.store).unwrap();
    let back = blob_grow(&mut run, any, "yz");
    assert_eq!(
        run.types("blob-size", &[Val::Resource(back)]).unwrap(),
        Val::U32(3)
    );
    back.resource_drop(&mut run.store).unwrap();
    let host = run.store.data_mut();
    host.table.delete(typed).unwrap();
    host.data.live_blobs -= 1;
    assert_eq!(run.store.data().data.live_blobs, 0, "blobs leaked");
}

// ---------------------------------------------------------------- 3. imports

#[test]
fn imports_called_from_lua() {
    let mut run = full_run();
    // Sets `last_borrowed`, which run-imports checks has expired.
    let blob = new_blob(run.store.data_mut(), b"abc".to_vec()).unwrap();
    let any = ResourceAny::try_from_resource(blob, &mut run.store).unwrap();
    assert_eq!(
        run.types("blob-size", &[Val::Resource(any)]).unwrap(),
        Val::U32(3)
    );
    let blob = Resource::<Blob>::try_from_resource_any(any, &mut run.store).unwrap();
    let host = run.store.data_mut();
    host.table.delete(blob).unwrap();
    host.data.live_blobs -= 1;

    let fails = run.call(None, "run-imports", &[]).unwrap();
    assert_eq!(fails, Some(Val::List(vec![])), "stderr: {}", run.stderr());
    assert_eq!(run.store.data().data.log, vec!["from lua".to_string()]);
    assert_eq!(
        run.store.data().data.live_blobs,
        0,
        "blobs the script dropped or lost"
    );
    let env = run.call(None, "get-env", &[string("LUA_TEST")]).unwrap();
    assert_eq!(env, Some(some(string("hello env"))));
    let env = run.call(None, "get-env", &[string("NOT_SET")]).unwrap();
    assert_eq!(env, Some(Val::Option(None)));
}

#[test]
fn math_random_is_reseeded_after_init() {
    let pair = || {
        let mut run = full_run();
        run.call(None, "random-pair", &[]).unwrap()
    };
    let (a, b) = (pair(), pair());
    assert_ne!(a, b, "two instances drew the same random numbers");
}

// ---------------------------------------------------------------- 4. errors

/// The message of init with `source` as `app.lua`, which must fail.
fn init_error(source: &str) -> String {
    let mut run = Run::new(&full()).unwrap();
    run.init("app.lua", source).unwrap().unwrap_err()
}

#[test]
fn syntax_error_names_file_and_line() {
    let err = init_error("x = 1\ny = 2\nlocal = 3\n");
    assert!(err.starts_with("app.lua:3: "), "{err}");
}

#[test]
fn runtime_error_at_init_is_reported() {
    let err = init_error("local x = 1\nerror('kaboom')\n");
    assert!(err.starts_with("app.lua:2: kaboom"), "{err}");
    assert!(err.contains("stack traceback"), "{err}");
}

#[test]
fn the_http_module_needs_a_world_with_wasi_http() {
    let err = init_error("local http = require('componentize.http')\n");
    assert!(
        err.starts_with("app.lua:1: componentize.http needs a world that imports wasi:http/types"),
        "{err}"
    );
}

#[test]
fn missing_exports_are_listed_at_init() {
    let mut run = Run::new(&full()).unwrap();
    let source = "types = {}\nfunction boom() return 1 end\n";
    let err = run.init("app.lua", source).unwrap().unwrap_err();
    for expected in [
        "app.lua: the script does not define what the world's exports need:",
        "function `run_imports` (for export run-imports) is not defined",
        "function `types.make_everything` (for export componentize:lua-tests/types#make-everything)",
        "class `types.counter` (for resource counter of componentize:lua-tests/types) is not defined",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(!err.contains("`boom`"), "{err}");
}

#[test]
fn runtime_error_in_export_traps_with_message() {
    let mut run = full_run();
    let err = run.call(None, "boom", &[]).unwrap_err();
    let stderr = run.stderr();
    assert!(
        stderr.contains("error in export boom (Lua `boom`)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("app.lua:") && stderr.contains(": boom!"),
        "{stderr}"
    );
    assert!(stderr.contains("stack traceback"), "{stderr}");
    assert!(format!("{err:?}").contains("wasm trap"), "{err:?}");
}

#[test]
fn errors_become_err_for_string_results() {
    let mut run = full_run();
    let ok = run.call(None, "fallible", &[Val::S32(4)]).unwrap();
    assert_eq!(ok, Some(Val::Result(Ok(Some(Box::new(Val::S32(8)))))));
    let zero = run.call(None, "fallible", &[Val::S32(0)]).unwrap();
    assert_eq!(zero, Some(Val::Result(Err(Some(Box::new(string("zero")))))));
    match run.call(None, "fallible", &[Val::S32(-1)]).unwrap() {
        Some(Val::Result(Err(Some(e)))) => match *e {
            Val::String(s) => {
                assert!(
                    s.starts_with("app.lua:") && s.ends_with(": negative input"),
                    "{s}"
                )
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    assert_eq!(run.stderr(), "");
}

#[test]
fn errors_in_result_without_payload_print_and_return_err() {
    let mut run = full_run();
    assert_eq!(
        run.call(None, "run-command", &[]).unwrap(),
        Some(Val::Result(Ok(None)))
    );
    let source = format!("{}\ncommand_should_fail = true\n", script("full.lua"));
    let mut run = Run::with_script(&full(), &source).unwrap();
    assert_eq!(
        run.call(None, "run-command", &[]).unwrap(),
        Some(Val::Result(Err(None)))
    );
    assert!(run.stderr().contains("command failed"), "{}", run.stderr());
}

#[test]
fn type_mismatch_names_function_and_position() {
    let source = format!(
        "{}\nfunction types.echo_u64(n) return 'x' end\n\
         function types.make_everything() local e = everything(); e.points[2].y = 'no'; return e end\n",
        script("full.lua")
    );
    let mut run = Run::with_script(&full(), &source).unwrap();
    assert!(run.types("echo-u64", &[Val::U64(1)]).is_err());
    let stderr = run.stderr();
    assert!(
        stderr.contains("export componentize:lua-tests/types#echo-u64 (Lua `types.echo_u64`) returned a value that does not match its WIT type: result: expected u64, got string \"x\""),
        "{stderr}"
    );

    let mut run = Run::with_script(&full(), &source).unwrap();
    assert!(run.types("make-everything", &[]).is_err());
    let stderr = run.stderr();
    assert!(
        stderr.contains("result.points[2].y: expected s32, got string \"no\""),
        "{stderr}"
    );
}

#[test]
fn script_may_return_its_exports_or_use_full_interface_names() {
    let component = component("hello");
    for (source, expected) in [
        // A chunk that returns a table exports from it instead of _G.
        (
            "local M = { run = {} }\nfunction M.run.run() print('module style') end\nreturn M\n",
            "module style\n",
        ),
        // The interface's full name as the key takes precedence.
        (
            "_G['wasi:cli/run@0.2.12'] = { run = function() io.write('full name\\n') end }\n",
            "full name\n",
        ),
    ] {
        let mut run = Run::new(&component).unwrap();
        run.init("main.lua", source).unwrap().unwrap();
        let command =
            wasmtime_wasi::p2::bindings::sync::Command::new(&mut run.store, &run.instance).unwrap();
        let status = command.wasi_cli_run().call_run(&mut run.store).unwrap();
        assert_eq!(status, Ok(()), "stderr: {}", run.stderr());
        assert_eq!(run.stdout(), expected);
    }
}

#[test]
fn exports_need_init_first_and_init_runs_once() {
    let mut run = Run::new(&full()).unwrap();
    assert!(run.call(None, "boom", &[]).is_err());
    assert!(
        run.stderr()
            .contains("export boom called before the Lua script was loaded"),
        "{}",
        run.stderr()
    );
    let mut run = full_run();
    let err = run.init("app.lua", "x = 1").unwrap().unwrap_err();
    assert_eq!(err, "the Lua script was already initialized");
}

#[test]
fn mismatches_are_reported_with_their_position() {
    let cases = [
        ("e.a_u8 = 256", "result.a_u8: 256 is out of range for u8"),
        (
            "e.a_s32 = 1.5",
            "result.a_s32: expected s32, got number 1.5",
        ),
        (
            "e.a_char = 'ab'",
            "result.a_char: expected char (a string of exactly one UTF-8 code point), got string \"ab\"",
        ),
        (
            "e.a_string = '\\xff'",
            "result.a_string: string is not valid UTF-8",
        ),
        (
            "e.a_bool = 1",
            "result.a_bool: expected bool, got integer 1",
        ),
        (
            "e.color = 'purple'",
            "result.color: expected a case of enum `color` (red, green, dark_blue), got string \"purple\"",
        ),
        (
            "e.perms = { reed = true }",
            "result.perms: unknown flag `reed` for flags `perms` (read, write, exec_all)",
        ),
        (
            "e.shape = { tag = 'circle' }",
            "result.shape.value: expected f64, got nil",
        ),
        (
            "e.shape = 'circle'",
            "result.shape: case `circle` of variant `shape` has a payload",
        ),
        (
            "e.outcome = 5",
            "result.outcome: expected a result {ok = ...} or {err = ...}, got integer 5",
        ),
        (
            "e.nested = 5",
            "result.nested: a nested option is nil or {some = value}; got number",
        ),
        (
            "e.words[2] = false",
            "result.words[2]: expected string, got boolean false",
        ),
        (
            "e.table = { k = 'v' }",
            "result.table.k: expected u32, got string \"v\"",
        ),
        ("e.pair = { 'x' }", "result.pair[2]: expected u32, got nil"),
    ];
    for (change, expected) in cases {
        let source = format!(
            "{}\nfunction types.make_everything() local e = everything(); {change}; return e end\n",
            script("full.lua")
        );
        let mut run = Run::with_script(&full(), &source).unwrap();
        assert!(
            run.types("make-everything", &[]).is_err(),
            "{change}: no trap"
        );
        let stderr = run.stderr();
        assert!(
            stderr.contains("export componentize:lua-tests/types#make-everything (Lua `types.make_everything`) returned a value that does not match its WIT type"),
            "{change}: {stderr}"
        );
        assert!(
            stderr.contains(expected),
            "{change}: expected {expected:?} in {stderr}"
        );
    }
}

#[test]
fn lua_conveniences_lower_too() {
    // Flags as a list of names, variant cases without payload as strings,
    // integral floats as integers, kebab-case names.
    let source = format!(
        "{}\nfunction types.make_everything() local e = everything(); \
         e.perms = {{'write', 'exec-all'}}; e.color = 'dark-blue'; e.a_u32 = 7.0; \
         e.shape = 'nothing'; e.a_char = 0x20AC; return e end\n",
        script("full.lua")
    );
    let mut run = Run::with_script(&full(), &source).unwrap();
    let Val::Record(fields) = run.types("make-everything", &[]).unwrap() else {
        panic!()
    };
    let get = |n: &str| normalize(fields.iter().find(|(k, _)| k == n).unwrap().1.clone());
    assert_eq!(
        get("perms"),
        Val::Flags(vec!["exec-all".into(), "write".into()])
    );
    assert_eq!(get("color"), Val::Enum("dark-blue".into()));
    assert_eq!(get("a-u32"), Val::U32(7));
    assert_eq!(get("shape"), Val::Variant("nothing".into(), None));
    assert_eq!(get("a-char"), Val::Char('€'));
}

#[test]
fn lua_runtime_selftest() {
    let mut run = full_run();
    let fails = run.call(None, "selftest", &[]).unwrap();
    assert_eq!(fails, Some(Val::List(vec![])), "stderr: {}", run.stderr());
}

// ---------------------------------------------------------------- 5. snapshot

/// Snapshots `world` with `script` through the init stage (componentize-init)
/// and compiles the result.
fn snapshot(world: &str, script_name: &str, source: &str) -> Component {
    let wit = wit();
    let world = wit
        .resolve
        .select_world(&[wit.package], Some(world))
        .unwrap();
    let wasm = common::link(&wit.resolve, world).unwrap();
    let snapshot = componentize_init::Init::new(wasm)
        .script(script_name, source)
        .run()
        .unwrap();
    componentize_testkit::compile(&snapshot.wasm).unwrap()
}

/// The snapshot works without calling init (the init stage removed it).
#[test]
fn snapshot_by_the_init_stage_runs_without_init() {
    let component = snapshot(
        "hello",
        "app.lua",
        &common::read(&example("hello").join("app.lua")),
    );
    let mut run = Run::new(&component).unwrap();
    assert!(
        run.func(Some(INIT_INTERFACE), componentize_contract::INIT_FUNCTION)
            .is_err(),
        "the init export was not removed"
    );
    assert_hello_runs(&mut run);

    // World `full` has a map type, which the init stage's engine refuses
    // for now; `snapshot` is `full` without it.
    let component = snapshot("snapshot", "app.lua", &script("full.lua"));
    let mut run = Run::new(&component).unwrap();
    let fails = run.call(None, "run-imports", &[]).unwrap();
    assert_eq!(fails, Some(Val::List(vec![])), "stderr: {}", run.stderr());
    let fails = run.call(None, "selftest", &[]).unwrap();
    assert_eq!(fails, Some(Val::List(vec![])), "stderr: {}", run.stderr());
    // The snapshot fixed Lua's seed; the binding reseeds on first use.
    let pairs: Vec<_> = (0..2)
        .map(|_| {
            Run::new(&component)
                .unwrap()
                .call(None, "random-pair", &[])
                .unwrap()
        })
        .collect();
    assert_ne!(
        pairs[0], pairs[1],
        "two instances of the snapshot drew the same numbers"
    );
}
