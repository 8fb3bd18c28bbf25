//! One world built with both generators and run in lockstep: the round
//! trip of the round-trip suite (tests/roundtrip.rs) and of its fuzz target
//! (tests/fuzz.rs).

use crate::component::{self, Generator};
use crate::driver::{self, Driver, Trace};
use crate::smith;
use crate::values::Rng;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wasmtime::component::Component;
use wit_parser::{Resolve, WorldId};

const GENERATORS: [Generator; 2] = [Generator::Componentize, Generator::WitDylib];

#[derive(Default)]
pub struct Stats {
    pub calls: usize,
    pub handles: usize,
    pub build: Duration,
    /// Futures and streams written, those of a `list` or `option` payload
    /// and of a future or stream payload (by the host), and those of other
    /// compound payloads (by a peer).
    pub transmits: usize,
    pub compound_transmits: usize,
    pub nested_transmits: usize,
    pub peer_transmits: BTreeMap<&'static str, usize>,
    /// Exports left out (see `Driver::skipped`).
    pub skipped: usize,
    /// Calls made in concurrent rounds, and the most async imports that
    /// were waiting to answer at one time.
    pub concurrent_calls: usize,
    pub most_in_flight: usize,
    /// Async import calls the interpreter cancelled (and made again), and
    /// the reads and writes of its copies it cancelled (as its trace shows
    /// them, so a lower bound: a step's trace keeps its first lines).
    pub cancelled_imports: usize,
    pub cancelled_copies: usize,
    /// wit-dylib could not bind the world (see `run_pair`): our bindings
    /// ran alone, with no trace to compare.
    pub alone: bool,
}

/// Concurrent rounds of an async world, after its sequential calls.
const CONCURRENT_ROUNDS: usize = 3;

pub enum Outcome {
    Passed(Stats),
    Failed(String),
    /// Both generators' components fail to link the same way: a limitation
    /// of the linker, not of the bindings.
    Unlinkable(String),
}

/// Adds the counts of `more` to `into`.
pub fn add_counts(into: &mut BTreeMap<&'static str, usize>, more: &BTreeMap<&'static str, usize>) {
    for (kind, n) in more {
        *into.entry(kind).or_default() += n;
    }
}

/// Counts by kind, as text: `record 3, tuple 1` (`none` if empty).
pub fn show_counts(counts: &BTreeMap<&'static str, usize>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    let shown: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
    shown.join(", ")
}

/// Where two traces first differ.
fn trace_difference(a: &Trace, b: &Trace) -> String {
    let first = a.lines.iter().zip(&b.lines).position(|(x, y)| x != y);
    let at = match first {
        Some(i) => format!(
            "first difference at event {i}:\n  componentize: {}\n  wit-dylib:    {}",
            a.lines[i], b.lines[i]
        ),
        None if a.lines.len() != b.lines.len() => {
            let i = a.lines.len().min(b.lines.len());
            let next = |t: &Trace| t.lines.get(i).cloned().unwrap_or_else(|| "(end)".into());
            format!(
                "first difference at event {i}:\n  componentize: {}\n  wit-dylib:    {}",
                next(a),
                next(b)
            )
        }
        None => format!("the first {} events agree", a.lines.len()),
    };
    let context: Vec<&str> = match first {
        Some(i) => a.lines[i.saturating_sub(6)..i]
            .iter()
            .map(|s| s.as_str())
            .collect(),
        None => Vec::new(),
    };
    format!(
        "componentize: {} events (hash {:016x}), wit-dylib: {} events (hash {:016x}); {at}\n  before it: {}",
        a.count,
        a.hash,
        b.count,
        b.hash,
        context.join(" | ")
    )
}

/// Picks the calls of a world, given its number of exports: (export, big).
pub type Schedule = dyn Fn(&mut Rng, usize) -> Vec<(usize, bool)> + Sync;

/// Whether both builds failed at linking with the same message (byte
/// offsets aside).
fn same_link_error(a: &anyhow::Error, b: &anyhow::Error) -> bool {
    let strip = |e: &anyhow::Error| {
        let s = format!("{e:#}");
        match s.find(" (at offset") {
            Some(i) => s[..i].to_string(),
            None => s,
        }
    };
    let (a, b) = (strip(a), strip(b));
    a == b && a.starts_with("linking")
}

