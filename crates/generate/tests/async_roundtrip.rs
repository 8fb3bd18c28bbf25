//! Async round trips through wasmtime 48's component-model-async (issue 13).
//!
//! The world (fixtures/wit/async-mirror.wit) imports and exports interface
//! `concurrent`, whose functions are async. Its bindings are linked with
//! `libasyncinterp.so`, the test interpreter with async exports: each export
//! calls the matching import with its arguments and returns that import's
//! result through `task.return`, waiting on a waitable set when the import
//! has not returned yet.
//!
//! The host calls the exports concurrently (all in flight at once) and
//! answers the imports after a different number of executor turns each, so
//! they return out of order; some answer at once. Every result must be what
//! the host's import returned, more than one call must have been waiting at
//! a time, and no byte the interpreter counts may be left afterwards.
//! Streams and futures the host writes go through an export to the import
//! and back, and the host must read back what it wrote. Through an async
//! export the interpreter copies each into a new one (streams in chunks of
//! 1 to 13 items) with the future and stream built-ins and the item lift and
//! lower functions of the bindings (see COPIES in testinterp.c); through a
//! sync one a future's readable end moves as a handle. The host drops every
//! third stream unread, and that copy must end and leave nothing behind.
//! The interpreter cancels some of its copies' reads and writes and some
//! async imports, which it calls again (see CANCELS in testinterp.c). The
//! same calls run with wit-dylib 0.263's bindings, and the interpreter's
//! traces of the two (every push, pop and allocation, in order) must be
//! identical.
//!
//! Needs the toolchain build: `bash toolchain/build.sh`.
//!
//! `COMPONENTIZE_ASYNC_CALLS=n`: calls per export (default 12).

// Shared with the sync round trips, which use more of it.
#[allow(dead_code)]
#[path = "roundtrip/component.rs"]
mod component;
#[path = "common/reference.rs"]
mod reference;
// The random round trips use the rest of it.
#[allow(dead_code)]
#[path = "roundtrip/transmit.rs"]
mod transmit;

use anyhow::{Context, Result, anyhow, bail, ensure};
use component::{ASYNC_BUILD, Generator};
use componentize_testkit::Host;
use componentize_testkit::bench::env_count;
use std::sync::{Arc, Mutex};
use transmit::{OnPayload, Payload, Readable};
use wasmtime::Store;
use wasmtime::component::{Accessor, Component, Func, Instance, Linker, ResourceTable, Val};
use wasmtime_wasi::WasiCtx;
use wit_parser::{Resolve, WorldId};

const INTERFACE: &str = "componentize:test/concurrent";

/// The import calls the host saw start and end, in order (call ids).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(u32, bool)>>>);

impl Log {
    fn note(&self, id: u32, end: bool) {
        self.0.lock().unwrap().push((id, end));
    }

    /// Notes the start of call `id`, and its end when the guard goes: when
    /// it answers, or when the guest cancelled it.
    fn call(&self, id: u32) -> Noted {
        self.note(id, false);
        Noted(self.clone(), id)
    }

    /// The most import calls in progress at one time.
    fn most_in_flight(&self) -> usize {
        let (mut now, mut most) = (0usize, 0usize);
        for (_, end) in self.0.lock().unwrap().iter() {
            if *end {
                now -= 1;
            } else {
                now += 1;
                most = most.max(now);
            }
        }
        most
    }
}

/// A call in progress, noted in the log (see [`Log::call`]).
struct Noted(Log, u32);

impl Drop for Noted {
    fn drop(&mut self) {
        self.0.note(self.1, true);
    }
}

/// Lets the executor run other tasks `turns` times before going on.
async fn turns(turns: u32) {
    for _ in 0..turns {
        tokio::task::yield_now().await;
    }
}

fn world() -> (Resolve, WorldId) {
    let path = componentize_testkit::repo_file("fixtures/wit/async-mirror.wit");
    let wit = componentize_generate::Wit::load(&path, &Default::default()).unwrap();
    let world = wit.world(Some("async-mirror")).unwrap();
    (wit.resolve, world)
}

fn build(generator: Generator) -> Result<Component> {
    let (resolve, world) = world();
    let bindings = component::bindings(&resolve, world, generator)?;
    let wasm = component::link_with(&bindings, ASYNC_BUILD)?;
    Component::new(componentize_testkit::engine(), &wasm)
        .map_err(|e| anyhow!("compiling the component: {e:?}"))
}

