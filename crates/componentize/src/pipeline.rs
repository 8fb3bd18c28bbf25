//! The whole build: generate -> link -> init, each stage cached.

use crate::cache::{Cache, Key, KeyBuilder};
use crate::source::Source;
use crate::stages::{self, GenerateInput, InitWith, Stage};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The library name the bindings get in the linked component: the module
/// name they give themselves.
pub const BINDINGS_NAME: &str = componentize_generate::BINDINGS_MODULE_NAME;

/// What a stage did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StageReport {
    /// Which stage.
    pub stage: Stage,
    /// Taken from the cache: no stage work done.
    pub cached: bool,
    /// How long it took, cache lookup included.
    pub time: Duration,
}

/// Progress events for a front end.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// A stage starts.
    Started(Stage),
    /// A stage is done.
    Finished(StageReport),
    /// Detail for verbose output (what init printed).
    Detail(Stage, String),
    /// How far long work in a stage is (compiling the component for init),
    /// sent every [`PROGRESS_INTERVAL`] while it lasts: for a front end to
    /// show on a terminal, overwriting the last one.
    Progress(Stage, String),
    /// Something went wrong that does not stop the build (the cache cannot
    /// be written): shown even when quiet. Each kind is reported once per
    /// run.
    Warning(String),
}

/// How often [`Event::Progress`] comes while long work goes on; work done
/// sooner sends none.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// Runs `init` on a worker thread, sending [`Event::Progress`] from this
/// one while `runtime` compiles (events need not be `Send`). The result
/// comes over a channel, so waiting for progress never delays it.
fn run_with_progress(
    init: &componentize_init::Init,
    runtime: &componentize_init::Runtime,
    events: &mut dyn FnMut(Event),
) -> Result<componentize_init::Snapshot> {
    std::thread::scope(|scope| {
        let (done, result) = std::sync::mpsc::channel();
        let worker = scope.spawn(move || {
            // The receiver lives until this thread is joined.
            let _ = done.send(init.run());
        });
        let outcome = loop {
            match result.recv_timeout(PROGRESS_INTERVAL) {
                Ok(outcome) => break Some(outcome),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(p) = runtime.progress() {
                        let done = match p.done {
                            0 => String::new(),
                            n => format!("{n} of "),
                        };
                        events(Event::Progress(
                            Stage::Init,
                            format!(
                                "compiling {done}{} functions ({:?})",
                                p.functions, p.compiler
                            ),
                        ));
                    }
                }
                // The worker ended without sending: it panicked.
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break None,
            }
        };
        match (outcome, worker.join()) {
            (Some(outcome), _) => outcome,
            (None, Err(panic)) => std::panic::resume_unwind(panic),
            (None, Ok(())) => Err(anyhow::anyhow!(
                "internal error: init ended without a result"
            )),
        }
    })
}

/// The pipeline's products.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Built {
    /// The final component.
    pub component: Vec<u8>,
    /// The bindings dylib (stage 1).
    pub bindings: Vec<u8>,
    /// The linked, not yet initialized component (stage 2).
    pub linked: Vec<u8>,
    /// What each stage did, in order.
    pub stages: Vec<StageReport>,
}

/// The whole pipeline, configured like the `componentize` command: each
/// stage takes the same options struct as its subcommand.
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub(crate) interpreter: Source,
    /// Where the interpreter's libc keeps the stack pointer, when known (a
    /// bundled interpreter): the bindings must agree.
    pub(crate) interpreter_stack_pointer: Option<componentize_generate::StackPointer>,
    pub(crate) wit: PathBuf,
    pub(crate) world: Option<String>,
    pub(crate) wit_options: componentize_generate::WitOptions,
    pub(crate) generate: componentize_generate::Options,
    pub(crate) call: InitWith,
    pub(crate) libraries: Vec<Source>,
    pub(crate) link: componentize_link::Options,
    pub(crate) init: componentize_init::Options,
    pub(crate) cache: Option<Cache>,
}

