//! The host side of a round trip.
//!
//! The world imports and exports the same interfaces; the test interpreter
//! answers each export by calling the matching import (see the comment at
//! the top of fixtures/libs/libtestinterp/testinterp.c). So for every checked
//! call the host:
//!   1. makes random arguments for the export and a random result for the
//!      import, and records them as the pending call;
//!   2. calls the export; the import (a dynamic host function) compares what
//!      it receives with the arguments sent and returns the recorded result;
//!   3. compares the export's result with that result;
//!   4. drops every handle it still holds, asks the interpreter for its live
//!      bytes (must be 0) and checks that the guest owns no host resource.
//!
//! Async worlds (an async function, or a future or stream anywhere) run
//! with the async test interpreter (libasyncinterp) on wasmtime's
//! component-model-async: exports are called with `call_async`, async
//! imports answer after a few executor turns, so the guest sees them
//! return later, and [`Driver::concurrent_round`] has a call of every
//! handle-free export in flight at once, their imports answering out of
//! order. The interpreter cancels some async import calls and makes them
//! again (CANCELS in testinterp.c): the host's call is dropped unanswered,
//! counted, and the pending call is answered by the second one.
//!
//! Futures and streams. The host writes them (`roundtrip/transmit.rs`):
//! a stream of 0 to 24 random items, a future of one. Where one comes out
//! on the other side (an import's argument, an export's result), the host
//! reads it after the call, in chunks of a size that varies from stream to
//! stream, and its items must be those written; every third one it drops
//! unread instead, and what the guest did with it (an async export copies
//! its future or stream argument into a new one) must end and leave nothing
//! behind. One the host wrote that never came out is an error, unless what
//! held it was dropped unread. Futures and streams of futures or streams
//! are read level by level: the items that come out are read in turn.
//! After each call, the runtime's async state (future and stream ends,
//! waitable sets, subtasks, tasks) must be back to what it was after
//! instantiation: zero live handles.
//!
//! wasmtime 48's host makes and reads futures and streams only of payload
//! types fixed at compile time: none, scalars, `string`, a `list` or
//! `option` of one of those, a future or a stream. Those of the other
//! payloads without resources (records, variants, tuples, nested lists...,
//! also holding futures or streams if they hold no string or list besides:
//! see `mirror::is_peer_payload`) go through peers: two more
//! instances of the same component, one that writes them (`fill-*` of
//! [`mirror::PEER_INTERFACE`]: the host gives it the items as a list) and
//! one that reads them (`drain-*`: it gives the items back as a list); two,
//! because a component may not copy such a payload to itself, and a future
//! or stream may come back out where the host sent it. Their bindings are
//! those under test, so the items are lowered and lifted by them on both
//! sides. Exports are left out ([`Driver::skipped`]) when their types hold
//! an `error-context`, a future or stream of a resource or of another
//! payload no peer carries, or, in an async export, more than one future
//! or stream argument (the test interpreter copies one).
//!
//! Values are compared exactly: floats by their bits (wasmtime 48 does not
//! canonicalize NaNs when lifting or lowering, so payloads must survive),
//! flags as sets of names.
//!
//! Resources. Imported resources are host resources (`host_dynamic`, keyed
//! by the WIT type id), each instance a fresh `rep`. Exported ones are made
//! by calling the resource's exported constructor: the interpreter forwards
//! that to the imported constructor, whose (host) result it wraps in an
//! instance of the exported resource, so every guest handle stands for one
//! host rep. Handles sent are matched against the reps received.

use crate::mirror::{self, dealias};
use crate::smith;
use crate::transmit;
use crate::values::Rng;
use anyhow::{Context, Result, anyhow, bail, ensure};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use wasmtime::component::{
    Component, Func, Instance, LinkerInstance, ResourceAny, ResourceDynamic, ResourceTable,
    ResourceType, Val, types::ComponentFunc,
};
use wasmtime::{AsContextMut, Store, StoreContextMut};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wit_parser::{
    Function, FunctionKind, Handle, InterfaceId, Resolve, Type, TypeDefKind, TypeId, TypeOwner,
    WorldId, WorldItem,
};

pub const DEBUG_INTERFACE: &str = "componentize:test/debug";

/// The store's host: WASI plus [`State`].
type HostState = componentize_testkit::Host<State>;

/// What the host tracks across calls.
pub struct State {
    /// The import calls expected: one for a checked call, one per export
    /// in flight for a concurrent round.
    pending: Vec<Pending>,
    /// Executor turns the next async import waits before answering.
    turns: u64,
    /// Futures and streams the host wrote that have not come out yet.
    sent: Vec<Sent>,
    /// Items of those the guest never took (see `transmit::Give`).
    unsent: transmit::Unsent,
    /// Those that came out, to read after the call.
    to_read: Vec<ToRead>,
    /// Handles the host sent or holds, with the rep of the host resource
    /// each stands for.
    known: Vec<(ResourceAny, u32)>,
    /// Owned handles the host holds; dropped after each checked call.
    held: Vec<ResourceAny>,
    /// Reps of host resources currently owned by the guest.
    outstanding: BTreeSet<u32>,
    next_rep: u32,
    /// Problems seen outside a pending call (destructors).
    errors: Vec<String>,
}

/// A future or stream the host wrote: its value (the readable end), its
/// payload type and its items.
struct Sent {
    value: Val,
    payload: Option<Type>,
    items: Vec<Val>,
}

/// A future or stream that came out where `path` says, and the items it
/// must give.
struct ToRead {
    from: transmit::Readable,
    payload: Option<Type>,
    items: Vec<Val>,
    path: String,
}

/// The import call expected while an export runs.
struct Pending {
    interface: Option<String>,
    name: String,
    args: Vec<Val>,
    result: Option<Val>,
    called: bool,
    errors: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// Export arguments, as received by the import.
    Args,
    /// The import's result, as returned by the export.
    Result,
}

/// wasmtime's error as an `anyhow` one (for `.context`).
fn wt<T>(r: wasmtime::Result<T>) -> Result<T> {
    r.map_err(anyhow::Error::from)
}

fn describe(interface: &Option<String>, name: &str) -> String {
    match interface {
        Some(i) => format!("{i}#{name}"),
        None => name.to_string(),
    }
}

