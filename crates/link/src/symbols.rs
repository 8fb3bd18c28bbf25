//! Symbol analysis over the whole set of libraries, done before
//! wit-component's linker sees them: duplicate and conflicting definitions,
//! the library order that makes every import resolve to a definition, which
//! libraries the linker will keep, and unresolved symbols (among them the
//! intrinsics an interpreter lacks, see `intrinsics`).
//!
//! The model follows wit-component 0.263's `Linker`: an import resolves to
//! the first library, in the order given to the linker, exporting a symbol
//! of that name and type; a library is kept only if it has component
//! exports, is dl-openable or exports `_start`, or if a kept library lists
//! it in `needed` or imports a function from it.

use crate::abi::{CABI_POST, START};
use crate::dylib::{Dylib, FuncSig, Sig};
use crate::intrinsics;
use crate::report::{MissingIntrinsics, NeededIntrinsic, Stub, quoted};
use anyhow::{Result, bail};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write;

fn index_by_name(libs: &[Dylib]) -> BTreeMap<&str, usize> {
    libs.iter()
        .enumerate()
        .map(|(i, l)| (l.name.as_str(), i))
        .collect()
}

/// For each library, every library it needs, directly or not.
fn needs_closure(libs: &[Dylib]) -> Vec<BTreeSet<usize>> {
    let by_name = index_by_name(libs);
    (0..libs.len())
        .map(|start| {
            let mut seen = BTreeSet::new();
            let mut queue = VecDeque::from([start]);
            while let Some(i) = queue.pop_front() {
                for n in &libs[i].needed {
                    if let Some(&j) = by_name.get(n.as_str())
                        && j != start
                        && seen.insert(j)
                    {
                        queue.push_back(j);
                    }
                }
            }
            seen
        })
        .collect()
}

