//! The `componentize` command: the pipeline, and each stage as a
//! subcommand, over the stage libraries. Every stage option is the stage
//! crate's own options struct, flattened here.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use componentize::cache::Cache;
use componentize::output;
use componentize::stages::{self, GenerateInput, InitWith, Stage};
use componentize::{Event, Source};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "componentize",
    version,
    about = "Turn an interpreter, a WIT world and a script into a pre-initialized WebAssembly component",
    long_about = "Turn an interpreter, a WIT world and a script into a pre-initialized WebAssembly component.\n\nWithout a subcommand, runs generate -> link -> init:\n  componentize --interpreter lua --world app.wit --init app.lua -o app.wasm",
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
// The stages' options come last: clap keeps a flattened struct's help
// heading for the fields after it.
struct Build {
    /// The interpreter: a bundled one by name (`lua`; `componentize
    /// interpreters` lists them), or a library file (a dylib implementing
    /// componentize.h).
    #[arg(long, value_name = "NAME|LIB.so", required = true)]
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
    /// Call an export of the world at init instead of running a script: a
    /// name (`f`, `pkg:ns/iface.f`) or a WAVE call with arguments
    /// (`'pkg:ns/iface.f("x", 3)'`).
    #[arg(long, value_name = "CALL", conflicts_with = "init")]
    init_func: Option<String>,
    /// Another library to link (repeatable).
    #[arg(long = "lib", value_name = "LIB.so")]
    libs: Vec<PathBuf>,
    /// Do not read or write the stage cache.
    #[arg(long)]
    no_cache: bool,
    /// Also write bindings.so, linked.wasm, the component and commands.sh
    /// (the stage commands that reproduce them) into DIR.
    #[arg(long, value_name = "DIR")]
    keep_intermediates: Option<PathBuf>,
    /// Show more: what link linked and why, and what init printed.
    #[arg(short, long, conflicts_with = "quiet")]
    verbose: bool,
    /// Show nothing but errors.
    #[arg(short, long)]
    quiet: bool,
    /// Where to write the component (default: the WIT file's name with .wasm).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Also write the component precompiled for this host next to it (the
    /// output's name with .cwasm), which `componentize run` and `serve`
    /// load without compiling. Only this componentize build on this kind of
    /// machine loads it; the .wasm stays the portable artifact.
    #[arg(long)]
    precompile: bool,
    #[command(flatten)]
    wit: componentize_generate::WitOptions,
    #[command(flatten)]
    async_options: componentize_generate::AsyncOptions,
    #[command(flatten)]
    exclusions: componentize_generate::Exclusions,
    #[command(flatten)]
    link: componentize_link::Options,
    #[command(flatten)]
    sandbox: componentize_init::Options,
}