fn short(v: &impl std::fmt::Debug) -> String {
    let mut s = format!("{v:?}");
    if s.len() > 400 {
        let mut cut = 400;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// Compares a value sent with the value that came out on the other side.
fn compare(
    store: &mut StoreContextMut<'_, HostState>,
    sent: &Val,
    got: &Val,
    dir: Dir,
    path: &str,
    errors: &mut Vec<String>,
) {
    let mut differ = || errors.push(format!("{path}: sent {}, got {}", short(sent), short(got)));
    match (sent, got) {
        (Val::Float32(a), Val::Float32(b)) if a.to_bits() != b.to_bits() => errors.push(format!(
            "{path}: sent f32 0x{:08x}, got f32 0x{:08x}",
            a.to_bits(),
            b.to_bits()
        )),
        (Val::Float64(a), Val::Float64(b)) if a.to_bits() != b.to_bits() => errors.push(format!(
            "{path}: sent f64 0x{:016x}, got f64 0x{:016x}",
            a.to_bits(),
            b.to_bits()
        )),
        (Val::Bool(a), Val::Bool(b)) if a == b => {}
        (Val::U8(a), Val::U8(b)) if a == b => {}
        (Val::S8(a), Val::S8(b)) if a == b => {}
        (Val::U16(a), Val::U16(b)) if a == b => {}
        (Val::S16(a), Val::S16(b)) if a == b => {}
        (Val::U32(a), Val::U32(b)) if a == b => {}
        (Val::S32(a), Val::S32(b)) if a == b => {}
        (Val::U64(a), Val::U64(b)) if a == b => {}
        (Val::S64(a), Val::S64(b)) if a == b => {}
        (Val::Float32(_), Val::Float32(_)) | (Val::Float64(_), Val::Float64(_)) => {}
        (Val::Char(a), Val::Char(b)) if a == b => {}
        (Val::String(a), Val::String(b)) if a == b => {}
        (Val::Enum(a), Val::Enum(b)) if a == b => {}
        (Val::Flags(a), Val::Flags(b)) => {
            let a: BTreeSet<&String> = a.iter().collect();
            let b: BTreeSet<&String> = b.iter().collect();
            if a != b {
                differ();
            }
        }
        (Val::List(a), Val::List(b)) | (Val::Tuple(a), Val::Tuple(b)) => {
            if a.len() != b.len() {
                return differ();
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                compare(store, x, y, dir, &format!("{path}[{i}]"), errors);
            }
        }
        (Val::Map(a), Val::Map(b)) => {
            if a.len() != b.len() {
                return differ();
            }
            for (i, ((k1, v1), (k2, v2))) in a.iter().zip(b).enumerate() {
                compare(store, k1, k2, dir, &format!("{path}.key[{i}]"), errors);
                compare(store, v1, v2, dir, &format!("{path}.value[{i}]"), errors);
            }
        }
        (Val::Record(a), Val::Record(b)) => {
            if a.len() != b.len() || a.iter().zip(b).any(|((x, _), (y, _))| x != y) {
                return differ();
            }
            for ((name, x), (_, y)) in a.iter().zip(b) {
                compare(store, x, y, dir, &format!("{path}.{name}"), errors);
            }
        }
        (Val::Variant(n, x), Val::Variant(m, y)) => {
            if n != m {
                return differ();
            }
            compare_payload(store, x, y, dir, &format!("{path}<{n}>"), errors);
        }
        (Val::Option(x), Val::Option(y)) => compare_payload(store, x, y, dir, path, errors),
        (Val::Result(Ok(x)), Val::Result(Ok(y))) => {
            compare_payload(store, x, y, dir, &format!("{path}<ok>"), errors)
        }
        (Val::Result(Err(x)), Val::Result(Err(y))) => {
            compare_payload(store, x, y, dir, &format!("{path}<err>"), errors)
        }
        (Val::Resource(s), Val::Resource(g)) => compare_resource(store, *s, *g, dir, path, errors),
        (Val::Stream(_), Val::Stream(g)) => came_out(
            store,
            sent,
            transmit::Readable::Stream(g.clone()),
            path,
            errors,
        ),
        (Val::Future(_), Val::Future(g)) => came_out(
            store,
            sent,
            transmit::Readable::Future(g.clone()),
            path,
            errors,
        ),
        _ => differ(),
    }
}

fn compare_payload(
    store: &mut StoreContextMut<'_, HostState>,
    sent: &Option<Box<Val>>,
    got: &Option<Box<Val>>,
    dir: Dir,
    path: &str,
    errors: &mut Vec<String>,
) {
    match (sent, got) {
        (None, None) => {}
        (Some(x), Some(y)) => compare(store, x, y, dir, path, errors),
        _ => errors.push(format!("{path}: sent {}, got {}", short(sent), short(got))),
    }
}

/// The future or stream the host wrote as `sent` came out as `got`: it is
/// read after the call.
fn came_out(
    store: &mut StoreContextMut<'_, HostState>,
    sent: &Val,
    got: transmit::Readable,
    path: &str,
    errors: &mut Vec<String>,
) {
    let st = &mut store.data_mut().data;
    let Some(i) = st.sent.iter().position(|s| s.value == *sent) else {
        return errors.push(format!(
            "{path}: the host sent a future or stream it does not know"
        ));
    };
    let Sent { payload, items, .. } = st.sent.remove(i);
    st.to_read.push(ToRead {
        from: got,
        payload,
        items,
        path: path.to_string(),
    });
}

/// Forgets the futures and streams the host wrote that are in `items`, and
/// those in their items: they will never come out (what held them was
/// dropped unread).
fn excuse(sent: &mut Vec<Sent>, items: &[Val]) {
    for item in items {
        match item {
            Val::Stream(_) | Val::Future(_) => {
                if let Some(i) = sent.iter().position(|s| s.value == *item) {
                    let gone = sent.remove(i);
                    excuse(sent, &gone.items);
                }
            }
            Val::List(v) | Val::Tuple(v) => excuse(sent, v),
            Val::Record(fields) => {
                for (_, v) in fields {
                    excuse(sent, std::slice::from_ref(v));
                }
            }
            Val::Variant(_, Some(v))
            | Val::Option(Some(v))
            | Val::Result(Ok(Some(v)))
            | Val::Result(Err(Some(v))) => excuse(sent, std::slice::from_ref(&**v)),
            _ => {}
        }
    }
}

/// A handle sent stands for a host rep; what came out must carry it.
fn compare_resource(
    store: &mut StoreContextMut<'_, HostState>,
    sent: ResourceAny,
    got: ResourceAny,
    dir: Dir,
    path: &str,
    errors: &mut Vec<String>,
) {
    let Some(pos) = store.data().data.known.iter().position(|(r, _)| *r == sent) else {
        return errors.push(format!("{path}: the host sent a handle it does not know"));
    };
    let rep = store.data().data.known[pos].1;
    // Handles passed as `own` are gone from the host's side now; a borrowed
    // one stays known (and held) until the end of the checked call.
    if dir == Dir::Result || got.owned() {
        let st = &mut store.data_mut().data;
        st.known.remove(pos);
        if let Some(i) = st.held.iter().position(|r| *r == sent) {
            st.held.remove(i);
        }
    }
    match ResourceDynamic::try_from_resource_any(got, &mut *store) {
        Ok(host) => {
            if host.rep() != rep {
                errors.push(format!(
                    "{path}: handle for host resource #{rep} came out as #{}",
                    host.rep()
                ));
            }
            if host.owned() && !store.data_mut().data.outstanding.remove(&host.rep()) {
                errors.push(format!(
                    "{path}: host resource #{} came back but the guest did not own it",
                    host.rep()
                ));
            }
        }
        // A handle of a resource the guest exports: it wraps host `rep`.
        Err(_) if dir == Dir::Result && got.owned() => {
            let st = &mut store.data_mut().data;
            st.known.push((got, rep));
            st.held.push(got);
        }
        Err(_) => errors.push(format!(
            "{path}: the import received a handle of a guest resource"
        )),
    }
}

/// Checks a call of import `name` of `interface` against the pending call
/// expecting it and fills in that call's result.
fn answer_import(
    store: &mut StoreContextMut<'_, HostState>,
    interface: &Option<String>,
    name: &str,
    params: &[Val],
    results: &mut [Val],
) -> wasmtime::Result<()> {
    let what = describe(interface, name);
    let st = &mut store.data_mut().data;
    let Some(i) = st
        .pending
        .iter()
        .position(|p| !p.called && p.interface == *interface && p.name == name)
    else {
        let expected: Vec<String> = st
            .pending
            .iter()
            .map(|p| {
                let called = if p.called { " (already called)" } else { "" };
                format!("{}{called}", describe(&p.interface, &p.name))
            })
            .collect();
        let msg = if expected.is_empty() {
            format!("import {what} called outside a checked call")
        } else {
            format!(
                "import {what} called while expecting {}",
                expected.join(", ")
            )
        };
        if let Some(p) = st.pending.first_mut() {
            p.errors.push(msg.clone());
        }
        wasmtime::bail!("{msg}");
    };
    // Out of the list while `compare` has the store; back in its place after.
    let mut p = st.pending.remove(i);
    p.called = true;
    if params.len() != p.args.len() {
        p.errors.push(format!(
            "import {what}: {} arguments, sent {}",
            params.len(),
            p.args.len()
        ));
    }
    let mut errors = Vec::new();
    for (i, (sent, got)) in p.args.iter().zip(params).enumerate() {
        compare(
            store,
            sent,
            got,
            Dir::Args,
            &format!("argument {i}"),
            &mut errors,
        );
    }
    p.errors.extend(errors);
    if let (Some(r), Some(slot)) = (&p.result, results.first_mut()) {
        *slot = r.clone();
    }
    store.data_mut().data.pending.insert(i, p);
    Ok(())
}

/// The host function standing for sync import `name` of `interface`.
fn import_func(
    interface: Option<String>,
    name: String,
) -> impl Fn(StoreContextMut<'_, HostState>, ComponentFunc, &[Val], &mut [Val]) -> wasmtime::Result<()>
+ Send
+ Sync
+ 'static {
    move |mut store, _ty, params, results| {
        answer_import(&mut store, &interface, &name, params, results)
    }
}

/// The async imports' calls waiting to answer: shared with the host
/// functions, which count them where the store cannot be reached (a call
/// dropped because the guest cancelled it).
#[derive(Default)]
struct Waiting {
    now: AtomicUsize,
    /// The most at one time.
    most: AtomicUsize,
    /// Calls dropped before they answered.
    cancelled: AtomicUsize,
}

/// One call of an async import waiting to answer, counted in [`Waiting`].
struct Wait {
    waiting: Arc<Waiting>,
    answered: bool,
}

impl Wait {
    fn start(waiting: &Arc<Waiting>) -> Wait {
        let now = waiting.now.fetch_add(1, Ordering::Relaxed) + 1;
        waiting.most.fetch_max(now, Ordering::Relaxed);
        Wait {
            waiting: waiting.clone(),
            answered: false,
        }
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        self.waiting.now.fetch_sub(1, Ordering::Relaxed);
        if !self.answered {
            self.waiting.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Adds async import `name` of `interface` to `linker`: it answers like a
/// sync one, after 0 to 4 executor turns (0 lets the guest see it return at
/// once), so that concurrent calls' imports return out of order. A call the
/// guest cancels while it waits is dropped unanswered: the pending call it
/// stood for is still expected (the interpreter makes it again).
fn add_async_import(
    linker: &mut LinkerInstance<'_, HostState>,
    interface: Option<String>,
    name: String,
    waiting: &Arc<Waiting>,
) -> wasmtime::Result<()> {
    let key = name.clone();
    let waiting = waiting.clone();
    linker.func_new_concurrent(&key, move |a, _ty, params, results| {
        let (interface, name, waiting) = (interface.clone(), name.clone(), waiting.clone());
        Box::pin(async move {
            let mut wait = Wait::start(&waiting);
            let turns = a.with(|mut access| {
                let st = &mut access.data_mut().data;
                st.turns += 1;
                (st.turns.wrapping_mul(0x9e37_79b9) >> 7) % 5
            });
            for _ in 0..turns {
                tokio::task::yield_now().await;
            }
            wait.answered = true;
            a.with(|mut access| {
                answer_import(
                    &mut access.as_context_mut(),
                    &interface,
                    &name,
                    params,
                    results,
                )
            })
        })
    })
}

/// What the interpreter saw: the number of events, a hash of them all and
/// the first ones as text.
#[derive(Debug, PartialEq, Eq)]
pub struct Trace {
    pub count: u64,
    pub hash: u64,
    pub lines: Vec<String>,
}

/// An export of the world and how to call it.
pub struct Export {
    /// World key of the interface, `None` for world-level functions.
    pub interface: Option<String>,
    pub interface_id: Option<InterfaceId>,
    pub func: Function,
    /// Name of the import that answers it (`x-import` for world-level `x`).
    pub import_name: String,
    handle: Func,
}

impl Export {
    pub fn describe(&self) -> String {
        describe(&self.interface, &self.func.name)
    }
}

/// The fill and drain of a peer payload (see the module comment), for
/// futures or for streams of it: `fill` on the writing peer, `drain` on the
/// reading one.
struct Peer {
    key: String,
    future: bool,
    fill: Func,
    drain: Func,
}

/// The peer that carries futures (or streams) of `payload`, if there is one.
fn peer_of<'p>(
    peers: &'p [Peer],
    resolve: &Resolve,
    payload: Option<Type>,
    future: bool,
) -> Option<&'p Peer> {
    let p = payload.filter(|p| mirror::is_peer_payload(resolve, *p))?;
    let key = mirror::payload_key(resolve, p);
    peers.iter().find(|x| x.future == future && x.key == key)
}

/// An instance's `componentize:test/debug` functions.
#[derive(Clone, Copy)]
struct DebugExports {
    /// Which instance: the one under test or a peer.
    name: &'static str,
    live_bytes: Func,
    trace: Func,
}

impl DebugExports {
    fn of(
        store: &mut Store<HostState>,
        instance: &Instance,
        name: &'static str,
    ) -> Result<DebugExports> {
        Ok(DebugExports {
            name,
            live_bytes: componentize_testkit::export_func(
                store,
                instance,
                Some(DEBUG_INTERFACE),
                "live-bytes",
            )?,
            trace: componentize_testkit::export_func(
                store,
                instance,
                Some(DEBUG_INTERFACE),
                "trace",
            )?,
        })
    }
}

/// The writing and reading peers' fills and drains, and their debug
/// functions.
fn peers(
    resolve: &Resolve,
    interface: InterfaceId,
    store: &mut Store<HostState>,
    writer: &Instance,
    reader: &Instance,
) -> Result<(Vec<Peer>, [DebugExports; 2])> {
    let name = mirror::PEER_INTERFACE;
    let mut peers = Vec::new();
    for f in resolve.interfaces[interface].functions.values() {
        let Some(what) = f.name.strip_prefix("fill-") else {
            continue;
        };
        let transmit = match f.result {
            Some(Type::Id(id)) => &resolve.types[dealias(resolve, id)].kind,
            _ => bail!("{name}#{} returns no future or stream", f.name),
        };
        let (future, payload) = match transmit {
            TypeDefKind::Future(Some(p)) => (true, *p),
            TypeDefKind::Stream(Some(p)) => (false, *p),
            _ => bail!("{name}#{} returns no future or stream", f.name),
        };
        peers.push(Peer {
            key: mirror::payload_key(resolve, payload),
            future,
            fill: componentize_testkit::export_func(store, writer, Some(name), &f.name)?,
            drain: componentize_testkit::export_func(
                store,
                reader,
                Some(name),
                &format!("drain-{what}"),
            )?,
        });
    }
    let debug = [
        DebugExports::of(store, writer, "the writing peer")?,
        DebugExports::of(store, reader, "the reading peer")?,
    ];
    Ok((peers, debug))
}

/// Reads `from` to its end with the reading peer's `drain`: its items.
async fn drain(
    a: &wasmtime::component::Accessor<HostState>,
    drain: Func,
    from: transmit::Readable,
) -> Result<Vec<Val>> {
    let arg = match from {
        transmit::Readable::Stream(s) => Val::Stream(s),
        transmit::Readable::Future(f) => Val::Future(f),
    };
    let mut out = [Val::Bool(false)];
    wt(drain.call_concurrent(a, &[arg], &mut out).await).context("draining on the reading peer")?;
    match out {
        [Val::List(items)] => Ok(items),
        [other] => bail!("the drain returned {}", short(&other)),
    }
}

pub struct Driver<'r> {
    resolve: &'r Resolve,
    exported: HashSet<InterfaceId>,
    store: Store<HostState>,
    pub exports: Vec<Export>,
    /// The debug functions of the instance under test, then of the peers.
    debug: Vec<DebugExports>,
    pub rng: Rng,
    /// Lists of scalars and strings get 10,000 elements, strings up to 3,000
    /// characters.
    big: bool,
    /// Elements left to generate in this call (keeps nesting bounded).
    budget: usize,
    constructing: u32,
    /// Checked calls made (constructor calls included).
    pub calls: usize,
    /// Handles made for arguments and results.
    pub handles: usize,
    /// Futures and streams the host wrote.
    pub transmits: usize,
    /// Futures and streams that came out (read, or dropped unread).
    came_out: usize,
    /// Of those written, the ones of a `list` or `option` payload, and of a
    /// future or stream payload.
    pub compound_transmits: usize,
    pub nested_transmits: usize,
    /// Futures and streams the writing peer wrote (of other compound
    /// payloads), by the kind of their payload.
    pub peer_transmits: BTreeMap<&'static str, usize>,
    peers: Vec<Peer>,
    /// Exports left out: their types carry a future, a stream or an
    /// `error-context` (see the module comment).
    pub skipped: usize,
    /// The executor of an async world's calls; `None` for a sync world,
    /// whose calls are plain `Func::call`s. (tokio's, whose `yield_now`
    /// lets every other ready task run first: the calls of a concurrent
    /// round all start before an import answers.)
    runtime: Option<tokio::runtime::Runtime>,
    waiting: Arc<Waiting>,
    /// Entries in wasmtime's async state (future and stream ends, waitable
    /// sets, subtasks, tasks) once the instances are made, in an async
    /// world: after each call there must be as many.
    async_baseline: Option<usize>,
    /// What the interpreter wrote to stderr (why it died).
    stderr: MemoryOutputPipe,
}

fn owner(resolve: &Resolve, id: TypeId) -> Option<InterfaceId> {
    match resolve.types[id].owner {
        TypeOwner::Interface(i) => Some(i),
        _ => None,
    }
}

/// Whether the world needs the async test interpreter and component-model
/// async: it has an async function, or a future or stream type.
pub fn is_async_world(resolve: &Resolve, world: WorldId) -> bool {
    let w = &resolve.worlds[world];
    let functions = w
        .imports
        .values()
        .chain(w.exports.values())
        .flat_map(|item| match item {
            WorldItem::Interface { id, .. } => resolve.interfaces[*id].functions.values().collect(),
            WorldItem::Function(f) => vec![f],
            WorldItem::Type { .. } => Vec::new(),
        });
    functions
        .into_iter()
        .any(|f| f.kind.is_async() || types_of(f).any(|t| carries_transmit(resolve, t)))
}

/// Whether a value of `ty` holds a future, a stream or an `error-context`.
fn carries_transmit(resolve: &Resolve, ty: &Type) -> bool {
    smith::parts(resolve, ty).iter().any(|t| match t {
        Type::ErrorContext => true,
        Type::Id(id) => matches!(
            resolve.types[*id].kind,
            TypeDefKind::Future(_) | TypeDefKind::Stream(_)
        ),
        _ => false,
    })
}

/// Whether the harness can call `f` (see the module comment), with `peers`.
fn is_drivable(resolve: &Resolve, f: &Function, peers: &[Peer]) -> bool {
    // Of a future or stream type: whether it is a future, and its payload.
    let transmit = |t: &Type| match t {
        Type::Id(id) => match resolve.types[dealias(resolve, *id)].kind {
            TypeDefKind::Future(p) => Some((true, p)),
            TypeDefKind::Stream(p) => Some((false, p)),
            _ => None,
        },
        _ => None,
    };
    let carried = types_of(f).flat_map(|t| smith::parts(resolve, t)).all(|t| {
        t != Type::ErrorContext
            && transmit(&t).is_none_or(|(future, p)| {
                transmit::is_host_payload(resolve, p)
                    || peer_of(peers, resolve, p, future).is_some()
            })
    });
    if !carried {
        return false;
    }
    if !f.kind.is_async() {
        return true;
    }
    // The test interpreter copies an async export's one future or stream
    // argument (COPIES in testinterp.c).
    f.params
        .iter()
        .filter(|p| transmit(&p.ty).is_some())
        .count()
        <= 1
}

fn types_of(f: &Function) -> impl Iterator<Item = &Type> {
    f.params.iter().map(|p| &p.ty).chain(&f.result)
}

/// Whether `ty` is a scalar or a string (gets long lists in big mode).
fn is_small(resolve: &Resolve, ty: &Type) -> bool {
    match ty {
        Type::Id(id) => match &resolve.types[*id].kind {
            TypeDefKind::Type(t) => is_small(resolve, t),
            _ => false,
        },
        _ => true,
    }
}

impl<'r> Driver<'r> {
    /// Instantiates `component` (built from `world`) with host functions for
    /// every import.
    pub fn new(
        resolve: &'r Resolve,
        world: WorldId,
        component: &Component,
        seed: u64,
    ) -> Result<Self> {
        let engine = component.engine();
        let w = &resolve.worlds[world];
        let concurrent = is_async_world(resolve, world);
        // An async world's calls run on tokio, where WASI's sync host (the
        // interpreter's stderr) cannot block: it gets the async one.
        let mut linker = if concurrent {
            componentize_testkit::async_linker::<State>()
        } else {
            componentize_testkit::linker::<State>()
        };
        let waiting = Arc::new(Waiting::default());
        let stderr = MemoryOutputPipe::new(1 << 16);
        let runtime = concurrent.then(|| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a tokio runtime")
        });
        for (key, item) in &w.imports {
            match item {
                WorldItem::Interface { id, .. } => {
                    let name = resolve.name_world_key(key);
                    let iface = &resolve.interfaces[*id];
                    let mut inst = linker.instance(&name)?;
                    for (tname, ty) in &iface.types {
                        if let TypeDefKind::Resource = resolve.types[*ty].kind {
                            inst.resource(
                                tname,
                                ResourceType::host_dynamic(ty.index() as u32),
                                |mut store, rep| {
                                    let st = &mut store.data_mut().data;
                                    if !st.outstanding.remove(&rep) {
                                        st.errors.push(format!(
                                            "destructor of host resource #{rep}, which the guest did not own"
                                        ));
                                    }
                                    Ok(())
                                },
                            )?;
                        }
                    }
                    for f in iface.functions.values() {
                        if f.kind.is_async() {
                            add_async_import(
                                &mut inst,
                                Some(name.clone()),
                                f.name.clone(),
                                &waiting,
                            )?;
                        } else {
                            inst.func_new(
                                &f.name,
                                import_func(Some(name.clone()), f.name.clone()),
                            )?;
                        }
                    }
                }
                WorldItem::Function(f) if f.kind.is_async() => {
                    add_async_import(&mut linker.root(), None, f.name.clone(), &waiting)?;
                }
                WorldItem::Function(f) => {
                    linker
                        .root()
                        .func_new(&f.name, import_func(None, f.name.clone()))?;
                }
                WorldItem::Type { id, .. } => {
                    if let TypeDefKind::Resource = resolve.types[*id].kind {
                        bail!("world-level resources are not supported by the harness");
                    }
                }
            }
        }

        let mut store = Store::new(
            engine,
            HostState {
                // The interpreter's own diagnostics, for the failure they
                // explain.
                wasi: WasiCtx::builder().stderr(stderr.clone()).build(),
                table: ResourceTable::new(),
                data: State {
                    pending: Vec::new(),
                    sent: Vec::new(),
                    unsent: Default::default(),
                    to_read: Vec::new(),
                    turns: 0,
                    known: Vec::new(),
                    held: Vec::new(),
                    outstanding: BTreeSet::new(),
                    next_rep: 0,
                    errors: Vec::new(),
                },
            },
        );
        let instantiate = |store: &mut Store<HostState>| {
            let instance = match &runtime {
                Some(rt) => rt.block_on(linker.instantiate_async(&mut *store, component)),
                None => linker.instantiate(&mut *store, component),
            };
            wt(instance).context("instantiating")
        };
        let instance = instantiate(&mut store)?;
        let peer_interface = w.exports.iter().find_map(|(key, item)| match item {
            WorldItem::Interface { id, .. }
                if resolve.name_world_key(key) == mirror::PEER_INTERFACE =>
            {
                Some(*id)
            }
            _ => None,
        });
        let mut debug = vec![DebugExports::of(
            &mut store,
            &instance,
            "the interpreter under test",
        )?];
        let mut peers = Vec::new();
        if let Some(id) = peer_interface {
            let writer = instantiate(&mut store).context("the writing peer")?;
            let reader = instantiate(&mut store).context("the reading peer")?;
            let (carried, of_peers) = self::peers(resolve, id, &mut store, &writer, &reader)?;
            peers = carried;
            debug.extend(of_peers);
        }

        let async_baseline = concurrent.then(|| store.concurrent_state_table_size());
        let mut exports = Vec::new();
        let mut exported = HashSet::new();
        let mut skipped = 0;
        for (key, item) in &w.exports {
            match item {
                WorldItem::Interface { id, .. } => {
                    let name = resolve.name_world_key(key);
                    let lookup = |store: &mut Store<HostState>, f: &str| {
                        componentize_testkit::export_func(store, &instance, Some(&name), f)
                    };
                    if name == DEBUG_INTERFACE || name == mirror::PEER_INTERFACE {
                        continue;
                    }
                    exported.insert(*id);
                    for f in resolve.interfaces[*id].functions.values() {
                        if !is_drivable(resolve, f, &peers) {
                            skipped += 1;
                            continue;
                        }
                        exports.push(Export {
                            interface: Some(name.clone()),
                            interface_id: Some(*id),
                            func: f.clone(),
                            import_name: f.name.clone(),
                            handle: lookup(&mut store, &f.name)?,
                        });
                    }
                }
                WorldItem::Function(f) => {
                    let import_name = format!("{}-import", f.name);
                    let mirrored = w
                        .imports
                        .values()
                        .any(|i| matches!(i, WorldItem::Function(g) if g.name == import_name));
                    if !mirrored {
                        continue;
                    }
                    if !is_drivable(resolve, f, &peers) {
                        skipped += 1;
                        continue;
                    }
                    let handle = instance
                        .get_func(&mut store, f.name.as_str())
                        .with_context(|| format!("no export {}", f.name))?;
                    exports.push(Export {
                        interface: None,
                        interface_id: None,
                        func: f.clone(),
                        import_name,
                        handle,
                    });
                }
                WorldItem::Type { .. } => {}
            }
        }
        Ok(Driver {
            resolve,
            exported,
            store,
            exports,
            debug,
            rng: Rng::new(seed),
            big: false,
            budget: 0,
            constructing: 0,
            calls: 0,
            handles: 0,
            transmits: 0,
            compound_transmits: 0,
            nested_transmits: 0,
            came_out: 0,
            peer_transmits: BTreeMap::new(),
            peers,
            skipped,
            runtime,
            waiting,
            async_baseline,
            stderr,
        })
    }

    /// One checked call of export `e` with fresh random arguments, then the
    /// leak checks.
    pub fn round(&mut self, e: usize, big: bool) -> Result<()> {
        self.big = big;
        self.budget = if big { 120_000 } else { 600 };
        let result = self.args(e).and_then(|args| {
            let shown = short(&args);
            self.checked_call(e, args)
                .with_context(|| format!("arguments {shown}"))
        });
        let cleanup = self.cleanup();
        result.with_context(|| format!("checked call of {}", self.exports[e].describe()))?;
        cleanup
    }

    fn args(&mut self, e: usize) -> Result<Vec<Val>> {
        let params: Vec<Type> = self.exports[e].func.params.iter().map(|p| p.ty).collect();
        let guest_view = self.exports[e].interface_id.is_some();
        params.iter().map(|t| self.make(t, guest_view)).collect()
    }

    /// Calls `f`: with `call_async` in an async world, which runs wasmtime's
    /// event loop until the call is done.
    fn call(&mut self, f: Func, args: &[Val], results: &mut [Val]) -> wasmtime::Result<()> {
        match &self.runtime {
            Some(rt) => rt.block_on(f.call_async(&mut self.store, args, results)),
            None => f.call(&mut self.store, args, results),
        }
    }

    /// The pending call of export `e` with `args`, and a random result for
    /// its import to give.
    fn expect(&mut self, e: usize, args: Vec<Val>) -> Result<Pending> {
        let result = match self.exports[e].func.result {
            Some(t) => Some(self.make(&t, false)?),
            None => None,
        };
        let export = &self.exports[e];
        Ok(Pending {
            interface: export.interface.clone(),
            name: export.import_name.clone(),
            args,
            result,
            called: false,
            errors: Vec::new(),
        })
    }

    /// What went wrong in the call `pending` stood for, given what the
    /// export gave back (`outcome`, then its results).
    fn settle(
        &mut self,
        pending: Pending,
        outcome: wasmtime::Result<()>,
        results: &[Val],
    ) -> Vec<String> {
        let mut errors = pending.errors;
        if let Err(e) = outcome {
            let said = String::from_utf8_lossy(&self.stderr.contents()).into_owned();
            errors.push(format!(
                "the call failed: {e:?}\ninterpreter's stderr: {said}"
            ));
            return errors;
        }
        if !pending.called {
            errors.push("the export returned without calling its mirror import".into());
        }
        if let (Some(sent), Some(got)) = (&pending.result, results.first()) {
            let mut store = self.store.as_context_mut();
            compare(&mut store, sent, got, Dir::Result, "result", &mut errors);
        }
        errors
    }

    /// Calls export `e`, expecting its mirror import to see `args`; returns
    /// the export's result.
    fn checked_call(&mut self, e: usize, args: Vec<Val>) -> Result<Option<Val>> {
        self.calls += 1;
        let pending = self.expect(e, args.clone())?;
        let mut results = vec![Val::Bool(false); usize::from(pending.result.is_some())];
        self.store.data_mut().data.pending = vec![pending];
        let outcome = self.call(self.exports[e].handle, &args, &mut results);
        let Some(pending) = self.store.data_mut().data.pending.pop() else {
            bail!("the pending call went missing");
        };
        let errors = self.settle(pending, outcome, &results);
        if !errors.is_empty() {
            bail!("{}", errors.join("\n"));
        }
        self.read_what_came_out()?;
        Ok(results.pop())
    }

    /// The most async imports that were waiting to answer at one time.
    pub fn most_in_flight(&self) -> usize {
        self.waiting.most.load(Ordering::Relaxed)
    }

    /// Async import calls the guest cancelled before they answered.
    pub fn cancelled_imports(&self) -> usize {
        self.waiting.cancelled.load(Ordering::Relaxed)
    }

    /// Whether export `e` can be in a concurrent round: its import is told
    /// apart by name alone, and no handle (whose bookkeeping is per call)
    /// crosses.
    pub fn is_concurrent(&self, e: usize) -> bool {
        let f = &self.exports[e].func;
        self.runtime.is_some()
            && !matches!(f.kind, FunctionKind::Constructor(_))
            && !types_of(f).any(|t| smith::holds_handle(self.resolve, t))
    }

    /// One call of each export of `es` (see [`Driver::is_concurrent`]) with
    /// random arguments, all in flight at once, then the leak checks.
    pub fn concurrent_round(&mut self, es: &[usize]) -> Result<()> {
        self.big = false;
        self.budget = 600 * es.len();
        let mut calls = Vec::new();
        let mut pending = Vec::new();
        for &e in es {
            ensure!(
                self.is_concurrent(e),
                "{} cannot run concurrently",
                self.exports[e].describe()
            );
            let args = self.args(e)?;
            let p = self.expect(e, args.clone())?;
            let arity = usize::from(p.result.is_some());
            calls.push((self.exports[e].handle, args, arity));
            pending.push(p);
        }
        self.calls += es.len();
        self.store.data_mut().data.pending = pending;
        let Some(rt) = &self.runtime else {
            bail!("a concurrent round in a sync world");
        };
        let outcomes = rt.block_on(self.store.run_concurrent(async |a| {
            let all = calls.iter().map(|(f, args, arity)| async move {
                let mut results = vec![Val::Bool(false); *arity];
                let outcome = f.call_concurrent(a, args, &mut results).await;
                (outcome, results)
            });
            futures::future::join_all(all).await
        }));
        let outcomes = wt(outcomes).context("running the concurrent calls")?;
        let pending = std::mem::take(&mut self.store.data_mut().data.pending);
        let mut errors = Vec::new();
        for ((&e, p), (outcome, results)) in es.iter().zip(pending).zip(outcomes) {
            let what = self.exports[e].describe();
            let shown = short(&p.args);
            for error in self.settle(p, outcome, &results) {
                errors.push(format!("{what}({shown}): {error}"));
            }
        }
        let cleanup = self.cleanup();
        if !errors.is_empty() {
            bail!("{}", errors.join("\n"));
        }
        cleanup
    }

    /// Drops every handle the host holds, then checks that the interpreter
    /// has nothing allocated and that the guest owns no host resource.
    fn cleanup(&mut self) -> Result<()> {
        let held = std::mem::take(&mut self.store.data_mut().data.held);
        for r in held {
            let dropped = match &self.runtime {
                Some(rt) => rt.block_on(r.resource_drop_async(&mut self.store)),
                None => r.resource_drop(&mut self.store),
            };
            wt(dropped).context("dropping a handle")?;
        }
        self.store.data_mut().data.known.clear();
        self.release_unsent()?;
        for debug in self.debug.clone() {
            self.no_live_bytes(debug.live_bytes).context(debug.name)?;
        }
        self.release_unsent()?;
        let st = &mut self.store.data_mut().data;
        st.to_read.clear();
        let unseen = std::mem::take(&mut st.sent).len();
        let errors = std::mem::take(&mut st.errors);
        if !errors.is_empty() {
            bail!("{}", errors.join("\n"));
        }
        ensure!(
            unseen == 0,
            "{unseen} future(s) or stream(s) the host wrote never came out"
        );
        // Zero live handles: what the calls made of the runtime's async
        // state is gone (the guests' handles and the host's).
        if let Some(baseline) = self.async_baseline {
            let now = self.store.concurrent_state_table_size();
            ensure!(
                now == baseline,
                "handles left after the call: wasmtime's async state (future and stream ends, \
                 waitable sets, subtasks, tasks) has {now} entries, {baseline} after instantiation"
            );
        }
        let outstanding = std::mem::take(&mut self.store.data_mut().data.outstanding);
        if !outstanding.is_empty() {
            bail!("host resources still owned by the guest after the call: {outstanding:?}");
        }
        Ok(())
    }

    /// Closes the futures and streams among the items the guest never took
    /// from host-written ones (they, and theirs, never come out), until
    /// none is left.
    fn release_unsent(&mut self) -> Result<()> {
        loop {
            let st = &mut self.store.data_mut().data;
            let unsent = std::mem::take(&mut *st.unsent.lock().unwrap());
            if unsent.is_empty() {
                return Ok(());
            }
            excuse(&mut st.sent, &unsent);
            for item in unsent {
                let closed = match item {
                    Val::Stream(mut s) => s.close(&mut self.store),
                    Val::Future(mut f) => f.close(&mut self.store),
                    _ => Ok(()),
                };
                wt(closed).context("closing a future or stream the guest never took")?;
            }
        }
    }

    /// Checks that the interpreter whose `live-bytes` is `live_bytes` has
    /// nothing allocated.
    fn no_live_bytes(&mut self, live_bytes: Func) -> Result<()> {
        let mut out = [Val::U64(0)];
        wt(self.call(live_bytes, &[], &mut out)).context("calling live-bytes")?;
        // A copy into a future or stream the host dropped unread ends when
        // the guest hears of it: give the event loop the calls it takes
        // (and close what that leaves the host: it may hold a writer's
        // future or stream).
        for _ in 0..50 {
            if out[0] == Val::U64(0) || self.runtime.is_none() {
                break;
            }
            self.release_unsent()?;
            wt(self.call(live_bytes, &[], &mut out)).context("calling live-bytes")?;
        }
        match out[0] {
            Val::U64(0) => Ok(()),
            Val::U64(n) => bail!(
                "the interpreter holds {} bytes after the call (leak, or a buffer freed with the wrong size)",
                n as i64
            ),
            ref other => bail!("live-bytes returned {other:?}"),
        }
    }

    /// The interpreters' traces since the last call (see testinterp.c): of
    /// the instance under test, then of the peers, each with its name.
    pub fn take_traces(&mut self) -> Result<Vec<(&'static str, Trace)>> {
        let mut traces = Vec::new();
        for debug in self.debug.clone() {
            let trace = self.take_trace(debug.trace).context(debug.name)?;
            traces.push((debug.name, trace));
        }
        Ok(traces)
    }

    fn take_trace(&mut self, trace: Func) -> Result<Trace> {
        let mut out = [Val::Bool(false)];
        wt(self.call(trace, &[], &mut out)).context("calling trace")?;
        match &out[0] {
            Val::Tuple(t) => match &t[..] {
                [Val::U64(count), Val::U64(hash), Val::List(lines)] => Ok(Trace {
                    count: *count,
                    hash: *hash,
                    lines: lines
                        .iter()
                        .map(|l| match l {
                            Val::String(s) => s.clone(),
                            other => format!("{other:?}"),
                        })
                        .collect(),
                }),
                _ => bail!("trace returned {t:?}"),
            },
            other => bail!("trace returned {other:?}"),
        }
    }

    /// A random value of `ty`. With `guest_view`, resources of exported
    /// interfaces are the guest's (made with their constructor); otherwise
    /// all resources are host resources.
    fn make(&mut self, ty: &Type, guest_view: bool) -> Result<Val> {
        let rng = &mut self.rng;
        Ok(match ty {
            Type::Bool => Val::Bool(rng.bool()),
            Type::U8 => Val::U8(rng.u8()),
            Type::S8 => Val::S8(rng.s8()),
            Type::U16 => Val::U16(rng.u16()),
            Type::S16 => Val::S16(rng.s16()),
            Type::U32 => Val::U32(rng.u32()),
            Type::S32 => Val::S32(rng.s32()),
            Type::U64 => Val::U64(rng.u64()),
            Type::S64 => Val::S64(rng.s64()),
            Type::F32 => Val::Float32(rng.f32()),
            Type::F64 => Val::Float64(rng.f64()),
            Type::Char => Val::Char(rng.char()),
            Type::String => {
                let max = if self.big { 3000 } else { 24 };
                let s = rng.string(max.min(self.budget));
                self.budget = self.budget.saturating_sub(s.chars().count());
                Val::String(s)
            }
            Type::ErrorContext => bail!("error-context is not supported"),
            Type::Id(id) => self.make_def(*id, guest_view)?,
        })
    }

    fn make_payload(&mut self, ty: Option<Type>, guest_view: bool) -> Result<Option<Box<Val>>> {
        Ok(match ty {
            Some(t) => Some(Box::new(self.make(&t, guest_view)?)),
            None => None,
        })
    }

    fn list_len(&mut self, elem: &Type) -> usize {
        let n = if self.big && is_small(self.resolve, elem) {
            match self.rng.below(4) {
                0 => 0,
                1 => self.rng.index(100),
                _ => 10_000,
            }
        } else {
            match self.rng.below(8) {
                0 => 0,
                1 => 1,
                _ => self.rng.index(6),
            }
        };
        let n = n.min(self.budget);
        self.budget -= n;
        n
    }

    fn make_def(&mut self, id: TypeId, guest_view: bool) -> Result<Val> {
        let resolve = self.resolve;
        Ok(match &resolve.types[id].kind {
            TypeDefKind::Type(t) => self.make(t, guest_view)?,
            TypeDefKind::Record(r) => Val::Record(
                r.fields
                    .iter()
                    .map(|f| Ok((f.name.clone(), self.make(&f.ty, guest_view)?)))
                    .collect::<Result<_>>()?,
            ),
            TypeDefKind::Tuple(t) => Val::Tuple(
                t.types
                    .iter()
                    .map(|t| self.make(t, guest_view))
                    .collect::<Result<_>>()?,
            ),
            TypeDefKind::Flags(f) => {
                let mode = self.rng.below(6);
                Val::Flags(
                    f.flags
                        .iter()
                        .filter(|_| match mode {
                            0 => false,
                            1 => true,
                            _ => self.rng.bool(),
                        })
                        .map(|f| f.name.clone())
                        .collect(),
                )
            }
            TypeDefKind::Enum(e) => Val::Enum(e.cases[self.rng.index(e.cases.len())].name.clone()),
            TypeDefKind::Variant(v) => {
                let case = &v.cases[self.rng.index(v.cases.len())];
                Val::Variant(case.name.clone(), self.make_payload(case.ty, guest_view)?)
            }
            TypeDefKind::Option(t) => Val::Option(if self.rng.chance(2, 3) {
                Some(Box::new(self.make(t, guest_view)?))
            } else {
                None
            }),
            TypeDefKind::Result(r) => Val::Result(if self.rng.bool() {
                Ok(self.make_payload(r.ok, guest_view)?)
            } else {
                Err(self.make_payload(r.err, guest_view)?)
            }),
            TypeDefKind::List(t) => {
                let n = self.list_len(t);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.make(t, guest_view)?);
                }
                Val::List(items)
            }
            TypeDefKind::Map(k, v) => {
                let n = self.list_len(k);
                let mut entries: Vec<(Val, Val)> = Vec::with_capacity(n);
                let mut keys = HashSet::new();
                for _ in 0..n.saturating_mul(2) {
                    if entries.len() == n {
                        break;
                    }
                    let key = self.make(k, guest_view)?;
                    // Distinct keys: a map keeps the last of duplicates.
                    if keys.insert(format!("{key:?}")) {
                        let value = self.make(v, guest_view)?;
                        entries.push((key, value));
                    }
                }
                Val::Map(entries)
            }
            TypeDefKind::Future(p) => {
                let item = self.make_item(*p, guest_view)?;
                self.transmit(*p, vec![item], false)?
            }
            TypeDefKind::Stream(p) => {
                let n = match self.rng.below(6) {
                    0 => 0,
                    1 => 1,
                    _ => self.rng.index(25),
                }
                .min(self.budget);
                self.budget -= n;
                let items = (0..n)
                    .map(|_| self.make_item(*p, guest_view))
                    .collect::<Result<_>>()?;
                self.transmit(*p, items, true)?
            }
            TypeDefKind::Resource => self.resource(id, true, guest_view)?,
            TypeDefKind::Handle(Handle::Own(r)) => {
                self.resource(dealias(resolve, *r), true, guest_view)?
            }
            TypeDefKind::Handle(Handle::Borrow(r)) => {
                self.resource(dealias(resolve, *r), false, guest_view)?
            }
            other => bail!("values of {other:?} are not supported"),
        })
    }

    /// An item of a future or stream of `payload` (`()` for none).
    fn make_item(&mut self, payload: Option<Type>, guest_view: bool) -> Result<Val> {
        match payload {
            Some(t) => self.make(&t, guest_view),
            None => Ok(Val::Tuple(Vec::new())),
        }
    }

    /// A stream (or future) of `items`, written by the host or the writing
    /// peer, noted as sent.
    fn transmit(&mut self, payload: Option<Type>, items: Vec<Val>, stream: bool) -> Result<Val> {
        let unsent = self.store.data().data.unsent.clone();
        let value = if stream {
            transmit::on_payload(
                self.resolve,
                payload,
                transmit::NewStream(&mut self.store, &items, unsent),
            )
        } else {
            transmit::on_payload(
                self.resolve,
                payload,
                transmit::NewFuture(&mut self.store, &items[0], unsent),
            )
        };
        let value = match value {
            Some(value) => value?,
            None => self.peer_fill(payload, &items, !stream)?,
        };
        self.transmits += 1;
        if let Some(Type::Id(id)) = payload {
            match self.resolve.types[dealias(self.resolve, id)].kind {
                TypeDefKind::List(_) | TypeDefKind::Option(_) => self.compound_transmits += 1,
                TypeDefKind::Future(_) | TypeDefKind::Stream(_) => self.nested_transmits += 1,
                _ => {}
            }
        }
        self.store.data_mut().data.sent.push(Sent {
            value: value.clone(),
            payload,
            items,
        });
        Ok(value)
    }

    /// A future (or stream) of `items` of `payload`, written by the writing
    /// peer.
    fn peer_fill(&mut self, payload: Option<Type>, items: &[Val], future: bool) -> Result<Val> {
        let Some(peer) = peer_of(&self.peers, self.resolve, payload, future) else {
            bail!("no peer carries a payload the host cannot name");
        };
        let fill = peer.fill;
        let mut out = [Val::Bool(false)];
        wt(self.call(fill, &[Val::List(items.to_vec())], &mut out))
            .context("filling a future or stream on the writing peer")?;
        if let Some(Type::Id(id)) = payload {
            let kind = self.resolve.types[dealias(self.resolve, id)].kind.as_str();
            *self.peer_transmits.entry(kind).or_default() += 1;
        }
        let [value] = out;
        Ok(value)
    }

    /// Reads every future and stream that came out (every third one is
    /// dropped unread instead) and checks its items; then those that came
    /// out as their items, and so on.
    fn read_what_came_out(&mut self) -> Result<()> {
        loop {
            let to_read = std::mem::take(&mut self.store.data_mut().data.to_read);
            if to_read.is_empty() {
                return Ok(());
            }
            self.read_batch(to_read)?;
        }
    }

    fn read_batch(&mut self, to_read: Vec<ToRead>) -> Result<()> {
        let Some(rt) = &self.runtime else {
            bail!("a future or stream in a sync world");
        };
        let resolve = self.resolve;
        let peers = &self.peers;
        // Counted across calls, so that a call with one future or stream
        // coming out may drop it too.
        let first = self.came_out;
        self.came_out += to_read.len();
        let errors = rt.block_on(self.store.run_concurrent(async |a| {
            let reads = to_read.into_iter().enumerate().map(|(i, r)| async move {
                let i = first + i;
                if i % 3 == 2 {
                    let closed = a.with(|mut store| {
                        // What its items carry never comes out.
                        excuse(&mut store.data_mut().data.sent, &r.items);
                        match r.from {
                            transmit::Readable::Stream(mut s) => s.close(&mut store),
                            transmit::Readable::Future(mut f) => f.close(&mut store),
                        }
                    });
                    return closed
                        .map_err(|e| anyhow!("dropping {}: {e:?}", r.path))
                        .err();
                }
                let future = matches!(r.from, transmit::Readable::Future(_));
                let got = match peer_of(peers, resolve, r.payload, future) {
                    Some(peer) => drain(a, peer.drain, r.from).await,
                    None => {
                        let read = transmit::Read {
                            accessor: a,
                            from: r.from,
                            chunk: 1 + (i * 7) % 11,
                        };
                        match transmit::on_payload(resolve, r.payload, read) {
                            Some(reading) => reading.await,
                            None => Err(anyhow!("a payload neither the host nor a peer carries")),
                        }
                    }
                };
                match got {
                    Ok(got) => {
                        let mut errors = Vec::new();
                        a.with(|mut access| {
                            let mut store = access.as_context_mut();
                            let sent = Val::List(r.items);
                            let got = Val::List(got);
                            compare(&mut store, &sent, &got, Dir::Result, &r.path, &mut errors);
                        });
                        (!errors.is_empty()).then(|| anyhow!("{}", errors.join("\n")))
                    }
                    Err(e) => Some(e.context(format!("reading {}", r.path))),
                }
            });
            futures::future::join_all(reads).await
        }));
        let errors: Vec<String> = wt(errors)
            .context("reading futures and streams")?
            .into_iter()
            .flatten()
            .map(|e| format!("{e:#}"))
            .collect();
        if !errors.is_empty() {
            bail!("{}", errors.join("\n"));
        }
        Ok(())
    }

    /// A handle of resource `rid`: a fresh host resource, or, for a resource
    /// the guest exports (seen from the guest's side), a new instance made
    /// by its constructor.
    fn resource(&mut self, rid: TypeId, own: bool, guest_view: bool) -> Result<Val> {
        self.handles += 1;
        let exported = owner(self.resolve, rid).is_some_and(|i| self.exported.contains(&i));
        if guest_view && exported {
            // Held until the end of the checked call; an `own` argument
            // hands it over.
            return Ok(Val::Resource(self.construct(rid)?));
        }
        let st = &mut self.store.data_mut().data;
        st.next_rep += 1;
        let rep = st.next_rep;
        let r = ResourceDynamic::new_own(rep, rid.index() as u32)
            .try_into_resource_any(&mut self.store)?;
        let st = &mut self.store.data_mut().data;
        st.known.push((r, rep));
        if own {
            st.outstanding.insert(rep);
        } else {
            st.held.push(r);
        }
        Ok(Val::Resource(r))
    }

    fn construct(&mut self, rid: TypeId) -> Result<ResourceAny> {
        let iface = owner(self.resolve, rid);
        let Some(e) = self.exports.iter().position(|x| {
            x.interface_id == iface
                && matches!(x.func.kind, FunctionKind::Constructor(r) if r == rid)
        }) else {
            bail!(
                "exported resource `{}` has no constructor to make one with",
                self.resolve.types[rid].name.as_deref().unwrap_or("?")
            );
        };
        if self.constructing > 4 {
            bail!("constructors nested too deeply");
        }
        self.constructing += 1;
        let made = self.args(e).and_then(|args| self.checked_call(e, args));
        self.constructing -= 1;
        match made.with_context(|| format!("constructing with {}", self.exports[e].describe()))? {
            Some(Val::Resource(r)) => Ok(r),
            other => bail!("constructor returned {other:?}"),
        }
    }
}