/// Checks that every symbol defined more than once has one definition that
/// may override the others, and returns the order in which to hand the
/// libraries to the linker: that definition first, before every other
/// library exporting the symbol (in particular before a library that
/// imports it and re-exports it, such as bindings with `cabi_realloc`).
/// Otherwise the given order is kept. The built-in libdl comes last.
pub fn order(libs: &[Dylib]) -> Result<Vec<usize>> {
    let starts: Vec<&str> = libs
        .iter()
        .filter(|l| l.has_start)
        .map(|l| l.name.as_str())
        .collect();
    if starts.len() > 1 {
        bail!(
            "several libraries export the program entry point `{START}`: {}",
            quoted(&starts)
        );
    }

    let needs = needs_closure(libs);
    let mut exporters: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, lib) in libs.iter().enumerate() {
        for name in lib.exports.keys() {
            exporters.entry(name.as_str()).or_default().push(i);
        }
    }

    let mut problems = Vec::new();
    // (before, after, symbol)
    let mut edges: Vec<(usize, usize, &str)> = Vec::new();
    for (&sym, ex) in &exporters {
        if ex.len() < 2 {
            continue;
        }
        let describe = |i: usize| format!("`{}` ({})", libs[i].name, libs[i].exports[sym].sig);
        let all = ex
            .iter()
            .map(|&i| describe(i))
            .collect::<Vec<_>>()
            .join(", ");

        if let Some(&entry) = ex.iter().find(|&&i| libs[i].is_entry_point(sym)) {
            problems.push(format!(
                "`{sym}` is exported by {all}; in `{}` it implements the WIT world's export `{}`, so no other library may define that name (rename the WIT export, e.g. with a dash, or move it into an interface)",
                libs[entry].name,
                sym.strip_prefix(CABI_POST).unwrap_or(sym),
            ));
            continue;
        }
        if let Some(&b) = ex.iter().find(|&&i| libs[i].is_built_in()) {
            let others: Vec<&str> = ex
                .iter()
                .filter(|&&i| i != b)
                .map(|&i| libs[i].name.as_str())
                .collect();
            problems.push(format!(
                "`{sym}` is defined by {} and by the built-in `{}` that dl-openable libraries bring in",
                quoted(&others),
                libs[b].name
            ));
            continue;
        }
        let sigs: BTreeSet<&Sig> = ex.iter().map(|&i| &libs[i].exports[sym].sig).collect();
        if sigs.len() > 1 {
            problems.push(format!("`{sym}` is exported with different types: {all}"));
            continue;
        }
        let defs: Vec<usize> = ex
            .iter()
            .copied()
            .filter(|&i| !libs[i].exports[sym].reexport)
            .collect();
        let strong: Vec<usize> = defs
            .iter()
            .copied()
            .filter(|&i| !libs[i].exports[sym].weak)
            .collect();
        let candidates = if strong.is_empty() { &defs } else { &strong };
        let winner = match candidates.as_slice() {
            // Only re-exports: an import of it is reported as unresolved.
            [] => continue,
            [one] => *one,
            many => {
                // The definition that overrides the others is the one whose
                // library needs all the others (a library interposing
                // something of its dependencies, like an interpreter's
                // cabi_realloc over libc's).
                let w = many
                    .iter()
                    .copied()
                    .find(|&c| many.iter().all(|&o| o == c || needs[c].contains(&o)));
                match w {
                    Some(w) => w,
                    None => {
                        let names: Vec<&str> =
                            many.iter().map(|&i| libs[i].name.as_str()).collect();
                        problems.push(format!(
                            "`{sym}` is defined by {}, and none of them needs all the others, so which definition is used would depend on the link order",
                            quoted(&names)
                        ));
                        continue;
                    }
                }
            }
        };
        for &o in ex {
            if o != winner {
                edges.push((winner, o, sym));
            }
        }
    }
    if !problems.is_empty() {
        let mut msg = String::from("duplicate symbol definitions:");
        for p in &problems {
            let _ = write!(msg, "\n  {p}");
        }
        bail!(msg);
    }

    // Kahn's algorithm, always taking the earliest library that is free.
    let n = libs.len();
    let mut indegree = vec![0usize; n];
    let mut succ: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for &(a, b, _) in &edges {
        if succ[a].insert(b) {
            indegree[b] += 1;
        }
    }
    let mut ready: BTreeSet<usize> = (0..n)
        .filter(|&i| indegree[i] == 0 && !libs[i].is_built_in())
        .collect();
    let mut out = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        out.push(i);
        for &j in &succ[i] {
            indegree[j] -= 1;
            if indegree[j] == 0 && !libs[j].is_built_in() {
                ready.insert(j);
            }
        }
    }
    let placed = out.len() + libs.iter().filter(|l| l.is_built_in()).count();
    if placed < n {
        let placed_set: BTreeSet<usize> = out.iter().copied().collect();
        let mut msg = String::from(
            "cannot order the libraries so that every symbol resolves to its overriding definition; conflicting requirements:",
        );
        for &(a, b, sym) in &edges {
            if !placed_set.contains(&a) && !placed_set.contains(&b) {
                let _ = write!(
                    msg,
                    "\n  `{}` must come before `{}` (symbol `{sym}`)",
                    libs[a].name, libs[b].name
                );
            }
        }
        bail!(msg);
    }
    out.extend((0..n).filter(|&i| libs[i].is_built_in()));
    Ok(out)
}

/// The first library in `order` exporting `name` with type `sig`, among
/// those `keep` allows.
fn exporter(
    libs: &[Dylib],
    order: &[usize],
    name: &str,
    keep: impl Fn(usize) -> bool,
) -> Option<usize> {
    order
        .iter()
        .copied()
        .filter(|&i| keep(i))
        .find(|&i| libs[i].exports.contains_key(name))
}

/// Which libraries wit-component's linker keeps (see the module comment).
pub fn reachable(libs: &[Dylib], order: &[usize]) -> Vec<bool> {
    let by_name = index_by_name(libs);
    let mut keep = vec![false; libs.len()];
    let mut queue: VecDeque<usize> = VecDeque::new();
    for &i in order {
        let l = &libs[i];
        if l.has_component_exports || l.dl_openable || l.has_start {
            keep[i] = true;
            queue.push_back(i);
        }
    }
    while let Some(i) = queue.pop_front() {
        let lib = &libs[i];
        let needed = lib
            .needed
            .iter()
            .filter_map(|n| by_name.get(n.as_str()).copied());
        let imported = lib.funcs.iter().filter_map(|(name, imp)| {
            let e = exporter(libs, order, name, |_| true)?;
            (libs[e].exports[name].sig == Sig::Func(imp.sig.clone())).then_some(e)
        });
        let deps: Vec<usize> = needed.chain(imported).collect();
        for d in deps {
            if !keep[d] {
                keep[d] = true;
                queue.push_back(d);
            }
        }
    }
    keep
}

