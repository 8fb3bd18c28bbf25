//! The interpreters that ship inside componentize, chosen by name
//! (`--interpreter lua`, `--interpreter js`): their libraries are embedded in the binary, so
//! using them needs no C toolchain and no search path.

use crate::{Pipeline, Source};
use anyhow::{Result, bail};
use componentize_interpreter::BundledLibrary;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// An interpreter that ships with componentize.
#[derive(Clone, Copy, Debug)]
pub struct BundledInterpreter {
    /// The name `--interpreter` takes.
    pub name: &'static str,
    /// The language and where its binding lives.
    pub description: &'static str,
    /// The version of the language implementation.
    pub version: &'static str,
    /// Its libraries in link order: the interpreter first, then what it
    /// needs, down to `libc.so`.
    pub libraries: &'static [BundledLibrary],
}

/// Every bundled interpreter, by name.
pub const BUNDLED_INTERPRETERS: &[BundledInterpreter] = &[
    BundledInterpreter {
        name: "lua",
        description: "the Lua 5.4 binding (interpreters/lua)",
        version: componentize_lua::LUA_VERSION,
        libraries: &componentize_lua::BUNDLED,
    },
    BundledInterpreter {
        name: "js",
        description: "the JavaScript binding, QuickJS-NG (interpreters/js)",
        version: componentize_js::QUICKJS_VERSION,
        libraries: &componentize_js::BUNDLED,
    },
];

impl BundledInterpreter {
    /// The bundled interpreter called `name`.
    pub fn find(name: &str) -> Option<&'static BundledInterpreter> {
        BUNDLED_INTERPRETERS.iter().find(|i| i.name == name)
    }

    /// A pipeline for this interpreter and the WIT at `wit`, with every
    /// library it needs already added.
    pub fn pipeline(&self, wit: impl Into<PathBuf>) -> Pipeline {
        let (interpreter, needed) = self
            .libraries
            .split_first()
            .expect("a bundled interpreter has at least its own library");
        let mut pipeline = Pipeline::new(source(interpreter), wit);
        // Every bundled libc is built for WASIp2.
        pipeline.interpreter_stack_pointer = Some(componentize_generate::StackPointer::Global);
        for library in needed {
            pipeline.library(source(library));
        }
        pipeline
    }
}

fn source(library: &BundledLibrary) -> Source {
    Source::bytes(library.name, library.bytes)
}

/// The hex SHA-256 of `bytes`, as `sha256sum` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::cache::hex(&Sha256::digest(bytes))
}

/// The pipeline for `--interpreter ARG`: a bare name without an extension
/// (`lua`) that is not a file in the current folder names a bundled
/// interpreter; anything else (`lua.so`, `./lua`, `lib/lua.so`) is an
/// interpreter library file.
pub fn pipeline_for(interpreter: &Path, wit: impl Into<PathBuf>) -> Result<Pipeline> {
    let bare = interpreter.components().count() == 1 && interpreter.extension().is_none();
    if !bare || interpreter.exists() {
        return Ok(Pipeline::new(Source::path(interpreter), wit));
    }
    let name = interpreter.to_string_lossy();
    match BundledInterpreter::find(&name) {
        Some(bundled) => Ok(bundled.pipeline(wit)),
        None => {
            let names: Vec<_> = BUNDLED_INTERPRETERS.iter().map(|i| i.name).collect();
            bail!(
                "no interpreter `{name}`: it is not a file, nor a bundled interpreter \
                 (bundled: {}; `componentize interpreters` lists them)",
                names.join(", ")
            )
        }
    }
}
