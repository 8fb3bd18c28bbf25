//! Shared by the JavaScript binding's tests: where the inputs are, the test
//! worlds (the Lua suite's, `interpreters/lua/tests/wit/worlds.wit`), and how
//! a world is linked with the JavaScript binding. The work is
//! `componentize_testkit::script`'s, which the Lua suite uses too.
#![allow(dead_code)] // each target uses a part

use anyhow::Result;
use std::path::{Path, PathBuf};

/// The folder of this crate, `interpreters/js`.
fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `interpreters/js/examples/<name>`.
pub fn example(name: &str) -> PathBuf {
    crate_dir().join("examples").join(name)
}

/// A test script of `interpreters/js/tests/js/`.
pub fn script(name: &str) -> String {
    componentize_testkit::script::read(&crate_dir().join("tests/js").join(name))
}

/// The Lua hello example's folder (its WIT and WASI deps), which the test
/// worlds include.
pub fn hello_wit() -> PathBuf {
    crate_dir().join("../lua/examples/hello")
}

/// The file of the test worlds.
pub fn worlds_wit() -> PathBuf {
    crate_dir().join("../lua/tests/wit/worlds.wit")
}

/// World `name` of the test worlds (which include the Lua hello example
/// and the init contract), linked with the JavaScript binding: js.so, the
/// bindings, libqjs.so, libc.so.
pub fn link_world(name: &str) -> Result<Vec<u8>> {
    let binding = componentize_js::binding()?;
    componentize_testkit::script::link_world(&hello_wit(), &worlds_wit(), &binding, name)
}