/// What [`resolve`] found: the functions that will trap, and the
/// intrinsics of componentize.h that bindings import and no library
/// defines.
pub struct Resolution {
    /// Every function stubbed, the missing intrinsics included.
    pub stubs: Vec<Stub>,
    /// Per bindings module, the intrinsics its interpreter lacks.
    pub missing_intrinsics: Vec<MissingIntrinsics>,
    /// The missing intrinsics by name, with their type: what the library of
    /// `trap_stubs` defines (wit-component stubs the others).
    pub intrinsic_stubs: BTreeMap<String, FuncSig>,
}

/// The kept libraries, in `order`, that define intrinsics the bindings
/// `libs[bindings]` import (other than `cabi_realloc`, which libc defines
/// too): its interpreter.
fn interpreters<'a>(
    libs: &'a [Dylib],
    order: &[usize],
    keep: &[bool],
    bindings: usize,
) -> Vec<&'a str> {
    let imports = &libs[bindings].funcs;
    order
        .iter()
        .copied()
        .filter(|&j| j != bindings && keep[j])
        .filter(|&j| {
            libs[j].exports.iter().any(|(name, e)| {
                !e.reexport
                    && imports.contains_key(name)
                    && intrinsics::is_interpreter_intrinsic(name)
            })
        })
        .map(|j| libs[j].name.as_str())
        .collect()
}

