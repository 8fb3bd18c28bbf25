//! Who implements the component's exports: the union of the linked
//! libraries' WIT worlds (their `component-type` sections). Each export
//! must come from exactly one library, and each export bindings leave to
//! other libraries (generated with `--exclude-interface` or
//! `--exclude-export`, listed in their
//! [`EXCLUDED_EXPORTS_SECTION`](componentize_contract::excluded::EXCLUDED_EXPORTS_SECTION))
//! from exactly one other library.
//!
//! Checked before anything else: wit-component's linker merges the worlds
//! of all libraries and does not check this. An interface exported by two
//! libraries makes it panic (an assertion in its encoder), a world-level
//! function exported by two gives an invalid component, and an
//! excluded export nobody defines is silently absent from the component.

use crate::dylib::Dylib;
use crate::report::quoted;
use anyhow::{Result, bail};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Checks that every world export is defined by exactly one library, and
/// every excluded export by exactly one library other than the bindings
/// that exclude it. One error lists every problem.
pub fn check(libs: &[Dylib]) -> Result<()> {
    // export -> the libraries whose world exports it, in link input order.
    let mut definers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for lib in libs {
        for name in &lib.export_names {
            definers.entry(name).or_default().push(&lib.name);
        }
    }
    let mut problems = Vec::new();
    for (export, by) in &definers {
        if by.len() > 1 {
            problems.push(format!(
                "export `{export}` is defined by {}: each export of the world must be defined by exactly one library (generate all but one of them without it: `componentize generate --exclude-export {export}`)",
                quoted(by)
            ));
        }
    }
    for lib in libs {
        for export in &lib.excluded_exports {
            let others = definers
                .get(export.as_str())
                .is_some_and(|by| by.iter().any(|&n| n != lib.name));
            if !others {
                problems.push(format!(
                    "export `{export}`: the bindings `{}` leave it out (generated with --exclude-interface or --exclude-export), and no linked library defines it; link the library that implements it (one whose WIT world, its `component-type` section, exports `{export}`)",
                    lib.name
                ));
            }
        }
    }
    match problems.as_slice() {
        [] => Ok(()),
        [one] => bail!("{one}"),
        many => {
            let mut msg = String::from("world exports:");
            for p in many {
                let _ = write!(msg, "\n  {p}");
            }
            bail!(msg)
        }
    }
}
