//! Snapshots of the linked `snapdemo` component (generated bindings,
//! libsnapinterp.so, libsnaptable.so, libc.so): state survives without
//! re-running anything, behaviour matches a component initialized at
//! runtime, printing works before and after, and the output is
//! deterministic. Needs the toolchain build: `bash toolchain/build.sh`.

mod common;

use common::{Demo, export_names, init, linked, start_sections};

const SCRIPT: &str = "\
# the test script
count 5
set greeting hello
set lang snapdemo
";

#[test]
fn state_survives_and_nothing_runs_twice() {
    let snap = init(linked()).script("app.snap", SCRIPT).run().unwrap();

    // The un-initialized component: constructors ran once, init never.
    let mut plain = Demo::new(linked());
    assert_eq!(
        plain.state(),
        "ctors=1/1 wit=1 init=0 marker=(none) counter=0 entries=0"
    );

    // The snapshot: the counter and the heap-allocated table are there, the
    // init marker was written by init, and neither the constructors (of the
    // interpreter and of libsnaptable), nor wit_dylib_initialize, nor init
    // ran again.
    let mut demo = Demo::new(&snap.wasm);
    assert_eq!(
        demo.state(),
        "ctors=1/1 wit=1 init=1 marker=set by init(app.snap) counter=5 entries=2"
    );
    assert_eq!(demo.get("greeting").as_deref(), Some("hello"));
    assert_eq!(demo.get("lang").as_deref(), Some("snapdemo"));
    assert_eq!(demo.get("missing"), None);
    assert_eq!(demo.bump(), 6);
    assert_eq!(demo.run("set later 1"), Ok(String::new()));
    assert_eq!(demo.get("later").as_deref(), Some("1"));

    // Two instances of the snapshot start from the same state.
    let mut again = Demo::new(&snap.wasm);
    assert_eq!(again.bump(), 6);

    // No start function is left in any module, and the component exports
    // exactly the user's world.
    assert_eq!(start_sections(&snap.wasm), 0);
    assert!(start_sections(linked()) > 0);
    assert_eq!(export_names(&snap.wasm), ["bump", "get", "run", "state"]);
    assert!(snap.stats.segments > 0 && snap.stats.globals > 0);
    assert!(snap.stats.data_bytes <= snap.stats.memory_bytes);
}

#[test]
fn same_behaviour_as_init_at_runtime() {
    let script = "count 2\nset a alpha\nset b beta\nprint ready\n";
    let snap = init(linked()).script("same.snap", script).run().unwrap();

    let mut plain = Demo::new(linked());
    plain.init("same.snap", script.as_bytes()).unwrap();
    let mut demo = Demo::new(&snap.wasm);

    let transcript = |d: &mut Demo| -> Vec<String> {
        let mut out = vec![
            d.state(),
            format!("{:?}", d.get("a")),
            format!("{:?}", d.get("nope")),
            d.bump().to_string(),
            d.bump().to_string(),
            format!("{:?}", d.run("count 3")),
            format!("{:?}", d.run("get b")),
            format!("{:?}", d.run("set c gamma")),
            format!("{:?}", d.get("c")),
            format!("{:?}", d.run("fail on purpose")),
            format!("{:?}", d.run("frobnicate")),
            format!("{:?}", d.run("print at runtime")),
        ];
        out.push(d.state());
        out
    };
    let a = transcript(&mut plain);
    let b = transcript(&mut demo);
    assert_eq!(a, b);
    assert!(a[0].contains("init=1 marker=set by init(same.snap) counter=2 entries=2"));
    // The runtime-initialized instance printed during its init call; the
    // snapshot printed that at build time.
    assert_eq!(plain.stdout(), "ready\nat runtime\n");
    assert_eq!(demo.stdout(), "at runtime\n");
    assert_eq!(String::from_utf8_lossy(&snap.stdout), "ready\n");
}

#[test]
fn prints_during_init_and_at_runtime() {
    let snap = init(linked())
        .script(
            "print.snap",
            "print hello from init\neprint warning from init\nprint no newline at the end",
        )
        .run()
        .unwrap();
    // Init's output was flushed and captured at build time...
    assert_eq!(
        String::from_utf8_lossy(&snap.stdout),
        "hello from init\nno newline at the end\n"
    );
    assert_eq!(String::from_utf8_lossy(&snap.stderr), "warning from init\n");

    // ... and the snapshot prints at runtime, on the runtime's streams, with
    // nothing of init's output replayed.
    let mut demo = Demo::new(&snap.wasm);
    assert_eq!(demo.run("print hello at runtime"), Ok(String::new()));
    assert_eq!(demo.run("eprint oops at runtime"), Ok(String::new()));
    assert_eq!(demo.run("print twice"), Ok(String::new()));
    assert_eq!(demo.stdout(), "hello at runtime\ntwice\n");
    assert_eq!(demo.stderr(), "oops at runtime\n");
}

