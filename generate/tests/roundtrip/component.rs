//! From a world to a compiled component: bindings (ours or wit-dylib's),
//! shared-everything linking with the test interpreter and libc, and
//! compilation with one engine shared by the whole test binary.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use wasmtime::component::Component;
use wasmtime::{Config, Engine};
use wit_parser::{Resolve, WorldId};

/// Name of the interpreter library, as recorded in the bindings' `needed`.
pub const INTERPRETER: &str = "libtestinterp.so";

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

/// `<target>/fixtures/current`, built by `fixtures/toolchain.sh`.
fn fixtures_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FIXTURES_DIR") {
        return dir.into();
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => PathBuf::from(t),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
    };
    target.join("fixtures/current")
}

struct Libraries {
    interpreter: Vec<u8>,
    libc: Vec<u8>,
}

fn libraries() -> &'static Libraries {
    static LIBS: OnceLock<Libraries> = OnceLock::new();
    LIBS.get_or_init(|| {
        let dir = fixtures_dir();
        let read = |rel: &str| {
            let path = dir.join(rel);
            std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "cannot read {} ({e}); build the fixtures first: bash fixtures/toolchain.sh",
                    path.display()
                )
            })
        };
        Libraries {
            interpreter: read("lib/libtestinterp.so"),
            libc: read("sysroot/lib/wasm32-wasip2/libc.so"),
        }
    })
}

pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.wasm_component_model_map(true);
        // wit-smith's `@external-id` annotations are encoded as `implements`.
        config.wasm_component_model_implements(true);
        config
            .enable_incremental_compilation(Arc::new(componentize_init::MemoryCache::default()))
            .expect("incremental compilation");
        Engine::new(&config).expect("wasmtime engine")
    })
}

/// The bindings module for `world`.
pub fn bindings(resolve: &Resolve, world: WorldId, generator: Generator) -> Result<Vec<u8>> {
    match generator {
        Generator::Componentize => {
            let options = componentize_generate::Options {
                interpreter: Some(INTERPRETER.into()),
            };
            Ok(componentize_generate::generate(resolve, world, &options)?.into_wasm())
        }
        Generator::WitDylib => {
            let mut opts = wit_dylib::DylibOpts {
                interpreter: Some(INTERPRETER.into()),
                ..Default::default()
            };
            let mut wasm = wit_dylib::create(resolve, world, Some(&mut opts))?;
            // wit-dylib does not embed the world; the linker needs it.
            wit_component::embed_component_metadata(
                &mut wasm,
                resolve,
                world,
                wit_component::StringEncoding::UTF8,
                false,
            )?;
            Ok(wasm)
        }
    }
}

/// Links the bindings with the interpreter and libc. The interpreter comes
/// first: it defines `cabi_realloc`, which the bindings import and re-export
/// (the first library exporting a symbol wins).
pub fn link(bindings: &[u8]) -> Result<Vec<u8>> {
    let libs = libraries();
    let mut linker = wit_component::Linker::default();
    linker.library(INTERPRETER, &libs.interpreter, false)?;
    linker.library("bindings.so", bindings, false)?;
    linker.library("libc.so", &libs.libc, false)?;
    linker.encoder().validate(true);
    linker.encode().context("linking the component")
}

/// Generates, links and compiles `world`.
pub fn build(resolve: &Resolve, world: WorldId, generator: Generator) -> Result<Component> {
    let bindings = bindings(resolve, world, generator)
        .with_context(|| format!("generating bindings with {}", generator.name()))?;
    let wasm = link(&bindings)?;
    Component::new(engine(), &wasm)
        .map_err(anyhow::Error::from)
        .context("compiling the component")
}
