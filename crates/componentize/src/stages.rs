//! The three stages as both the subcommands and the [`Pipeline`] run them,
//! so `componentize generate|link|init` and the one-command build cannot
//! drift apart.
//!
//! [`Pipeline`]: crate::Pipeline

use crate::source::Source;
use anyhow::Result;
use std::path::Path;

/// A stage of the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// WIT world -> bindings dylib.
    Generate,
    /// Bindings + interpreter + libraries -> component.
    Link,
    /// Component + script -> snapshot.
    Init,
}

impl Stage {
    /// The stage's name, as its subcommand and its cache folder spell it.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Generate => "generate",
            Stage::Link => "link",
            Stage::Init => "init",
        }
    }
}

/// What the generate stage reads and how.
#[derive(Clone, Copy, Debug)]
pub struct GenerateInput<'a> {
    /// The WIT: a directory, a `.wit` file or a wasm-encoded package.
    pub wit: &'a Path,
    /// The world (needed when the package has several).
    pub world: Option<&'a str>,
    /// `@unstable` features of the WIT.
    pub wit_options: &'a componentize_generate::WitOptions,
    /// The generator's options.
    pub options: &'a componentize_generate::Options,
    /// Whether to add the init contract's export
    /// ([`componentize_contract::add_init_export`]).
    pub init_export: bool,
}

/// Stage 1: the bindings dylib of the world.
pub fn generate(input: GenerateInput<'_>) -> Result<Vec<u8>> {
    let wit = componentize_generate::Wit::load(input.wit, input.wit_options)?;
    let mut world = wit.world(input.world)?;
    let mut resolve = wit.resolve;
    if input.init_export {
        world = componentize_contract::add_init_export(&mut resolve, world)?;
    }
    Ok(componentize_generate::generate(&resolve, world, input.options)?.into_wasm())
}

/// Stage 2, configured: the bindings, then the interpreter, then the other
/// libraries. Files are linked as files, so their folders are searched for
/// the libraries they need.
pub fn link(
    bindings: &Source,
    interpreter: &Source,
    libraries: &[Source],
    options: &componentize_link::Options,
) -> Result<componentize_link::Link> {
    let mut link = componentize_link::Link::new();
    link.options(options);
    match bindings {
        Source::Path(p) => link.bindings_path(p),
        Source::Bytes { name, bytes } => link.bindings(name.clone(), bytes.clone()),
    };
    for lib in std::iter::once(interpreter).chain(libraries) {
        match lib {
            Source::Path(p) => link.library_path(p),
            Source::Bytes { name, bytes } => link.library(name.clone(), bytes.clone()),
        };
    }
    Ok(link)
}

/// How init calls into the component.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum InitWith {
    /// Only instantiation (the libraries' constructors) is captured.
    Startup,
    /// The init contract with a script.
    Script(Source),
    /// An exported function, a name or a WAVE call.
    Func(String),
}

/// Stage 3, configured: snapshots `component` after `with`.
pub fn init(
    component: Vec<u8>,
    with: &InitWith,
    options: &componentize_init::Options,
) -> Result<componentize_init::Init> {
    let mut init = componentize_init::Init::new(component);
    init.options(options.clone());
    match with {
        InitWith::Startup => {}
        InitWith::Script(script) => {
            let (name, source) = script.load("script")?;
            init.script(name, source);
        }
        InitWith::Func(call) => {
            init.init_func(call.clone());
        }
    }
    Ok(init)
}
