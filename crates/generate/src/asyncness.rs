//! Which functions are bound asynchronously: the `--async` filter, spelled
//! as wit-dylib 0.263 (and the other guest generators) spell it, and the
//! stack-pointer placement asynchronous interpreters need.

use anyhow::{Result, bail};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::str::FromStr;
use wit_parser::{Function, Resolve, WorldKey};

/// One `--async` directive: `[-]all`, `[-]NAME`, `[-]import:NAME` or
/// `[-]export:NAME`, where `NAME` is `ns:pkg/iface@version#func` for an
/// interface function and `func` for a world-level one. A leading `-` forces
/// the functions it matches to be synchronous.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsyncDirective {
    /// Whether the matched functions become asynchronous.
    pub enabled: bool,
    /// What the directive matches.
    pub target: AsyncTarget,
}

/// What an [`AsyncDirective`] matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AsyncTarget {
    /// Every import and export.
    All,
    /// The function of that name, imported or exported.
    Function(String),
    /// The function of that name as an import only.
    Import(String),
    /// The function of that name as an export only.
    Export(String),
}

impl FromStr for AsyncDirective {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (enabled, rest) = match s.strip_prefix('-') {
            Some(rest) => (false, rest),
            None => (true, s),
        };
        let target = if rest == "all" {
            AsyncTarget::All
        } else if let Some(name) = rest.strip_prefix("import:") {
            AsyncTarget::Import(name.to_string())
        } else if let Some(name) = rest.strip_prefix("export:") {
            AsyncTarget::Export(name.to_string())
        } else {
            AsyncTarget::Function(rest.to_string())
        };
        let name = match &target {
            AsyncTarget::All => "all",
            AsyncTarget::Function(n) | AsyncTarget::Import(n) | AsyncTarget::Export(n) => n,
        };
        if name.is_empty() {
            return Err(format!(
                "`{s}` names no function: expected `all`, `NAME`, `import:NAME` or `export:NAME` \
                 (optionally after `-`), where NAME is `ns:pkg/iface#func` or a world-level `func`"
            ));
        }
        Ok(AsyncDirective { enabled, target })
    }
}

impl fmt::Display for AsyncDirective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.enabled {
            f.write_str("-")?;
        }
        match &self.target {
            AsyncTarget::All => f.write_str("all"),
            AsyncTarget::Function(n) => f.write_str(n),
            AsyncTarget::Import(n) => write!(f, "import:{n}"),
            AsyncTarget::Export(n) => write!(f, "export:{n}"),
        }
    }
}

/// Decides, function by function, whether it is bound asynchronously, and
/// remembers which directives matched something.
pub(crate) struct AsyncChooser<'o> {
    directives: &'o [AsyncDirective],
    used: BTreeSet<usize>,
    /// The first function a directive made async that the WIT declares
    /// sync: its directive and name.
    not_async: Option<(usize, String)>,
}

impl<'o> AsyncChooser<'o> {
    pub fn new(directives: &'o [AsyncDirective]) -> Self {
        AsyncChooser {
            directives,
            used: BTreeSet::new(),
            not_async: None,
        }
    }

    /// The first directive matching `func` decides; with none, the WIT does
    /// (`async func` is asynchronous, everything else synchronous).
    pub fn is_async(
        &mut self,
        resolve: &Resolve,
        key: Option<&WorldKey>,
        func: &Function,
        import: bool,
    ) -> bool {
        let name = match key {
            Some(key) => format!("{}#{}", resolve.name_world_key(key), func.name),
            None => func.name.clone(),
        };
        for (i, d) in self.directives.iter().enumerate() {
            let matches = match &d.target {
                AsyncTarget::All => true,
                AsyncTarget::Function(n) => *n == name,
                AsyncTarget::Import(n) => import && *n == name,
                AsyncTarget::Export(n) => !import && *n == name,
            };
            if matches {
                self.used.insert(i);
                if d.enabled && !func.kind.is_async() && self.not_async.is_none() {
                    self.not_async = Some((i, name));
                }
                return d.enabled;
            }
        }
        func.kind.is_async()
    }

