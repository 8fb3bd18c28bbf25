//! Lua 5.4 conformance of the binding as a component: tests/lua/conformance.lua
//! (strings and patterns, tables, metatables, coroutines, errors, goto,
//! integers and floats, string.pack, utf8, the garbage collector, load, and
//! io/os on WASI) snapshotted into the hello world and run as a command
//! with stdin, a folder and a variable granted.

mod common;

use componentize_testkit::{HostBuilder, run_command};

#[test]
fn the_conformance_script_passes_every_check() {
    let (resolve, package) = common::test_wit().unwrap();
    let world = resolve.select_world(&[package], Some("hello")).unwrap();
    let linked = common::link(&resolve, world).unwrap();
    let snapshot = componentize_init::Init::new(linked)
        .script("conformance.lua", common::script("conformance.lua"))
        .run()
        .unwrap();

    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("lines.txt"), "a\nb\nc\n").unwrap();
    let mut host = HostBuilder::new();
    host.stdin(b"first line\nsecond line\n")
        .env("CONFORMANCE", "yes")
        .dir(data.path(), "/data")
        .unwrap();
    let run = run_command(&snapshot.wasm, &[], &mut host).unwrap();
    let stdout = run.output.stdout();
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        run.status.is_ok() && summary.ends_with(" passed, 0 failed"),
        "{stdout}\nstderr: {}",
        run.output.stderr()
    );
    let passed: usize = summary
        .trim_start_matches("conformance: ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(passed >= 30, "{summary}");
}
