//! The init function inside an exported interface with other functions
//! (fixtures/init/shared.wit, implemented by libsnapinterp): init removes
//! that one function from the interface, in name form and in WAVE form, and
//! every other function still works; `--keep-init-export` keeps it. Errors
//! about the init function name the export, never the call's arguments.
//! Small hand-written components (WAT) for the other instance shapes. Needs
//! the toolchain build: `bash toolchain/build.sh`.

mod common;

use common::{export_names, init};
use componentize_testkit::{HostBuilder, call_export, export_func, instance_functions};
use std::sync::OnceLock;
use wasmtime::Store;
use wasmtime::component::{Instance, Val};

/// The exported interface of the `snapshared` world.
const API: &str = "componentize:snapshared/api";

/// The functions of [`API`], in the order of fixtures/init/shared.wit.
const FUNCTIONS: [&str; 10] = [
    "setup",
    "configure",
    "state",
    "get",
    "set",
    "bump",
    "count",
    "entries",
    "echo",
    "run",
];

/// The linked `snapshared` component (bindings + libsnapinterp +
/// libsnaptable + libc), built once.
fn linked() -> &'static [u8] {
    static LINKED: OnceLock<Vec<u8>> = OnceLock::new();
    LINKED.get_or_init(|| {
        let mut resolve = wit_parser::Resolve::default();
        let pkg = resolve
            .push_file(componentize_testkit::repo_file("fixtures/init/shared.wit"))
            .expect("fixtures/init/shared.wit");
        let world = resolve.select_world(&[pkg], Some("snapshared")).unwrap();
        common::link_world(&resolve, world).expect("linking snapshared")
    })
}

/// The functions of the component's export [`API`], in order.
fn api_functions(wasm: &[u8]) -> Vec<String> {
    instance_functions(wasm, API)
}

/// [`FUNCTIONS`] without `removed`.
fn functions_but(removed: &str) -> Vec<String> {
    FUNCTIONS
        .iter()
        .filter(|f| **f != removed)
        .map(|f| f.to_string())
        .collect()
}

/// Asserts that `wasm` validates with every feature.
fn assert_valid(wasm: &[u8]) {
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(wasm)
        .expect("the snapshot validates");
}

/// An instance of a `snapshared` component.
struct Api {
    store: Store<componentize_testkit::Host>,
    instance: Instance,
}

impl Api {
    fn new(wasm: &[u8]) -> Api {
        let component = componentize_testkit::compile(wasm).unwrap();
        let (mut store, _output) = HostBuilder::new().store(());
        let instance = componentize_testkit::linker()
            .instantiate(&mut store, &component)
            .expect("instantiating");
        Api { store, instance }
    }

    fn call(&mut self, name: &str, args: &[Val]) -> Vec<Val> {
        call_export(&mut self.store, &self.instance, Some(API), name, args)
            .unwrap_or_else(|e| panic!("calling `{API}.{name}`: {e:?}"))
    }

    /// Whether the instance still has the function `name` in [`API`].
    fn has(&mut self, name: &str) -> bool {
        export_func(&mut self.store, &self.instance, Some(API), name).is_ok()
    }

    fn string(&mut self, name: &str, args: &[Val]) -> String {
        match &self.call(name, args)[..] {
            [Val::String(s)] => s.clone(),
            other => panic!("`{name}` returned {other:?}"),
        }
    }

    fn u32(&mut self, name: &str) -> u32 {
        match &self.call(name, &[])[..] {
            [Val::U32(n)] => *n,
            other => panic!("`{name}` returned {other:?}"),
        }
    }

    /// A function returning `result<string, string>`, with one string.
    fn line(&mut self, name: &str, line: &str) -> Result<String, String> {
        let out = self.call(name, &[Val::String(line.into())]);
        let [Val::Result(result)] = &out[..] else {
            panic!("`{name}` returned {out:?}");
        };
        let text = |v: &Option<Box<Val>>| match v.as_deref() {
            Some(Val::String(s)) => s.clone(),
            other => panic!("`{name}` returned a result holding {other:?}"),
        };
        match result {
            Ok(v) => Ok(text(v)),
            Err(v) => Err(text(v)),
        }
    }

