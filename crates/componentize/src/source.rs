//! Inputs given as files or as bytes.

use anyhow::{Context, Result};
use std::path::PathBuf;

/// An input of the pipeline (interpreter, library, script, bindings): a
/// file, or bytes with the name they stand for.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Source {
    /// A file, named after its file name.
    Path(PathBuf),
    /// Bytes in memory.
    Bytes {
        /// The name other inputs and messages know it by (a library's
        /// `needed` name, a script's file name).
        name: String,
        /// The content.
        bytes: Vec<u8>,
    },
}

impl Source {
    /// A file input.
    pub fn path(path: impl Into<PathBuf>) -> Source {
        Source::Path(path.into())
    }

    /// An in-memory input named `name`.
    pub fn bytes(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Source {
        Source::Bytes {
            name: name.into(),
            bytes: bytes.into(),
        }
    }

    /// The name: a file's file name, or the given name.
    pub fn name(&self) -> String {
        match self {
            Source::Bytes { name, .. } => name.clone(),
            Source::Path(path) => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string()),
        }
    }

    /// Fails, naming the input as `what`, when it is a file that cannot be
    /// opened; cheap, for checking inputs before any stage runs.
    pub fn check(&self, what: &str) -> Result<()> {
        if let Source::Path(path) = self {
            std::fs::File::open(path)
                .with_context(|| format!("cannot read the {what} `{}`", path.display()))?;
        }
        Ok(())
    }

    /// The name and the bytes; `what` names the input in the error.
    pub fn load(&self, what: &str) -> Result<(String, Vec<u8>)> {
        match self {
            Source::Bytes { name, bytes } => Ok((name.clone(), bytes.clone())),
            Source::Path(path) => {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("cannot read the {what} `{}`", path.display()))?;
                Ok((self.name(), bytes))
            }
        }
    }
}
