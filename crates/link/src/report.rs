//! What [`Link::encode`](crate::Link::encode) hands back: the component and
//! a report of what went into it, with the text `componentize link -v`
//! prints.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a linked library came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// Given as bytes ([`Link::library`](crate::Link::library),
    /// [`Link::bindings`](crate::Link::bindings)).
    Given,
    /// Given as a file ([`Link::library_path`](crate::Link::library_path),
    /// [`Link::bindings_path`](crate::Link::bindings_path), a path given to
    /// [`Link::dl_openable`](crate::Link::dl_openable)).
    File(PathBuf),
    /// Found in a search folder, because `needed_by` lists it in its
    /// `needed` (`None`: because it was named dl-openable).
    Found {
        /// The file.
        path: PathBuf,
        /// The library that needed it first.
        needed_by: Option<String>,
    },
    /// wit-component's built-in `libdl.so`: brought in by dl-openable
    /// libraries (`needed_by` is `None`), or because `needed_by` needs a
    /// `libdl.so` and none is on the search path.
    BuiltIn {
        /// The library that needed `libdl.so` first.
        needed_by: Option<String>,
    },
    /// Made by the link stage itself for `needed_by`, which imports what
    /// it defines: the task context of async exports (see
    /// `componentize.h`).
    Provided {
        /// The library that imports it first.
        needed_by: String,
    },
}

impl Origin {
    /// Where it came from, without why: for error messages about the
    /// library itself.
    pub(crate) fn describe(&self) -> String {
        match self {
            Origin::Given => "given as bytes".into(),
            Origin::File(p) => format!("`{}`", p.display()),
            Origin::Found { path, .. } => format!("found at `{}`", path.display()),
            Origin::BuiltIn { .. } => "built into wit-component".into(),
            Origin::Provided { .. } => "made by the link stage".into(),
        }
    }

    /// The file the library was read from, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Origin::File(p) | Origin::Found { path: p, .. } => Some(p),
            Origin::Given | Origin::BuiltIn { .. } | Origin::Provided { .. } => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Found {
                path,
                needed_by: Some(by),
            } => write!(f, "found at `{}`, needed by `{by}`", path.display()),
            Origin::Found {
                path,
                needed_by: None,
            } => write!(f, "found at `{}`, dl-openable", path.display()),
            Origin::BuiltIn {
                needed_by: Some(by),
            } => write!(
                f,
                "built into wit-component, needed by `{by}`: no libdl.so on the search path"
            ),
            Origin::BuiltIn { needed_by: None } => {
                f.write_str("built into wit-component, for the dl-openable libraries")
            }
            Origin::Provided { needed_by } => write!(
                f,
                "made by the link stage for `{needed_by}`: the task context of async exports"
            ),
            other => f.write_str(&other.describe()),
        }
    }
}

/// A library of the link.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Library {
    /// Its name in the component (what `needed` entries refer to).
    pub name: String,
    /// Where it came from.
    pub origin: Origin,
    /// Loadable with `dlopen`.
    pub dl_openable: bool,
}

/// Where an adapter came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdapterOrigin {
    /// The reactor `wasi_snapshot_preview1` adapter bundled with this crate
    /// (`wasi-preview1-component-adapter-provider` 48.0.0).
    Bundled,
    /// Given as bytes ([`Link::adapter`](crate::Link::adapter)).
    Given,
    /// Read from a file ([`Link::adapter_path`](crate::Link::adapter_path)).
    File(PathBuf),
}

impl fmt::Display for AdapterOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdapterOrigin::Bundled => {
                f.write_str("bundled (wasi-preview1-component-adapter-provider 48, reactor)")
            }
            AdapterOrigin::Given => f.write_str("given as bytes"),
            AdapterOrigin::File(p) => write!(f, "`{}`", p.display()),
        }
    }
}

/// An adapter in the component.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Adapter {
    /// The import namespace it implements, e.g. `wasi_snapshot_preview1`.
    pub name: String,
    /// Where it came from.
    pub origin: AdapterOrigin,
}

/// A function replaced by a trapping stub (weak and undefined, or missing
/// with [`Link::stub_missing_functions`](crate::Link::stub_missing_functions)).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub struct Stub {
    /// The library importing it.
    pub library: String,
    /// The function.
    pub symbol: String,
}

/// Intrinsics of `componentize.h` that bindings import and no linked library
/// defines: the interpreter was built against an older header. Linking
/// stubs them when the world needs none of them, or with
/// [`Link::stub_missing_functions`](crate::Link::stub_missing_functions);
/// otherwise it is an error naming what needs each. The stubs trap when
/// called; they come from a library of their own,
/// `componentize:missing-intrinsics`, which names them in the trap's
/// backtrace and is not listed among the [`Linked::libraries`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MissingIntrinsics {
    /// The bindings importing them.
    pub bindings: String,
    /// The libraries that define the bindings' other intrinsics (the
    /// interpreter; rarely more than one).
    pub interpreter: Vec<String>,
    /// Every one missing, by name.
    pub missing: Vec<String>,
    /// Those the bindings' code calls: the world needs them.
    pub needed: Vec<NeededIntrinsic>,
}

