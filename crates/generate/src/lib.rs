//! WIT world -> interpreter **bindings dylib**.
//!
//! [`generate`] turns a world into a core wasm module that follows the
//! WebAssembly dynamic-linking convention (`dylink.0`, `env.memory`,
//! `env.__indirect_function_table`, `__memory_base`/`__table_base`) and
//! implements every import and export of the world through the interpreter
//! interface of [`HEADER`]: a `wit_t` type table handed to
//! `wit_dylib_initialize`, and `wit_dylib_push_*`/`wit_dylib_pop_*` calls on an
//! interpreter-owned value stack. The interface is binary compatible with
//! `wit_dylib.h` version 3 (`wit-dylib` 0.263): an interpreter written for it
//! links unchanged.
//!
//! The module also carries the world's `component-type` section, so
//! `wit_component::Linker` can link it with the interpreter and libc into a
//! component.
//!
//! ```
//! use componentize_generate::{Options, generate};
//! let mut resolve = wit_parser::Resolve::default();
//! let pkg = resolve.push_str("app.wit", "package a:b; world app { export greet: func(n: string) -> string; }").unwrap();
//! let world = resolve.select_world(&[pkg], None).unwrap();
//! let bindings = generate(&resolve, world, Options::default().interpreter("lua.so")).unwrap();
//! assert!(wasmparser::Validator::new().validate_all(bindings.wasm()).is_ok());
//! ```

#![warn(missing_docs)]

mod abi;
mod asyncness;
mod bindgen;
mod builder;
mod encode;
mod exclude;
mod metadata;
mod plan;

use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::path::Path;
use wit_parser::{PackageId, Resolve, WorldId};

pub use abi::{BINDINGS_MODULE_NAME, CONTEXT_GET_0, CONTEXT_SET_0, EXPORT_ROOT, ROOT};
pub use asyncness::{AsyncDirective, AsyncOptions, AsyncTarget, StackPointer};
pub use exclude::Exclusions;

/// The C header for interpreter authors: the interface exactly as the
/// generated module imports it (`wit_dylib.h` v3 with its map and async-export
/// declarations corrected).
pub const HEADER: &str = include_str!("../componentize.h");

/// Options of [`generate`].
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
// Flattened next to other stages' options: the group needs its own id.
#[cfg_attr(feature = "cli", group(id = "generate-options"))]
#[cfg_attr(feature = "cli", command(next_help_heading = "Generate"))]
pub struct Options {
    /// Library name of the interpreter (e.g. `lua.so`), recorded as a
    /// dependency (`needed`) in dylink.0 so it is linked and initialized
    /// first.
    #[cfg_attr(feature = "cli", arg(long, value_name = "NAME"))]
    pub interpreter: Option<String>,
    /// Which functions are async, and where the code keeps the stack pointer.
    #[cfg_attr(feature = "cli", command(flatten))]
    pub async_options: AsyncOptions,
    /// Parts of the world left to other libraries (partial bindings).
    #[cfg_attr(feature = "cli", command(flatten))]
    pub exclusions: Exclusions,
}

impl Options {
    /// Sets [`Options::interpreter`].
    pub fn interpreter(&mut self, name: impl Into<String>) -> &mut Self {
        self.interpreter = Some(name.into());
        self
    }

    /// The command-line flags that give these options back (as
    /// `componentize generate` spells them).
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        if let Some(name) = &self.interpreter {
            args.extend(["--interpreter".into(), name.into()]);
        }
        args.extend(self.exclusions.to_args());
        args.extend(self.async_options.to_args());
        args
    }

    /// Adds an `--async` directive ([`AsyncOptions::async_`]), e.g. `all`
    /// or `-import:wasi:io/poll@0.2.0#poll`.
    pub fn async_directive(&mut self, directive: &str) -> Result<&mut Self> {
        let directive = directive
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--async: {e}"))?;
        self.async_options.async_.push(directive);
        Ok(self)
    }

    /// Sets [`AsyncOptions::stack_pointer`].
    pub fn stack_pointer(&mut self, at: StackPointer) -> &mut Self {
        self.async_options.stack_pointer = at;
        self
    }

    /// Adds to [`Options::exclusions`] an interface to leave out of the
    /// bindings ([`Exclusions::interfaces`]).
    pub fn exclude_interface(&mut self, name: impl Into<String>) -> &mut Self {
        self.exclusions.interface(name);
        self
    }

    /// Adds to [`Options::exclusions`] an export to leave out of the
    /// bindings ([`Exclusions::exports`]).
    pub fn exclude_export(&mut self, name: impl Into<String>) -> &mut Self {
        self.exclusions.export(name);
        self
    }
}

