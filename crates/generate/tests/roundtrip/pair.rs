//! One world built with both generators and run in lockstep: the round
//! trip of the round-trip suite (tests/roundtrip.rs) and of its fuzz target
//! (tests/fuzz.rs).

use crate::component::{self, Generator};
use crate::driver::{Driver, Trace};
use crate::values::Rng;
use std::time::{Duration, Instant};
use wasmtime::component::Component;
use wit_parser::{Resolve, WorldId};

const GENERATORS: [Generator; 2] = [Generator::Componentize, Generator::WitDylib];

#[derive(Default)]
pub struct Stats {
    pub calls: usize,
    pub handles: usize,
    pub build: Duration,
}

pub enum Outcome {
    Passed(Stats),
    Failed(String),
    /// Both generators' components fail to link the same way: a limitation
    /// of the linker, not of the bindings.
    Unlinkable(String),
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
    let built: Vec<anyhow::Result<Component>> = GENERATORS
        .iter()
        .map(|g| component::build(resolve, world, *g))
        .collect();
    let build = start.elapsed();
    let components = match (&built[0], &built[1]) {
        (Ok(a), Ok(b)) => [a, b],
        (Err(a), Err(b)) if same_link_error(a, b) => {
            return Outcome::Unlinkable(format!("{a:#}"));
        }
        _ => {
            let show = |r: &anyhow::Result<Component>| match r {
                Ok(_) => "ok".to_string(),
                Err(e) => format!("{e:#}"),
            };
            return Outcome::Failed(format!(
                "building: componentize: {}\nwit-dylib: {}",
                show(&built[0]),
                show(&built[1])
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
    let [a, b] = &mut drivers[..] else {
        unreachable!()
    };
    let traces = |a: &mut Driver<'_>, b: &mut Driver<'_>, after: &str| -> Result<(), String> {
        let ta = a.take_trace().map_err(|e| format!("componentize: {e:#}"))?;
        let tb = b.take_trace().map_err(|e| format!("wit-dylib: {e:#}"))?;
        if ta.count != tb.count || ta.hash != tb.hash || ta.lines != tb.lines {
            return Err(format!(
                "the two bindings drive the interpreter differently {after}: {}",
                trace_difference(&ta, &tb)
            ));
        }
        Ok(())
    };
    if let Err(e) = traces(a, b, "while instantiating") {
        return Outcome::Failed(e);
    }
    let mut rng = Rng::new(seed ^ 0x5ca1_ab1e);
    for (e, big) in schedule(&mut rng, a.exports.len()) {
        let what = a.exports[e].describe();
        match (a.round(e, big), b.round(e, big)) {
            (Ok(()), Ok(())) => {}
            (ra, rb) => {
                let show = |r: anyhow::Result<()>| match r {
                    Ok(()) => "passed".to_string(),
                    Err(e) => format!("FAILED: {e:#}"),
                };
                return Outcome::Failed(format!(
                    "componentize {}\nwit-dylib {}",
                    show(ra),
                    show(rb)
                ));
            }
        }
        if let Err(e) = traces(a, b, &format!("in a call of {what}")) {
            return Outcome::Failed(e);
        }
    }
    Outcome::Passed(Stats {
        calls: a.calls,
        handles: a.handles,
        build,
    })
}

/// `calls` calls cycling through the exports in a random order.
pub fn shuffled(calls: usize) -> impl Fn(&mut Rng, usize) -> Vec<(usize, bool)> + Sync {
    move |rng: &mut Rng, n: usize| {
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.index(i + 1));
        }
        (0..calls).map(|i| (order[i % n], false)).collect()
    }
}
