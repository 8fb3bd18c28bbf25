//! Lua 5.4 conformance of the binding as a component: tests/lua/conformance.lua
//! (strings and patterns, tables, metatables, coroutines, errors, goto,
//! integers and floats, string.pack, utf8, the garbage collector, load, and
//! io/os on WASI) snapshotted into the hello world and run as a command
//! with stdin, a folder and a variable granted.

mod common;

use componentize_testkit::HostBuilder;

#[test]
fn the_conformance_script_passes_every_check() {
    let linked = common::link_world("hello").unwrap();
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
    componentize_testkit::script::check_conformance(&snapshot.wasm, &[], &mut host, 30);
}
