//! Symbol analysis over the whole set of libraries, done before
//! wit-component's linker sees them: duplicate and conflicting definitions,
//! the library order that makes every import resolve to a definition, which
//! libraries the linker will keep, and unresolved symbols.
//!
//! The model follows wit-component 0.263's `Linker`: an import resolves to
//! the first library, in the order given to the linker, exporting a symbol
//! of that name and type; a library is kept only if it has component
//! exports, is dl-openable or exports `_start`, or if a kept library lists
//! it in `needed` or imports a function from it.

use crate::abi::{CABI_POST, START};
use crate::dylib::{Dylib, Sig};
use crate::report::Stub;
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

/// Checks that every import of a kept library resolves, and lists the
/// functions the linker will stub (weak ones, and with `stub` all missing
/// functions).
pub fn resolve(libs: &[Dylib], order: &[usize], keep: &[bool], stub: bool) -> Result<Vec<Stub>> {
    let kept = |i: usize| keep[i];
    let mut stubs = Vec::new();
    // library -> problems; `stubbable` says whether a stub would do.
    let mut missing: BTreeMap<usize, Vec<(String, bool)>> = BTreeMap::new();

    for &i in order.iter().filter(|&&i| keep[i]) {
        let lib = &libs[i];
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

    if !missing.is_empty() {
        let mut msg = String::from("unresolved symbols:");
        for (i, items) in &missing {
            let _ = write!(msg, "\n  `{}` needs:", libs[*i].name);
            for (text, _) in items {
                let _ = write!(msg, "\n    {text}");
            }
        }
        let only_functions = missing.values().flatten().all(|(_, stubbable)| *stubbable);
        if only_functions {
            msg.push_str(
                "\n(if these functions are never called, link with stub_missing_functions / --stub-missing-functions to make them trap instead)",
            );
        }
        bail!(msg);
    }
    stubs.sort();
    stubs.dedup();
    Ok(stubs)
}

fn quoted(names: &[&str]) -> String {
    let q: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match q.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}
