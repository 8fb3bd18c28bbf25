//! The JavaScript engine's conformance as a component: tests/js/conformance.js
//! (closures, classes, generators, async functions, Proxy, typed arrays,
//! JSON, RegExp, BigInt, Date on the runtime's clock, collections, syntax,
//! strings and numbers, errors, TextEncoder, crypto, WASI imports)
//! snapshotted into the hello world and run as a command.

mod common;

use componentize_testkit::HostBuilder;

#[test]
fn the_conformance_script_passes_every_check() {
    let linked = common::link_world("hello").unwrap();
    let snapshot = componentize_init::Init::new(linked)
        .script("conformance.js", common::script("conformance.js"))
        .run()
        .unwrap();

    let mut host = HostBuilder::new();
    host.env("CONFORMANCE", "yes");
    let stdout =
        componentize_testkit::script::check_conformance(&snapshot.wasm, &["x y"], &mut host, 19);
    // console.log formats its arguments as Node does.
    assert!(
        stdout.contains(
            "inspect: { a: [ 1, 'two', { three: 3n } ], m: Map(1) { 1 => 2 } } null undefined\n"
        ),
        "{stdout}"
    );
}