/// How [`Wit::load`] reads WIT.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
// Flattened next to other stages' options: the group needs its own id.
#[cfg_attr(feature = "cli", group(id = "wit-options"))]
#[cfg_attr(feature = "cli", command(next_help_heading = "WIT"))]
pub struct WitOptions {
    /// Enable @unstable WIT features (comma- or space-separated, repeatable).
    #[cfg_attr(feature = "cli", arg(long, value_name = "FEATURES"))]
    pub features: Vec<String>,
    /// Enable every @unstable WIT feature.
    #[cfg_attr(feature = "cli", arg(long))]
    pub all_features: bool,
}

impl WitOptions {
    /// Adds to [`WitOptions::features`] (comma- or space-separated names).
    pub fn feature(&mut self, names: impl Into<String>) -> &mut Self {
        self.features.push(names.into());
        self
    }

    /// Sets [`WitOptions::all_features`].
    pub fn all_features(&mut self, all: bool) -> &mut Self {
        self.all_features = all;
        self
    }

    /// The command-line flags that give these options back.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        for names in &self.features {
            args.extend(["--features".into(), names.into()]);
        }
        if self.all_features {
            args.push("--all-features".into());
        }
        args
    }
}

/// The functions of the interpreter interface ([`HEADER`]) every generated
/// module imports from `env`, in import order: the intrinsics an interpreter
/// defines (and `cabi_realloc`).
pub fn intrinsic_names() -> impl Iterator<Item = &'static str> {
    abi::Intrinsic::ALL.iter().map(|i| i.name())
}

/// A generated bindings dylib.
#[derive(Clone, Debug)]
pub struct Bindings {
    wasm: Vec<u8>,
}

impl Bindings {
    /// The module's bytes.
    pub fn wasm(&self) -> &[u8] {
        &self.wasm
    }

    /// Takes the module's bytes.
    pub fn into_wasm(self) -> Vec<u8> {
        self.wasm
    }
}

/// Generates the bindings dylib for `world`.
///
/// Functions are bound synchronously or asynchronously as
/// [`Options::async_`] decides; `future` and `stream` values of any payload
/// are carried as handles, with per-type intrinsics in the metadata.
///
/// Fails with a message naming the function and type for what the interface
/// cannot carry: `error-context` and fixed-length lists; for maps whose
/// values hold handles, which WIT accepts but the component model does not;
/// and for an `--async` directive that matches no function.
///
/// With [`Options::exclusions`], the bindings are those of the world without
/// the excluded items (their `component-type` section says so too), and name
/// the excluded exports in a
/// [`EXCLUDED_EXPORTS_SECTION`](componentize_contract::excluded::EXCLUDED_EXPORTS_SECTION).
pub fn generate(resolve: &Resolve, world: WorldId, options: &Options) -> Result<Bindings> {
    let reduced = options.exclusions.apply(resolve, world)?;
    let resolve = reduced.as_ref().map_or(resolve, |r| &r.resolve);
    let plan = plan::Plan::new(resolve, world, &options.async_options.async_)?;
    let mut wasm = encode::module(&plan, options);
    wit_component::embed_component_metadata(
        &mut wasm,
        resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )
    .context("failed to embed the world's component-type section")?;
    if let Some(reduced) = reduced.filter(|r| !r.excluded_exports.is_empty()) {
        use componentize_contract::excluded::{EXCLUDED_EXPORTS_SECTION, encode_excluded_exports};
        use wasm_encoder::Section;
        wasm_encoder::CustomSection {
            name: EXCLUDED_EXPORTS_SECTION.into(),
            data: encode_excluded_exports(&reduced.excluded_exports).into(),
        }
        .append_to(&mut wasm);
    }
    Ok(Bindings { wasm })
}

