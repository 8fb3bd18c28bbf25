//! What a snapshot cannot represent is refused with the reason, and every
//! limit of the init sandbox is a clear error. Small hand-written components
//! (WAT) for the static refusals; the linked `snapdemo` component for the
//! runtime ones (needs the toolchain build: `bash toolchain/build.sh`).

mod common;

use common::{Demo, init, init_error, linked};
use componentize_init::Failure;
use std::time::{Duration, Instant};

fn refusal(wat: &str) -> String {
    let wasm = wat::parse_str(wat).expect("test WAT");
    match init(&wasm).run() {
        Ok(_) => panic!("expected a refusal for:\n{wat}"),
        Err(e) => format!("{e:#}"),
    }
}

/// Asserts that init refuses `wat` with a message containing `needle`.
#[track_caller]
fn assert_refused(wat: &str, needle: &str) {
    assert_contains(&refusal(wat), needle);
}

#[track_caller]
fn assert_contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "expected `{needle}` in:\n{haystack}"
    );
}

#[test]
fn refuses_table_mutations() {
    let e = refusal(
        r#"(component
            (core module $m
              (table 1 funcref)
              (func $grow (export "grow") (drop (table.grow 0 (ref.null func) (i32.const 1)))))
            (core instance (instantiate $m)))"#,
    );
    assert_contains(&e, "cannot snapshot");
    assert_contains(&e, "`table.grow`");
    assert_refused(
        r#"(component
            (core module $m
              (table 2 funcref)
              (func $f)
              (elem declare func $f)
              (func (export "set") (table.set 0 (i32.const 0) (ref.func $f))))
            (core instance (instantiate $m)))"#,
        "`table.set`",
    );
    assert_refused(
        r#"(component
            (core module $m (memory 1) (data "x") (func (export "d") (data.drop 0)))
            (core instance (instantiate $m)))"#,
        "`data.drop`",
    );
}

#[test]
fn refuses_a_module_instantiated_twice() {
    assert_refused(
        r#"(component
            (core module $m (global (export "g") (mut i32) (i32.const 0)))
            (core instance (instantiate $m))
            (core instance (instantiate $m)))"#,
        "instantiated twice",
    );
}

#[test]
fn refuses_nested_components_with_modules() {
    assert_refused(
        r#"(component
            (component
              (core module $m (global (mut i32) (i32.const 0)))
              (core instance (instantiate $m))))"#,
        "nested component 0 contains core modules",
    );
}

#[test]
fn refuses_v128_and_reference_globals() {
    assert_refused(
        r#"(component
            (core module $m (global (mut v128) (v128.const i64x2 0 0)))
            (core instance (instantiate $m)))"#,
        "v128",
    );
    assert_refused(
        r#"(component
            (core module $m (global (mut funcref) (ref.null func)))
            (core instance (instantiate $m)))"#,
        "holds a reference",
    );
}

#[test]
fn refuses_a_component_start_function() {
    assert_refused(
        r#"(component
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (start $f))"#,
        "start function",
    );
}

#[test]
fn refuses_imported_modules_and_bad_input() {
    assert_refused(
        r#"(component (import "m" (core module)))"#,
        "imports core module `m`",
    );
    let module = wat::parse_str("(module)").unwrap();
    let e = format!("{:#}", init(&module).run().unwrap_err());
    assert_contains(&e, "core wasm module");
    for garbage in [
        &b""[..],
        b"\0asm",
        b"\0asm\x0d\0\x01\0\x07",
        b"not wasm at all",
    ] {
        assert!(init(garbage).run().is_err());
    }
    let mut truncated = linked().to_vec();
    truncated.truncate(truncated.len() / 2);
    let e = format!("{:#}", init(&truncated).run().unwrap_err());
    assert_contains(&e, "does not validate");
}

