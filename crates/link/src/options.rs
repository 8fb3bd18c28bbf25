//! The link options as a value (and, with the `cli` feature, as
//! `componentize link`'s flags), applied by
//! [`Link::options`](crate::Link::options).

use std::ffi::OsString;
use std::path::PathBuf;
use std::str::FromStr;

/// The link stage's options, beyond its inputs. With the `cli` feature,
/// these are command-line flags (`#[command(flatten)]`); each field's
/// documentation is its `--help` text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[non_exhaustive]
// Flattened next to other stages' options: the group needs its own id.
#[cfg_attr(feature = "cli", group(id = "link-options"))]
#[cfg_attr(feature = "cli", command(next_help_heading = "Link"))]
pub struct Options {
    /// Look for needed libraries in DIR (repeatable; searched in order,
    /// before the inputs' folders, $WASI_SYSROOT/lib/wasm32-wasip2,
    /// $WASI_SYSROOT/lib/wasm32-wasip1, $WASI_SYSROOT/lib and
    /// $WASI_SDK_PATH/share/wasi-sysroot/lib/wasm32-wasip{2,1}).
    #[cfg_attr(feature = "cli", arg(short = 'L', value_name = "DIR"))]
    pub search: Vec<PathBuf>,
    /// Use FILE as the adapter for the import namespace NAME (replaces the
    /// bundled wasi_snapshot_preview1 reactor adapter for that name).
    #[cfg_attr(feature = "cli", arg(long, value_name = "NAME=FILE"))]
    pub adapt: Vec<AdapterFile>,
    /// Make LIB loadable with dlopen (links wit-component's built-in
    /// libdl.so). A name is looked for like a needed library; a path is
    /// also linked.
    #[cfg_attr(feature = "cli", arg(long, value_name = "LIB"))]
    pub dl_openable: Vec<String>,
    /// Turn functions no library defines into traps instead of an error.
    #[cfg_attr(feature = "cli", arg(long))]
    pub stub_missing_functions: bool,
    /// Shadow stack size in bytes.
    #[cfg_attr(feature = "cli", arg(long, value_name = "BYTES"))]
    pub stack_size: Option<u32>,
}

impl Options {
    /// The `componentize link` flags that give these options, e.g. for a
    /// script that reproduces a build.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        for dir in &self.search {
            args.extend(["-L".into(), dir.into()]);
        }
        for adapter in &self.adapt {
            let mut value = OsString::from(&adapter.name);
            value.push("=");
            value.push(&adapter.path);
            args.extend(["--adapt".into(), value]);
        }
        for lib in &self.dl_openable {
            args.extend(["--dl-openable".into(), lib.into()]);
        }
        if self.stub_missing_functions {
            args.push("--stub-missing-functions".into());
        }
        if let Some(bytes) = self.stack_size {
            args.extend(["--stack-size".into(), bytes.to_string().into()]);
        }
        args
    }
}

/// An adapter module read from a file, for an import namespace: the value
/// of `--adapt NAME=FILE`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdapterFile {
    /// The import namespace it implements, e.g. `wasi_snapshot_preview1`.
    pub name: String,
    /// The core module.
    pub path: PathBuf,
}

impl AdapterFile {
    /// The adapter in `path` for the namespace `name`.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> AdapterFile {
        AdapterFile {
            name: name.into(),
            path: path.into(),
        }
    }
}

impl FromStr for AdapterFile {
    type Err = String;

    /// Parses `NAME=FILE`, splitting at the first `=`.
    fn from_str(s: &str) -> Result<AdapterFile, String> {
        match s.split_once('=') {
            Some((name, file)) if !name.is_empty() && !file.is_empty() => {
                Ok(AdapterFile::new(name, file))
            }
            _ => Err(format!(
                "expected NAME=FILE (an import namespace and the adapter module implementing it, e.g. wasi_snapshot_preview1=adapter.wasm), got `{s}`"
            )),
        }
    }
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::{AdapterFile, Options};
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        link: Options,
    }

    #[test]
    fn the_flags_fill_the_options() {
        let cli = Cli::try_parse_from([
            "link",
            "-L",
            "a",
            "-L",
            "b",
            "--adapt",
            "ns=adapter.wasm",
            "--dl-openable",
            "lib.so",
            "--stub-missing-functions",
            "--stack-size",
            "65536",
        ])
        .unwrap();
        assert_eq!(cli.link.search, ["a", "b"].map(std::path::PathBuf::from));
        assert_eq!(cli.link.adapt, [AdapterFile::new("ns", "adapter.wasm")]);
        assert_eq!(cli.link.dl_openable, ["lib.so"]);
        assert!(cli.link.stub_missing_functions);
        assert_eq!(cli.link.stack_size, Some(65536));

        // The options as flags parse back to the same options.
        let again =
            Cli::try_parse_from(std::iter::once("link".into()).chain(cli.link.to_args())).unwrap();
        assert_eq!(again.link, cli.link);

        let err = Cli::try_parse_from(["link", "--adapt", "adapter.wasm"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("--adapt <NAME=FILE>"), "{err}");
        assert!(err.contains("expected NAME=FILE"), "{err}");
    }
}
