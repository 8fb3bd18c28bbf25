//! Shared by the Lua binding's tests and its benchmark (which includes this
//! file with `#[path]`): where the inputs are, the test worlds, and how a
//! world is linked with the Lua binding (`componentize_testkit::script`
//! does the work, for the JavaScript binding's tests too).
#![allow(dead_code)] // each target uses a part

use anyhow::Result;
use std::path::{Path, PathBuf};

/// `interpreters/lua/tests`.
pub fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

/// `interpreters/lua/examples/<name>`.
pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// A text file.
pub fn read(path: &Path) -> String {
    componentize_testkit::script::read(path)
}

/// A test script of `tests/lua/`.
pub fn script(name: &str) -> String {
    read(&tests_dir().join("lua").join(name))
}

/// World `name` of `tests/wit/worlds.wit` (which includes the hello
/// example and the init contract), linked with the Lua binding: lua.so, the
/// bindings, then what lua.so needs.
pub fn link_world(name: &str) -> Result<Vec<u8>> {
    let worlds = tests_dir().join("wit/worlds.wit");
    componentize_testkit::script::link_world(
        &example("hello"),
        &worlds,
        &componentize_lua::binding()?,
        name,
    )
}
