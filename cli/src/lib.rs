//! componentize as a library: the whole pipeline (generate -> link -> init)
//! with a per-stage cache, for language projects that vendor the toolkit and
//! ship their own interpreter.
//!
//! ```no_run
//! use componentize::{Pipeline, Source};
//! # fn main() -> anyhow::Result<()> {
//! let built = Pipeline::new(Source::path("lua.so"), "app.wit")
//!     .script(Source::path("app.lua"))
//!     .search_path("target/fixtures/current/lib")
//!     .run(&mut |_| {})?;
//! std::fs::write("app.wasm", &built.component)?;
//! for stage in &built.stages {
//!     println!("{:?}: {:?}{}", stage.stage, stage.time, if stage.cached { " (cached)" } else { "" });
//! }
//! # Ok(()) }
//! ```
//!
//! Each stage's output is cached under a key hashing everything it depends
//! on (see [`cache`]): a rerun with nothing changed does no stage work,
//! changing only the script reruns only init, changing the WIT reruns all
//! three.

pub mod cache;

use anyhow::{Context, Result};
use cache::{Cache, Key, KeyBuilder};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// An input given as bytes or as a file.
#[derive(Clone, Debug)]
pub enum Source {
    Path(PathBuf),
    Bytes { name: String, bytes: Vec<u8> },
}

impl Source {
    pub fn path(path: impl Into<PathBuf>) -> Source {
        Source::Path(path.into())
    }

    pub fn bytes(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Source {
        Source::Bytes {
            name: name.into(),
            bytes: bytes.into(),
        }
    }

    /// The name (a path's file name) and the bytes; `what` names the input
    /// in the error.
    pub fn load(&self, what: &str) -> Result<(String, Vec<u8>)> {
        match self {
            Source::Bytes { name, bytes } => Ok((name.clone(), bytes.clone())),
            Source::Path(path) => {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("cannot read the {what} `{}`", path.display()))?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| path.display().to_string());
                Ok((name, bytes))
            }
        }
    }
}

/// A stage of the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Generate,
    Link,
    Init,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Generate => "generate",
            Stage::Link => "link",
            Stage::Init => "init",
        }
    }
}

/// What a stage did.
#[derive(Clone, Debug)]
pub struct StageReport {
    pub stage: Stage,
    /// Taken from the cache: no stage work done.
    pub cached: bool,
    pub time: Duration,
}

/// Progress events for a front end.
#[derive(Clone, Debug)]
pub enum Event {
    Started(Stage),
    Finished(StageReport),
    /// Detail for verbose output (what init printed, libraries linked).
    Detail(Stage, String),
}

/// The pipeline's products.
#[derive(Clone, Debug)]
pub struct Built {
    /// The final component.
    pub component: Vec<u8>,
    /// The bindings dylib (stage 1).
    pub bindings: Vec<u8>,
    /// The linked, not yet initialized component (stage 2).
    pub linked: Vec<u8>,
    pub stages: Vec<StageReport>,
}

/// The whole pipeline, configured like the `componentize` command.
#[derive(Clone)]
pub struct Pipeline {
    interpreter: Source,
    wit: PathBuf,
    world: Option<String>,
    features: Vec<String>,
    script: Option<Source>,
    libraries: Vec<Source>,
    search_paths: Vec<PathBuf>,
    cache: Option<Cache>,
    sandbox: componentize_init::Sandbox,
    timeout: Option<Duration>,
    memory_limit: Option<usize>,
}

impl Pipeline {
    /// A pipeline for `interpreter` (a dylib implementing `componentize.h`)
    /// and the WIT at `wit` (directory, `.wit` file or wasm package). No
    /// cache until [`Pipeline::cache`].
    pub fn new(interpreter: Source, wit: impl Into<PathBuf>) -> Pipeline {
        Pipeline {
            interpreter,
            wit: wit.into(),
            world: None,
            features: Vec::new(),
            script: None,
            libraries: Vec::new(),
            search_paths: Vec::new(),
            cache: None,
            sandbox: componentize_init::Sandbox::default(),
            timeout: None,
            memory_limit: None,
        }
    }

