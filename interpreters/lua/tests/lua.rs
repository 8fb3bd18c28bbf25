//! End-to-end tests of the Lua binding (lua.so).
//!
//! World -> bindings (componentize-generate) -> component linked with
//! `wit_component::Linker` from lua.so, the bindings, liblua.so,
//! libsetjmp.so and libc.so -> wasmtime. The script is handed to the init
//! export (componentize:init/init@0.1.0) before other exports are called, as
//! the init stage will do (without the snapshot).
//!
//! Inputs: interpreters/lua/tests/wit/ (worlds `hello`, `full`, `snapshot`, `tasks`, `waits`, `pipes`,
//! `cancels`), tests/wat/canceller.wat (the caller that cancels)
//! and the scripts in tests/lua/. The worlds, the host of
//! componentize:lua-tests/host-api and the checks whose expectations are the
//! same for every interpreter are `componentize_testkit::script` (the
//! JavaScript binding's suite runs them too). Each world is compiled once
//! per test binary; every test makes its own instance (and may give it a
//! different script).

mod common;

use common::{example, script};
use componentize_testkit::script::{Run, Suite, Worlds};
use componentize_testkit::values::{normalize, string};
use std::sync::OnceLock;
use wasmtime::component::Val;

/// The worlds linked with lua.so, the script `full.lua` as `app.lua`, and
/// the variable `LUA_TEST`.
fn suite() -> &'static Suite {
    static SUITE: OnceLock<Suite> = OnceLock::new();
    SUITE.get_or_init(|| {
        let binding = componentize_lua::binding().unwrap_or_else(|e| panic!("{e}"));
        let worlds = Worlds::new(
            &example("hello"),
            &common::tests_dir().join("wit/worlds.wit"),
            binding,
        )
        .expect("the test worlds");
        Suite {
            worlds,
            script_name: "app.lua",
            full_script: script("full.lua"),
            env_var: "LUA_TEST",
            language: "Lua",
            hello_script: common::read(&example("hello").join("app.lua")),
            snapshot: |wasm, name, source| {
                let init = componentize_init::Init::new(wasm)
                    .script(name, source)
                    .run();
                init.unwrap_or_else(|e| panic!("{e:#}")).wasm
            },
        }
    })
}

// ------------------------------------------------- 1-3. hello, values, imports
// The checks every interpreter passes: `componentize_testkit::script`.

componentize_testkit::script_suite_tests!(suite);

// ---------------------------------------------------------------- 4. errors

/// The message of init with `source` as `app.lua`, which must fail.
fn init_error(source: &str) -> String {
    suite().init_error(source)
}

#[test]
fn syntax_error_names_file_and_line() {
    let err = init_error("x = 1\ny = 2\nlocal = 3\n");
    assert!(err.starts_with("app.lua:3: "), "{err}");
}

#[test]
fn runtime_error_at_init_is_reported() {
    let err = init_error("local x = 1\nerror('kaboom')\n");
    assert!(err.starts_with("app.lua:2: kaboom"), "{err}");
    assert!(err.contains("stack traceback"), "{err}");
}

#[test]
fn the_http_module_needs_a_world_with_wasi_http() {
    let err = init_error("local http = require('componentize.http')\n");
    assert!(
        err.starts_with("app.lua:1: componentize.http needs a world that imports wasi:http/types"),
        "{err}"
    );
}

