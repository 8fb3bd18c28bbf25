//! The wasmtime engines init runs on, how a component's compiler is chosen,
//! and the cache of compiled components: the only place that configures
//! wasmtime.
//!
//! The init run executes the component's startup and the init call once,
//! and then its machine code is thrown away, so init compiles for compile
//! speed: Winch, wasmtime's baseline compiler, when the component allows it,
//! otherwise Cranelift without optimizations. The snapshot does not depend
//! on the compiler: both run the same wasm to the same state.

use crate::options::Compiler;
use crate::report::Compilation;
use anyhow::{Context, Result, bail};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use wasmtime::component::Component;
use wasmtime::{CacheStore, Config, Engine, OptLevel, Strategy};

/// wasmtime's compiled-code cache in `dir` (an absolute folder), as every
/// componentize engine sets it up (init's, and `componentize run`'s).
pub fn code_cache(dir: &Path) -> Result<wasmtime::Cache> {
    let mut config = wasmtime::CacheConfig::new();
    config.with_directory(dir);
    wasmtime::Cache::new(config)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot use `{}` as a code cache", dir.display()))
}

/// The wasmtime engines init runs components with (one per compiler,
/// created at first use), and a cache of compiled components (the same
/// instrumented component is compiled once), bounded to the
/// [`KEPT_COMPONENTS`] most recently used.
///
/// Cloning is cheap and shares the engines and the cache.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

/// How many compiled components a [`Runtime`] keeps: a long-lived runtime
/// (a language project's build server) snapshotting many different
/// components must not keep every one's machine code.
pub const KEPT_COMPONENTS: usize = 8;

/// A compiled component, the bytes it was compiled from and how.
struct Compiled {
    hash: u64,
    wasm: Vec<u8>,
    component: Component,
    compilation: Compilation,
}

struct RuntimeInner {
    /// wasmtime's code cache, shared by both engines.
    code_cache: Option<wasmtime::Cache>,
    function_cache: Option<Arc<dyn CacheStore>>,
    /// Winch's engine, or why there is none on this host.
    winch: OnceLock<Result<Engine, String>>,
    cranelift: OnceLock<Result<Engine, String>>,
    /// Functions Cranelift compiled or found in the function cache since the
    /// last [`Runtime::compile`] began: its progress.
    functions: Arc<AtomicUsize>,
    /// What is being compiled now, if anything.
    compiling: Mutex<Option<CompileProgress>>,
    /// Least recently used first; at most [`KEPT_COMPONENTS`].
    components: Mutex<Vec<Compiled>>,
}

/// Caches for a [`Runtime`]; [`RuntimeBuilder::build`] makes it.
#[derive(Clone, Default)]
pub struct RuntimeBuilder {
    code_cache: Option<PathBuf>,
    function_cache: Option<Arc<dyn CacheStore>>,
}

impl RuntimeBuilder {
    /// wasmtime's compiled-code cache in `dir` (an absolute path): a
    /// rebuild whose component did not change (only the script did) does
    /// not compile it again.
    pub fn code_cache(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.code_cache = Some(dir.into());
        self
    }

    /// Cranelift's incremental compilation cache in `store`: components
    /// that share libraries (libc, the interpreter) compile those functions
    /// once, so a new world with the same interpreter compiles little more
    /// than its bindings. Winch has no such cache; it compiles everything,
    /// fast.
    pub fn function_cache(&mut self, store: Arc<dyn CacheStore>) -> &mut Self {
        self.function_cache = Some(store);
        self
    }

    /// The runtime. Engines are created at first use; a code cache folder
    /// that cannot be used is an error now.
    pub fn build(&self) -> Result<Runtime> {
        let code_cache = self.code_cache.as_deref().map(code_cache).transpose()?;
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                code_cache,
                function_cache: self.function_cache.clone(),
                winch: OnceLock::new(),
                cranelift: OnceLock::new(),
                functions: Arc::new(AtomicUsize::new(0)),
                compiling: Mutex::new(None),
                components: Mutex::new(Vec::new()),
            }),
        })
    }
}

impl Runtime {
    /// A runtime without caches beyond its own compiled components.
    pub fn new() -> Result<Runtime> {
        RuntimeBuilder::default().build()
    }