/// The host's side of `concurrent`: each import notes its call id (its
/// first number) when it starts and when it answers.
fn linker(log: &Log) -> Result<Linker<Host>> {
    let mut linker = componentize_testkit::linker::<()>();
    let mut iface = linker.instance(INTERFACE)?;
    let l = log.clone();
    iface.func_new_concurrent("echo", move |_, _, params, results| {
        let l = l.clone();
        Box::pin(async move {
            let (Val::String(s), Val::U32(delay)) = (&params[0], &params[1]) else {
                wasmtime::bail!("echo: bad arguments {params:?}")
            };
            let noted = l.call(*delay);
            turns(*delay % 7).await;
            drop(noted);
            results[0] = Val::String(format!("{s}/{delay}"));
            Ok(())
        })
    })?;
    iface.func_new_concurrent("add", |_, _, params, results| {
        Box::pin(async move {
            let (Val::U64(a), Val::U64(b)) = (&params[0], &params[1]) else {
                wasmtime::bail!("add: bad arguments {params:?}")
            };
            results[0] = Val::U64(a.wrapping_add(*b));
            Ok(())
        })
    })?;
    let l = log.clone();
    iface.func_new_concurrent("wide", move |_, _, params, results| {
        let l = l.clone();
        Box::pin(async move {
            let [
                Val::U32(a),
                Val::String(b),
                Val::List(c),
                Val::Record(d),
                Val::Float64(e),
            ] = params
            else {
                wasmtime::bail!("wide: bad arguments {params:?}")
            };
            let noted = l.call(*a);
            turns(*a % 5 + 1).await;
            drop(noted);
            let mut point = d.clone();
            if let Some((_, Val::S32(x))) = point.iter_mut().find(|(n, _)| n == "x") {
                *x = x.wrapping_add(*a as i32);
            }
            let text = format!("{b}:{}:{e}", c.len());
            results[0] = Val::Tuple(vec![Val::String(text), Val::Record(point)]);
            Ok(())
        })
    })?;
    let l = log.clone();
    iface.func_new_concurrent("unit", move |_, _, params, _| {
        let l = l.clone();
        Box::pin(async move {
            let Val::U8(delay) = params[0] else {
                wasmtime::bail!("unit: bad arguments {params:?}")
            };
            let noted = l.call(u32::from(delay));
            turns(u32::from(delay) % 4).await;
            drop(noted);
            Ok(())
        })
    })?;
    // `relay` and `promise` hand back the readable end they got (a copy the
    // guest fills), after a few turns.
    for (name, spread) in [("relay", 3), ("promise", 4)] {
        iface.func_new_concurrent(name, move |_, _, params, results| {
            Box::pin(async move {
                let Val::U32(delay) = params[1] else {
                    wasmtime::bail!("{name}: bad arguments {params:?}")
                };
                turns(delay % spread).await;
                results[0] = params[0].clone();
                Ok(())
            })
        })?;
    }
    iface.func_new("pledge", |_, _, params, results| {
        results[0] = params[0].clone();
        Ok(())
    })?;
    iface.func_new("shout", |_, _, params, results| {
        let Val::String(s) = &params[0] else {
            wasmtime::bail!("shout: bad arguments {params:?}")
        };
        results[0] = Val::String(s.to_uppercase());
        Ok(())
    })?;
    Ok(linker)
}

fn export(store: &mut Store<Host>, instance: &Instance, iface: &str, name: &str) -> Func {
    componentize_testkit::export_func(store, instance, Some(iface), name).unwrap()
}

fn point(x: i32, y: i32, label: &str) -> Val {
    Val::Record(vec![
        ("x".into(), Val::S32(x)),
        ("y".into(), Val::S32(y)),
        ("label".into(), Val::String(label.into())),
    ])
}

/// One export call: its name, arguments, and the result the host's import
/// gives for them.
struct Call {
    name: &'static str,
    args: Vec<Val>,
    expected: Option<Val>,
}

fn calls(n: u32) -> Vec<Call> {
    let mut calls = Vec::new();
    for i in 0..n {
        calls.push(Call {
            name: "echo",
            args: vec![Val::String(format!("héllo {i}")), Val::U32(i)],
            expected: Some(Val::String(format!("héllo {i}/{i}"))),
        });
        calls.push(Call {
            name: "add",
            args: vec![Val::U64(u64::MAX - u64::from(i)), Val::U64(7)],
            expected: Some(Val::U64((u64::MAX - u64::from(i)).wrapping_add(7))),
        });
        let bytes: Vec<Val> = (0..i * 3).map(|b| Val::U8(b as u8)).collect();
        let label = format!("p{i}");
        calls.push(Call {
            name: "wide",
            args: vec![
                Val::U32(1000 + i),
                Val::String("wide".into()),
                Val::List(bytes),
                point(i as i32, -(i as i32), &label),
                Val::Float64(f64::from(i) / 4.0),
            ],
            expected: Some(Val::Tuple(vec![
                Val::String(format!("wide:{}:{}", i * 3, f64::from(i) / 4.0)),
                point((1000 + 2 * i) as i32, -(i as i32), &label),
            ])),
        });
        calls.push(Call {
            name: "unit",
            args: vec![Val::U8(i as u8)],
            expected: None,
        });
        calls.push(Call {
            name: "shout",
            args: vec![Val::String(format!("quiet {i}"))],
            expected: Some(Val::String(format!("QUIET {i}"))),
        });
    }
    calls
}

