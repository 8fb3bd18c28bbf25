//! The `componentize` command: each stage as a subcommand over the stage
//! libraries.

mod output;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use componentize::cache::Cache;
use componentize::{Event, Pipeline, Source};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "componentize",
    version,
    about = "Turn an interpreter, a WIT world and a script into a pre-initialized WebAssembly component",
    long_about = "Turn an interpreter, a WIT world and a script into a pre-initialized WebAssembly component.\n\nWithout a subcommand, runs generate -> link -> init:\n  componentize --interpreter lua.so --world app.wit --init app.lua -o app.wasm",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    build: Build,
}

/// The whole pipeline.
#[derive(clap::Args)]
struct Build {
    /// The interpreter library (a dylib implementing componentize.h).
    #[arg(long, value_name = "LIB.so", required = true)]
    interpreter: Option<PathBuf>,
    /// The WIT: a directory, a .wit file or a wasm-encoded package.
    #[arg(long, value_name = "WIT", required = true)]
    world: Option<PathBuf>,
    /// The world in the WIT package (needed when it has several).
    #[arg(long, value_name = "NAME")]
    world_name: Option<String>,
    /// The script the interpreter runs before the snapshot. Without it, the
    /// snapshot holds the interpreter after its startup.
    #[arg(long, value_name = "SCRIPT")]
    init: Option<PathBuf>,
    /// Look for needed libraries in DIR (repeatable).
    #[arg(short = 'L', value_name = "DIR")]
    search: Vec<PathBuf>,
    /// Another library to link (repeatable).
    #[arg(long = "lib", value_name = "LIB.so")]
    libs: Vec<PathBuf>,
    /// Enable @unstable WIT features.
    #[arg(long)]
    features: Vec<String>,
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// Do not read or write the stage cache.
    #[arg(long)]
    no_cache: bool,
    /// Also write bindings.so, linked.wasm, the component and commands.sh
    /// (the stage commands that reproduce them) into DIR.
    #[arg(long, value_name = "DIR")]
    keep_intermediates: Option<PathBuf>,
    /// Show more: what init printed, cache keys.
    #[arg(short, long, conflicts_with = "quiet")]
    verbose: bool,
    /// Show nothing but errors.
    #[arg(short, long)]
    quiet: bool,
    /// Where to write the component (default: the WIT file's name with .wasm).
    #[arg(short, long)]
    output: Option<PathBuf>,
}