/// A component with one counter global and no imports.
const COUNTER: &str = r#"(component
    (core module $m
      (global $n (mut i32) (i32.const 0))
      (global $x (mut i64) (i64.const 0))
      (global $f (mut f64) (f64.const 0))
      (memory (export "memory") 1)
      (func (export "bump") (result i32)
        (global.set $n (i32.add (global.get $n) (i32.const 1)))
        (global.set $f (f64.const nan:0x4))
        (i32.store (i32.const 100) (global.get $n))
        (global.get $n))
      (func (export "get") (result i32) (global.get $n))
      (func (export "nan") (result i64) (i64.reinterpret_f64 (global.get $f)))
      (func (export "mem") (result i32) (i32.load (i32.const 100)))
      (func $start (global.set $x (i64.const 7)))
      (start $start))
    (core instance $i (instantiate $m))
    (func (export "bump") (result s32) (canon lift (core func $i "bump")))
    (func (export "get") (result s32) (canon lift (core func $i "get")))
    (func (export "nan") (result s64) (canon lift (core func $i "nan")))
    (func (export "mem") (result s32) (canon lift (core func $i "mem"))))"#;

#[test]
fn plain_component_with_init_func() {
    let wasm = wat::parse_str(COUNTER).unwrap();
    let snap = init(&wasm).init_func("bump").run().unwrap();
    assert_eq!(snap.results, ["1"]);
    let (mut store, instance) = common::instantiate_plain(&snap.wasm);
    let call = |store: &mut wasmtime::Store<()>, name: &str| -> i64 {
        let f = instance.get_func(&mut *store, name).unwrap();
        let mut out = [wasmtime::component::Val::Bool(false)];
        f.call(&mut *store, &[], &mut out).unwrap();
        match out[0] {
            wasmtime::component::Val::S32(v) => v.into(),
            wasmtime::component::Val::S64(v) => v,
            ref other => panic!("{other:?}"),
        }
    };
    assert_eq!(call(&mut store, "get"), 1);
    assert_eq!(call(&mut store, "mem"), 1);
    // The NaN payload of the f64 global survived the snapshot bit for bit.
    assert_eq!(call(&mut store, "nan") as u64, 0x7ff0_0000_0000_0004);
    assert!(instance.get_func(&mut store, "bump").is_none());
    assert_eq!(common::start_sections(&snap.wasm), 0);
}

#[test]
fn refuses_a_live_host_handle_without_libc() {
    // Holds wasi:cli/stdout's stream in a global: nothing can drop it.
    let wasm = wat::parse_str(
        r#"(component
            (import "wasi:io/streams@0.2.0" (instance $streams
              (export "output-stream" (type (sub resource)))))
            (alias export $streams "output-stream" (type $os))
            (import "wasi:cli/stdout@0.2.0" (instance $stdout
              (alias outer 1 $os (type $os))
              (export "get-stdout" (func (result (own $os))))))
            (core func $get (canon lower (func $stdout "get-stdout")))
            (core module $m
              (import "" "get" (func $get (result i32)))
              (global $h (mut i32) (i32.const 0))
              (func (export "init") (global.set $h (call $get))))
            (core instance $args (export "get" (func $get)))
            (core instance $i (instantiate $m (with "" (instance $args))))
            (func (export "init") (canon lift (core func $i "init"))))"#,
    )
    .unwrap();
    let e = init(&wasm).init_func("init").run().unwrap_err();
    let err = init_error(&e);
    assert_eq!(err.kind, Failure::LiveHandle);
    assert_contains(&err.message, "wasi:io/streams.output-stream");
    assert_contains(&err.message, "no wasi-libc `__wasilibc_reset_preopens`");
}

#[test]
fn refuses_an_open_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.txt"), "x").unwrap();
    let e = init(linked())
        .dir(dir.path(), "/d")
        .script("hold.snap", "print holding\nhold /d/f.txt\n")
        .run()
        .unwrap_err();
    let err = init_error(&e);
    assert_eq!(err.kind, Failure::LiveHandle);
    assert_contains(&err.message, "open file");
    // What the script printed comes with the error.
    assert_eq!(String::from_utf8_lossy(&err.stdout), "holding\n");
    assert_contains(&format!("{e}"), "--- stdout of init ---\nholding");
}