impl Pipeline {
    /// A pipeline for `interpreter` (a dylib implementing `componentize.h`)
    /// and the WIT at `wit` (directory, `.wit` file or wasm package). No
    /// cache until [`Pipeline::cache`].
    pub fn new(interpreter: Source, wit: impl Into<PathBuf>) -> Pipeline {
        Pipeline {
            interpreter,
            interpreter_stack_pointer: None,
            wit: wit.into(),
            world: None,
            wit_options: Default::default(),
            generate: Default::default(),
            call: InitWith::Startup,
            libraries: Vec::new(),
            link: Default::default(),
            init: Default::default(),
            cache: None,
        }
    }

    /// The world to build (needed when the package has several).
    pub fn world(&mut self, name: impl Into<String>) -> &mut Self {
        self.world = Some(name.into());
        self
    }

    /// How the WIT is read (`@unstable` features).
    pub fn wit_options(&mut self, options: componentize_generate::WitOptions) -> &mut Self {
        self.wit_options = options;
        self
    }

    /// The generate stage's options (`componentize generate`'s flags), e.g.
    /// [exclusions](componentize_generate::Exclusions) for partial bindings.
    /// Without an [`interpreter`](componentize_generate::Options::interpreter)
    /// name, the bindings need the interpreter's library name.
    pub fn generate_options(&mut self, options: componentize_generate::Options) -> &mut Self {
        self.generate = options;
        self
    }

    /// The script the interpreter runs at init (through the init contract,
    /// whose export the bindings then get). Without a script or an
    /// [`init_func`](Pipeline::init_func), the snapshot holds the
    /// interpreter after its startup. Replaces an `init_func`.
    pub fn script(&mut self, script: Source) -> &mut Self {
        self.call = InitWith::Script(script);
        self
    }

    /// Calls an export of the world at init instead of running a script: a
    /// name (`f`, `pkg:ns/iface.f`) or a WAVE call (`'f("x", 3)'`), as
    /// `componentize init --init-func` takes it. Replaces a `script`.
    pub fn init_func(&mut self, call: impl Into<String>) -> &mut Self {
        self.call = InitWith::Func(call.into());
        self
    }

    /// Another library to link.
    pub fn library(&mut self, library: Source) -> &mut Self {
        self.libraries.push(library);
        self
    }

    /// A folder to find needed libraries in (searched before the inputs'
    /// folders and `$WASI_SYSROOT`); the same as `-L`.
    pub fn search_path(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.link.search.push(dir.into());
        self
    }

    /// The link stage's options (`componentize link`'s flags).
    pub fn link_options(&mut self, options: componentize_link::Options) -> &mut Self {
        self.link = options;
        self
    }

    /// The init stage's options: sandbox and limits (`componentize init`'s
    /// flags).
    pub fn init_options(&mut self, options: componentize_init::Options) -> &mut Self {
        self.init = options;
        self
    }

    /// Caches stage outputs in `cache` (`None`: no cache).
    pub fn cache(&mut self, cache: Option<Cache>) -> &mut Self {
        self.cache = cache;
        self
    }

    /// The generator's options as the stage gets them: unless given, the
    /// interpreter's name is recorded as the bindings' `needed` library.
    pub(crate) fn bindings_options(&self) -> componentize_generate::Options {
        let mut options = self.generate.clone();
        if options.interpreter.is_none() {
            options.interpreter(self.interpreter.name());
        }
        options
    }

    /// The init options the stage runs with: the ones given, with the
    /// script's folder first among the module folders (a script given as
    /// bytes has none).
    pub(crate) fn effective_init_options(&self) -> componentize_init::Options {
        let mut options = self.init.clone();
        if let InitWith::Script(Source::Path(script)) = &self.call {
            let folder = crate::output::folder_of(script).to_path_buf();
            options.module_paths.insert(0, folder);
        }
        options
    }

    /// Whether the bindings get the init contract's export: with a script.
    pub(crate) fn init_export(&self) -> bool {
        matches!(self.call, InitWith::Script(_))
    }

