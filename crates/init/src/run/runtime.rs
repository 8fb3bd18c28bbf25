//! The wasmtime engine init runs on and its cache of compiled components:
//! the only place that configures wasmtime.

use anyhow::{Context, Result};
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
/// components (the same instrumented component is compiled once), bounded
/// to the [`KEPT_COMPONENTS`] most recently used.
///
/// Cloning is cheap and shares the engine and the cache.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

/// How many compiled components a [`Runtime`] keeps: a long-lived runtime
/// (a language project's build server) snapshotting many different
/// components must not keep every one's machine code.
pub const KEPT_COMPONENTS: usize = 8;

/// A compiled component and the bytes it was compiled from.
struct Compiled {
    hash: u64,
    wasm: Vec<u8>,
    component: Component,
}

struct RuntimeInner {
    engine: Engine,
    /// Least recently used first; at most [`KEPT_COMPONENTS`].
    components: Mutex<Vec<Compiled>>,
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
                components: Mutex::new(Vec::new()),
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
        let hash = hasher.finish();
        if let Ok(mut kept) = self.inner.components.lock()
            && let Some(i) = kept.iter().position(|c| c.hash == hash && c.wasm == wasm)
        {
            // Most recently used goes last.
            let compiled = kept.remove(i);
            let component = compiled.component.clone();
            kept.push(compiled);
            return Ok(component);
        }
        let component = Component::new(&self.inner.engine, wasm)
            .map_err(anyhow::Error::from)
            .context("compiling the instrumented component")?;
        if let Ok(mut kept) = self.inner.components.lock() {
            if kept.len() >= KEPT_COMPONENTS {
                kept.remove(0);
            }
            kept.push(Compiled {
                hash,
                wasm: wasm.to_vec(),
                component: component.clone(),
            });
        }
        Ok(component)
    }

    /// How many compiled components are kept (for the bound's test).
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.inner.components.lock().map(|k| k.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component that differs by its one exported constant.
    fn component(n: u32) -> Vec<u8> {
        wat::parse_str(format!(
            "(component (core module (func (export \"f\") (result i32) i32.const {n})))"
        ))
        .unwrap()
    }

    #[test]
    fn compiled_components_are_bounded_and_the_recent_ones_kept() {
        let runtime = Runtime::new().unwrap();
        let first = component(0);
        runtime.compile(&first).unwrap();
        for n in 1..KEPT_COMPONENTS as u32 * 2 {
            runtime.compile(&component(n)).unwrap();
            // Using the first one keeps it among the most recent.
            runtime.compile(&first).unwrap();
            assert!(runtime.kept() <= KEPT_COMPONENTS);
        }
        assert_eq!(runtime.kept(), KEPT_COMPONENTS);
        let kept = runtime.inner.components.lock().unwrap();
        assert!(kept.iter().any(|c| c.wasm == first));
        // The oldest others were let go.
        assert!(!kept.iter().any(|c| c.wasm == component(1)));
    }
}