    fn state(&mut self) -> String {
        self.string("state", &[])
    }

    fn get(&mut self, key: &str) -> Option<String> {
        let out = self.call("get", &[Val::String(key.into())]);
        match &out[..] {
            [Val::Option(None)] => None,
            [Val::Option(Some(v))] => match v.as_ref() {
                Val::String(s) => Some(s.clone()),
                other => panic!("`get` returned some({other:?})"),
            },
            other => panic!("`get` returned {other:?}"),
        }
    }

    /// Calls every function of [`API`] but `removed`, in order, checking
    /// each result, starting from a snapshot whose counter is `counter`
    /// and whose table has `entries` entries.
    fn exercise_all_but(&mut self, removed: &str, mut counter: u32, mut entries: u32) {
        for name in FUNCTIONS.iter().filter(|f| **f != removed) {
            match *name {
                "setup" => {
                    let had_origin = self.get("origin").is_some();
                    assert!(self.call("setup", &[]).is_empty());
                    counter += 100;
                    entries += u32::from(!had_origin);
                    assert_eq!(self.get("origin").as_deref(), Some("setup"));
                    assert!(self.state().contains("marker=set by setup"));
                }
                "configure" => {
                    assert_eq!(
                        self.line("configure", "count 3"),
                        Ok((counter + 3).to_string())
                    );
                    counter += 3;
                    assert!(self.state().contains("marker=set by configure"));
                }
                "state" => {
                    let state = self.state();
                    assert!(state.starts_with("ctors=1/1 wit=1 init=0 "), "{state}");
                    assert!(
                        state.ends_with(&format!(" counter={counter} entries={entries}")),
                        "{state}"
                    );
                }
                "get" => assert_eq!(self.get("missing"), None),
                "set" => {
                    let args = [Val::String("key".into()), Val::String("value".into())];
                    assert!(self.call("set", &args).is_empty());
                    entries += 1;
                    assert_eq!(self.get("key").as_deref(), Some("value"));
                }
                "bump" => {
                    counter += 1;
                    assert_eq!(self.u32("bump"), counter);
                }
                "count" => assert_eq!(self.u32("count"), counter),
                "entries" => assert_eq!(self.u32("entries"), entries),
                "echo" => assert_eq!(self.string("echo", &[Val::String("hi".into())]), "hi"),
                "run" => {
                    assert_eq!(self.line("run", "set ran yes"), Ok(String::new()));
                    entries += 1;
                    assert_eq!(self.get("ran").as_deref(), Some("yes"));
                    assert_eq!(
                        self.line("run", "nonsense"),
                        Err("unknown command `nonsense`".to_string())
                    );
                }
                other => panic!("no check for `{other}`"),
            }
        }
    }
}

#[test]
fn init_function_by_name_is_removed_from_its_interface() {
    let call = format!("{API}.setup");
    let snap = init(linked()).init_func(&call).run().unwrap();
    assert!(snap.results.is_empty());
    assert_valid(&snap.wasm);
    assert_eq!(export_names(&snap.wasm), [API]);
    assert_eq!(api_functions(linked()), functions_but(""));
    assert_eq!(api_functions(&snap.wasm), functions_but("setup"));

    // setup ran during init: its effect is in the snapshot.
    let mut api = Api::new(&snap.wasm);
    assert_eq!(
        api.state(),
        "ctors=1/1 wit=1 init=0 marker=set by setup counter=100 entries=1"
    );
    assert_eq!(api.get("origin").as_deref(), Some("setup"));
    assert!(!api.has("setup"));
    api.exercise_all_but("setup", 100, 1);

    // The same call gives the same bytes.
    let again = init(linked()).init_func(&call).run().unwrap();
    assert!(again.wasm == snap.wasm, "two snapshots differ");
}