    /// Runs generate -> link -> init, reporting progress to `events`.
    ///
    /// A cache that cannot be written (read-only, a full disk) does not
    /// fail the build: it goes on without storing, after one
    /// [`Event::Warning`].
    pub fn run(&self, events: &mut dyn FnMut(Event)) -> Result<Built> {
        let mut run = Run {
            events,
            stages: Vec::new(),
            cache: CacheUse {
                cache: self.cache.clone(),
                writable: true,
            },
        };
        let built = self.run_stages(&mut run)?;
        if let Some(cache) = run.cache.writable()
            && let Err(e) = cache.evict()
        {
            (run.events)(Event::Warning(format!(
                "cannot keep the cache `{}` under its size limit: {e:#}",
                cache.dir().display()
            )));
        }
        Ok(built)
    }

    fn run_stages(&self, run: &mut Run<'_>) -> Result<Built> {
        // Inputs are checked before any stage runs, so a typo fails at once
        // and names the input.
        self.interpreter.check("interpreter")?;
        for library in &self.libraries {
            library.check("library")?;
        }
        let generate_options = self.bindings_options();
        let stack_pointer = generate_options.async_options.stack_pointer;
        if let Some(built_for) = self.interpreter_stack_pointer
            && built_for != stack_pointer
        {
            bail!(
                "--stack-pointer {}: the interpreter `{}` and its libc keep the stack pointer \
                 in {}; build with `--stack-pointer {}` (the default), or with an interpreter \
                 and libc built for `{}`",
                stack_pointer.as_str(),
                self.interpreter.name(),
                match built_for {
                    componentize_generate::StackPointer::Global => "the `__stack_pointer` global",
                    componentize_generate::StackPointer::TaskContext => "the task context",
                },
                built_for.as_str(),
                stack_pointer.as_str()
            );
        }
        // The script is read once, for the key and for the stage.
        let call = match &self.call {
            InitWith::Script(script) => {
                let (name, source) = script.load("script")?;
                InitWith::Script(Source::bytes(name, source))
            }
            other => other.clone(),
        };
        let init_export = self.init_export();

        let mut key = Key::builder(Stage::Generate.name());
        hash_wit(&mut key, &self.wit)?;
        // Options enter keys in their Debug form: every field, values
        // included (an `--env KEY` read from the host is its value).
        key.str(self.world.as_deref().unwrap_or(""))
            .str(&format!("{:?}", self.wit_options))
            .str(&format!("{generate_options:?}"))
            .str(if init_export { "init-export" } else { "" });
        let bindings = self.stage(Stage::Generate, key.finish(), run, |_, _| {
            stages::generate(GenerateInput {
                wit: &self.wit,
                world: self.world.as_deref(),
                wit_options: &self.wit_options,
                options: &generate_options,
                init_export,
            })
        })?;

        let link = stages::link(
            &Source::bytes(BINDINGS_NAME, bindings.clone()),
            &self.interpreter,
            &self.libraries,
            &self.link,
        )?;
        // Resolving reads every library once; the key and the linker use
        // the same bytes.
        let resolved = link.resolve()?;
        let mut key = Key::builder(Stage::Link.name());
        for (label, bytes) in resolved.key_parts() {
            key.str(&label).bytes(&bytes);
        }
        let linked = self.stage(Stage::Link, key.finish(), run, |events, _| {
            let linked = resolved.encode()?;
            // What was linked and why (found or built-in libraries, stubs).
            events(Event::Detail(Stage::Link, linked.report().to_string()));
            Ok(linked.into_component())
        })?;

        let mut key = Key::builder(Stage::Init.name());
        key.bytes(&linked);
        match &call {
            InitWith::Script(Source::Bytes { name, bytes }) => {
                key.str("script").str(name).bytes(bytes)
            }
            InitWith::Func(f) => key.str("func").str(f),
            _ => key.str("startup"),
        };
        let init_options = self.effective_init_options();
        key.str(&format!("{init_options:?}"));
        let script = match &self.call {
            InitWith::Script(script) => Some(script.name()),
            _ => None,
        };
        hash_module_folders(
            &mut key,
            &init_options.module_paths,
            script.as_deref().map(Path::new),
        )?;
        let component = self.stage(Stage::Init, key.finish(), run, |events, cache| {
            let mut init = stages::init(linked.clone(), &call, &init_options)?;
            // Compiled code is cached next to the stage outputs: changing
            // only the script does not recompile the component, and a new
            // world compiles little more than its bindings (the functions of
            // unchanged libraries are in the function cache).
            // A cache that is not writable may still hold the code.
            let mut runtime = componentize_init::Runtime::builder();
            if let Some(c) = &cache.cache {
                match c.code_dir() {
                    Ok(dir) => {
                        runtime
                            .code_cache(dir)
                            .function_cache(std::sync::Arc::new(c.functions()));
                    }
                    Err(e) => cache.failed(events, e),
                }
            }
            let runtime = match runtime.build() {
                Ok(runtime) => runtime,
                Err(e) => {
                    cache.failed(events, e);
                    componentize_init::Runtime::new()?
                }
            };
            init.runtime(&runtime);
            let snapshot = run_with_progress(&init, &runtime, events)?;
            events(Event::Detail(
                Stage::Init,
                format!("compiled with {}", snapshot.stats.compilation),
            ));
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
        })?;

        Ok(Built {
            component,
            bindings,
            linked,
            stages: std::mem::take(&mut run.stages),
        })
    }