    /// Refuses a directive that named a function the world does not have
    /// (most likely a typo, which would otherwise silently change nothing),
    /// and one that made a function async that the WIT declares sync: the
    /// component model lifts and lowers asynchronously only functions whose
    /// type is async, so such bindings would never link (wit-dylib 0.263
    /// generates them; wit-component then refuses "the `async` canonical
    /// option requires an async function type").
    pub fn check(&self) -> Result<()> {
        if let Some((i, name)) = &self.not_async {
            let d = &self.directives[*i];
            bail!(
                "`--async {d}` makes `{name}` async, but the WIT declares it `func`: the \
                 component model binds only an `async func` asynchronously, so declare it \
                 `async func` in the WIT, or narrow the directive (`-NAME` forces an \
                 `async func` synchronous)"
            );
        }
        for (i, d) in self.directives.iter().enumerate() {
            if !self.used.contains(&i) && d.target != AsyncTarget::All {
                bail!(
                    "`--async {d}` matches no function of the world: names are \
                     `ns:pkg/iface@version#func` for interface functions and `func` for \
                     world-level ones, and an earlier directive may have matched first"
                );
            }
        }
        Ok(())
    }
}

/// The generator's async options: which functions are async, and where the
/// stack pointer is. The one-command build takes them as they are.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
// Flattened next to other stages' options: the group needs its own id.
#[cfg_attr(feature = "cli", group(id = "async-options"))]
#[cfg_attr(feature = "cli", command(next_help_heading = "Generate"))]
pub struct AsyncOptions {
    /// Which functions to bind asynchronously: `all`, `NAME`,
    /// `import:NAME` or `export:NAME`, each optionally after `-` (forced
    /// synchronous); NAME is `ns:pkg/iface@version#func` or a world-level
    /// `func`. Repeatable and comma-separated; the first match wins, and a
    /// function no directive matches is asynchronous iff the WIT says
    /// `async func`. A directive matching nothing is an error.
    #[cfg_attr(
        feature = "cli",
        arg(long = "async", value_name = "FILTER", value_delimiter = ',')
    )]
    pub async_: Vec<AsyncDirective>,
    /// Where the generated code keeps the shadow stack pointer:
    /// `task-context` for an interpreter and libc built for WASIp3, whose
    /// tasks each have their own stack; `global` otherwise.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_enum, value_name = "WHERE", default_value_t = StackPointer::Global)
    )]
    pub stack_pointer: StackPointer,
}

impl AsyncOptions {
    /// The command-line flags that give these options back.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        for directive in &self.async_ {
            // `=`: a directive may start with `-`.
            args.push(format!("--async={directive}").into());
        }
        if self.stack_pointer != StackPointer::default() {
            args.extend(["--stack-pointer".into(), self.stack_pointer.as_str().into()]);
        }
        args
    }
}

/// Where the generated code finds the shadow stack pointer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum StackPointer {
    /// The `env.__stack_pointer` global of a libc built for WASIp2 or
    /// earlier.
    #[default]
    Global,
    /// Slot 0 of the task context (`context.get`/`context.set`), where a libc
    /// built for WASIp3 keeps each task's stack pointer.
    TaskContext,
}

impl StackPointer {
    /// The `--stack-pointer` value.
    pub fn as_str(self) -> &'static str {
        match self {
            StackPointer::Global => "global",
            StackPointer::TaskContext => "task-context",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{AsyncDirective, AsyncTarget};

    #[test]
    fn directives_parse_and_print_back() {
        for (text, enabled, target) in [
            ("all", true, AsyncTarget::All),
            ("-all", false, AsyncTarget::All),
            ("run", true, AsyncTarget::Function("run".into())),
            (
                "import:a:b/c@1.0.0#f",
                true,
                AsyncTarget::Import("a:b/c@1.0.0#f".into()),
            ),
            (
                "-export:a:b/c#f",
                false,
                AsyncTarget::Export("a:b/c#f".into()),
            ),
        ] {
            let d: AsyncDirective = text.parse().unwrap();
            assert_eq!(d, AsyncDirective { enabled, target });
            assert_eq!(d.to_string(), text);
        }
        for bad in ["", "-", "import:", "-export:"] {
            let err = bad.parse::<AsyncDirective>().unwrap_err();
            assert!(err.contains("names no function"), "{bad}: {err}");
        }
    }
}