#[derive(Subcommand)]
enum Command {
    /// Generate the bindings dylib for a WIT world (stage 1).
    Generate(GenerateArgs),
    /// Link the bindings, the interpreter and libraries into a component
    /// (stage 2).
    Link(LinkArgs),
    /// Pre-initialize a component: run it and snapshot its state (stage 3).
    Init(InitArgs),
    /// List the bundled interpreters (`--interpreter NAME`): version and
    /// the sha256 of each library.
    Interpreters,
    /// Print the C header interpreters implement (componentize.h).
    Header {
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Precompile a component for this host into a .cwasm, which `run` and
    /// `serve` load without compiling (only this componentize build on this
    /// kind of machine loads it; the .wasm stays the portable artifact).
    Compile(CompileArgs),
    /// Run a component: a wasi:cli command, or one exported function with
    /// --invoke (like `wasmtime run`). Takes a .wasm or a .cwasm.
    Run(RunArgs),
    /// Serve HTTP with a wasi:http/proxy component, a fresh instance per
    /// request (like `wasmtime serve`). Takes a .wasm or a .cwasm.
    Serve(ServeArgs),
    /// Inspect or empty the stage cache.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
}

#[derive(Subcommand, Clone)]
enum CacheAction {
    /// Print where the cache is, its entries, size and size limit.
    Stats,
    /// Remove every entry (the size limit stays).
    Clean,
    /// Print the size limit, or set it (such as 512MiB or 4GiB) and evict
    /// the least recently used entries down to it. Builds keep the cache
    /// under it the same way.
    Limit {
        /// The new limit: bytes, or a number with KiB, MiB or GiB.
        size: Option<String>,
    },
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// WIT: a directory (with an optional deps/), a .wit file, or a
    /// wasm-encoded WIT package.
    wit: PathBuf,
    /// The world to generate bindings for (needed when the package has
    /// several).
    #[arg(short, long)]
    world: Option<String>,
    /// Add the init contract export (componentize:init/init@0.1.0), as the
    /// pipeline does when given a script.
    #[arg(long)]
    init_export: bool,
    /// Where to write the bindings module.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    options: componentize_generate::Options,
    #[command(flatten)]
    wit_options: componentize_generate::WitOptions,
}

#[derive(clap::Args)]
struct LinkArgs {
    /// The bindings dylib (from `componentize generate`).
    bindings: PathBuf,
    /// The interpreter library (implements componentize.h).
    interpreter: PathBuf,
    /// More libraries to link (libraries they need are found through the
    /// search path).
    libraries: Vec<PathBuf>,
    /// Print the libraries linked, and where they came from, to stderr.
    #[arg(short, long)]
    verbose: bool,
    /// Where to write the component.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    options: componentize_link::Options,
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
    /// Show what init printed.
    #[arg(short, long)]
    verbose: bool,
    /// Where to write the pre-initialized component.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    options: componentize_init::Options,
}

#[derive(clap::Args)]
struct CompileArgs {
    /// The component (.wasm).
    component: PathBuf,
    /// Where to write the precompiled component (default: the component's
    /// name with .cwasm).
    #[arg(short, long, value_name = "OUT.cwasm")]
    output: Option<PathBuf>,
    /// Compile the component even if the code cache holds it, and do not
    /// store it there.
    #[arg(long)]
    no_cache: bool,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The component: a .wasm, or a .cwasm from `componentize compile` or
    /// `--precompile` (loaded without compiling).
    component: PathBuf,
    /// Call an export instead of running the command: a WAVE call
    /// (`'f(1, "x")'`, `'pkg:ns/iface.f("x")'`) or the name of a function
    /// without parameters; prints the results in WAVE.
    #[arg(long, value_name = "CALL")]
    invoke: Option<String>,
    /// Compile the component even if the code cache holds it, and do not
    /// store it there.
    #[arg(long)]
    no_cache: bool,
    /// The command's arguments, after `--` (argv[0] is the component's file
    /// name).
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
    // Last: clap gives the fields after a flattened struct its help heading.
    #[command(flatten)]
    sandbox: componentize_run::Sandbox,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The component (exporting wasi:http/incoming-handler@0.2.x): a .wasm,
    /// or a .cwasm from `componentize compile` or `--precompile` (loaded
    /// without compiling).
    component: PathBuf,
    /// Compile the component even if the code cache holds it, and do not
    /// store it there.
    #[arg(long)]
    no_cache: bool,
    #[command(flatten)]
    options: componentize_run::ServeOptions,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    // Every command but `run` exits 0 when it succeeds.
    let () = match cli.command {
        None => build(cli.build),
        Some(Command::Generate(g)) => {
            let bindings = stages::generate(GenerateInput {
                wit: &g.wit,
                world: g.world.as_deref(),
                wit_options: &g.wit_options,
                options: &g.options,
                init_export: g.init_export,
            })?;
            output::write(&g.output, &bindings)
        }
        Some(Command::Link(l)) => {
            let libraries: Vec<Source> = l.libraries.iter().map(Source::path).collect();
            let link = stages::link(
                &Source::path(&l.bindings),
                &Source::path(&l.interpreter),
                &libraries,
                &l.options,
            )?;
            let linked = link.encode()?;
            if l.verbose {
                eprint!("{}", linked.report());
            }
            output::write(&l.output, linked.component())
        }
        Some(Command::Init(i)) => {
            output::check_destination(&i.output)?;
            let component = std::fs::read(&i.component)
                .with_context(|| format!("cannot read `{}`", i.component.display()))?;
            let with = match (&i.script, &i.init_func) {
                (Some(script), _) => InitWith::Script(Source::path(script)),
                (None, Some(call)) => InitWith::Func(call.clone()),
                (None, None) => InitWith::Startup,
            };
            let snapshot = stages::init(component, &with, &i.options)?.run()?;
            if i.verbose {
                eprintln!("compiled with {}", snapshot.stats.compilation);
                eprint!("{}", String::from_utf8_lossy(&snapshot.stdout));
                eprint!("{}", String::from_utf8_lossy(&snapshot.stderr));
            }
            for r in &snapshot.results {
                println!("{r}");
            }
            output::write(&i.output, &snapshot.wasm)
        }
        Some(Command::Compile(c)) => compile(&c),
        Some(Command::Run(r)) => return run_component(r),
        Some(Command::Serve(s)) => {
            let engine = componentize_run::engine(code_cache(s.no_cache)?.as_deref())?;
            let component = componentize_run::load(&engine, &s.component)?;
            componentize_run::serve(&engine, &component, &s.options)
        }
        Some(Command::Interpreters) => {
            for interpreter in componentize::bundled::BUNDLED_INTERPRETERS {
                println!(
                    "{} {}: {}",
                    interpreter.name, interpreter.version, interpreter.description
                );
                for library in interpreter.libraries {
                    println!(
                        "  {}  {} ({} bytes)",
                        componentize::bundled::sha256_hex(library.bytes),
                        library.name,
                        library.bytes.len()
                    );
                }
            }
            Ok(())
        }
        Some(Command::Header { output: None }) => {
            print!("{}", componentize_generate::HEADER);
            Ok(())
        }
        Some(Command::Header { output: Some(path) }) => {
            output::write(&path, componentize_generate::HEADER.as_bytes())
        }
        Some(Command::Cache { action }) => {
            let cache = Cache::at(Cache::default_location()?);
            let dir = cache.dir().display();
            match action {
                CacheAction::Stats => {
                    let stats = cache.stats()?;
                    println!(
                        "{dir}: holds {} entries, {} bytes (limit {} bytes)",
                        stats.entries,
                        stats.bytes,
                        cache.limit()?
                    );
                }
                CacheAction::Clean => {
                    let stats = cache.clean()?;
                    println!(
                        "{dir}: removed {} entries, {} bytes",
                        stats.entries, stats.bytes
                    );
                }
                CacheAction::Limit { size: None } => println!("{}", cache.limit()?),
                CacheAction::Limit { size: Some(size) } => {
                    let limit = componentize_run::parse_bytes(&size)?;
                    let evicted = cache.set_limit(limit)?;
                    println!(
                        "{dir}: limit {limit} bytes; evicted {} entries, {} bytes",
                        evicted.entries, evicted.bytes
                    );
                }
            }
            Ok(())
        }
    }?;
    Ok(ExitCode::SUCCESS)
}

/// `componentize run`: the command's exit code, or 134 (like wasmtime)
/// when the component trapped.
fn run_component(r: RunArgs) -> Result<ExitCode> {
    let engine = componentize_run::engine(code_cache(r.no_cache)?.as_deref())?;
    let component = componentize_run::load(&engine, &r.component)?;
    // argv[0] is the file name without its folders, as wasmtime passes it.
    let program = r
        .component
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ran = match &r.invoke {
        Some(call) => componentize_run::invoke(
            &engine, &component, &r.sandbox, call, &program, &r.args,
        )
        .map(|results| {
            println!("{results}");
            0
        }),
        None => componentize_run::run_command(&engine, &component, &r.sandbox, &program, &r.args),
    };
    match ran {
        // Exit codes are a byte on Unix: the low byte, as the OS keeps it.
        Ok(code) => Ok(ExitCode::from(code as u8)),
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(componentize_run::exit_code(&e) as u8))
        }
    }
}

