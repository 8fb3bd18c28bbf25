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
//! let bindings = generate(&resolve, world, &Options { interpreter: Some("lua.so".into()) }).unwrap();
//! assert!(wasmparser::Validator::new().validate_all(bindings.wasm()).is_ok());
//! ```

mod codegen;
mod metadata;
mod module;
mod plan;

use anyhow::{Context, Result, bail};
use std::path::Path;
use wit_parser::{PackageId, Resolve, WorldId};

/// The C header for interpreter authors: the interface exactly as the
/// generated module imports it (`wit_dylib.h` v3 with its map and async-export
/// declarations corrected).
pub const HEADER: &str = include_str!("../componentize.h");

/// Options of [`generate`].
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Library name of the interpreter (e.g. `lua.so`), recorded as `needed`
    /// in `dylink.0` so the linker loads and initializes it first.
    pub interpreter: Option<String>,
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
/// Fails with a message naming the function and type for what the interface
/// cannot carry: `async` functions, `future`/`stream`, `error-context`, and
/// fixed-length lists.
pub fn generate(resolve: &Resolve, world: WorldId, options: &Options) -> Result<Bindings> {
    let plan = plan::Plan::new(resolve, world)?;
    let mut wasm = module::encode(&plan, options.interpreter.as_deref());
    wit_component::embed_component_metadata(
        &mut wasm,
        resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )
    .context("failed to embed the world's component-type section")?;
    Ok(Bindings { wasm })
}

/// WIT loaded from disk: the resolve and its main package.
pub struct Wit {
    pub resolve: Resolve,
    pub package: PackageId,
}

impl Wit {
    /// Loads WIT from a directory (with an optional `deps/`), a `.wit` file,
    /// or a wasm-encoded package. `features` enables `@unstable` items.
    pub fn load(path: &Path, features: &[String], all_features: bool) -> Result<Wit> {
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
            all_features,
            ..Resolve::default()
        };
        for f in features {
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

    /// Picks the world named `name` (or the only world of the main package),
    /// listing the available worlds when that fails.
    pub fn world(&self, name: Option<&str>) -> Result<WorldId> {
        self.resolve
            .select_world(&[self.package], name)
            .map_err(|e| {
                let pkg = &self.resolve.packages[self.package];
                let mut names: Vec<&str> = pkg.worlds.keys().map(|s| s.as_str()).collect();
                names.sort();
                let available = if names.is_empty() {
                    "the package defines no worlds".to_string()
                } else {
                    format!("available worlds in `{}`: {}", pkg.name, names.join(", "))
                };
                match name {
                    Some(n) => anyhow::anyhow!("world `{n}` not found ({available}): {e}"),
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