    /// A runtime with caches.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// The engine configuration of `compiler` ([`Compiler::Winch`] or
    /// [`Compiler::Cranelift`]): the component model and epoch interruption
    /// (for the timeout); wasm exceptions (setjmp/longjmp) where the
    /// compiler has them; the caches.
    fn config(&self, compiler: Compiler) -> Result<Config> {
        let inner = &self.inner;
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .wasm_component_model_map(true)
            .epoch_interruption(true);
        config.cache(inner.code_cache.clone());
        match compiler {
            Compiler::Winch => {
                config.strategy(Strategy::Winch);
            }
            _ => {
                // The code runs once: optimizing it is wasted work (if
                // little: register allocation dominates either way).
                config
                    .strategy(Strategy::Cranelift)
                    .cranelift_opt_level(OptLevel::None)
                    .wasm_exceptions(true);
                if let Some(store) = &inner.function_cache {
                    let counted = CountingStore {
                        store: store.clone(),
                        functions: inner.functions.clone(),
                    };
                    config
                        .enable_incremental_compilation(Arc::new(counted))
                        .map_err(anyhow::Error::from)
                        .context("cannot enable Cranelift's incremental compilation cache")?;
                }
            }
        }
        Ok(config)
    }

    /// The engine of `compiler`, created at first use.
    fn engine(&self, compiler: Compiler) -> Result<&Engine, String> {
        let cell = match compiler {
            Compiler::Winch => &self.inner.winch,
            _ => &self.inner.cranelift,
        };
        cell.get_or_init(|| {
            let config = self.config(compiler).map_err(|e| format!("{e:#}"))?;
            Engine::new(&config).map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(Clone::clone)
    }

    /// The compile under way on this runtime, if any: progress for a front
    /// end, which may ask from another thread. (With several inits on one
    /// runtime at once, it is one of theirs.)
    pub fn progress(&self) -> Option<CompileProgress> {
        let mut progress = (*self.inner.compiling.lock().ok()?)?;
        progress.done = progress
            .functions
            .min(self.inner.functions.load(Ordering::Relaxed));
        Some(progress)
    }

    /// Compiles `request.wasm`, or returns the component compiled from the
    /// same bytes before (by the compiler asked for, if one is).
    pub(crate) fn compile(&self, request: CompileRequest<'_>) -> Result<(Component, Compilation)> {
        let CompileRequest { wasm, wanted, .. } = request;
        let mut hasher = DefaultHasher::new();
        wasm.hash(&mut hasher);
        let hash = hasher.finish();
        if let Ok(mut kept) = self.inner.components.lock()
            && let Some(i) = kept.iter().position(|c| {
                c.hash == hash
                    && c.wasm == wasm
                    && (wanted == Compiler::Auto || c.compilation.compiler == wanted)
            })
        {
            // Most recently used goes last.
            let compiled = kept.remove(i);
            let found = (compiled.component.clone(), compiled.compilation.clone());
            kept.push(compiled);
            return Ok(found);
        }
        let (component, compilation) = self.choose_and_compile(request)?;
        if let Ok(mut kept) = self.inner.components.lock() {
            if kept.len() >= KEPT_COMPONENTS {
                kept.remove(0);
            }
            kept.push(Compiled {
                hash,
                wasm: wasm.to_vec(),
                component: component.clone(),
                compilation: compilation.clone(),
            });
        }
        Ok((component, compilation))
    }

    /// Picks the compiler for the request and compiles.
    fn choose_and_compile(&self, request: CompileRequest<'_>) -> Result<(Component, Compilation)> {
        let CompileRequest {
            wasm,
            functions,
            wanted,
            winch_blocker,
        } = request;
        let compile = |compiler: Compiler| -> Result<Component> {
            let engine = self.engine(compiler).map_err(|e| match compiler {
                Compiler::Winch => anyhow::anyhow!("Winch is not available on this host: {e}"),
                _ => anyhow::Error::msg(e),
            })?;
            self.inner.functions.store(0, Ordering::Relaxed);
            self.set_compiling(Some(CompileProgress {
                compiler,
                done: 0,
                functions,
            }));
            let component = Component::new(engine, wasm)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("compiling the instrumented component with {compiler:?}"));
            self.set_compiling(None);
            component
        };
        let cranelift = |reason: String| -> Result<(Component, Compilation)> {
            let component = compile(Compiler::Cranelift)?;
            Ok((
                component,
                Compilation {
                    compiler: Compiler::Cranelift,
                    reason,
                },
            ))
        };
        let winch = || compile(Compiler::Winch);
        match (wanted, winch_blocker) {
            (Compiler::Cranelift, _) => cranelift("asked for (--init-compiler cranelift)".into()),
            (Compiler::Winch, Some(blocker)) => bail!(
                "Winch cannot compile this component: {blocker}; use `--init-compiler auto` \
                 (Cranelift for such components)"
            ),
            (Compiler::Winch, None) => Ok((
                winch()?,
                Compilation {
                    compiler: Compiler::Winch,
                    reason: "asked for (--init-compiler winch)".into(),
                },
            )),
            (Compiler::Auto, Some(blocker)) => {
                cranelift(format!("Winch lacks a feature: {blocker}"))
            }
            (Compiler::Auto, None) => match winch() {
                Ok(component) => Ok((
                    component,
                    Compilation {
                        compiler: Compiler::Winch,
                        reason: String::new(),
                    },
                )),
                // Winch compiles SIMD only partly (and needs AVX): what it
                // refuses, Cranelift compiles.
                Err(e) => cranelift(format!("Winch failed ({e:#})")),
            },
        }
    }

    fn set_compiling(&self, progress: Option<CompileProgress>) {
        if let Ok(mut compiling) = self.inner.compiling.lock() {
            *compiling = progress;
        }
    }

    /// How many compiled components are kept (for the bound's test).
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.inner.components.lock().map(|k| k.len()).unwrap_or(0)
    }
}

