//! The compiler of the init run: Winch where the component allows it,
//! Cranelift unoptimized otherwise, and the same snapshot bytes whichever
//! ran. Needs the toolchain build: `bash toolchain/build.sh`.

mod common;

use common::{Demo, init, linked};
use componentize_init::{Compiler, Init, Options};

/// Work for the interpreter: many entries, so the snapshot holds a grown
/// heap, not only static data.
fn script() -> String {
    let mut s = String::from("count 17\n");
    for i in 0..500 {
        s.push_str(&format!("set key{i} value {i} of the compiler test\n"));
    }
    s
}

fn snapshot_with(compiler: Compiler) -> componentize_init::Snapshot {
    let mut options = Options::default();
    options.compiler = compiler;
    init(linked())
        .options(options)
        .script("app.snap", script())
        .run()
        .unwrap_or_else(|e| panic!("init with {compiler:?}: {e:#}"))
}

#[test]
fn winch_and_cranelift_give_the_same_snapshot() {
    let auto = snapshot_with(Compiler::Auto);
    let winch = snapshot_with(Compiler::Winch);
    let cranelift = snapshot_with(Compiler::Cranelift);
    // snapdemo uses no feature Winch lacks: auto takes it.
    assert_eq!(auto.stats.compilation.compiler, Compiler::Winch);
    assert_eq!(winch.stats.compilation.compiler, Compiler::Winch);
    assert_eq!(cranelift.stats.compilation.compiler, Compiler::Cranelift);
    assert!(
        winch.wasm == cranelift.wasm,
        "the snapshots differ: {} bytes with Winch, {} with Cranelift",
        winch.wasm.len(),
        cranelift.wasm.len()
    );
    assert_eq!(auto.wasm, winch.wasm);
    // And the snapshot holds what the script made.
    let mut demo = Demo::new(&winch.wasm);
    assert_eq!(
        demo.get("key499").as_deref(),
        Some("value 499 of the compiler test")
    );
    assert_eq!(demo.bump(), 18);
}

/// A component whose one module throws and catches a wasm exception (what
/// setjmp/longjmp compiles to) during its start function.
fn with_exceptions() -> Vec<u8> {
    wat::parse_str(
        r#"(component
            (core module $m
              (tag $jump (param i32))
              (global $caught (mut i32) (i32.const 0))
              (memory (export "memory") 1)
              (func $start
                (block $handler (result i32)
                  (try_table (catch $jump $handler)
                    (throw $jump (i32.const 42)))
                  (i32.const 0))
                global.set $caught)
              (func (export "caught") (result i32) global.get $caught)
              (start $start))
            (core instance $i (instantiate $m))
            (func (export "caught") (result u32) (canon lift (core func $i "caught"))))"#,
    )
    .unwrap()
}

#[test]
fn exceptions_take_cranelift_and_say_why() {
    let wasm = with_exceptions();
    let snap = Init::new(wasm.clone())
        .runtime(common::runtime())
        .run()
        .unwrap();
    let compilation = &snap.stats.compilation;
    assert_eq!(compilation.compiler, Compiler::Cranelift);
    let shown = compilation.to_string();
    assert!(
        shown.starts_with("Cranelift (unoptimized): Winch lacks a feature: core module 0")
            && shown.contains("exception tags (exceptions)"),
        "{shown}"
    );

    // Asking for Winch is refused before anything runs, with the reason.
    let mut options = Options::default();
    options.compiler = Compiler::Winch;
    let refused = Init::new(wasm)
        .runtime(common::runtime())
        .options(options)
        .run()
        .err()
        .unwrap();
    let refused = format!("{refused:#}");
    assert!(
        refused.contains("Winch cannot compile this component: core module 0")
            && refused.contains("--init-compiler auto"),
        "{refused}"
    );
}

#[test]
fn the_operator_winch_lacks_is_named() {
    // No tag section: the operator itself is what Winch lacks.
    let wasm = wat::parse_str(
        r#"(component
            (core module $m
              (func $f (result i32) i32.const 1)
              (func $g (export "g") (result i32) return_call $f))
            (core instance $i (instantiate $m)))"#,
    )
    .unwrap();
    let snap = Init::new(wasm).runtime(common::runtime()).run().unwrap();
    let shown = snap.stats.compilation.to_string();
    assert!(
        shown.contains("function 1 `g` uses `return_call` (tail_call)"),
        "{shown}"
    );
}