/// Builds `world` with both generators and runs the calls `schedule` picks
/// (given the number of exports) on both, in lockstep.
pub fn run_pair(resolve: &Resolve, world: WorldId, seed: u64, schedule: &Schedule) -> Outcome {
    let start = Instant::now();
    let interpreter = if driver::is_async_world(resolve, world) {
        component::ASYNC_BUILD
    } else {
        component::SYNC_BUILD
    };
    let ours = component::build(resolve, world, Generator::Componentize, interpreter);
    // wit-dylib panics on a future or stream type no function holds; then
    // our bindings run alone.
    let theirs = std::panic::catch_unwind(|| {
        component::build(resolve, world, Generator::WitDylib, interpreter)
    });
    let theirs = match theirs {
        Ok(built) => Some(built),
        Err(panic)
            if smith::panic_message(panic.as_ref()).contains(smith::UNUSED_TRANSMIT_PANIC) =>
        {
            None
        }
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let build = start.elapsed();
    let components = match (&ours, &theirs) {
        (Ok(a), Some(Ok(b))) => vec![a, b],
        (Ok(a), None) => vec![a],
        (Err(a), Some(Err(b))) if same_link_error(a, b) => {
            return Outcome::Unlinkable(format!("{a:#}"));
        }
        _ => {
            let show = |r: &anyhow::Result<Component>| match r {
                Ok(_) => "ok".to_string(),
                Err(e) => format!("{e:#}"),
            };
            let theirs = theirs.as_ref().map_or("(panicked)".into(), show);
            return Outcome::Failed(format!(
                "building: componentize: {}\nwit-dylib: {theirs}",
                show(&ours)
            ));
        }
    };
    let mut drivers = Vec::new();
    for (g, c) in GENERATORS.iter().zip(components) {
        match Driver::new(resolve, world, c, seed) {
            Ok(d) => drivers.push(d),
            Err(e) => return Outcome::Failed(format!("instantiating ({}): {e:#}", g.name())),
        }
    }
    let mut cancelled_copies = 0;
    if let Err(e) = lockstep(
        &mut drivers,
        "while instantiating",
        &mut cancelled_copies,
        |_| Ok(()),
    ) {
        return Outcome::Failed(e);
    }
    let mut rng = Rng::new(seed ^ 0x5ca1_ab1e);
    for (e, big) in schedule(&mut rng, drivers[0].exports.len()) {
        let what = format!("in a call of {}", drivers[0].exports[e].describe());
        if let Err(e) = lockstep(&mut drivers, &what, &mut cancelled_copies, |d| {
            d.round(e, big)
        }) {
            return Outcome::Failed(e);
        }
    }
    let a = &drivers[0];
    let concurrent: Vec<usize> = (0..a.exports.len())
        .filter(|e| a.is_concurrent(*e))
        .collect();
    let sequential_calls = a.calls;
    if !concurrent.is_empty() {
        for round in 0..CONCURRENT_ROUNDS {
            let what = format!("in concurrent round {round}");
            if let Err(e) = lockstep(&mut drivers, &what, &mut cancelled_copies, |d| {
                d.concurrent_round(&concurrent)
            }) {
                return Outcome::Failed(e);
            }
        }
    }
    let a = &drivers[0];
    Outcome::Passed(Stats {
        calls: a.calls,
        handles: a.handles,
        build,
        transmits: a.transmits,
        compound_transmits: a.compound_transmits,
        nested_transmits: a.nested_transmits,
        peer_transmits: a.peer_transmits.clone(),
        skipped: a.skipped,
        concurrent_calls: a.calls - sequential_calls,
        most_in_flight: a.most_in_flight(),
        cancelled_imports: a.cancelled_imports(),
        cancelled_copies,
        alone: drivers.len() == 1,
    })
}

/// Runs `step` on every driver (ours, then wit-dylib's if there is one):
/// each must pass, and then the two interpreters' traces must agree.
fn lockstep(
    drivers: &mut [Driver<'_>],
    what: &str,
    cancelled_copies: &mut usize,
    mut step: impl FnMut(&mut Driver<'_>) -> anyhow::Result<()>,
) -> Result<(), String> {
    let outcomes: Vec<anyhow::Result<()>> = drivers.iter_mut().map(&mut step).collect();
    if outcomes.iter().any(|r| r.is_err()) {
        let shown: Vec<String> = GENERATORS
            .iter()
            .zip(outcomes)
            .map(|(g, r)| match r {
                Ok(()) => format!("{} passed", g.name()),
                Err(e) => format!("{} FAILED {what}: {e:#}", g.name()),
            })
            .collect();
        return Err(shown.join("\n"));
    }
    let mut traces = Vec::new();
    for (g, d) in GENERATORS.iter().zip(drivers.iter_mut()) {
        traces.push(
            d.take_traces()
                .map_err(|e| format!("{}: {e:#}", g.name()))?,
        );
    }
    // The copies of every instance, the peers' included.
    *cancelled_copies += traces[0]
        .iter()
        .flat_map(|(_, t)| &t.lines)
        .filter(|l| l.starts_with("copy ") && l.ends_with("(cancelled)"))
        .count();
    let [ours, theirs] = &traces[..] else {
        return Ok(());
    };
    // The peers run the bindings under test too: their traces agree as well.
    for ((instance, ta), (_, tb)) in ours.iter().zip(theirs) {
        if ta.count != tb.count || ta.hash != tb.hash || ta.lines != tb.lines {
            return Err(format!(
                "the two bindings drive {instance} differently {what}: {}",
                trace_difference(ta, tb)
            ));
        }
    }
    Ok(())
}

/// `calls` calls cycling through the exports in a random order.
pub fn shuffled(calls: usize) -> impl Fn(&mut Rng, usize) -> Vec<(usize, bool)> + Sync {
    move |rng: &mut Rng, n: usize| {
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.index(i + 1));
        }
        // An async world may have every export left out (see
        // `Driver::skipped`).
        if n == 0 {
            return Vec::new();
        }
        (0..calls).map(|i| (order[i % n], false)).collect()
    }
}