/// The functions that carry streams and futures.
#[derive(Clone, Copy)]
struct Transmitters {
    relay: Func,
    promise: Func,
    pledge: Func,
}

/// A host-written stream or future of `items` (of payload `T`), as a value.
/// Their payloads hold no handles: what a reader leaves of them needs no
/// closing, so nobody looks at the items it did not take.
fn written<T: Payload>(a: &Accessor<Host>, items: &[Val], stream: bool) -> Result<Val> {
    let unsent = transmit::Unsent::default();
    a.with(|store| match stream {
        true => transmit::NewStream(store, items, unsent).run::<T>(),
        false => transmit::NewFuture(store, &items[0], unsent).run::<T>(),
    })
}

/// Reads `from` (of payload `T`) back.
async fn read_back<T: Payload>(a: &Accessor<Host>, from: Readable) -> Result<Vec<Val>> {
    let chunk = usize::MAX;
    transmit::Read {
        accessor: a,
        from,
        chunk,
    }
    .run::<T>()
    .await
}

/// Sends `count` streams and futures each, written by the host, through
/// `relay`, `promise` and `pledge` concurrently, and checks that the host
/// reads back what it wrote (but for the streams it drops unread).
async fn transmit(a: &Accessor<Host>, t: Transmitters, count: u32) -> Result<()> {
    let sent: Vec<Vec<u8>> = (0..count)
        .map(|i| (0..(i * 37) % 300).map(|b| (b * (i + 1)) as u8).collect())
        .collect();
    let promised = |i: u32| u64::from(i) * 1_000_003 + u64::MAX / 2;
    let mut calls = Vec::new();
    for (i, bytes) in (0u32..).zip(&sent) {
        let items: Vec<Val> = bytes.iter().map(|b| Val::U8(*b)).collect();
        let relayed = written::<u8>(a, &items, true)?;
        let promise = written::<u64>(a, &[Val::U64(promised(i))], false)?;
        let pledge = written::<String>(a, &[Val::String(format!("pledge {i}"))], false)?;
        calls.push((t.relay, vec![relayed, Val::U32(i)]));
        calls.push((t.promise, vec![promise, Val::U32(i)]));
        calls.push((t.pledge, vec![pledge]));
    }
    let results = futures::future::try_join_all(calls.iter().map(|(f, args)| async move {
        let mut results = [Val::Bool(false)];
        f.call_concurrent(a, args, &mut results)
            .await
            .map_err(|e| anyhow!("{e:?}"))?;
        let [result] = results;
        Ok::<Val, anyhow::Error>(result)
    }))
    .await?;
    for (i, three) in (0u32..).zip(results.chunks(3)) {
        let [
            Val::Stream(stream),
            Val::Future(promise),
            Val::Future(pledge),
        ] = three
        else {
            bail!("relay/promise/pledge {i}: {three:?}")
        };
        // Every third stream the host drops unread: the guest's copy finds
        // its reader gone and ends (the leak check after the calls sees it).
        if i % 3 == 2 {
            a.with(|mut store| stream.clone().close(&mut store))
                .map_err(|e| anyhow!("{e:?}"))?;
        } else {
            let got = read_back::<u8>(a, Readable::Stream(stream.clone())).await?;
            let wrote = &sent[i as usize];
            ensure!(
                got.iter().cloned().eq(wrote.iter().map(|b| Val::U8(*b))),
                "relay {i}: read {} bytes back, wrote {}",
                got.len(),
                wrote.len()
            );
        }
        let value = read_back::<u64>(a, Readable::Future(promise.clone())).await?;
        ensure!(value == [Val::U64(promised(i))], "promise {i}: {value:?}");
        let value = read_back::<String>(a, Readable::Future(pledge.clone())).await?;
        let pledged = Val::String(format!("pledge {i}"));
        ensure!(value == [pledged], "pledge {i}: {value:?}");
    }
    Ok(())
}

/// What one generator's component did: the interpreter's trace (count and
/// hash) of the concurrent calls, and the most import calls in flight.
struct Run {
    trace: (u64, u64, Vec<String>),
    most_in_flight: usize,
}