/// WIT loaded from disk: the resolve and its main package.
#[non_exhaustive]
pub struct Wit {
    /// Every package loaded, dependencies included.
    pub resolve: Resolve,
    /// The package at the path given to [`Wit::load`].
    pub package: PackageId,
}

impl Wit {
    /// Loads WIT from a directory (with an optional `deps/`), a `.wit` file,
    /// or a wasm-encoded package, with the `@unstable` features `options`
    /// enables.
    pub fn load(path: &Path, options: &WitOptions) -> Result<Wit> {
        if !path.exists() {
            bail!("WIT path `{}` does not exist", path.display());
        }
        if path.is_dir() && !dir_has_wit(path) {
            bail!(
                "no WIT found in `{}`: expected `*.wit` files (and optionally a `deps/` folder) in that directory",
                path.display()
            );
        }
        let mut resolve = Resolve {
            all_features: options.all_features,
            ..Resolve::default()
        };
        for f in &options.features {
            for f in f.split([',', ' ']).filter(|f| !f.is_empty()) {
                resolve.features.insert(f.to_string());
            }
        }
        // Rendering against the source map gives file:line:column and the
        // offending line.
        let package = match resolve.push_path(path) {
            Ok((package, _)) => package,
            Err(e) => bail!(
                "failed to load WIT from `{}`: {}",
                path.display(),
                resolve.render_error(&e)
            ),
        };
        Ok(Wit { resolve, package })
    }

    /// The names of the main package's worlds, sorted.
    pub fn world_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.resolve.packages[self.package]
            .worlds
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names
    }

    /// Picks the world named `name` (or the only world of the main package),
    /// listing the available worlds when that fails.
    pub fn world(&self, name: Option<&str>) -> Result<WorldId> {
        self.resolve
            .select_world(&[self.package], name)
            .map_err(|e| {
                let pkg = &self.resolve.packages[self.package];
                let names = self.world_names();
                let available = if names.is_empty() {
                    "the package defines no worlds".to_string()
                } else {
                    format!("available worlds in `{}`: {}", pkg.name, names.join(", "))
                };
                match name {
                    // wit-parser's message says the same as ours: keep one.
                    Some(n) if !names.contains(&n) => {
                        anyhow::anyhow!("world `{n}` not found ({available})")
                    }
                    Some(n) => anyhow::anyhow!("cannot select world `{n}` ({available}): {e}"),
                    None => anyhow::anyhow!("{e} ({available}; choose one with --world)"),
                }
            })
    }
}

fn dir_has_wit(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .any(|e| e.path().extension().is_some_and(|x| x == "wit"))
        })
        .unwrap_or(false)
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::{Options, WitOptions};
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        options: Options,
        #[command(flatten)]
        wit: WitOptions,
    }

    #[test]
    fn the_flags_give_the_options_back() {
        let mut options = Options::default();
        options
            .interpreter("lua.so")
            .exclude_interface("wasi:http/types@0.2")
            .exclude_export("run")
            .exclude_export("a:b/c")
            .stack_pointer(super::StackPointer::TaskContext);
        options.async_directive("-import:a:b/c#f").unwrap();
        options.async_directive("all").unwrap();
        let mut wit = WitOptions::default();
        wit.feature("a,b").feature("c").all_features(true);
        let args = std::iter::once("generate".into())
            .chain(options.to_args())
            .chain(wit.to_args());
        let cli = Cli::try_parse_from(args).unwrap();
        assert_eq!(cli.options, options);
        assert_eq!(cli.wit, wit);
        let empty = Cli::try_parse_from(["generate"]).unwrap();
        assert!(empty.options.to_args().is_empty() && empty.wit.to_args().is_empty());
    }
}