/// Where `--precompile` writes the .cwasm of the component written to
/// `output`: next to it, with the extension .cwasm; checked before any work.
fn precompiled_path(output: &std::path::Path) -> Result<PathBuf> {
    let precompiled = output.with_extension("cwasm");
    // `-o /dev/stdout` (a device or a pipe) has no file to be next to.
    let is_file = std::fs::metadata(output).map_or(true, |m| m.is_file());
    if precompiled == output || !is_file {
        anyhow::bail!(
            "--precompile writes the .cwasm next to the output, with the extension .cwasm: \
             give `-o` a file named like `app.wasm` (not `{}`)",
            output.display()
        );
    }
    output::check_destination(&precompiled)?;
    Ok(precompiled)
}

/// `componentize compile`: the component precompiled into a .cwasm.
fn compile(c: &CompileArgs) -> Result<()> {
    let output = c
        .output
        .clone()
        .unwrap_or_else(|| c.component.with_extension("cwasm"));
    if output == c.component && c.component.extension() != Some("cwasm".as_ref()) {
        anyhow::bail!(
            "`componentize compile` would overwrite the component `{}`: name another output \
             with `-o OUT.cwasm`",
            output.display()
        );
    }
    output::check_destination(&output)?;
    let component = std::fs::read(&c.component)
        .with_context(|| format!("cannot read `{}`", c.component.display()))?;
    let engine = componentize_run::engine(code_cache(c.no_cache)?.as_deref())?;
    let precompiled = componentize_run::precompile(&engine, &component)
        .with_context(|| format!("cannot precompile `{}`", c.component.display()))?;
    output::write(&output, &precompiled)
}

