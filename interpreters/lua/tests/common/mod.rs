//! Shared by the Lua binding's tests and its benchmark (which includes this
//! file with `#[path]`): where the inputs are, the test worlds, and how a
//! world is linked with the Lua binding (`componentize_testkit::script`
//! does the work, for the JavaScript binding's tests too).
#![allow(dead_code)] // each target uses a part

use anyhow::Result;
use std::path::{Path, PathBuf};
use wit_parser::{PackageId, Resolve, WorldId};

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

/// `tests/wit/worlds.wit` with what it uses: the hello example (with its
/// WASI WIT) and the init contract.
pub fn test_wit() -> Result<(Resolve, PackageId)> {
    componentize_testkit::script::test_wit(&example("hello"), &tests_dir().join("wit/worlds.wit"))
}

/// Generates the bindings of `world` and links them with the Lua binding:
/// lua.so first (it defines `cabi_realloc`, which the bindings re-export),
/// then the bindings, then what lua.so needs.
pub fn link(resolve: &Resolve, world: WorldId) -> Result<Vec<u8>> {
    componentize_testkit::script::link(resolve, world, &componentize_lua::binding()?)
}