fn run(generator: Generator, per_export: u32) -> Result<Run> {
    let component = build(generator)?;
    let log = Log::default();
    let linker = linker(&log)?;
    let host = Host {
        // The interpreter's own diagnostics go to the test's stderr.
        wasi: WasiCtx::builder().inherit_stderr().build(),
        table: ResourceTable::new(),
        data: (),
    };
    let mut store = Store::new(componentize_testkit::engine(), host);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let instance = runtime
        .block_on(linker.instantiate_async(&mut store, &component))
        .map_err(|e| anyhow!("instantiating: {e:?}"))?;
    let debug = "componentize:test/debug";
    let live_bytes = export(&mut store, &instance, debug, "live-bytes");
    let trace = export(&mut store, &instance, debug, "trace");
    let calls = calls(per_export);
    let funcs: Vec<Func> = calls
        .iter()
        .map(|c| export(&mut store, &instance, INTERFACE, c.name))
        .collect();
    let transmitters = Transmitters {
        relay: export(&mut store, &instance, INTERFACE, "relay"),
        promise: export(&mut store, &instance, INTERFACE, "promise"),
        pledge: export(&mut store, &instance, INTERFACE, "pledge"),
    };

    // Entries of wasmtime's async state (future and stream ends, waitable
    // sets, subtasks, tasks) before the calls: as many must be left after.
    let baseline = store.concurrent_state_table_size();
    let run = runtime.block_on(async {
        store
            .run_concurrent(async |a| -> Result<Run> {
                let call = async |f: Func, args: &[Val]| -> Result<Option<Val>> {
                    let arity = a.with(|store| f.ty(store).results().len());
                    let mut results = vec![Val::Bool(false); arity];
                    f.call_concurrent(a, args, &mut results)
                        .await
                        .map_err(|e| anyhow!("{e:?}"))?;
                    Ok(results.pop())
                };
                let before = call(live_bytes, &[]).await?;
                call(trace, &[]).await?;
                let all = calls.iter().zip(&funcs).map(|(c, f)| call(*f, &c.args));
                let results = futures::future::try_join_all(all).await?;
                for (c, got) in calls.iter().zip(&results) {
                    ensure!(
                        *got == c.expected,
                        "{}({:?}) gave {got:?}, expected {:?}",
                        c.name,
                        c.args,
                        c.expected
                    );
                }
                transmit(a, transmitters, per_export).await?;
                let Some(Val::Tuple(t)) = call(trace, &[]).await? else {
                    bail!("trace: no tuple")
                };
                // Copies into streams the host dropped end when the guest
                // sees that: give the event loop the turns it takes.
                let mut after = call(live_bytes, &[]).await?;
                for _ in 0..1000 {
                    if after == before {
                        break;
                    }
                    tokio::task::yield_now().await;
                    after = call(live_bytes, &[]).await?;
                }
                ensure!(
                    before == after,
                    "live bytes {before:?} before the calls, {after:?} after"
                );
                let (Val::U64(count), Val::U64(hash), Val::List(lines)) = (&t[0], &t[1], &t[2])
                else {
                    bail!("trace: {t:?}")
                };
                let lines = lines.iter().map(|l| format!("{l:?}")).collect();
                Ok(Run {
                    trace: (*count, *hash, lines),
                    most_in_flight: log.most_in_flight(),
                })
            })
            .await
            .map_err(|e| anyhow!("{e:?}"))?
    })?;
    let left = store.concurrent_state_table_size();
    ensure!(
        left == baseline,
        "handles left after the calls: wasmtime's async state has {left} entries, \
         {baseline} after instantiation"
    );
    Ok(run)
}

#[test]
fn concurrent_async_calls_round_trip_like_wit_dylib() {
    let per_export = env_count("COMPONENTIZE_ASYNC_CALLS", 12).unwrap() as u32;
    let ours = run(Generator::Componentize, per_export)
        .context("componentize's bindings")
        .unwrap();
    assert!(
        ours.most_in_flight >= 2,
        "the calls did not overlap: at most {} import call in flight",
        ours.most_in_flight
    );
    let theirs = run(Generator::WitDylib, per_export)
        .context("wit-dylib's bindings")
        .unwrap();
    assert_eq!(
        (ours.trace.0, ours.trace.1),
        (theirs.trace.0, theirs.trace.1),
        "the interpreter was driven differently:\nours:   {:?}\ntheirs: {:?}",
        ours.trace.2,
        theirs.trace.2
    );
    println!(
        "{} concurrent calls and {} streams and futures relayed, up to {} imports in flight, \
         {} trace lines alike",
        per_export * 5,
        per_export * 3,
        ours.most_in_flight,
        ours.trace.0
    );
}