/// Checks that every import of a kept library resolves, and lists the
/// functions the linker will stub: weak ones, the intrinsics of
/// componentize.h that bindings import and their interpreter lacks when the
/// world does not need them, and with `stub` all missing functions. An
/// intrinsic the world needs is an error (unless `stub`) naming what needs
/// it.
pub fn resolve(libs: &[Dylib], order: &[usize], keep: &[bool], stub: bool) -> Result<Resolution> {
    let kept = |i: usize| keep[i];
    let mut stubs = Vec::new();
    // library -> problems; `stubbable` says whether a stub would do.
    let mut missing: BTreeMap<usize, Vec<(String, bool)>> = BTreeMap::new();
    // bindings -> the intrinsics their interpreter lacks.
    let mut lacking: BTreeMap<usize, MissingIntrinsics> = BTreeMap::new();
    let mut intrinsic_stubs = BTreeMap::new();

    for &i in order.iter().filter(|&&i| keep[i]) {
        let lib = &libs[i];
        // Only bindings (they embed a world) import intrinsics; only an
        // interpreter that defines some of them can lack the others.
        let interpreter = if lib.has_world {
            interpreters(libs, order, keep, i)
        } else {
            Vec::new()
        };
        let mut report = |text: String, stubbable: bool, weak: bool, sym: &str| {
            if stubbable && (stub || weak) {
                stubs.push(Stub {
                    library: lib.name.to_string(),
                    symbol: sym.to_string(),
                });
            } else {
                missing.entry(i).or_default().push((text, stubbable));
            }
        };

        for (name, imp) in &lib.funcs {
            let want = Sig::Func(imp.sig.clone());
            // The linker resolves a function among all the libraries it is
            // given (a match makes the exporter kept), by name and type.
            match exporter(libs, order, name, |_| true) {
                None if !interpreter.is_empty() && intrinsics::is_intrinsic(name) => {
                    let m = lacking.entry(i).or_insert_with(|| MissingIntrinsics {
                        bindings: lib.name.clone(),
                        interpreter: interpreter.iter().map(|n| n.to_string()).collect(),
                        missing: Vec::new(),
                        needed: Vec::new(),
                    });
                    m.missing.push(name.clone());
                    if imp.used {
                        m.needed.push(NeededIntrinsic {
                            name: name.clone(),
                            needed: intrinsics::needed_for(name, lib.wit.as_ref()),
                        });
                    }
                    intrinsic_stubs.insert(name.clone(), imp.sig.clone());
                }
                None => report(format!("`{name}` ({want})"), true, imp.weak, name),
                Some(e) => {
                    let export = &libs[e].exports[name];
                    if export.sig != want {
                        report(
                            format!(
                                "`{name}` ({want}), but `{}` exports it as {}",
                                libs[e].name, export.sig
                            ),
                            false,
                            false,
                            name,
                        );
                    } else if export.reexport {
                        let re: Vec<&str> = order
                            .iter()
                            .filter(|&&j| libs[j].exports.contains_key(name))
                            .map(|&j| libs[j].name.as_str())
                            .collect();
                        report(
                            format!(
                                "`{name}` ({want}): no library defines it ({} only re-export{} an import of the same name, which would call itself)",
                                quoted(&re),
                                if re.len() == 1 { "s" } else { "" }
                            ),
                            false,
                            false,
                            name,
                        );
                    }
                }
            }
        }

        for (name, &weak) in &lib.data {
            let want = Sig::data_address();
            match exporter(libs, order, name, |_| true) {
                Some(e) if libs[e].exports[name].sig != want => report(
                    format!(
                        "data `{name}`, but `{}` exports it as {}",
                        libs[e].name, libs[e].exports[name].sig
                    ),
                    false,
                    false,
                    name,
                ),
                // Data is resolved among the kept libraries only.
                Some(_) if exporter(libs, order, name, kept).is_some() => {}
                found => {
                    let mut text = format!("data `{name}`");
                    if weak {
                        text.push_str(" (weak: data cannot be stubbed)");
                    }
                    if let Some(e) = found {
                        let _ = write!(
                            text,
                            " (defined by `{0}`, which is left out because no kept library needs it: data symbols resolve only through dylink.0 `needed`, so link `{1}` against `{0}`)",
                            libs[e].name, lib.name
                        );
                    }
                    report(text, false, false, name);
                }
            }
        }

        for name in &lib.func_addrs {
            let found = lib.funcs.contains_key(name)
                || exporter(libs, order, name, kept)
                    .is_some_and(|e| matches!(libs[e].exports[name].sig, Sig::Func(_)));
            if !found {
                report(
                    format!("the address of function `{name}`"),
                    true,
                    false,
                    name,
                );
            }
        }

        for (name, sig) in &lib.tags {
            let want = Sig::Tag(sig.clone());
            match exporter(libs, order, name, kept) {
                Some(e) if libs[e].exports[name].sig == want => {}
                _ => report(format!("`{name}` ({want})"), false, false, name),
            }
        }
    }

    let missing_intrinsics: Vec<MissingIntrinsics> = lacking.into_values().collect();
    let refused: Vec<&MissingIntrinsics> = missing_intrinsics
        .iter()
        .filter(|m| !stub && !m.needed.is_empty())
        .collect();

    if !missing.is_empty() || !refused.is_empty() {
        let mut msg = String::new();
        for m in &refused {
            if !msg.is_empty() {
                msg.push('\n');
            }
            msg.push_str(&m.refusal());
        }
        if !missing.is_empty() {
            if !msg.is_empty() {
                msg.push('\n');
            }
            msg.push_str("unresolved symbols:");
        }
        for (i, items) in &missing {
            let _ = write!(msg, "\n  `{}` needs:", libs[*i].name);
            for (text, _) in items {
                let _ = write!(msg, "\n    {text}");
            }
        }
        let only_functions = missing.values().flatten().all(|(_, stubbable)| *stubbable);
        if !missing.is_empty() && only_functions {
            msg.push_str(
                "\n(if these functions are never called, link with stub_missing_functions / --stub-missing-functions to make them trap instead)",
            );
        }
        bail!(msg);
    }
    for m in &missing_intrinsics {
        stubs.extend(m.missing.iter().map(|symbol| Stub {
            library: m.bindings.clone(),
            symbol: symbol.clone(),
        }));
    }
    stubs.sort();
    stubs.dedup();
    Ok(Resolution {
        stubs,
        missing_intrinsics,
        intrinsic_stubs,
    })
}