/// An intrinsic the world needs, and what needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NeededIntrinsic {
    /// The intrinsic, e.g. `wit_dylib_push_map`.
    pub name: String,
    /// What needs it, as the end of "`name` is needed ...": e.g. "for
    /// `map<string, u32>` in export `pkg:ns/iface.f`", or "by the bindings".
    pub needed: String,
}

impl fmt::Display for NeededIntrinsic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is needed {}", self.name, self.needed)
    }
}

impl MissingIntrinsics {
    /// "`libold.so` lacks 7 intrinsics of componentize.h imported by
    /// `bindings.so` (`a`, `b`, ...)".
    fn summary(&self) -> String {
        let verb = if self.interpreter.len() == 1 {
            "lacks"
        } else {
            "lack"
        };
        let n = self.missing.len();
        let names: Vec<String> = self.missing.iter().map(|n| format!("`{n}`")).collect();
        format!(
            "{} {verb} {n} intrinsic{} of componentize.h imported by `{}` ({})",
            quoted(&self.interpreter),
            if n == 1 { "" } else { "s" },
            self.bindings,
            names.join(", ")
        )
    }

    /// The error when the world needs some of them.
    pub(crate) fn refusal(&self) -> String {
        let mut msg = format!(
            "{}; the world needs {} of them:",
            self.summary(),
            self.needed.len()
        );
        for needed in &self.needed {
            msg.push_str(&format!("\n  {needed}"));
        }
        msg.push_str(&format!(
            "\n{} was probably built against an older componentize.h: rebuild it against the current one (`componentize header` prints it), or change the world so that it does not use what needs these intrinsics",
            quoted(&self.interpreter)
        ));
        msg
    }
}

impl fmt::Display for MissingIntrinsics {
    /// The line of the report: what is missing, what the world needs, what
    /// became of them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.summary())?;
        if self.needed.is_empty() {
            return f.write_str("the world needs none of them; stubbed");
        }
        let needed: Vec<String> = self.needed.iter().map(|n| n.to_string()).collect();
        write!(
            f,
            "{}; stubbed as asked (stub-missing-functions): calling them traps",
            needed.join(", ")
        )
    }
}

/// The result of [`Link::encode`](crate::Link::encode): the component and
/// what went into it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Linked {
    pub(crate) component: Vec<u8>,
    pub(crate) libraries: Vec<Library>,
    pub(crate) unused: Vec<Library>,
    pub(crate) adapters: Vec<Adapter>,
    pub(crate) stubs: Vec<Stub>,
    pub(crate) missing_intrinsics: Vec<MissingIntrinsics>,
}

impl Linked {
    /// The component's bytes.
    pub fn component(&self) -> &[u8] {
        &self.component
    }

    /// Takes the component's bytes.
    pub fn into_component(self) -> Vec<u8> {
        self.component
    }

    /// The libraries linked in, in the order given to wit-component's
    /// linker (the first library exporting a symbol provides it), without
    /// the stubs of [missing intrinsics](Linked::missing_intrinsics).
    pub fn libraries(&self) -> &[Library] {
        &self.libraries
    }

    /// Libraries given or found but left out because nothing uses them.
    pub fn unused(&self) -> &[Library] {
        &self.unused
    }

    /// The adapters added, by name.
    pub fn adapters(&self) -> &[Adapter] {
        &self.adapters
    }

    /// Functions that trap when called, by library and name.
    pub fn stubs(&self) -> &[Stub] {
        &self.stubs
    }

    /// Intrinsics the bindings import that their interpreter lacks (also
    /// among the [`stubs`](Linked::stubs)), per bindings module.
    pub fn missing_intrinsics(&self) -> &[MissingIntrinsics] {
        &self.missing_intrinsics
    }

    /// The report as text, one line (ending in a newline) per linked
    /// library, unused library, adapter, bindings module whose interpreter
    /// lacks intrinsics, and stub: what `componentize link --verbose`
    /// prints.
    pub fn report(&self) -> Report<'_> {
        Report(self)
    }
}

/// The text of [`Linked::report`], rendered by its `Display`.
#[derive(Clone, Copy, Debug)]
pub struct Report<'a>(&'a Linked);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let linked = self.0;
        for lib in &linked.libraries {
            writeln!(f, "linked {} ({})", lib.name, lib.origin)?;
        }
        for lib in &linked.unused {
            writeln!(f, "unused {} ({}): nothing needs it", lib.name, lib.origin)?;
        }
        for a in &linked.adapters {
            writeln!(f, "adapter {} ({})", a.name, a.origin)?;
        }
        for m in &linked.missing_intrinsics {
            writeln!(f, "{m}")?;
        }
        for s in &linked.stubs {
            writeln!(f, "stub {} (imported by {})", s.symbol, s.library)?;
        }
        Ok(())
    }
}

/// Names in backquotes, as a list: "`a`", "`a` and `b`", "`a`, `b` and `c`".
pub(crate) fn quoted<S: AsRef<str>>(names: &[S]) -> String {
    let q: Vec<String> = names.iter().map(|n| format!("`{}`", n.as_ref())).collect();
    match q.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}