#[test]
fn init_function_by_wave_call_is_removed_from_its_interface() {
    let snap = init(linked())
        .init_func(format!(r#"{API}.configure("count 7")"#))
        .run()
        .unwrap();
    assert_eq!(snap.results, [r#"ok("7")"#]);
    assert_valid(&snap.wasm);
    assert_eq!(export_names(&snap.wasm), [API]);
    assert_eq!(api_functions(&snap.wasm), functions_but("configure"));

    let mut api = Api::new(&snap.wasm);
    assert_eq!(
        api.state(),
        "ctors=1/1 wit=1 init=0 marker=set by configure counter=7 entries=0"
    );
    assert!(!api.has("configure"));
    api.exercise_all_but("configure", 7, 0);
}

#[test]
fn keep_init_export_keeps_the_function_in_its_interface() {
    // The call, and the counter and number of entries it leaves.
    for (call, counter, entries) in [
        (format!("{API}.setup"), 100, 1),
        (format!(r#"{API}.configure("count 7")"#), 7, 0),
    ] {
        let snap = init(linked())
            .init_func(&call)
            .keep_init_export(true)
            .run()
            .unwrap();
        assert_valid(&snap.wasm);
        assert_eq!(api_functions(&snap.wasm), functions_but(""), "{call}");
        let mut api = Api::new(&snap.wasm);
        assert_eq!(api.u32("count"), counter, "{call}");
        assert_eq!(api.u32("entries"), entries, "{call}");
        // Every function is there and works, the init function included.
        api.exercise_all_but("", counter, entries);
    }
}

#[test]
fn errors_name_the_export_not_the_arguments() {
    let configure = format!("`{API}.configure`");
    for (call, needle) in [
        // A misnamed function, with and without arguments.
        (
            format!("{API}.nope"),
            format!("does not export the function `{API}.nope`"),
        ),
        (
            format!(r#"{API}.nope("secret-arg")"#),
            format!("does not export the function `{API}.nope`"),
        ),
        // Arguments that do not fit, or do not parse.
        (
            format!(r#"{API}.configure("secret-arg", 2)"#),
            format!("the arguments of {configure} do not fit its parameters `(line: string)`"),
        ),
        (
            format!("{API}.configure(57005)"),
            format!("the arguments of {configure} do not fit its parameters `(line: string)`"),
        ),
        (
            format!(r#"{API}.configure("secret-arg""#),
            format!("cannot parse the arguments of `{API}.configure`"),
        ),
        // Parameters, but no arguments.
        (
            format!("{API}.configure"),
            format!("{configure} takes 1 parameter"),
        ),
    ] {
        let e = format!("{:#}", init(linked()).init_func(&call).run().unwrap_err());
        assert!(e.contains(&needle), "`{needle}` not in: {e}");
        assert!(!e.contains("secret-arg") && !e.contains("57005"), "{e}");
    }

    // A trap in the init function names the function.
    let e = init(linked())
        .init_func(format!(r#"{API}.configure("abort")"#))
        .run()
        .unwrap_err();
    let e = common::init_error(&e);
    assert_eq!(e.kind, componentize_init::Failure::Trap);
    assert!(
        e.message
            .contains(&format!("the init function {configure}")),
        "{}",
        e.message
    );
}

/// A core module with two functions `a` and `b` (b takes a u32) and their
/// lifts `$a` and `$b`, for the WAT components below.
const FUNCS: &str = r#"
    (core module $m
      (global (mut i32) (i32.const 0))
      (func (export "a"))
      (func (export "b") (param i32)))
    (core instance $i (instantiate $m))
    (func $a (canon lift (core func $i "a")))
    (func $b (param "x" u32) (canon lift (core func $i "b")))"#;

/// A shim component in wit-component's style: imports both functions and
/// re-exports them with their types.
const SHIM: &str = r#"
    (component $shim
      (import "import-func-a" (func $a))
      (import "import-func-b" (func $b (param "x" u32)))
      (export "a" (func $a) (func))
      (export "b" (func $b) (func (param "x" u32))))"#;

fn component(body: &str) -> Vec<u8> {
    wat::parse_str(format!("(component {FUNCS} {body})")).expect("test WAT")
}

/// The message of init's refusal to remove `call` from `wasm`.
fn refusal(wasm: &[u8], call: &str) -> String {
    format!("{:#}", init(wasm).init_func(call).run().unwrap_err())
}

#[test]
fn removes_a_function_of_an_instance_made_of_exports() {
    let wasm = component(
        r#"(instance $x (export "a" (func $a)) (export "b" (func $b)))
           (export "x:y/z" (instance $x))"#,
    );
    let snap = init(&wasm).init_func("x:y/z.a").run().unwrap();
    assert_valid(&snap.wasm);
    assert_eq!(instance_functions(&snap.wasm, "x:y/z"), ["b"]);
    // `b` still works.
    let (mut store, instance) = common::instantiate_plain(&snap.wasm);
    assert!(call_export(&mut store, &instance, Some("x:y/z"), "b", &[Val::U32(1)]).is_ok());
    assert!(export_func(&mut store, &instance, Some("x:y/z"), "a").is_err());
}

#[test]
fn refuses_other_shapes_naming_the_export() {
    let shim_instance =
        r#"(instantiate $shim (with "import-func-a" (func $a)) (with "import-func-b" (func $b)))"#;
    // The shim instantiated twice: changing it would change both instances.
    let twice = component(&format!(
        r#"{SHIM}
           (instance $x {shim_instance})
           (instance $w {shim_instance})
           (export "x:y/z" (instance $x))
           (export "x:y/w" (instance $w))"#
    ));
    let e = refusal(&twice, "x:y/z.a");
    assert!(e.contains("cannot remove the init export `x:y/z.a`"), "{e}");
    assert!(e.contains("instantiated 2 times"), "{e}");
    assert!(e.contains("--keep-init-export"), "{e}");
    // With arguments, the message names the export and not the arguments.
    let e = refusal(&twice, "x:y/z.b(40960)");
    assert!(e.contains("cannot remove the init export `x:y/z.b`"), "{e}");
    assert!(!e.contains("40960"), "{e}");
    // Kept, the same call works.
    let kept = init(&twice)
        .init_func("x:y/z.b(40960)")
        .keep_init_export(true)
        .run()
        .unwrap();
    assert!(kept.results.is_empty());

    // An alias of the function from the exported instance.
    let aliased = component(&format!(
        r#"{SHIM}
           (instance $x {shim_instance})
           (export $z "x:y/z" (instance $x))
           (alias export $z "a" (func $alias))
           (export "a-again" (func $alias))"#
    ));
    let e = refusal(&aliased, "x:y/z.a");
    assert!(e.contains("`x:y/z.a`") && e.contains("alias"), "{e}");

    // An instance that is an export of another instance, named as the
    // component names it (`@1.0.1` finds the export `@1.0.0`).
    let nested = component(
        r#"(component $outer
             (import "import-func-a" (func $a))
             (import "import-func-b" (func $b (param "x" u32)))
             (instance $in (export "a" (func $a)) (export "b" (func $b)))
             (export "inner" (instance $in)))
           (instance $o (instantiate $outer
             (with "import-func-a" (func $a))
             (with "import-func-b" (func $b))))
           (alias export $o "inner" (instance $inner))
           (export "x:y/z@1.0.0" (instance $inner))"#,
    );
    let e = refusal(&nested, "x:y/z.b@1.0.1(40960)");
    assert!(
        e.contains(
            "cannot remove the init export `x:y/z.b@1.0.0`: `x:y/z@1.0.0` is an export of \
             another instance"
        ),
        "{e}"
    );
    assert!(!e.contains("40960"), "{e}");
}