    /// Runs `work` or takes its output from the cache. `work` gets the
    /// events and the cache, for caching of its own.
    fn stage(
        &self,
        stage: Stage,
        key: Key,
        run: &mut Run<'_>,
        work: impl FnOnce(&mut dyn FnMut(Event), &mut CacheUse) -> Result<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        (run.events)(Event::Started(stage));
        let start = Instant::now();
        // Granted folders may change between runs without any input
        // changing: such an init is never taken from the cache.
        let cacheable = stage != Stage::Init || self.init.dirs.is_empty();
        let hit = match &run.cache.cache {
            Some(c) if cacheable => c.get(stage.name(), &key),
            _ => None,
        };
        let cached = hit.is_some();
        let output = match hit {
            Some(hit) => hit,
            None => {
                let output = work(&mut *run.events, &mut run.cache)
                    .with_context(|| format!("{} failed", stage.name()))?;
                if let Some(c) = run.cache.writable().filter(|_| cacheable)
                    && let Err(e) = c.put(stage.name(), &key, &output)
                {
                    run.cache.failed(&mut *run.events, e);
                }
                output
            }
        };
        let report = StageReport {
            stage,
            cached,
            time: start.elapsed(),
        };
        (run.events)(Event::Finished(report.clone()));
        run.stages.push(report);
        Ok(output)
    }
}

/// One run of the pipeline: where its events go, what its stages did, and
/// its cache.
struct Run<'a> {
    events: &'a mut dyn FnMut(Event),
    stages: Vec<StageReport>,
    cache: CacheUse,
}

/// The cache of one run, and whether it can still be written.
struct CacheUse {
    cache: Option<Cache>,
    writable: bool,
}

impl CacheUse {
    /// The cache, while writes to it succeed.
    fn writable(&self) -> Option<&Cache> {
        self.cache.as_ref().filter(|_| self.writable)
    }

    /// A write failed: warn once, and build on without writing (a
    /// read-only or full cache folder must not fail the build; its
    /// entries are still read).
    fn failed(&mut self, events: &mut dyn FnMut(Event), error: anyhow::Error) {
        if let Some(c) = self.writable() {
            events(Event::Warning(format!(
                "cannot write to the cache `{}` ({error:#}); building without storing in it. Free space or fix its permissions, point COMPONENTIZE_CACHE_DIR elsewhere, or pass --no-cache",
                c.dir().display()
            )));
            self.writable = false;
        }
    }
}

