//! The wasmtime engine components run on, its compiled-code cache, and
//! loading a component file with errors that say what the file is instead.

use anyhow::{Context, Result, bail};
use std::path::Path;
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

/// An engine for the components componentize builds: the component model
/// with `map<k, v>` (the bindings support it, as init's engine does) and
/// wasm exceptions (setjmp/longjmp in interpreters such as Lua).
///
/// With `code_cache_dir` (an absolute folder), compiled components are stored
/// there and a component compiled before is loaded instead of compiled
/// again.
pub fn engine(code_cache_dir: Option<&Path>) -> Result<Engine> {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .wasm_component_model_map(true)
        .wasm_exceptions(true);
    if let Some(dir) = code_cache_dir {
        config.cache(Some(componentize_init::code_cache(dir)?));
    }
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("cannot create the wasmtime engine")
}

/// The first bytes of every WebAssembly binary.
const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// The version and layer fields of a core module (a component has another
/// layer).
const CORE_MODULE_VERSION: [u8; 4] = [1, 0, 0, 0];

/// Reads and compiles the component at `path` (or loads it from the code
/// cache). A missing file, a core module and a file that is not WebAssembly
/// are errors that say so.
pub fn load(engine: &Engine, path: &Path) -> Result<Component> {
    let shown = path.display();
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{shown}`"))?;
    if !bytes.starts_with(WASM_MAGIC) {
        bail!("`{shown}` is not a WebAssembly component (it does not start with `\\0asm`)");
    }
    if bytes.get(4..8) == Some(&CORE_MODULE_VERSION) {
        bail!(
            "`{shown}` is a core WebAssembly module, not a component: build components with \
             componentize (or wrap a module with `wasm-tools component new`)"
        );
    }
    Component::new(engine, &bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("`{shown}` is not a valid component"))
}
