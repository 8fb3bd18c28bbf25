//! From a world to a compiled component: bindings (ours or wit-dylib's),
//! shared-everything linking with the test interpreter and libc, and
//! compilation with the test binary's shared engine (testkit).

use anyhow::{Context, Result};
use componentize_testkit::{LIBC, toolchain_file};
use wasmtime::component::Component;
use wit_parser::{Resolve, WorldId};

/// Name of the interpreter library, as recorded in the bindings' `needed`.
pub const INTERPRETER: &str = "libtestinterp.so";

/// The test interpreter's build for synchronous worlds.
pub const SYNC_BUILD: &str = "lib/libtestinterp.so";
/// Its build with async exports, which imports the task built-ins.
pub const ASYNC_BUILD: &str = "lib/libasyncinterp.so";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Generator {
    Componentize,
    WitDylib,
}

impl Generator {
    pub fn name(self) -> &'static str {
        match self {
            Generator::Componentize => "componentize",
            Generator::WitDylib => "wit-dylib",
        }
    }
}

/// The bindings module for `world`.
pub fn bindings(resolve: &Resolve, world: WorldId, generator: Generator) -> Result<Vec<u8>> {
    match generator {
        Generator::Componentize => {
            let mut options = componentize_generate::Options::default();
            options.interpreter(INTERPRETER);
            Ok(componentize_generate::generate(resolve, world, &options)?.into_wasm())
        }
        Generator::WitDylib => crate::reference::wit_dylib_bindings(resolve, world, INTERPRETER),
    }
}

/// Links the bindings with the interpreter `build` (a toolchain file,
/// linked under [`INTERPRETER`]'s name, which the bindings' `needed`
/// records) and libc. The
/// interpreter comes first: it defines `cabi_realloc`, which the bindings
/// import and re-export (the first library exporting a symbol wins).
pub fn link_with(bindings: &[u8], build: &str) -> Result<Vec<u8>> {
    let mut linker = wit_component::Linker::default();
    linker.library(INTERPRETER, toolchain_file(build), false)?;
    linker.library("bindings.so", bindings, false)?;
    linker.library("libc.so", toolchain_file(LIBC), false)?;
    linker.encoder().validate(true);
    linker.encode().context("linking the component")
}

/// Generates `world`, links it with the interpreter `build` (a toolchain
/// file) and compiles it.
pub fn build(
    resolve: &Resolve,
    world: WorldId,
    generator: Generator,
    build: &str,
) -> Result<Component> {
    let bindings = bindings(resolve, world, generator)
        .with_context(|| format!("generating bindings with {}", generator.name()))?;
    let wasm = link_with(&bindings, build)?;
    // Not `testkit::compile`: that keeps every component for the life of
    // the test binary, and hundreds of random worlds are built here, each
    // once. The engine's incremental cache still shares the libraries' code.
    Component::new(componentize_testkit::engine(), &wasm)
        .map_err(anyhow::Error::from)
        .context("compiling the component")
}