#[test]
fn deterministic_output() {
    // Random bytes and clocks are fixed during init.
    let script = "random r\nclock c\ncount 1\nset x y\nprint hi\n";
    let a = init(linked()).script("det.snap", script).run().unwrap();
    let b = init(linked()).script("det.snap", script).run().unwrap();
    assert!(a.wasm == b.wasm, "two snapshots of the same inputs differ");
    let mut demo = Demo::new(&a.wasm);
    assert_eq!(
        demo.get("c").as_deref(),
        Some("wall=946684800.000000000 mono=0.000000000")
    );
    let r = demo.get("r").unwrap();
    assert_eq!(r.len(), 16);
    // At runtime the host's real randomness and clocks are back.
    let fresh = demo.run("random r2").unwrap();
    assert_ne!(fresh, r);
}

#[test]
fn environment_is_read_at_runtime() {
    let snap = init(linked())
        .env("GREETING", "from init")
        .script("env.snap", "env GREETING\nenv HOME\n")
        .run()
        .unwrap();
    let mut demo = Demo::with_env(&snap.wasm, &[("GREETING", "from runtime")]);
    // What init saw stays in the table (the script copied it there), and the
    // host's own environment was never visible.
    assert_eq!(demo.get("GREETING").as_deref(), Some("from init"));
    assert_eq!(demo.get("HOME").as_deref(), Some("(unset)"));
    // libc forgot init's environment: getenv at runtime sees the runtime's.
    assert_eq!(demo.run("env GREETING").as_deref(), Ok("from runtime"));
}

#[test]
fn preopened_directory_is_readable_during_init_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.txt"), "answer=42").unwrap();
    let snap = init(linked())
        .dir(dir.path(), "/data")
        .script("dir.snap", "read cfg /data/config.txt\n")
        .run()
        .unwrap();
    let mut demo = Demo::new(&snap.wasm);
    assert_eq!(demo.get("cfg").as_deref(), Some("answer=42"));
    // The preopen was dropped with libc's descriptor table; at runtime the
    // component sees the runtime's preopens (none here).
    assert!(demo.run("read again /data/config.txt").is_err());
}

#[test]
fn constructors_only_snapshot() {
    // No init call: only instantiation (the constructors) is captured, and
    // the init export stays (nothing was called through it).
    let snap = init(linked()).run().unwrap();
    let mut demo = Demo::new(&snap.wasm);
    assert_eq!(
        demo.state(),
        "ctors=1/1 wit=1 init=0 marker=(none) counter=0 entries=0"
    );
    assert_eq!(demo.init("late.snap", b"count 4"), Ok(()));
    assert_eq!(demo.bump(), 5);
}

#[test]
fn snapshot_of_a_snapshot() {
    let first = init(linked())
        .keep_init_export(true)
        .script("one.snap", "count 1\nset one 1\n")
        .run()
        .unwrap();
    let second = init(&first.wasm)
        .script("two.snap", "count 10\nset two 2\n")
        .run()
        .unwrap();
    let mut demo = Demo::new(&second.wasm);
    assert_eq!(
        demo.state(),
        "ctors=1/1 wit=1 init=2 marker=set by init(two.snap) counter=11 entries=2"
    );
    assert_eq!(export_names(&second.wasm), ["bump", "get", "run", "state"]);
}