#[test]
fn missing_exports_are_listed_at_init() {
    let mut run = suite().instance(&suite().full());
    let source = "types = {}\nfunction boom() return 1 end\n";
    let err = run.init("app.lua", source).unwrap().unwrap_err();
    for expected in [
        "app.lua: the script does not define what the world's exports need:",
        "function `run_imports` (for export run-imports) is not defined",
        "function `types.make_everything` (for export componentize:lua-tests/types#make-everything)",
        "class `types.counter` (for resource counter of componentize:lua-tests/types) is not defined",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(!err.contains("`boom`"), "{err}");
}

#[test]
fn runtime_error_in_export_traps_with_message() {
    let mut run = suite().full_run();
    let err = run.call(None, "boom", &[]).unwrap_err();
    let stderr = run.stderr();
    assert!(
        stderr.contains("error in export boom (Lua `boom`)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("app.lua:") && stderr.contains(": boom!"),
        "{stderr}"
    );
    assert!(stderr.contains("stack traceback"), "{stderr}");
    assert!(format!("{err:?}").contains("wasm trap"), "{err:?}");
}

#[test]
fn errors_become_err_for_string_results() {
    let mut run = suite().full_run();
    let ok = run.call(None, "fallible", &[Val::S32(4)]).unwrap();
    assert_eq!(ok, Some(Val::Result(Ok(Some(Box::new(Val::S32(8)))))));
    let zero = run.call(None, "fallible", &[Val::S32(0)]).unwrap();
    assert_eq!(zero, Some(Val::Result(Err(Some(Box::new(string("zero")))))));
    match run.call(None, "fallible", &[Val::S32(-1)]).unwrap() {
        Some(Val::Result(Err(Some(e)))) => match *e {
            Val::String(s) => {
                assert!(
                    s.starts_with("app.lua:") && s.ends_with(": negative input"),
                    "{s}"
                )
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    assert_eq!(run.stderr(), "");
}

#[test]
fn errors_in_result_without_payload_print_and_return_err() {
    suite().check_result_without_payload("command_should_fail = true", "command failed");
}

#[test]
fn type_mismatch_names_function_and_position() {
    let source = format!(
        "{}\nfunction types.echo_u64(n) return 'x' end\n\
         function types.make_everything() local e = everything(); e.points[2].y = 'no'; return e end\n",
        script("full.lua")
    );
    let mut run = suite().run_script(&suite().full(), &source);
    assert!(run.types("echo-u64", &[Val::U64(1)]).is_err());
    let stderr = run.stderr();
    assert!(
        stderr.contains("export componentize:lua-tests/types#echo-u64 (Lua `types.echo_u64`) returned a value that does not match its WIT type: result: expected u64, got string \"x\""),
        "{stderr}"
    );

    let mut run = suite().run_script(&suite().full(), &source);
    assert!(run.types("make-everything", &[]).is_err());
    let stderr = run.stderr();
    assert!(
        stderr.contains("result.points[2].y: expected s32, got string \"no\""),
        "{stderr}"
    );
}

#[test]
fn script_may_return_its_exports_or_use_full_interface_names() {
    let component = suite().worlds.component("hello");
    for (source, expected) in [
        // A chunk that returns a table exports from it instead of _G.
        (
            "local M = { run = {} }\nfunction M.run.run() print('module style') end\nreturn M\n",
            "module style\n",
        ),
        // The interface's full name as the key takes precedence.
        (
            "_G['wasi:cli/run@0.2.12'] = { run = function() io.write('full name\\n') end }\n",
            "full name\n",
        ),
    ] {
        let mut run = suite().instance(&component);
        run.init("main.lua", source).unwrap().unwrap();
        let status = run.run_command().unwrap();
        assert_eq!(status, Ok(()), "stderr: {}", run.stderr());
        assert_eq!(run.stdout(), expected);
    }
}

#[test]
fn exports_need_init_first_and_init_runs_once() {
    suite().check_init_first_and_once(
        "export boom called before the Lua script was loaded",
        "the Lua script was already initialized",
    );
}

#[test]
fn mismatches_are_reported_with_their_position() {
    let cases = [
        ("e.a_u8 = 256", "result.a_u8: 256 is out of range for u8"),
        (
            "e.a_s32 = 1.5",
            "result.a_s32: expected s32, got number 1.5",
        ),
        (
            "e.a_char = 'ab'",
            "result.a_char: expected char (a string of exactly one UTF-8 code point), got string \"ab\"",
        ),
        (
            "e.a_string = '\\xff'",
            "result.a_string: string is not valid UTF-8",
        ),
        (
            "e.a_bool = 1",
            "result.a_bool: expected bool, got integer 1",
        ),
        (
            "e.color = 'purple'",
            "result.color: expected a case of enum `color` (red, green, dark_blue), got string \"purple\"",
        ),
        (
            "e.perms = { reed = true }",
            "result.perms: unknown flag `reed` for flags `perms` (read, write, exec_all)",
        ),
        (
            "e.shape = { tag = 'circle' }",
            "result.shape.value: expected f64, got nil",
        ),
        (
            "e.shape = 'circle'",
            "result.shape: case `circle` of variant `shape` has a payload",
        ),
        (
            "e.outcome = 5",
            "result.outcome: expected a result {ok = ...} or {err = ...}, got integer 5",
        ),
        (
            "e.nested = 5",
            "result.nested: a nested option is nil or {some = value}; got number",
        ),
        (
            "e.words[2] = false",
            "result.words[2]: expected string, got boolean false",
        ),
        (
            "e.table = { k = 'v' }",
            "result.table.k: expected u32, got string \"v\"",
        ),
        ("e.pair = { 'x' }", "result.pair[2]: expected u32, got nil"),
    ];
    for (change, expected) in cases {
        suite().check_make_everything_traps(
            &format!(
                "function types.make_everything() local e = everything(); {change}; return e end"
            ),
            "export componentize:lua-tests/types#make-everything (Lua `types.make_everything`) \
             returned a value that does not match its WIT type",
            expected,
        );
    }
}

#[test]
fn lua_conveniences_lower_too() {
    // Flags as a list of names, variant cases without payload as strings,
    // integral floats as integers, kebab-case names.
    let source = format!(
        "{}\nfunction types.make_everything() local e = everything(); \
         e.perms = {{'write', 'exec-all'}}; e.color = 'dark-blue'; e.a_u32 = 7.0; \
         e.shape = 'nothing'; e.a_char = 0x20AC; return e end\n",
        script("full.lua")
    );
    let mut run = suite().run_script(&suite().full(), &source);
    let Val::Record(fields) = run.types("make-everything", &[]).unwrap() else {
        panic!()
    };
    let get = |n: &str| normalize(fields.iter().find(|(k, _)| k == n).unwrap().1.clone());
    assert_eq!(
        get("perms"),
        Val::Flags(vec!["exec-all".into(), "write".into()])
    );
    assert_eq!(get("color"), Val::Enum("dark-blue".into()));
    assert_eq!(get("a-u32"), Val::U32(7));
    assert_eq!(get("shape"), Val::Variant("nothing".into(), None));
    assert_eq!(get("a-char"), Val::Char('€'));
}

// ---------------------------------------------------------- async exports

/// World `tasks` initialized with async.lua.
fn tasks_run() -> Run {
    let suite = suite();
    suite.run_script(&suite.worlds.component("tasks"), &script("async.lua"))
}

/// Calls the world-level exports `calls` (name, arguments) all at once, on
/// wasmtime's event loop: each one's result, in order, or its error; a
/// trap ends the whole loop with an error instead. The
/// loop is driven by a plain executor, not tokio: the sync WASI host the
/// guest writes through blocks on a tokio runtime of its own.
fn call_concurrently(run: &mut Run, calls: &[(&str, Vec<Val>)]) -> CallResults {
    let funcs: Vec<_> = calls
        .iter()
        .map(|(name, _)| run.func(None, name).unwrap())
        .collect();
    futures::executor::block_on(run.store.run_concurrent(async |a| {
        let all = calls.iter().zip(&funcs).map(|((_, args), &f)| async move {
            let arity = a.with(|store| f.ty(store).results().len());
            let mut results = vec![Val::Bool(false); arity];
            match f.call_concurrent(a, args, &mut results).await {
                Ok(_) => Ok(results.pop()),
                Err(e) => Err(format!("{e:?}")),
            }
        });
        futures::future::join_all(all).await
    }))
    .map_err(|e| format!("{e:?}"))
}

type CallResults = Result<Vec<Result<Option<Val>, String>>, String>;

fn steps(ids: std::ops::Range<u32>, turns: u32) -> Vec<(&'static str, Vec<Val>)> {
    ids.map(|id| ("step", vec![Val::U32(id), Val::U32(turns)]))
        .collect()
}

fn take_log(run: &mut Run) -> Vec<u32> {
    match run.call(None, "take-log", &[]).unwrap() {
        Some(Val::List(ids)) => ids
            .into_iter()
            .map(|v| match v {
                Val::U32(id) => id,
                other => panic!("log entry {other:?}"),
            })
            .collect(),
        other => panic!("take-log returned {other:?}"),
    }
}

fn heap(run: &mut Run) -> u64 {
    match run.call(None, "heap", &[]).unwrap() {
        Some(Val::U64(bytes)) => bytes,
        other => panic!("heap returned {other:?}"),
    }
}

#[test]
fn async_exports_run_in_coroutines_that_interleave() {
    let mut run = tasks_run();
    let results = call_concurrently(&mut run, &steps(1..5, 3)).unwrap();
    let expected: Vec<Result<Option<Val>, String>> =
        (1..5).map(|id| Ok(Some(Val::U32(id * 3)))).collect();
    assert_eq!(results, expected, "stderr: {}", run.stderr());
    // Every call logged each turn, and some call logged again after another
    // call had logged in between: the coroutines took turns.
    let log = take_log(&mut run);
    let mut sorted = log.clone();
    sorted.sort();
    assert_eq!(sorted, [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4], "{log:?}");
    let resumed_after_another = (0..log.len())
        .any(|i| (i + 1..log.len()).any(|j| log[j] != log[i] && log[j + 1..].contains(&log[i])));
    assert!(
        resumed_after_another,
        "the calls ran one after another: {log:?}"
    );
}

#[test]
fn finished_tasks_leave_nothing_on_the_lua_heap() {
    let mut run = tasks_run();
    // The first batch grows what later batches reuse (the registry's slots).
    let mut heaps = Vec::new();
    for _ in 0..3 {
        let results = call_concurrently(&mut run, &steps(0..20, 2)).unwrap();
        assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
        take_log(&mut run);
        heaps.push(heap(&mut run));
    }
    assert_eq!(
        heaps[1], heaps[2],
        "the Lua heap grew between batches: {heaps:?}"
    );
}

#[test]
fn an_error_in_an_async_export_is_its_err_or_a_trap() {
    let mut run = tasks_run();
    let results = call_concurrently(
        &mut run,
        &[
            ("fail-after-yield", vec![Val::String("no luck".into())]),
            ("step", vec![Val::U32(7), Val::U32(2)]),
        ],
    )
    .unwrap();
    assert_eq!(
        results,
        [
            Ok(Some(Val::Result(Err(Some(Box::new(Val::String(
                "no luck".into()
            ))))))),
            Ok(Some(Val::U32(14))),
        ]
    );
    let results = call_concurrently(&mut run, &[("crash-after-yield", vec![])]);
    let stderr = run.stderr();
    match &results {
        Err(e) => assert!(e.contains("wasm trap"), "{e}"),
        Ok(v) => panic!("crash-after-yield returned {v:?}"),
    }
    for text in [
        "error in export crash-after-yield (Lua `crash_after_yield`)",
        "app.lua:",
        "crashed after a yield",
        "stack traceback",
    ] {
        assert!(stderr.contains(text), "no {text:?} in stderr:\n{stderr}");
    }
}

// ---------------------------------------------------------- async imports

/// A future that is ready the second time it is polled: one turn of the
/// event loop.
struct Turn(bool);

impl std::future::Future for Turn {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

type AsyncStore = wasmtime::Store<componentize_testkit::Host<()>>;

/// World `waits` initialized with async.lua, with the host's `delay`: it
/// returns `id * 10` after `turns` turns of the event loop, so calls
/// started together return in the order of their turns.
fn waits_instance() -> (AsyncStore, wasmtime::component::Instance) {
    let mut linker = componentize_testkit::linker::<()>();
    linker
        .root()
        .func_new_concurrent("delay", |_, _, params, results| {
            Box::pin(async move {
                let [Val::U32(id), Val::U32(turns)] = params else {
                    wasmtime::bail!("delay: {params:?}");
                };
                for _ in 0..*turns {
                    Turn(false).await;
                }
                results[0] = Val::U32(id * 10);
                Ok(())
            })
        })
        .unwrap();
    async_instance("waits", &linker)
}

/// An instance of the test world `world`, initialized with async.lua.
fn async_instance(
    world: &str,
    linker: &wasmtime::component::Linker<componentize_testkit::Host<()>>,
) -> (AsyncStore, wasmtime::component::Instance) {
    let component = suite().worlds.component(world);
    let (mut store, _output) = componentize_testkit::HostBuilder::new().store(());
    let instance = futures::executor::block_on(linker.instantiate_async(&mut store, &component))
        .unwrap_or_else(|e| panic!("instantiating: {e:?}"));
    let init = componentize_testkit::export_func(
        &mut store,
        &instance,
        Some(componentize_contract::INIT_INTERFACE),
        componentize_contract::INIT_FUNCTION,
    )
    .unwrap();
    let source = script("async.lua");
    let args = [
        Val::String("app.lua".into()),
        Val::List(source.bytes().map(Val::U8).collect()),
    ];
    let mut results = [Val::Bool(false)];
    futures::executor::block_on(init.call_async(&mut store, &args, &mut results))
        .unwrap_or_else(|e| panic!("init: {e:?}"));
    assert_eq!(results[0], Val::Result(Ok(None)), "init");
    (store, instance)
}

/// Calls each world-level export of `calls` at once; their results.
fn call_all(
    store: &mut AsyncStore,
    instance: &wasmtime::component::Instance,
    calls: &[(&str, Vec<Val>)],
) -> Vec<Val> {
    let funcs: Vec<_> = calls
        .iter()
        .map(|(name, _)| {
            componentize_testkit::export_func(&mut *store, instance, None, name).unwrap()
        })
        .collect();
    futures::executor::block_on(store.run_concurrent(async |a| {
        let all = calls.iter().zip(&funcs).map(|((_, args), &f)| async move {
            let mut results = vec![Val::Bool(false); a.with(|s| f.ty(s).results().len())];
            f.call_concurrent(a, args, &mut results)
                .await
                .map(|_| results.pop().unwrap_or(Val::Bool(false)))
        });
        futures::future::try_join_all(all).await
    }))
    .and_then(|r| r)
    .unwrap_or_else(|e| panic!("the calls failed: {e:?}"))
}

fn text(v: Val) -> String {
    match v {
        Val::String(s) => s,
        other => panic!("expected a string, got {other:?}"),
    }
}

fn strings(v: Val) -> Vec<String> {
    match v {
        Val::List(items) => items.into_iter().map(text).collect(),
        other => panic!("expected a list of strings, got {other:?}"),
    }
}

#[test]
fn an_async_import_suspends_the_coroutine_while_other_calls_run() {
    let (mut store, instance) = waits_instance();
    let relay = |id: u32, turns: u32| ("relay", vec![Val::U32(id), Val::U32(turns)]);
    let results = call_all(
        &mut store,
        &instance,
        &[relay(1, 60), relay(2, 0), relay(3, 20)],
    );
    assert_eq!(results, [Val::U32(1010), Val::U32(1020), Val::U32(1030)]);
    let events = strings(call_all(&mut store, &instance, &[("take-log", vec![])]).remove(0));
    // Call 1 started first and waited longest: the others started, waited
    // and finished while its coroutine was suspended in `delay`.
    let at = |e: &str| {
        events
            .iter()
            .position(|x| x == e)
            .unwrap_or_else(|| panic!("no {e:?} in {events:?}"))
    };
    assert_eq!(at("start 1"), 0, "{events:?}");
    assert!(
        at("start 3") < at("end 3") && at("end 3") < at("end 1"),
        "{events:?}"
    );
    assert_eq!(at("end 1"), events.len() - 1, "{events:?}");
    assert_eq!(events.len(), 6, "{events:?}");
}

#[test]
fn async_import_calls_leave_nothing_behind_and_need_a_task() {
    let (mut store, instance) = waits_instance();
    let mut heaps = Vec::new();
    for _ in 0..3 {
        let calls: Vec<_> = (0..16)
            .map(|id| ("relay", vec![Val::U32(id), Val::U32(id % 5)]))
            .collect();
        let results = call_all(&mut store, &instance, &calls);
        let expected: Vec<Val> = (0..16).map(|id| Val::U32(id * 10 + 1000)).collect();
        assert_eq!(results, expected);
        call_all(&mut store, &instance, &[("take-log", vec![])]);
        heaps.push(call_all(&mut store, &instance, &[("heap", vec![])]).remove(0));
    }
    assert_eq!(
        heaps[1], heaps[2],
        "the Lua heap grew between batches: {heaps:?}"
    );
    let err = text(call_all(&mut store, &instance, &[("delay-from-sync", vec![])]).remove(0));
    assert!(
        err.contains("delay is an async import: call it from an async export"),
        "{err}"
    );
}

// ---- futures and streams ------------------------------------------------

/// A host reader of a guest's stream: keeps each write's items as one
/// chunk. Wasmtime drops it when the writer is gone, and with it `_done`.
struct Collect<T> {
    chunks: std::sync::Arc<std::sync::Mutex<Vec<Vec<T>>>>,
    _done: futures::channel::oneshot::Sender<()>,
}

impl<T, D> wasmtime::component::StreamConsumer<D> for Collect<T>
where
    T: wasmtime::component::Lift + Send + Sync + 'static,
{
    type Item = T;

    fn poll_consume(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        mut store: wasmtime::StoreContextMut<D>,
        mut source: wasmtime::component::Source<'_, T>,
        _finish: bool,
    ) -> std::task::Poll<wasmtime::Result<wasmtime::component::StreamResult>> {
        let mut chunk = Vec::with_capacity(source.remaining(&mut store));
        source.read(&mut store, &mut chunk)?;
        self.chunks.lock().unwrap().push(chunk);
        std::task::Poll::Ready(Ok(wasmtime::component::StreamResult::Completed))
    }
}

/// Reads the guest's stream `value` to its end: the chunks it was written in.
fn read_stream<T>(store: &mut AsyncStore, value: Val) -> Vec<Vec<T>>
where
    T: wasmtime::component::Lift + wasmtime::component::Lower + Send + Sync + 'static,
{
    let Val::Stream(any) = value else {
        panic!("expected a stream, got {value:?}")
    };
    let reader = wasmtime::component::StreamReader::<T>::try_from_stream_any(any).unwrap();
    let chunks = std::sync::Arc::default();
    let (done, ended) = futures::channel::oneshot::channel();
    let consumer = Collect {
        chunks: std::sync::Arc::clone(&chunks),
        _done: done,
    };
    reader.pipe(&mut *store, consumer).unwrap();
    // The consumer's sender is dropped with it, which ends the wait.
    futures::executor::block_on(store.run_concurrent(async |_| ended.await.unwrap_err())).unwrap();
    std::mem::take(&mut *chunks.lock().unwrap())
}

/// A host reader that sends one value on: a guest future's, or the first
/// item of a guest stream (then it goes away).
struct Take<T>(Option<futures::channel::oneshot::Sender<T>>);

impl<T> Take<T> {
    fn send(&mut self, value: Option<T>) {
        if let (Some(value), Some(send)) = (value, self.0.take()) {
            let _ = send.send(value);
        }
    }
}

impl<T, D> wasmtime::component::FutureConsumer<D> for Take<T>
where
    T: wasmtime::component::Lift + Send + Sync + 'static,
{
    type Item = T;

    fn poll_consume(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        mut store: wasmtime::StoreContextMut<D>,
        mut source: wasmtime::component::Source<'_, T>,
        _finish: bool,
    ) -> std::task::Poll<wasmtime::Result<()>> {
        let mut value = None;
        source.read(&mut store, &mut value)?;
        self.send(value);
        std::task::Poll::Ready(Ok(()))
    }
}

impl<T, D> wasmtime::component::StreamConsumer<D> for Take<T>
where
    T: wasmtime::component::Lift + Send + Sync + 'static,
{
    type Item = T;

    fn poll_consume(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        mut store: wasmtime::StoreContextMut<D>,
        mut source: wasmtime::component::Source<'_, T>,
        _finish: bool,
    ) -> std::task::Poll<wasmtime::Result<wasmtime::component::StreamResult>> {
        let mut one = Vec::with_capacity(1);
        source.read(&mut store, &mut one)?;
        self.send(one.pop());
        std::task::Poll::Ready(Ok(wasmtime::component::StreamResult::Dropped))
    }
}

/// Reads the guest's future `value`.
fn read_future<T>(store: &mut AsyncStore, value: Val) -> T
where
    T: wasmtime::component::Lift + Send + Sync + Unpin + 'static,
{
    let Val::Future(any) = value else {
        panic!("expected a future, got {value:?}")
    };
    let reader = wasmtime::component::FutureReader::<T>::try_from_future_any(any).unwrap();
    let (send, got) = futures::channel::oneshot::channel();
    reader.pipe(&mut *store, Take(Some(send))).unwrap();
    futures::executor::block_on(store.run_concurrent(async |_| got.await))
        .unwrap()
        .expect("the future was dropped without a value")
}

/// A host stream of `items` for the guest.
fn host_stream<T>(store: &mut AsyncStore, items: Vec<T>) -> Val
where
    T: wasmtime::component::Lift + wasmtime::component::Lower + Send + Sync + Unpin + 'static,
{
    let reader = wasmtime::component::StreamReader::new(&mut *store, items).unwrap();
    Val::Stream(reader.try_into_stream_any(&mut *store).unwrap())
}

fn pipes_instance() -> (AsyncStore, wasmtime::component::Instance) {
    async_instance("pipes", &componentize_testkit::linker::<()>())
}

#[test]
fn byte_streams_from_the_host_are_read_in_chunks_of_the_asked_size() {
    let (mut store, instance) = pipes_instance();
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 + i / 251) as u8).collect();
    let checksum = data
        .iter()
        .fold(0u32, |h, &b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let first = host_stream(&mut store, data.clone());
    let second = host_stream(&mut store, data[..5000].to_vec());
    let results = call_all(
        &mut store,
        &instance,
        &[
            ("measure", vec![first, Val::U32(1000)]),
            ("measure", vec![second, Val::U32(4096)]),
        ],
    );
    let tuple = |bytes: u64, reads: u32, h: u32| {
        Val::Tuple(vec![Val::U64(bytes), Val::U32(reads), Val::U32(h)])
    };
    let second_checksum = data[..5000]
        .iter()
        .fold(0u32, |h, &b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    // 1 MiB in reads of at most 1000 bytes: 1049 reads (the host writes it
    // all at once, so each read is full but the last).
    assert_eq!(
        results,
        [
            tuple(1 << 20, 1049, checksum),
            tuple(5000, 2, second_checksum)
        ]
    );
}

#[test]
fn a_spawned_coroutine_writes_the_returned_stream_after_the_export_returned() {
    let (mut store, instance) = pipes_instance();
    let stream = call_all(
        &mut store,
        &instance,
        &[("words", vec![Val::U32(10), Val::U32(4)])],
    )
    .remove(0);
    let chunks: Vec<Vec<String>> = read_stream(&mut store, stream);
    let words = |r: std::ops::RangeInclusive<u32>| r.map(|i| format!("word {i}")).collect();
    let expected: Vec<Vec<String>> = vec![words(1..=4), words(5..=8), words(9..=10)];
    assert_eq!(chunks, expected);
    let log = strings(call_all(&mut store, &instance, &[("take-log", vec![])]).remove(0));
    assert_eq!(log, ["returned", "wrote 4", "wrote 8", "wrote 10"]);
}

#[test]
fn streams_of_strings_and_futures_cross_both_ways() {
    let (mut store, instance) = pipes_instance();
    let parts: Vec<String> = (1..=7).map(|i| format!("p{i}")).collect();
    let parts = host_stream(&mut store, parts);
    let value = wasmtime::component::FutureReader::new(&mut store, async {
        Ok::<u32, wasmtime::Error>(41)
    })
    .unwrap();
    let value = Val::Future(value.try_into_future_any(&mut store).unwrap());
    let results = call_all(
        &mut store,
        &instance,
        &[
            ("join", vec![parts, Val::U32(3)]),
            ("plus-one", vec![value]),
            ("double-later", vec![Val::U32(21)]),
        ],
    );
    assert_eq!(results[0], Val::String("p1+p2+p3+p4+p5+p6+p7".into()));
    assert_eq!(results[1], Val::U32(42));
    assert_eq!(read_future::<u32>(&mut store, results[2].clone()), 42);
}

#[test]
fn streams_a_reader_left_in_a_stream_are_closed() {
    let (mut store, instance) = pipes_instance();
    let outer = call_all(&mut store, &instance, &[("nested", vec![Val::U32(3)])]).remove(0);
    let Val::Stream(outer) = outer else {
        panic!("expected a stream, got {outer:?}")
    };
    let reader =
        wasmtime::component::StreamReader::<wasmtime::component::StreamAny>::try_from_stream_any(
            outer,
        )
        .unwrap();
    let (send, first) = futures::channel::oneshot::channel();
    reader.pipe(&mut store, Take(Some(send))).unwrap();
    let first = futures::executor::block_on(store.run_concurrent(async |_| first.await))
        .unwrap()
        .expect("the outer stream gave no item");
    let chunks: Vec<Vec<u8>> = read_stream(&mut store, Val::Stream(first));
    assert_eq!(chunks.concat(), b"inner 1");
    // The two inner streams the host never took were written into the
    // outer one: Lua closes them, so their writers hear that the reader is
    // gone (without that, they would wait forever).
    let mut log = Vec::new();
    for _ in 0..50 {
        if log.len() == 4 {
            break;
        }
        log.extend(strings(
            call_all(&mut store, &instance, &[("take-log", vec![])]).remove(0),
        ));
    }
    log.sort();
    assert_eq!(
        log,
        [
            "inner 1 took 7",
            "inner 2 took 0",
            "inner 3 took 0",
            "outer took 1"
        ]
    );
}

#[test]
fn misused_futures_and_streams_raise_lua_errors_and_leave_nothing_behind() {
    let (mut store, instance) = pipes_instance();
    let errors = strings(call_all(&mut store, &instance, &[("misuses", vec![])]).remove(0));
    let expect = [
        "bad argument #1 to 'write' (items[2]: expected string, got integer 7)",
        "write: this is the readable end; write the other one",
        "componentize.async.stream(\"u16\"): the world has no stream with that payload (the payloads its functions carry: \"u8\", \"string\", \"stream<u8>\")",
        "close: write the future's value first",
        "bad argument #1 to 'write' (value: expected u32, got string",
        "read: the stream-reader is closed",
    ];
    assert_eq!(errors.len(), expect.len(), "{errors:#?}");
    for (got, want) in errors.iter().zip(expect) {
        assert!(got.contains(want), "{got:?} does not contain {want:?}");
    }
    let err = text(call_all(&mut store, &instance, &[("stream-from-sync", vec![])]).remove(0));
    assert!(
        err.contains("componentize.async.stream: call it from an async export"),
        "{err}"
    );
    // Batches of every kind of call: the heap stays the same size.
    let mut heaps = Vec::new();
    for _ in 0..3 {
        let parts = host_stream(&mut store, vec!["a".to_string(); 50]);
        let bytes = host_stream(&mut store, vec![1u8; 3000]);
        let results = call_all(
            &mut store,
            &instance,
            &[
                ("join", vec![parts, Val::U32(7)]),
                ("measure", vec![bytes, Val::U32(512)]),
                ("misuses", vec![]),
                ("words", vec![Val::U32(5), Val::U32(2)]),
            ],
        );
        let chunks: Vec<Vec<String>> = read_stream(&mut store, results[3].clone());
        assert_eq!(chunks.concat().len(), 5);
        call_all(&mut store, &instance, &[("take-log", vec![])]);
        heaps.push(call_all(&mut store, &instance, &[("heap", vec![])]).remove(0));
    }
    assert_eq!(
        heaps[1], heaps[2],
        "the Lua heap grew between batches: {heaps:?}"
    );
}

// ---- cancellation -------------------------------------------------------
// The host cannot cancel a call that has started (wasmtime 48 cancels only
// calls that have not), so the caller is a second component:
// tests/wat/canceller.wat, composed with world `cancels` (snapshotted after
// async.lua ran) by wasm-compose. Its `cancel-<name>(turns)` starts
// `<name>(turns)` and cancels it with `subtask.cancel`.

/// What the host's `pause` and `silence` saw: calls started and their
/// futures dropped before they returned, and silent streams dropped.
#[derive(Default)]
struct Cancellations {
    paused: std::sync::atomic::AtomicU32,
    pauses_dropped: std::sync::atomic::AtomicU32,
    silences: std::sync::atomic::AtomicU32,
    silences_dropped: std::sync::atomic::AtomicU32,
}

/// Counts into the `Cancellations` field it holds when dropped.
struct CountDrop(
    std::sync::Arc<Cancellations>,
    fn(&Cancellations) -> &std::sync::atomic::AtomicU32,
);

impl Drop for CountDrop {
    fn drop(&mut self) {
        (self.1)(&self.0).fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The writer of `silence()`: never writes, and answers a cancelled read.
struct Silence {
    _dropped: CountDrop,
}

impl<D> wasmtime::component::StreamProducer<D> for Silence {
    type Item = u8;
    type Buffer = Option<u8>;

    fn poll_produce<'a>(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        _store: wasmtime::StoreContextMut<'a, D>,
        _destination: wasmtime::component::Destination<'a, u8, Option<u8>>,
        finish: bool,
    ) -> std::task::Poll<wasmtime::Result<wasmtime::component::StreamResult>> {
        if finish {
            std::task::Poll::Ready(Ok(wasmtime::component::StreamResult::Cancelled))
        } else {
            std::task::Poll::Pending
        }
    }
}

/// World `cancels` snapshotted with async.lua and composed with its caller.
fn cancels_component() -> wasmtime::component::Component {
    static COMPONENT: OnceLock<wasmtime::component::Component> = OnceLock::new();
    COMPONENT
        .get_or_init(|| {
            let suite = suite();
            let lua = (suite.snapshot)(
                suite.worlds.wasm("cancels").to_vec(),
                "app.lua",
                &script("async.lua"),
            );
            let caller = wat::parse_file(common::tests_dir().join("wat/canceller.wat"))
                .expect("tests/wat/canceller.wat");
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("lua.wasm"), lua).unwrap();
            std::fs::write(dir.path().join("caller.wasm"), caller).unwrap();
            let iface = "componentize:lua-tests/cancellable";
            let mut config = wasm_compose::config::Config {
                dir: dir.path().to_path_buf(),
                disallow_imports: false,
                ..Default::default()
            };
            config.dependencies.insert(
                "lua".into(),
                wasm_compose::config::Dependency {
                    path: dir.path().join("lua.wasm"),
                },
            );
            let mut root = wasm_compose::config::Instantiation::default();
            root.arguments.insert(
                iface.into(),
                wasm_compose::config::InstantiationArg {
                    instance: "lua".into(),
                    export: Some(iface.into()),
                },
            );
            config.instantiations.insert("root".into(), root);
            let caller = dir.path().join("caller.wasm");
            let composed = wasm_compose::composer::ComponentComposer::new(&caller, &config)
                .compose()
                .unwrap_or_else(|e| panic!("composing the caller with world `cancels`: {e:?}"));
            componentize_testkit::compile(&composed).unwrap()
        })
        .clone()
}

/// An instance of the composition, with the host's `pause` (returns its
/// argument after that many turns) and `silence`.
fn cancels_instance() -> (
    AsyncStore,
    wasmtime::component::Instance,
    std::sync::Arc<Cancellations>,
) {
    use std::sync::atomic::Ordering::SeqCst;
    let seen = std::sync::Arc::new(Cancellations::default());
    let mut linker = componentize_testkit::linker::<()>();
    let s = std::sync::Arc::clone(&seen);
    linker
        .root()
        .func_new_concurrent("pause", move |_, _, params, results| {
            let s = std::sync::Arc::clone(&s);
            Box::pin(async move {
                let [Val::U32(turns)] = params else {
                    wasmtime::bail!("pause: {params:?}");
                };
                s.paused.fetch_add(1, SeqCst);
                let dropped = CountDrop(s, |c| &c.pauses_dropped);
                for _ in 0..*turns {
                    Turn(false).await;
                }
                std::mem::forget(dropped);
                results[0] = Val::U32(*turns);
                Ok(())
            })
        })
        .unwrap();
    let s = std::sync::Arc::clone(&seen);
    linker
        .root()
        .func_new("silence", move |mut store, _, _, results| {
            s.silences.fetch_add(1, SeqCst);
            let silence = Silence {
                _dropped: CountDrop(std::sync::Arc::clone(&s), |c| &c.silences_dropped),
            };
            let reader = wasmtime::component::StreamReader::new(&mut store, silence)?;
            results[0] = Val::Stream(reader.try_into_stream_any(&mut store)?);
            Ok(())
        })
        .unwrap();
    let (mut store, _output) = componentize_testkit::HostBuilder::new().store(());
    let instance =
        futures::executor::block_on(linker.instantiate_async(&mut store, &cancels_component()))
            .unwrap_or_else(|e| panic!("instantiating: {e:?}"));
    (store, instance, seen)
}

/// Calls the composition's `cancel-<name>(turns)` for each of `calls` at
/// once: (the subtask's final state, the result if it returned).
fn cancel_all(
    store: &mut AsyncStore,
    instance: &wasmtime::component::Instance,
    calls: &[(&str, u32)],
) -> Vec<(u32, u32)> {
    let calls: Vec<(String, Vec<Val>)> = calls
        .iter()
        .map(|(name, turns)| (format!("cancel-{name}"), vec![Val::U32(*turns)]))
        .collect();
    let calls: Vec<(&str, Vec<Val>)> = calls.iter().map(|(n, a)| (n.as_str(), a.clone())).collect();
    call_all(store, instance, &calls)
        .into_iter()
        .map(|v| match v {
            Val::U64(v) => ((v >> 32) as u32, v as u32),
            other => panic!("expected a u64, got {other:?}"),
        })
        .collect()
}

/// `cancellable`'s sync function `name`, called through the composition.
fn cancellable(
    store: &mut AsyncStore,
    instance: &wasmtime::component::Instance,
    name: &str,
) -> Val {
    let f = componentize_testkit::export_func(
        &mut *store,
        instance,
        Some("componentize:lua-tests/cancellable"),
        name,
    )
    .unwrap();
    let mut results = [Val::Bool(false)];
    futures::executor::block_on(f.call_async(&mut *store, &[], &mut results))
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let [result] = results;
    result
}

/// The component model's final states of a subtask.
const RETURNED: u32 = 2;
const RETURN_CANCELLED: u32 = 4;

#[test]
fn a_cancelled_async_export_unwinds_its_coroutines_and_ends_without_a_result() {
    use std::sync::atomic::Ordering::SeqCst;
    let (mut store, instance, seen) = cancels_instance();
    let outcomes = cancel_all(
        &mut store,
        &instance,
        &[("wait", 50), ("listen", 60), ("stubborn", 70)],
    );
    // `wait` and `listen` let the cancellation unwind them: no result.
    // `stubborn` caught it and returned 1070.
    assert_eq!(
        outcomes,
        [
            (RETURN_CANCELLED, 0),
            (RETURN_CANCELLED, 0),
            (RETURNED, 1070)
        ]
    );
    let log = strings(cancellable(&mut store, &instance, "take-log"));
    let expect = [
        "wait 50",
        "wait 50 closed by the cancellation",
        "listen 60 closed by the cancellation",
        "listener 60 closed by the cancellation",
        "stubborn 70: false, cancelled: the caller of the async export cancelled the call",
        "stubborn 70 again: false, true",
    ];
    let mut sorted_log = log.clone();
    sorted_log.sort();
    let mut sorted_expect = expect.map(String::from).to_vec();
    sorted_expect.sort();
    assert_eq!(sorted_log, sorted_expect, "the log: {log:#?}");
    // Every pause started was cancelled (its future dropped unfinished):
    // wait's, the listener's and stubborn's two.
    assert_eq!(seen.paused.load(SeqCst), 4);
    assert_eq!(seen.pauses_dropped.load(SeqCst), 4);
    // The silent stream's reader went with listen's to-be-closed variable.
    assert_eq!(seen.silences.load(SeqCst), 1);
    assert_eq!(seen.silences_dropped.load(SeqCst), 1);
}

#[test]
fn cancelled_calls_leave_nothing_behind() {
    let (mut store, instance, _seen) = cancels_instance();
    let mut heaps = Vec::new();
    for _ in 0..3 {
        let calls: Vec<(&str, u32)> = (0..8)
            .flat_map(|i| [("wait", 20 + i), ("listen", 30 + i), ("stubborn", 40 + i)])
            .collect();
        let outcomes = cancel_all(&mut store, &instance, &calls);
        for ((name, turns), outcome) in calls.iter().zip(&outcomes) {
            let expected = if *name == "stubborn" {
                (RETURNED, turns + 1000)
            } else {
                (RETURN_CANCELLED, 0)
            };
            assert_eq!(*outcome, expected, "{name}({turns})");
        }
        cancellable(&mut store, &instance, "take-log");
        heaps.push(cancellable(&mut store, &instance, "heap"));
    }
    assert_eq!(
        heaps[1], heaps[2],
        "the Lua heap grew between batches of cancelled calls: {heaps:?}"
    );
}