#[test]
fn script_error_fails_with_its_message_and_output() {
    let e = init(linked())
        .script(
            "oops.snap",
            "print before the failure\neprint a warning\nfail broken on purpose\n",
        )
        .run()
        .unwrap_err();
    let err = init_error(&e);
    assert_eq!(err.kind, Failure::ScriptError);
    assert_contains(&err.message, "oops.snap:3: broken on purpose");
    assert_eq!(String::from_utf8_lossy(&err.stdout), "before the failure\n");
    assert_eq!(String::from_utf8_lossy(&err.stderr), "a warning\n");
}

#[test]
fn trap_during_init() {
    let e = init(linked())
        .script("abort.snap", "print about to abort\nabort\n")
        .run()
        .unwrap_err();
    let err = init_error(&e);
    assert_eq!(err.kind, Failure::Trap);
    assert_contains(&err.message, "init of `abort.snap` failed");
    assert_eq!(String::from_utf8_lossy(&err.stdout), "about to abort\n");
}

#[test]
fn timeout() {
    let start = Instant::now();
    let e = init(linked())
        .timeout(Duration::from_millis(500))
        .script("spin.snap", "spin\n")
        .run()
        .unwrap_err();
    let err = init_error(&e);
    assert_eq!(err.kind, Failure::Timeout);
    assert_contains(&err.message, "init timeout of 0.5 s");
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[test]
fn memory_limit() {
    let e = init(linked())
        .memory_limit(16 << 20)
        .script("alloc.snap", "alloc 1000\nalloc 50000000\n")
        .run()
        .unwrap_err();
    let err = init_error(&e);
    assert_eq!(err.kind, Failure::MemoryLimit);
    assert_contains(&err.message, "init memory limit of 16777216 bytes");
    // Within the limit, large allocations are fine (and zero pages cost
    // nothing in the output).
    let snap = init(linked())
        .script("alloc.snap", "alloc 3000000\n")
        .run()
        .unwrap();
    assert!(snap.stats.memory_bytes >= 3_000_000);
    let mut demo = Demo::new(&snap.wasm);
    assert!(demo.state().contains("init=1"));
}

#[test]
fn missing_init_export_and_bad_calls() {
    let (resolve, user, _) = common::worlds();
    let plain = common::link_world(&resolve, user).unwrap();
    let e = format!(
        "{:#}",
        init(&plain).script("x", "count 1").run().unwrap_err()
    );
    assert_contains(&e, "does not export `componentize:init/init@0.1.0`");
    let e = format!("{:#}", init(&plain).init_func("nope").run().unwrap_err());
    assert_contains(&e, "does not export the function `nope`");
    let e = format!("{:#}", init(&plain).init_func("get").run().unwrap_err());
    assert_contains(&e, "takes 1 parameter");
    let e = format!(
        "{:#}",
        init(&plain).init_func("get(1, 2)").run().unwrap_err()
    );
    assert_contains(&e, "do not fit its parameters");
    let e = format!(
        "{:#}",
        init(&plain).init_func("get(\"x\"").run().unwrap_err()
    );
    assert_contains(&e, "cannot parse");
}

#[test]
fn mutated_inputs_never_panic() {
    // Byte flips of a small valid component: every result is an Ok or an
    // error, never a panic.
    let wasm = wat::parse_str(COUNTER).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut ran = 0;
    for _ in 0..300 {
        let mut m = wasm.clone();
        for _ in 0..1 + next() % 3 {
            let at = (next() % m.len() as u64) as usize;
            m[at] ^= 1 << (next() % 8);
        }
        let r = std::panic::catch_unwind(|| init(&m).init_func("bump").run());
        match r {
            Ok(Ok(_)) => ran += 1,
            Ok(Err(_)) => {}
            Err(_) => panic!("init panicked on a mutated input"),
        }
    }
    // Some mutations (e.g. in constants) still give a valid component.
    assert!(ran > 0);
}

/// Async state made during init lives in the runtime: a snapshot would
/// lose it, so init fails, naming what is left by kind (the async census:
/// the component's imports of the built-ins are wrapped and counted,
/// whatever they are called and however they are reached).
#[test]
fn async_handles_left_by_init_are_refused_by_kind() {
    let wasm = wat::parse_str(
        r#"(component
            (import "slow" (func $slow async (result u32)))
            (type $s (stream u8))
            (type $f (future))
            (core func $new (canon waitable-set.new))
            (core func $drop (canon waitable-set.drop))
            (core func $snew (canon stream.new $s))
            (core func $sdropr (canon stream.drop-readable $s))
            (core func $fnew (canon future.new $f))
            (core func $sdropw (canon stream.drop-writable $s))
            (core func $fdropr (canon future.drop-readable $f))
            (core module $mem (memory (export "m") 1))
            (core instance $mem (instantiate $mem))
            (core func $slow (canon lower (func $slow) async (memory (core memory $mem "m"))))
            (core module $m
              (type $set (func (result i32)))
              (import "" "new" (func $new (result i32)))
              (import "" "drop" (func $drop (param i32)))
              (import "" "s" (func $snew (result i64)))
              (import "" "s-r" (func $sdropr (param i32)))
              (import "" "f" (func $fnew (result i64)))
              (import "" "s-w" (func $sdropw (param i32)))
              (import "" "f-r" (func $fdropr (param i32)))
              (import "" "slow" (func $slow (param i32) (result i32)))
              (table 1 funcref)
              (elem (i32.const 0) func $new)
              (func (export "leak") (drop (call $new)))
              (func (export "tidy") (call $drop (call $new)))
              (func (export "leak-indirect") (drop (call_indirect (type $set) (i32.const 0))))
              (func (export "leak-stream-end") (call $sdropr (i32.wrap_i64 (call $snew))))
              (func (export "leak-futures") (drop (call $fnew)) (drop (call $fnew)) (drop (call $new)))
              (func (export "leak-future-end") (call $fdropr (i32.wrap_i64 (call $fnew))))
              (func (export "tidy-stream") (local i64)
                (local.set 0 (call $snew))
                (call $sdropr (i32.wrap_i64 (local.get 0)))
                (call $sdropw (i32.wrap_i64 (i64.shr_u (local.get 0) (i64.const 32)))))
              ;; Never called: its wrapper must still validate.
              (func (export "never") (drop (call $slow (i32.const 0)))))
            (core instance $args
              (export "new" (func $new)) (export "drop" (func $drop))
              (export "s" (func $snew)) (export "s-r" (func $sdropr))
              (export "s-w" (func $sdropw))
              (export "f" (func $fnew)) (export "f-r" (func $fdropr))
              (export "slow" (func $slow)))
            (core instance $i (instantiate $m (with "" (instance $args))))
            (func (export "leak") (canon lift (core func $i "leak")))
            (func (export "tidy") (canon lift (core func $i "tidy")))
            (func (export "leak-indirect") (canon lift (core func $i "leak-indirect")))
            (func (export "leak-stream-end") (canon lift (core func $i "leak-stream-end")))
            (func (export "leak-futures") (canon lift (core func $i "leak-futures")))
            (func (export "leak-future-end") (canon lift (core func $i "leak-future-end")))
            (func (export "tidy-stream") (canon lift (core func $i "tidy-stream"))))"#,
    )
    .unwrap();
    let refused = |func: &str| {
        let e = init(&wasm).init_func(func).run().unwrap_err();
        let err = init_error(&e);
        assert_eq!(err.kind, Failure::LiveHandle, "{func}: {}", err.message);
        err.message.clone()
    };
    let one_set = "init left component-model async handles: 1 waitable set (made by \
                   waitable-set.new) open, which a snapshot cannot hold";
    assert_contains(&refused("leak"), one_set);
    // Through a table, the wrapper is called too.
    assert_contains(&refused("leak-indirect"), one_set);
    assert_contains(
        &refused("leak-stream-end"),
        "init left component-model async handles: 1 stream end (made by stream.new) open",
    );
    assert_contains(
        &refused("leak-futures"),
        "init left component-model async handles: 4 future ends (made by future.new), \
         1 waitable set (made by waitable-set.new) open",
    );
    assert_contains(
        &refused("leak-future-end"),
        "init left component-model async handles: 1 future end (made by future.new) open",
    );
    // Made and dropped during init: nothing is left, the snapshot is taken.
    init(&wasm).init_func("tidy").run().unwrap();
    init(&wasm).init_func("tidy-stream").run().unwrap();
}