#[test]
fn init_func_with_wave_arguments() {
    let snap = init(linked())
        .keep_init_export(true)
        .init_func(r#"run("count 7")"#)
        .run()
        .unwrap();
    assert_eq!(snap.results, [r#"ok("7")"#]);
    let mut demo = Demo::new(&snap.wasm);
    assert_eq!(demo.bump(), 8);
    assert!(export_names(&snap.wasm).contains(&"run".to_string()));

    // A parameterless export by name.
    let snap = init(linked())
        .keep_init_export(true)
        .init_func("bump")
        .run()
        .unwrap();
    assert_eq!(snap.results, ["1"]);
    assert_eq!(Demo::new(&snap.wasm).bump(), 2);
}

#[test]
fn removing_an_export_renumbers_later_references() {
    // `bump` is exported between `get` and `run`: removing it shifts the
    // index of every later function and instance export (the bug of
    // wasmtime-wizer #13168 in another form).
    let snap = init(linked()).init_func("bump").run().unwrap();
    assert_eq!(
        export_names(&snap.wasm),
        ["componentize:init/init@0.1.0", "get", "run", "state"]
    );
    let mut demo = Demo::new(&snap.wasm);
    assert_eq!(demo.run("count 0"), Ok("1".to_string()));
    assert_eq!(
        demo.state(),
        "ctors=1/1 wit=1 init=0 marker=(none) counter=1 entries=0"
    );
    assert_eq!(demo.init("after.snap", b"set k v"), Ok(()));
    assert_eq!(demo.get("k").as_deref(), Some("v"));
}

#[test]
fn add_init_export_appends_the_contract() {
    let (resolve, user, with_init) = common::worlds();
    let names = |w| -> Vec<String> {
        resolve.worlds[w]
            .exports
            .keys()
            .map(|k| resolve.name_world_key(k))
            .collect()
    };
    assert_eq!(names(user), ["state", "get", "bump", "run"]);
    assert_eq!(
        names(with_init),
        [
            "state",
            "get",
            "bump",
            "run",
            "componentize:init/init@0.1.0"
        ]
    );
    assert_eq!(resolve.worlds[with_init].name, "snapdemo");
    // Idempotent, and a second world gets a package of its own.
    let mut resolve = resolve;
    assert_eq!(
        componentize_contract::add_init_export(&mut resolve, with_init).unwrap(),
        with_init
    );
    let other = componentize_contract::add_init_export(&mut resolve, user).unwrap();
    assert_ne!(other, with_init);
    assert_eq!(names_of(&resolve, other).len(), 5);
}

fn names_of(resolve: &wit_parser::Resolve, w: wit_parser::WorldId) -> Vec<String> {
    resolve.worlds[w]
        .exports
        .keys()
        .map(|k| resolve.name_world_key(k))
        .collect()
}

#[test]
fn pipeline_generate_link_init() {
    // The whole pipeline with the stage libraries: the user's world plus the
    // init export, componentize-generate, componentize-link, init.
    let (resolve, _, with_init) = common::worlds();
    let bindings = componentize_generate::generate(
        &resolve,
        with_init,
        componentize_generate::Options::default().interpreter(common::INTERPRETER),
    )
    .unwrap()
    .into_wasm();
    let libs = common::libraries();
    let linked = componentize_link::Link::new()
        .search_env(false)
        .bindings("bindings.so", bindings)
        .library(common::INTERPRETER, libs.interpreter)
        .library("libsnaptable.so", libs.table)
        .library("libc.so", libs.libc)
        .encode()
        .unwrap();
    let snap = init(linked.component())
        .script("pipeline.snap", "count 3\nset via link\nprint linked\n")
        .run()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&snap.stdout), "linked\n");
    let mut demo = Demo::new(&snap.wasm);
    assert_eq!(
        demo.state(),
        "ctors=1/1 wit=1 init=1 marker=set by init(pipeline.snap) counter=3 entries=1"
    );
    assert_eq!(demo.run("print at runtime"), Ok(String::new()));
    assert_eq!(demo.stdout(), "at runtime\n");
    assert_eq!(export_names(&snap.wasm), ["bump", "get", "run", "state"]);
}

/// An `async func` given as the init function runs to the end of its task
/// (callback ABI: here it returns its result with `task.return` and exits),
/// and what it did is in the snapshot; one that waits for what can never
/// come fails init.
#[test]
fn an_async_init_function_runs_to_its_end() {
    let wasm = wat::parse_str(
        r#"(component
            (core func $ret (canon task.return (result u32)))
            (core func $set (canon waitable-set.new))
            (core module $m
              (import "" "task.return" (func $ret (param i32)))
              (import "" "set" (func $set (result i32)))
              ;; Waits on an empty waitable set: nothing can ever wake it.
              (func (export "stall") (result i32)
                (i32.or (i32.const 2) (i32.shl (call $set) (i32.const 4))))
              (global $n (export "n") (mut i32) (i32.const 0))
              (func (export "start") (result i32)
                (global.set $n (i32.const 42))
                (call $ret (i32.const 7))
                (i32.const 0))
              (func (export "callback") (param i32 i32 i32) (result i32) unreachable)
              (func (export "get") (result i32) (global.get $n)))
            (core instance $i (instantiate $m
              (with "" (instance (export "task.return" (func $ret)) (export "set" (func $set))))))
            (func (export "stall") async (result u32)
              (canon lift (core func $i "stall") async (callback (core func $i "callback"))))
            (func (export "start") async (result u32)
              (canon lift (core func $i "start") async (callback (core func $i "callback"))))
            (func (export "get") (result u32) (canon lift (core func $i "get"))))"#,
    )
    .unwrap();
    // A task that can never finish fails init instead of hanging it.
    let e = common::init(&wasm).init_func("stall").run().unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("the init function `stall` failed"), "{msg}");
    assert!(msg.contains("deadlock detected"), "{msg}");

    let snap = common::init(&wasm).init_func("start").run().unwrap();
    assert_eq!(snap.results, ["7"]);
    let (mut store, instance) = common::instantiate_plain(&snap.wasm);
    let get = instance
        .get_typed_func::<(), (u32,)>(&mut store, "get")
        .unwrap();
    assert_eq!(get.call(&mut store, ()).unwrap(), (42,));
}