/// What [`Runtime::compile`] compiles, and how.
#[derive(Clone, Copy)]
pub(crate) struct CompileRequest<'a> {
    /// The component.
    pub wasm: &'a [u8],
    /// How many functions it defines (for progress).
    pub functions: usize,
    /// The compiler asked for.
    pub wanted: Compiler,
    /// What in it Winch cannot compile, if anything.
    pub winch_blocker: Option<&'a str>,
}

/// How far a compile is: see [`Runtime::progress`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompileProgress {
    /// The compiler at work.
    pub compiler: Compiler,
    /// Functions done so far: counted for Cranelift with a
    /// [`RuntimeBuilder::function_cache`] (one lookup per function), zero
    /// otherwise.
    pub done: usize,
    /// Functions the component defines.
    pub functions: usize,
}

/// A function cache that counts the functions asked for: one lookup per
/// function Cranelift compiles.
#[derive(Debug)]
struct CountingStore {
    store: Arc<dyn CacheStore>,
    functions: Arc<AtomicUsize>,
}

impl CacheStore for CountingStore {
    fn get(&self, key: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
        self.functions.fetch_add(1, Ordering::Relaxed);
        self.store.get(key)
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        self.store.insert(key, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request for `wasm` (one function).
    fn request<'a>(
        wasm: &'a [u8],
        wanted: Compiler,
        winch_blocker: Option<&'a str>,
    ) -> CompileRequest<'a> {
        CompileRequest {
            wasm,
            functions: 1,
            wanted,
            winch_blocker,
        }
    }

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
        runtime
            .compile(request(&first, Compiler::Auto, None))
            .unwrap();
        for n in 1..KEPT_COMPONENTS as u32 * 2 {
            runtime
                .compile(request(&component(n), Compiler::Auto, None))
                .unwrap();
            // Using the first one keeps it among the most recent.
            runtime
                .compile(request(&first, Compiler::Auto, None))
                .unwrap();
            assert!(runtime.kept() <= KEPT_COMPONENTS);
        }
        assert_eq!(runtime.kept(), KEPT_COMPONENTS);
        let kept = runtime.inner.components.lock().unwrap();
        assert!(kept.iter().any(|c| c.wasm == first));
        // The oldest others were let go.
        assert!(!kept.iter().any(|c| c.wasm == component(1)));
    }

    #[test]
    fn auto_takes_winch_unless_the_component_needs_cranelift() {
        let runtime = Runtime::new().unwrap();
        let wasm = component(7);
        let (_, auto) = runtime
            .compile(request(&wasm, Compiler::Auto, None))
            .unwrap();
        assert_eq!(auto.compiler, Compiler::Winch);
        let blocker = Some("core module 0: it defines exception tags (exceptions)");
        let (_, forced) = runtime
            .compile(request(&component(8), Compiler::Auto, blocker))
            .unwrap();
        assert_eq!(forced.compiler, Compiler::Cranelift);
        assert!(forced.to_string().contains("exception tags"), "{forced}");
        let refused = runtime
            .compile(request(&component(9), Compiler::Winch, blocker))
            .err()
            .unwrap();
        assert!(
            refused
                .to_string()
                .contains("Winch cannot compile this component"),
            "{refused}"
        );
        // A component kept from Winch is compiled again for Cranelift.
        let (_, asked) = runtime
            .compile(request(&wasm, Compiler::Cranelift, None))
            .unwrap();
        assert_eq!(asked.compiler, Compiler::Cranelift);
    }
}