/// What init may reach: nothing unless granted.
#[derive(clap::Args, Clone)]
struct SandboxArgs {
    /// Preopen host folder HOST as GUEST during init (wasmtime style).
    #[arg(long, value_name = "HOST[::GUEST]")]
    dir: Vec<String>,
    /// Set an environment variable during init (`KEY` alone passes the host's value).
    #[arg(long, value_name = "KEY[=VALUE]")]
    env: Vec<String>,
    /// Fail init after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    init_timeout: Option<f64>,
    /// Fail init when a linear memory grows beyond this many MiB.
    #[arg(long, value_name = "MIB")]
    init_memory_limit: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Generate the bindings dylib for a WIT world (stage 1).
    Generate(Generate),
    /// Link the bindings, the interpreter and libraries into a component
    /// (stage 2).
    Link(Link),
    /// Pre-initialize a component: run it and snapshot its state (stage 3).
    Init(InitArgs),
    /// Print the C header interpreters implement (componentize.h).
    Header {
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Inspect or empty the stage cache.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
}

#[derive(Subcommand)]
enum CacheAction {
    /// Print where the cache is, its entries and size.
    Stats,
    /// Remove every entry.
    Clean,
}

#[derive(clap::Args)]
struct InitArgs {
    /// The component (typically from `componentize link`).
    component: PathBuf,
    /// Run SCRIPT through the interpreter's init contract
    /// (componentize:init/init@0.1.0); the contract's export is removed.
    #[arg(long, value_name = "SCRIPT", conflicts_with = "init_func")]
    script: Option<PathBuf>,
    /// Call an export instead: a name (`f`, `pkg:ns/iface.f`) or a WAVE call
    /// with arguments (`'pkg:ns/iface.f("x", 3)'`).
    #[arg(long, value_name = "CALL")]
    init_func: Option<String>,
    /// Keep the init export in the output.
    #[arg(long)]
    keep_init_export: bool,
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// Show what init printed.
    #[arg(short, long)]
    verbose: bool,
    /// Where to write the pre-initialized component.
    #[arg(short, long)]
    output: PathBuf,
}

#[derive(clap::Args)]
struct Generate {
    /// WIT: a directory (with an optional deps/), a .wit file, or a
    /// wasm-encoded WIT package.
    wit: PathBuf,
    /// The world to generate bindings for (needed when the package has
    /// several).
    #[arg(short, long)]
    world: Option<String>,
    /// Library name of the interpreter (e.g. `lua.so`), recorded as a
    /// dependency in dylink.0 so it is linked and initialized first.
    #[arg(long)]
    interpreter: Option<String>,
    /// Enable @unstable WIT features (comma- or space-separated, repeatable).
    #[arg(long)]
    features: Vec<String>,
    /// Enable every @unstable WIT feature.
    #[arg(long)]
    all_features: bool,
    /// Add the init contract export (componentize:init/init@0.1.0), as the
    /// pipeline does when given a script.
    #[arg(long)]
    init_export: bool,
    /// Where to write the bindings module.
    #[arg(short, long)]
    output: PathBuf,
}

#[derive(clap::Args)]
struct Link {
    /// The bindings dylib (from `componentize generate`).
    bindings: PathBuf,
    /// The interpreter library (implements componentize.h).
    interpreter: PathBuf,
    /// More libraries to link (libraries they need are found through the
    /// search path).
    libraries: Vec<PathBuf>,
    /// Look for needed libraries in DIR (repeatable; searched in order,
    /// before the inputs' folders, $WASI_SYSROOT/lib/wasm32-wasip2,
    /// $WASI_SYSROOT/lib/wasm32-wasip1, $WASI_SYSROOT/lib and
    /// $WASI_SDK_PATH/share/wasi-sysroot/lib/wasm32-wasip{2,1}).
    #[arg(short = 'L', value_name = "DIR")]
    search: Vec<PathBuf>,
    /// Use FILE as the adapter for the import namespace NAME (replaces the
    /// bundled wasi_snapshot_preview1 reactor adapter for that name).
    #[arg(long, value_name = "NAME=FILE")]
    adapt: Vec<String>,
    /// Make LIB loadable with dlopen (links wit-component's built-in
    /// libdl.so). A name is looked for like a needed library; a path is
    /// also linked.
    #[arg(long, value_name = "LIB")]
    dl_openable: Vec<String>,
    /// Turn functions no library defines into traps instead of an error.
    #[arg(long)]
    stub_missing_functions: bool,
    /// Shadow stack size in bytes.
    #[arg(long, value_name = "BYTES")]
    stack_size: Option<u32>,
    /// Print the libraries linked, and where they came from, to stderr.
    #[arg(short, long)]
    verbose: bool,
    /// Where to write the component.
    #[arg(short, long)]
    output: PathBuf,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let Some(command) = cli.command else {
        return build(cli.build);
    };
    match command {
        Command::Generate(g) => {
            let wit = componentize_generate::Wit::load(&g.wit, &g.features, g.all_features)?;
            let mut world = wit.world(g.world.as_deref())?;
            let mut resolve = wit.resolve;
            if g.init_export {
                world = componentize_init::add_init_export(&mut resolve, world)?;
            }
            let options = componentize_generate::Options {
                interpreter: g.interpreter,
            };
            let bindings = componentize_generate::generate(&resolve, world, &options)?;
            output::write(&g.output, bindings.wasm())
        }
        Command::Init(i) => init(i),
        Command::Cache { action } => {
            let cache = Cache::at(Cache::default_location()?);
            let stats = match action {
                CacheAction::Stats => cache.stats()?,
                CacheAction::Clean => cache.clean()?,
            };
            let verb = match action {
                CacheAction::Stats => "holds",
                CacheAction::Clean => "removed",
            };
            println!(
                "{}: {verb} {} entries, {} bytes",
                cache.dir().display(),
                stats.entries,
                stats.bytes
            );
            Ok(())
        }
        Command::Link(l) => link(l),
        Command::Header { output: None } => {
            print!("{}", componentize_generate::HEADER);
            Ok(())
        }
        Command::Header { output: Some(path) } => {
            output::write(&path, componentize_generate::HEADER.as_bytes())
        }
    }
}

fn link(l: Link) -> Result<()> {
    let mut link = componentize_link::Link::new()
        .bindings_path(&l.bindings)
        .library_path(&l.interpreter)
        .stub_missing_functions(l.stub_missing_functions);
    for lib in &l.libraries {
        link = link.library_path(lib);
    }
    for dir in &l.search {
        link = link.search_path(dir);
    }
    for a in &l.adapt {
        let Some((name, file)) = a.split_once('=') else {
            anyhow::bail!("--adapt expects NAME=FILE, got `{a}`");
        };
        link = link.adapter_path(name, file);
    }
    for lib in &l.dl_openable {
        let path = std::path::Path::new(lib);
        if lib.contains(std::path::MAIN_SEPARATOR) || lib.contains('/') || path.is_file() {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| anyhow::anyhow!("--dl-openable `{lib}` does not name a file"))?;
            link = link.library_path(path).dl_openable(name);
        } else {
            link = link.dl_openable(lib);
        }
    }
    if let Some(size) = l.stack_size {
        link = link.stack_size(size);
    }
    let linked = link.encode()?;
    if l.verbose {
        for lib in linked.libraries() {
            eprintln!("linked {} ({})", lib.name, lib.origin);
        }
        for lib in linked.unused() {
            eprintln!("unused {} ({}): nothing needs it", lib.name, lib.origin);
        }
        for a in linked.adapters() {
            eprintln!("adapter {} ({})", a.name, a.origin);
        }
        for s in linked.stubs() {
            eprintln!("stub {} (imported by {})", s.symbol, s.library);
        }
    }
    output::write(&l.output, linked.component())
}