/// The code cache of `run`, `serve` and `compile`: the pipeline's
/// (`<cache>/code`), unless `no_cache`.
fn code_cache(no_cache: bool) -> Result<Option<PathBuf>> {
    if no_cache {
        return Ok(None);
    }
    Ok(Some(Cache::at(Cache::default_location()?).code_dir()?))
}

fn build(b: Build) -> Result<()> {
    // clap enforces both when no subcommand is given.
    let (Some(interpreter), Some(wit)) = (&b.interpreter, &b.world) else {
        anyhow::bail!("--interpreter and --world are required");
    };
    let output = b.output.clone().unwrap_or_else(|| {
        let stem = wit
            .file_stem()
            .map(|s| s.to_os_string())
            .unwrap_or_else(|| "component".into());
        PathBuf::from(stem).with_extension("wasm")
    });
    output::check_destination(&output)?;
    let precompiled = if b.precompile {
        Some(precompiled_path(&output)?)
    } else {
        None
    };
    let mut pipeline = componentize::bundled::pipeline_for(interpreter, wit)?;
    let mut generate = componentize_generate::Options::default();
    generate.exclusions = b.exclusions.clone();
    generate.async_options = b.async_options.clone();
    pipeline
        .wit_options(b.wit.clone())
        .generate_options(generate)
        .link_options(b.link.clone())
        .init_options(b.sandbox.clone());
    if let Some(name) = &b.world_name {
        pipeline.world(name.clone());
    }
    if let Some(script) = &b.init {
        pipeline.script(Source::path(script));
    }
    if let Some(call) = &b.init_func {
        pipeline.init_func(call.clone());
    }
    for lib in &b.libs {
        pipeline.library(Source::path(lib));
    }
    if !b.no_cache {
        pipeline.cache(Some(Cache::at(Cache::default_location()?)));
    }
    let start = std::time::Instant::now();
    // A stage's line is finished by its time; details shown while it runs
    // end the line first, and the time then gets a line of its own.
    let mut line_open = false;
    // Progress overwrites the stage's line, on a terminal only; whatever
    // comes next puts the line back as the stage started it.
    let show_progress = !b.quiet && std::io::stderr().is_terminal();
    let mut progress_shown: Option<Stage> = None;
    let built = pipeline.run(&mut |event| {
        if let Some(stage) = progress_shown.take()
            && !matches!(event, Event::Progress(..))
        {
            eprint!("\r{:>8} \x1b[K", stage.name());
        }
        match event {
            Event::Started(stage) if !b.quiet => {
                eprint!("{:>8} ", stage.name());
                line_open = true;
            }
            Event::Progress(stage, text) if show_progress => {
                eprint!("\r{:>8} {text}\x1b[K", stage.name());
                progress_shown = Some(stage);
            }
            Event::Finished(r) if !b.quiet => {
                if !std::mem::take(&mut line_open) {
                    eprint!("{:>8} ", r.stage.name());
                }
                eprintln!(
                    "{:>8.1?}{}",
                    r.time,
                    if r.cached { " (cached)" } else { "" }
                )
            }
            Event::Detail(_, text) if b.verbose => {
                if std::mem::take(&mut line_open) {
                    eprintln!();
                }
                eprintln!("{}", text.trim_end());
            }
            Event::Warning(text) => {
                if std::mem::take(&mut line_open) {
                    eprintln!();
                }
                eprintln!("warning: {text}");
            }
            _ => {}
        }
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
    if let Some(precompiled) = &precompiled {
        let start = std::time::Instant::now();
        // The engine and code cache of `componentize run`: a run of either
        // file after the build compiles nothing.
        let engine = componentize_run::engine(code_cache(b.no_cache)?.as_deref())?;
        let bytes = componentize_run::precompile(&engine, &built.component)
            .with_context(|| format!("cannot precompile `{}`", output.display()))?;
        output::write(precompiled, &bytes)?;
        if !b.quiet {
            eprintln!("{:>8} {:>8.1?}", "precompile", start.elapsed());
        }
    }
    if let Some(dir) = &b.keep_intermediates {
        let name = output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "component.wasm".into());
        componentize::intermediates::write(dir, &name, &pipeline, &built)?;
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        // Flattening the stages' options must not clash (names, groups).
        super::Cli::command().debug_assert();
    }
}