/// Hashes the WIT input: a file's bytes, or every `.wit` and `.wasm` file
/// under a directory (relative path and bytes, in sorted order); other files
/// (such as a script kept next to the WIT) are not part of the WIT.
fn hash_wit(key: &mut KeyBuilder, path: &Path) -> Result<()> {
    if path.is_dir() {
        let mut files = Vec::new();
        collect_files(path, path, &WIT_FILES, &mut Vec::new(), &mut files)?;
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

/// Adds the module files of each folder of `dirs` to `key`: their paths and
/// contents, so editing a module reruns init. Module files are those with
/// the script's extension (`.lua` for `app.lua`: what `require` finds,
/// `?.lua` and `?/init.lua`, precompiled chunks included), or every file
/// when the script has none; hidden entries (`.git`) are passed over.
fn hash_module_folders(
    key: &mut KeyBuilder,
    dirs: &[PathBuf],
    script: Option<&Path>,
) -> Result<()> {
    let extension = script
        .and_then(|s| s.extension())
        .map(|e| e.to_string_lossy().into_owned());
    let extensions: Vec<&str> = extension.as_deref().into_iter().collect();
    let wanted = Wanted {
        extensions: &extensions,
        skip_hidden: true,
    };
    for dir in dirs {
        let mut files = Vec::new();
        collect_files(dir, dir, &wanted, &mut Vec::new(), &mut files)
            .with_context(|| format!("cannot read the module folder `{}`", dir.display()))?;
        files.sort();
        key.str("module folder").str(&dir.to_string_lossy());
        for rel in files {
            let file = dir.join(&rel);
            let bytes = std::fs::read(&file)
                .with_context(|| format!("cannot read `{}`", file.display()))?;
            key.str(&rel).bytes(&bytes);
        }
    }
    Ok(())
}

/// Which files of a folder enter a cache key.
struct Wanted<'a> {
    /// File name endings that count (none: every file).
    extensions: &'a [&'a str],
    /// Whether entries whose name starts with `.` are passed over.
    skip_hidden: bool,
}

/// What wit-parser reads from a WIT folder.
const WIT_FILES: Wanted<'static> = Wanted {
    extensions: &["wit", "wasm"],
    skip_hidden: false,
};

/// Adds the `wanted` files under `dir` to `out`, relative to `root`.
/// Symlinks are followed (a `deps/` entry is often one), but a folder that
/// is one of its own ancestors (`ancestors`, canonical) is not entered
/// again, so a symlink loop ends the walk instead of the stack.
fn collect_files(
    root: &Path,
    dir: &Path,
    wanted: &Wanted<'_>,
    ancestors: &mut Vec<PathBuf>,
    out: &mut Vec<String>,
) -> Result<()> {
    let canonical =
        std::fs::canonicalize(dir).with_context(|| format!("cannot read `{}`", dir.display()))?;
    if ancestors.contains(&canonical) {
        return Ok(());
    }
    ancestors.push(canonical);
    let mut entries = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("cannot read `{}`", dir.display()))?
    {
        entries.push(entry?.path());
    }
    entries.sort();
    for path in entries {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if wanted.skip_hidden && hidden {
            continue;
        }
        if path.is_dir() {
            collect_files(root, &path, wanted, ancestors, out)?;
        } else if wanted.extensions.is_empty()
            || path
                .extension()
                .is_some_and(|e| wanted.extensions.iter().any(|w| e == *w))
        {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    ancestors.pop();
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::{WIT_FILES, collect_files};

    #[test]
    fn a_symlink_loop_in_the_wit_folder_ends() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("deps/a")).unwrap();
        std::fs::write(root.join("app.wit"), "").unwrap();
        std::fs::write(root.join("deps/a/a.wit"), "").unwrap();
        std::os::unix::fs::symlink("../..", root.join("deps/a/loop")).unwrap();
        std::os::unix::fs::symlink("a", root.join("deps/b")).unwrap();
        let mut files = Vec::new();
        collect_files(root, root, &WIT_FILES, &mut Vec::new(), &mut files).unwrap();
        files.sort();
        // `deps/b` is another way to `deps/a`, not a loop: both count.
        assert_eq!(files, ["app.wit", "deps/a/a.wit", "deps/b/a.wit"]);
    }
}