impl SandboxArgs {
    fn sandbox(&self) -> Result<componentize_init::Sandbox> {
        let mut sandbox = componentize_init::Sandbox::default();
        for d in &self.dir {
            sandbox.dirs.push(componentize_init::parse_dir(d)?);
        }
        for e in &self.env {
            sandbox.env.push(componentize_init::parse_env(e)?);
        }
        Ok(sandbox)
    }

    fn timeout(&self) -> Result<Option<Duration>> {
        self.init_timeout
            .map(|s| {
                Duration::try_from_secs_f64(s).map_err(|_| {
                    anyhow::anyhow!("--init-timeout must be a positive number of seconds")
                })
            })
            .transpose()
    }

    fn memory_limit(&self) -> Option<usize> {
        self.init_memory_limit.map(|mib| mib << 20)
    }
}

fn init(i: InitArgs) -> Result<()> {
    let component = std::fs::read(&i.component)
        .with_context(|| format!("cannot read `{}`", i.component.display()))?;
    let mut init = componentize_init::Init::new(component)
        .sandbox(i.sandbox.sandbox()?)
        .keep_init_export(i.keep_init_export);
    if let Some(script) = &i.script {
        let (name, source) = Source::path(script).load("script")?;
        init = init.script(name, source);
    }
    if let Some(call) = &i.init_func {
        init = init.init_func(call.clone());
    }
    if let Some(t) = i.sandbox.timeout()? {
        init = init.timeout(t);
    }
    if let Some(m) = i.sandbox.memory_limit() {
        init = init.memory_limit(m);
    }
    let snapshot = init.run()?;
    if i.verbose {
        eprint!("{}", String::from_utf8_lossy(&snapshot.stdout));
        eprint!("{}", String::from_utf8_lossy(&snapshot.stderr));
    }
    for r in &snapshot.results {
        println!("{r}");
    }
    output::write(&i.output, &snapshot.wasm)
}

