//! The wasmtime engine init runs on and its cache of compiled components:
//! the only place that configures wasmtime.

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::sync::{Arc, Mutex};
use wasmtime::component::Component;
use wasmtime::{CacheStore, Config, Engine};

/// wasmtime's compiled-code cache in `dir` (an absolute folder), as every
/// componentize engine sets it up (init's, and `componentize run`'s).
pub fn code_cache(dir: &Path) -> Result<wasmtime::Cache> {
    let mut config = wasmtime::CacheConfig::new();
    config.with_directory(dir);
    wasmtime::Cache::new(config)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot use `{}` as a code cache", dir.display()))
}

/// The wasmtime engine init runs components with, and a cache of compiled
/// components (the same instrumented component is compiled once).
///
/// Cloning is cheap and shares the engine and the cache.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

/// Compiled components by a hash of their bytes; the bytes are compared too.
type ComponentCache = HashMap<u64, Vec<(Vec<u8>, Component)>>;

struct RuntimeInner {
    engine: Engine,
    components: Mutex<ComponentCache>,
}

impl Runtime {
    /// A runtime with the engine configuration init needs: the component
    /// model, wasm exceptions (setjmp/longjmp) and epoch interruption (for
    /// the timeout).
    pub fn new() -> Result<Runtime> {
        Runtime::with_config(Config::new())
    }

    /// Like [`Runtime::new`], with wasmtime's compiled-code cache in `dir`
    /// (an absolute path): a rebuild whose component did not change (only
    /// the script did) does not compile it again.
    pub fn with_code_cache(dir: &Path) -> Result<Runtime> {
        let mut config = Config::new();
        config.cache(Some(code_cache(dir)?));
        Runtime::with_config(config)
    }

    /// Like [`Runtime::new`], plus Cranelift's incremental compilation cache
    /// in `store`: different components that share libraries (libc, the
    /// interpreter) compile those functions once. Worth it for a long-lived
    /// runtime, or several runtimes sharing one store, that snapshot several
    /// different components; overhead for a single one.
    pub fn with_incremental_cache(store: Arc<dyn CacheStore>) -> Result<Runtime> {
        let mut config = Config::new();
        config
            .enable_incremental_compilation(store)
            .map_err(anyhow::Error::from)
            .context("cannot enable Cranelift's incremental compilation cache")?;
        Runtime::with_config(config)
    }

    /// `config` plus what init needs.
    fn with_config(mut config: Config) -> Result<Runtime> {
        config
            .wasm_component_model(true)
            .wasm_component_model_map(true)
            .wasm_exceptions(true)
            .epoch_interruption(true);
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("cannot create the wasmtime engine for init")?;
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                components: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Compiles `wasm`, or returns the component compiled from the same bytes
    /// before.
    pub(crate) fn compile(&self, wasm: &[u8]) -> Result<Component> {
        let mut hasher = DefaultHasher::new();
        wasm.hash(&mut hasher);
        let key = hasher.finish();
        if let Ok(map) = self.inner.components.lock()
            && let Some((_, component)) = map
                .get(&key)
                .and_then(|v| v.iter().find(|(bytes, _)| bytes == wasm))
        {
            return Ok(component.clone());
        }
        let component = Component::new(&self.inner.engine, wasm)
            .map_err(anyhow::Error::from)
            .context("compiling the instrumented component")?;
        if let Ok(mut map) = self.inner.components.lock() {
            map.entry(key)
                .or_default()
                .push((wasm.to_vec(), component.clone()));
        }
        Ok(component)
    }
}
