//! Shared by the Lua binding's tests and its benchmark (which includes this
//! file with `#[path]`): where the inputs are, the test worlds, and how a
//! world is linked with the Lua binding.
#![allow(dead_code)] // each target uses a part

use anyhow::{Context, Result};
use componentize_lua::{Binding, INTERPRETER};
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
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A test script of `tests/lua/`.
pub fn script(name: &str) -> String {
    read(&tests_dir().join("lua").join(name))
}

/// `tests/wit/worlds.wit` with what it uses: the hello example (with its
/// WASI WIT) and the init contract.
pub fn test_wit() -> Result<(Resolve, PackageId)> {
    let mut resolve = Resolve::default();
    resolve
        .push_path(example("hello"))
        .context("loading examples/hello")?;
    resolve
        .push_str("init.wit", componentize_contract::INIT_WIT)
        .context("loading the init contract")?;
    let package = resolve
        .push_file(tests_dir().join("wit/worlds.wit"))
        .context("loading tests/wit/worlds.wit")?;
    Ok((resolve, package))
}

/// Generates the bindings of `world` and links them with the Lua binding:
/// lua.so first (it defines `cabi_realloc`, which the bindings re-export),
/// then the bindings, then what lua.so needs.
pub fn link(resolve: &Resolve, world: WorldId) -> Result<Vec<u8>> {
    let mut options = componentize_generate::Options::default();
    options.interpreter(INTERPRETER);
    let bindings = componentize_generate::generate(resolve, world, &options)?;
    let binding = Binding::locate()?;
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let mut linker = wit_component::Linker::default();
    let interpreter = binding.interpreter();
    linker.library(interpreter.name, &read(&interpreter.path)?, false)?;
    linker.library("bindings.so", bindings.wasm(), false)?;
    for lib in binding.dependencies() {
        linker.library(lib.name, &read(&lib.path)?, false)?;
    }
    linker.encoder().validate(true);
    linker.encode().context("linking the component")
}