fn build(b: Build) -> Result<()> {
    // clap enforces both when no subcommand is given.
    let (Some(interpreter), Some(wit)) = (b.interpreter.clone(), b.world.clone()) else {
        anyhow::bail!("--interpreter and --world are required");
    };
    let output = b.output.clone().unwrap_or_else(|| {
        let stem = wit
            .file_stem()
            .map(|s| s.to_os_string())
            .unwrap_or_else(|| "component".into());
        PathBuf::from(stem).with_extension("wasm")
    });
    let mut pipeline = Pipeline::new(Source::path(&interpreter), &wit)
        .features(b.features.clone())
        .sandbox(b.sandbox.sandbox()?);
    if let Some(name) = &b.world_name {
        pipeline = pipeline.world(name.clone());
    }
    if let Some(script) = &b.init {
        pipeline = pipeline.script(Source::path(script));
    }
    for lib in &b.libs {
        pipeline = pipeline.library(Source::path(lib));
    }
    for dir in &b.search {
        pipeline = pipeline.search_path(dir.clone());
    }
    if let Some(t) = b.sandbox.timeout()? {
        pipeline = pipeline.init_timeout(t);
    }
    if let Some(m) = b.sandbox.memory_limit() {
        pipeline = pipeline.init_memory_limit(m);
    }
    if !b.no_cache {
        pipeline = pipeline.cache(Some(Cache::at(Cache::default_location()?)));
    }
    let start = std::time::Instant::now();
    let built = pipeline.run(&mut |event| match event {
        Event::Started(stage) if !b.quiet => eprint!("{:>8} ", stage.name()),
        Event::Finished(r) if !b.quiet => {
            eprintln!(
                "{:>8.1?}{}",
                r.time,
                if r.cached { " (cached)" } else { "" }
            )
        }
        Event::Detail(_, text) if b.verbose => eprintln!("{text}"),
        _ => {}
    });
    let built = match built {
        Ok(built) => built,
        Err(e) => {
            if !b.quiet {
                eprintln!();
            }
            return Err(e);
        }
    };
    output::write(&output, &built.component)?;
    if let Some(dir) = &b.keep_intermediates {
        keep_intermediates(dir, &b, &interpreter, &wit, &output, &built)?;
    }
    if !b.quiet {
        eprintln!(
            "{:>8} {:>8.1?} -> {}",
            "total",
            start.elapsed(),
            output.display()
        );
    }
    Ok(())
}

/// Writes each stage's output and the stage commands that reproduce them.
fn keep_intermediates(
    dir: &Path,
    b: &Build,
    interpreter: &Path,
    wit: &Path,
    output: &Path,
    built: &componentize::Built,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let quote = |p: &Path| format!("'{}'", abs(p).display().to_string().replace('\'', "'\\''"));
    let final_name = output
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| "component.wasm".into());
    output::write(&dir.join(componentize::BINDINGS_NAME), &built.bindings)?;
    output::write(&dir.join("linked.wasm"), &built.linked)?;
    output::write(&dir.join(&final_name), &built.component)?;

    let interpreter_name = interpreter
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut generate = format!(
        "componentize generate {} --interpreter '{interpreter_name}'",
        quote(wit)
    );
    if let Some(w) = &b.world_name {
        generate += &format!(" --world '{w}'");
    }
    for f in &b.features {
        generate += &format!(" --features '{f}'");
    }
    if b.init.is_some() {
        generate += " --init-export";
    }
    generate += &format!(" -o {}", componentize::BINDINGS_NAME);
    let mut link = format!(
        "componentize link {} {}",
        componentize::BINDINGS_NAME,
        quote(interpreter)
    );
    for l in &b.libs {
        link += &format!(" {}", quote(l));
    }
    for d in &b.search {
        link += &format!(" -L {}", quote(d));
    }
    link += " -o linked.wasm";
    let mut init = "componentize init linked.wasm".to_string();
    if let Some(s) = &b.init {
        init += &format!(" --script {}", quote(s));
    }
    for d in &b.sandbox.dir {
        init += &format!(" --dir '{d}'");
    }
    for e in &b.sandbox.env {
        init += &format!(" --env '{e}'");
    }
    init += &format!(" -o '{}'", final_name.display());
    let script = format!(
        "#!/bin/sh\n# Reproduces each stage of the build from the previous one's output.\nset -e\ncd \"$(dirname \"$0\")\"\n{generate}\n{link}\n{init}\n"
    );
    output::write(&dir.join("commands.sh"), script.as_bytes())?;
    Ok(())
}