    /// The world to build (needed when the package has several).
    pub fn world(mut self, name: impl Into<String>) -> Pipeline {
        self.world = Some(name.into());
        self
    }

    /// Enables `@unstable` WIT features.
    pub fn features(mut self, features: Vec<String>) -> Pipeline {
        self.features = features;
        self
    }

    /// The script the interpreter runs at init (through the init contract).
    /// Without one, the snapshot holds the interpreter after its startup.
    pub fn script(mut self, script: Source) -> Pipeline {
        self.script = Some(script);
        self
    }

    /// Another library to link.
    pub fn library(mut self, library: Source) -> Pipeline {
        self.libraries.push(library);
        self
    }

    /// A folder to find needed libraries in (before the inputs' folders and
    /// `$WASI_SYSROOT`).
    pub fn search_path(mut self, dir: impl Into<PathBuf>) -> Pipeline {
        self.search_paths.push(dir.into());
        self
    }

    /// Caches stage outputs in `cache` (`None`: no cache).
    pub fn cache(mut self, cache: Option<Cache>) -> Pipeline {
        self.cache = cache;
        self
    }

    /// What init may reach (closed by default).
    pub fn sandbox(mut self, sandbox: componentize_init::Sandbox) -> Pipeline {
        self.sandbox = sandbox;
        self
    }

    pub fn init_timeout(mut self, timeout: Duration) -> Pipeline {
        self.timeout = Some(timeout);
        self
    }

    pub fn init_memory_limit(mut self, bytes: usize) -> Pipeline {
        self.memory_limit = Some(bytes);
        self
    }

    /// Runs generate -> link -> init, reporting progress to `events`.
    pub fn run(&self, events: &mut dyn FnMut(Event)) -> Result<Built> {
        let mut stages = Vec::new();
        let (interpreter_name, _) = self.interpreter.load("interpreter")?;
        let script = match &self.script {
            Some(s) => Some(s.load("script")?),
            None => None,
        };

        // Stage 1: generate.
        let mut key = Key::builder("generate");
        hash_wit(&mut key, &self.wit)?;
        key.str(self.world.as_deref().unwrap_or(""))
            .str(&interpreter_name)
            .str(&self.features.join(","))
            .str(if script.is_some() { "init-export" } else { "" });
        let bindings = self.stage(Stage::Generate, key.finish(), events, &mut stages, || {
            let wit = componentize_generate::Wit::load(&self.wit, &self.features, false)?;
            let mut world = wit.world(self.world.as_deref())?;
            let mut resolve = wit.resolve;
            if script.is_some() {
                world = componentize_init::add_init_export(&mut resolve, world)?;
            }
            let options = componentize_generate::Options {
                interpreter: Some(interpreter_name.clone()),
            };
            Ok(componentize_generate::generate(&resolve, world, &options)?.into_wasm())
        })?;

        // Stage 2: link.
        // Files are linked as files, so their folders are searched for the
        // libraries they need, exactly as `componentize link` does.
        let mut link = componentize_link::Link::new().bindings(BINDINGS_NAME, bindings.clone());
        for lib in std::iter::once(&self.interpreter).chain(&self.libraries) {
            link = match lib {
                Source::Path(p) => link.library_path(p.clone()),
                Source::Bytes { name, bytes } => link.library(name.clone(), bytes.clone()),
            };
        }
        for dir in &self.search_paths {
            link = link.search_path(dir.clone());
        }
        let mut key = Key::builder("link");
        for (name, bytes) in link.resolve()? {
            key.str(&name).bytes(&bytes);
        }
        let linked = self.stage(Stage::Link, key.finish(), events, &mut stages, || {
            let linked = link.encode()?;
            Ok(linked.into_component())
        })?;

        // Stage 3: init.
        let mut key = Key::builder("init");
        key.bytes(&linked);
        match &script {
            Some((name, source)) => key.str("script").str(name).bytes(source),
            None => key.str("startup"),
        };
        for (k, v) in &self.sandbox.env {
            key.str(k).str(v);
        }
        // Granted folders may change between runs without any input
        // changing: such an init is never taken from the cache.
        let cacheable = self.sandbox.dirs.is_empty();
        let component = self.stage_with(
            Stage::Init,
            key.finish(),
            cacheable,
            events,
            &mut stages,
            |events| {
                let mut init =
                    componentize_init::Init::new(linked.clone()).sandbox(self.sandbox.clone());
                // Compiled code is cached next to the stage outputs: changing
                // only the script does not recompile the component.
                if let Some(cache) = &self.cache {
                    // wasmtime wants an absolute folder.
                    let code = std::path::absolute(cache.dir().join("code"))?;
                    init = init.runtime(&componentize_init::Runtime::with_code_cache(&code)?);
                }
                if let Some((name, source)) = &script {
                    init = init.script(name.clone(), source.clone());
                }
                if let Some(t) = self.timeout {
                    init = init.timeout(t);
                }
                if let Some(m) = self.memory_limit {
                    init = init.memory_limit(m);
                }
                let snapshot = init.run()?;
                for (name, bytes) in [("stdout", &snapshot.stdout), ("stderr", &snapshot.stderr)] {
                    if !bytes.is_empty() {
                        events(Event::Detail(
                            Stage::Init,
                            format!(
                                "{name} of init:\n{}",
                                String::from_utf8_lossy(bytes).trim_end()
                            ),
                        ));
                    }
                }
                Ok(snapshot.wasm)
            },
        )?;

        Ok(Built {
            component,
            bindings,
            linked,
            stages,
        })
    }

