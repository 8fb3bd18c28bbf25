//! The `componentize` command: each stage as a subcommand over the stage
//! libraries.

mod output;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "componentize",
    version,
    about = "Turn an interpreter, a WIT world and a script into a WebAssembly component"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate the bindings dylib for a WIT world (stage 1).
    Generate(Generate),
    /// Print the C header interpreters implement (componentize.h).
    Header {
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Link the bindings, the interpreter and libraries into a component
    /// (stage 2).
    Link(Link),
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
    match cli.command {
        Command::Generate(g) => {
            let wit = componentize_generate::Wit::load(&g.wit, &g.features, g.all_features)?;
            let world = wit.world(g.world.as_deref())?;
            let options = componentize_generate::Options {
                interpreter: g.interpreter,
            };
            let bindings = componentize_generate::generate(&wit.resolve, world, &options)?;
            output::write(&g.output, bindings.wasm())
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
