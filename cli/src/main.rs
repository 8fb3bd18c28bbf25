//! The `componentize` command: each stage as a subcommand over the stage
//! libraries.

mod output;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "componentize", version, about = "Turn an interpreter, a WIT world and a script into a WebAssembly component")]
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
        Command::Header { output: None } => {
            print!("{}", componentize_generate::HEADER);
            Ok(())
        }
        Command::Header { output: Some(path) } => {
            output::write(&path, componentize_generate::HEADER.as_bytes())
        }
    }
}