    fn stage(
        &self,
        stage: Stage,
        key: Key,
        events: &mut dyn FnMut(Event),
        stages: &mut Vec<StageReport>,
        work: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        self.stage_with(stage, key, true, events, stages, |_| work())
    }

    fn stage_with(
        &self,
        stage: Stage,
        key: Key,
        cacheable: bool,
        events: &mut dyn FnMut(Event),
        stages: &mut Vec<StageReport>,
        work: impl FnOnce(&mut dyn FnMut(Event)) -> Result<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        events(Event::Started(stage));
        let start = Instant::now();
        let cache = self.cache.as_ref().filter(|_| cacheable);
        let (output, cached) = match cache.and_then(|c| c.get(stage.name(), &key)) {
            Some(hit) => (hit, true),
            None => {
                let output = work(events).with_context(|| format!("{} failed", stage.name()))?;
                if let Some(c) = cache {
                    c.put(stage.name(), &key, &output)?;
                }
                (output, false)
            }
        };
        let report = StageReport {
            stage,
            cached,
            time: start.elapsed(),
        };
        events(Event::Finished(report.clone()));
        stages.push(report);
        Ok(output)
    }
}

/// The library name the bindings get in the linked component.
pub const BINDINGS_NAME: &str = "bindings.so";

/// Hashes the WIT input: a file's bytes, or every `.wit` and `.wasm` file
/// under a directory (relative path and bytes, in sorted order); other files
/// (such as a script kept next to the WIT) are not part of the WIT.
fn hash_wit(key: &mut KeyBuilder, path: &Path) -> Result<()> {
    if path.is_dir() {
        let mut files = Vec::new();
        collect_files(path, path, &mut files)?;
        files.sort();
        for rel in files {
            let bytes = std::fs::read(path.join(&rel))?;
            key.str(&rel).bytes(&bytes);
        }
    } else {
        let bytes = std::fs::read(path).with_context(|| {
            format!(
                "WIT path `{}` does not exist or cannot be read",
                path.display()
            )
        })?;
        key.bytes(&bytes);
    }
    Ok(())
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("cannot read `{}`", dir.display()))?
    {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "wit" || e == "wasm") {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}
