//! The script worlds every interpreter binding is tested on
//! (`interpreters/lua/tests/wit/worlds.wit`: `hello`, `full`, `snapshot`),
//! and the checks the suites share.
//!
//! - [`test_wit`] and [`link`]: the worlds' WIT, and a world's bindings
//!   linked with an interpreter's build ([`Binding`]);
//! - [`Worlds`]: each world linked and compiled once per test binary;
//! - [`Run`]: one instance with WASI and [`host_api`](crate::host_api),
//!   given its script through the init export as the init stage does;
//! - [`Suite`]: one interpreter's setup (its build, script name, the
//!   environment variable the script reads), with the checks of world
//!   `full` whose expectations are the same in every language: values both
//!   ways, round trips, the exported `counter`, imported blobs, imports,
//!   reseeded randomness, snapshots.

use crate::host_api::{self, ApiHost, Blob, HostApi};
use crate::values::{
    edge_everything, host_everything, normalize, point, resource, script_everything, some, string,
};
use crate::{Captured, HostBuilder};
use anyhow::{Context, Result, bail};
use componentize_contract::{INIT_FUNCTION, INIT_INTERFACE, INIT_WIT};
use componentize_interpreter::{Binding, BundledLibrary};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use wasmtime::Store;
use wasmtime::component::{Component, Func, Instance, Linker, Resource, ResourceAny, Val};
use wit_parser::{PackageId, Resolve, WorldId};

/// The interface of world `full` the script implements.
pub const TYPES: &str = "componentize:lua-tests/types";

/// The arguments a [`Run`] gives the guest.
pub const ARGS: [&str; 2] = ["app", "two words"];

/// The value of the environment variable a [`Suite`] sets.
pub const ENV_VALUE: &str = "hello env";

/// `worlds` (the file `tests/wit/worlds.wit`) with what it uses: the hello
/// example `hello_example` (with its WASI WIT) and the init contract.
pub fn test_wit(hello_example: &Path, worlds: &Path) -> Result<(Resolve, PackageId)> {
    let mut resolve = Resolve::default();
    resolve
        .push_path(hello_example)
        .with_context(|| format!("loading {}", hello_example.display()))?;
    resolve
        .push_str("init.wit", INIT_WIT)
        .context("loading the init contract")?;
    let package = resolve
        .push_file(worlds)
        .with_context(|| format!("loading {}", worlds.display()))?;
    Ok((resolve, package))
}

/// Generates the bindings of `world` and links them with `binding` with the
/// link stage (componentize-link): the interpreter first (it defines
/// `cabi_realloc`, which the bindings re-export), then the bindings, then
/// what the interpreter needs.
pub fn link(resolve: &Resolve, world: WorldId, binding: &Binding) -> Result<Vec<u8>> {
    let interpreter = binding.interpreter();
    let mut options = componentize_generate::Options::default();
    options.interpreter(interpreter.name);
    let bindings = componentize_generate::generate(resolve, world, &options)?;
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let mut link = componentize_link::Link::new();
    link.library(interpreter.name, read(&interpreter.path)?);
    link.bindings("bindings.so", bindings.wasm().to_vec());
    for lib in binding.dependencies() {
        link.library(lib.name, read(&lib.path)?);
    }
    let linked = link.encode().context("linking the component")?;
    Ok(linked.component().to_vec())
}

/// World `name` of the test worlds ([`test_wit`]) linked with `binding`
/// (see [`link`]).
pub fn link_world(
    hello_example: &Path,
    worlds: &Path,
    binding: &Binding,
    name: &str,
) -> Result<Vec<u8>> {
    let (resolve, package) = test_wit(hello_example, worlds)?;
    let world = resolve.select_world(&[package], Some(name))?;
    link(&resolve, world, binding)
}

/// A world linked and compiled.
#[derive(Clone)]
struct Built {
    wasm: Arc<[u8]>,
    component: Component,
}

type Cell = Arc<OnceLock<Result<Built, String>>>;

/// The test worlds of one interpreter: each linked and compiled at most
/// once, when first asked for.
pub struct Worlds {
    resolve: Resolve,
    package: PackageId,
    binding: Binding,
    built: Mutex<HashMap<String, Cell>>,
}

impl Worlds {
    /// The worlds of [`test_wit`], linked with `binding`.
    pub fn new(hello_example: &Path, worlds: &Path, binding: Binding) -> Result<Worlds> {
        let (resolve, package) = test_wit(hello_example, worlds)?;
        Ok(Worlds {
            resolve,
            package,
            binding,
            built: Mutex::default(),
        })
    }

    /// The WIT.
    pub fn resolve(&self) -> &Resolve {
        &self.resolve
    }

    /// World `name` of the test package; panics if there is none.
    pub fn world(&self, name: &str) -> WorldId {
        self.resolve
            .select_world(&[self.package], Some(name))
            .unwrap_or_else(|e| panic!("world `{name}`: {e}"))
    }

    fn built(&self, name: &str) -> Built {
        let cell = self
            .built
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default()
            .clone();
        let built = cell.get_or_init(|| {
            let t = std::time::Instant::now();
            let wasm = link(&self.resolve, self.world(name), &self.binding)
                .map_err(|e| format!("{e:#}"))?;
            let component = crate::compile(&wasm).map_err(|e| format!("{e:#}"))?;
            eprintln!(
                "world `{name}`: {} byte component, linked and compiled in {:.2?}",
                wasm.len(),
                t.elapsed()
            );
            Ok(Built {
                wasm: wasm.into(),
                component,
            })
        });
        built
            .clone()
            .unwrap_or_else(|e| panic!("building world `{name}`: {e}"))
    }

    /// The linked component of world `name` (before the init stage).
    pub fn wasm(&self, name: &str) -> Arc<[u8]> {
        self.built(name).wasm
    }

    /// The compiled component of world `name`.
    pub fn component(&self, name: &str) -> Component {
        self.built(name).component
    }
}

// ---------------------------------------------------------------- Run

/// One instance of a test component, with the host API, WASI (arguments
/// [`ARGS`], the given environment) and captured stdout and stderr.
pub struct Run {
    /// The store.
    pub store: Store<ApiHost>,
    /// The instance.
    pub instance: Instance,
    /// What the guest wrote.
    pub output: Captured,
}

impl Run {
    /// A new instance of `component` with environment `env`.
    pub fn new(component: &Component, env: &[(&str, &str)]) -> Result<Run> {
        let mut linker: Linker<ApiHost> = crate::linker();
        host_api::add_to_linker(&mut linker).map_err(anyhow::Error::from)?;
        let mut host = HostBuilder::new();
        for (k, v) in env {
            host.env(k, v);
        }
        let (mut store, output) = host.args(&ARGS).store(HostApi::default());
        let instance = linker
            .instantiate(&mut store, component)
            .map_err(anyhow::Error::from)
            .context("instantiating")?;
        Ok(Run {
            store,
            instance,
            output,
        })
    }

    /// Calls the init export with script `source` named `name`: `Ok(Err)`
    /// is the error it returned.
    pub fn init(&mut self, name: &str, source: &str) -> Result<Result<(), String>> {
        let args = [
            Val::String(name.into()),
            Val::List(source.bytes().map(Val::U8).collect()),
        ];
        match self.call(Some(INIT_INTERFACE), INIT_FUNCTION, &args)? {
            Some(Val::Result(Ok(None))) => Ok(Ok(())),
            Some(Val::Result(Err(Some(e)))) => match *e {
                Val::String(s) => Ok(Err(s)),
                other => bail!("init: err payload {other:?}"),
            },
            other => bail!("init returned {other:?}"),
        }
    }

    /// The exported function `name` (in interface `iface`).
    pub fn func(&mut self, iface: Option<&str>, name: &str) -> Result<Func> {
        crate::export_func(&mut self.store, &self.instance, iface, name)
    }

    /// Calls export `name` (in interface `iface`); its result. The error
    /// of a trap includes stderr.
    pub fn call(&mut self, iface: Option<&str>, name: &str, args: &[Val]) -> Result<Option<Val>> {
        let mut results = crate::call_export(&mut self.store, &self.instance, iface, name, args)
            .with_context(|| format!("stderr: {:?}", self.stderr()))?;
        Ok(results.pop())
    }

    /// Calls export `name` (in interface `iface`), which must trap, and
    /// checks that stderr has each of `expected`.
    pub fn expect_trap(
        &mut self,
        iface: Option<&str>,
        name: &str,
        args: &[Val],
        expected: &[&str],
    ) {
        let got = crate::call_export(&mut self.store, &self.instance, iface, name, args);
        let stderr = self.stderr();
        match got {
            Ok(results) => panic!("{name} returned {results:?}, no trap; stderr: {stderr}"),
            Err(e) => assert!(format!("{e:?}").contains("wasm trap"), "{e:?}"),
        }
        for text in expected {
            assert!(
                stderr.contains(text),
                "{name}: no {text:?} in stderr:\n{stderr}"
            );
        }
    }

    /// Calls `name` of interface [`TYPES`] and returns its result.
    pub fn types(&mut self, name: &str, args: &[Val]) -> Result<Val> {
        self.call(Some(TYPES), name, args)?
            .with_context(|| format!("{name} returned nothing"))
    }

    /// Runs the command's `wasi:cli/run.run`.
    pub fn run_command(&mut self) -> Result<Result<(), ()>> {
        let command =
            wasmtime_wasi::p2::bindings::sync::Command::new(&mut self.store, &self.instance)
                .map_err(anyhow::Error::from)?;
        command
            .wasi_cli_run()
            .call_run(&mut self.store)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("stderr: {}", self.stderr()))
    }

    /// A blob the host made, to hand to the guest.
    pub fn host_blob(&mut self, bytes: &[u8]) -> ResourceAny {
        let blob = host_api::new_blob(self.store.data_mut(), bytes.to_vec()).unwrap();
        ResourceAny::try_from_resource(blob, &mut self.store).unwrap()
    }

    /// Takes back a blob the guest gave the host: its bytes (it is no
    /// longer alive).
    pub fn take_blob(&mut self, blob: ResourceAny) -> Vec<u8> {
        let typed = Resource::<Blob>::try_from_resource_any(blob, &mut self.store).unwrap();
        host_api::delete_blob(self.store.data_mut(), typed).unwrap()
    }

    /// The host API's state.
    pub fn host(&self) -> &HostApi {
        &self.store.data().data
    }

    /// Everything written to stdout so far.
    pub fn stdout(&self) -> String {
        self.output.stdout()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        self.output.stderr()
    }
}

// ---------------------------------------------------------------- Suite

/// One interpreter's test setup on the [`Worlds`], and the checks of world
/// `full` that are the same for every interpreter.
pub struct Suite {
    /// The worlds, linked with the interpreter.
    pub worlds: Worlds,
    /// The name the scripts are given, such as `app.lua`.
    pub script_name: &'static str,
    /// The script implementing world `full` (`full.lua`, `full.js`).
    pub full_script: String,
    /// The environment variable `get-env` and `run-imports` read (set to
    /// [`ENV_VALUE`]).
    pub env_var: &'static str,
    /// The language, as the scripts print it: `Lua`, `JS`. The hello
    /// script prints `hello from <language>`; `run-imports` logs `from
    /// <language in lower case>`.
    pub language: &'static str,
    /// The script of world `hello`: a `wasi:cli/run` command that prints
    /// `hello from <language>` and its arguments, one a line.
    pub hello_script: String,
    /// The init stage: snapshots the linked component (`wasm`) with script
    /// `source` named `name`.
    pub snapshot: fn(wasm: Vec<u8>, name: &str, source: &str) -> Vec<u8>,
}

impl Suite {
    /// The environment of every run.
    fn env(&self) -> [(&str, &str); 1] {
        [(self.env_var, ENV_VALUE)]
    }

    /// A new instance of `component`, not initialized.
    pub fn instance(&self, component: &Component) -> Run {
        Run::new(component, &self.env()).unwrap()
    }

    /// A new instance of `component` initialized with `source` (which must
    /// succeed).
    pub fn run_script(&self, component: &Component, source: &str) -> Run {
        let mut run = self.instance(component);
        match run.init(self.script_name, source).unwrap() {
            Ok(()) => run,
            Err(e) => panic!("init failed: {e}\nstderr: {}", run.stderr()),
        }
    }

    /// World `full`.
    pub fn full(&self) -> Component {
        self.worlds.component("full")
    }

    /// World `full` with the full script.
    pub fn full_run(&self) -> Run {
        self.run_script(&self.full(), &self.full_script)
    }

    /// World `full` with the full script followed by `extra`.
    pub fn full_run_with(&self, extra: &str) -> Run {
        self.run_script(&self.full(), &format!("{}\n{extra}\n", self.full_script))
    }

    /// The message of init of world `full` with `source`, which must fail.
    pub fn init_error(&self, source: &str) -> String {
        let mut run = self.instance(&self.full());
        match run.init(self.script_name, source).unwrap() {
            Ok(()) => panic!("init succeeded with {source:?}"),
            Err(e) => e,
        }
    }

    /// Runs `component` of world `hello`, initialized with `source` (or a
    /// snapshot when `None`), and checks what it prints.
    pub fn check_hello(&self, component: &Component, source: Option<&str>) {
        let language = self.language;
        let mut run = match source {
            Some(source) => self.run_script(component, source),
            None => self.instance(component),
        };
        assert_eq!(
            run.run_command().unwrap(),
            Ok(()),
            "stderr: {}",
            run.stderr()
        );
        assert_eq!(
            run.stdout(),
            format!("hello from {language}\nargument: app\nargument: two words\n")
        );
    }

    /// World `hello` with [`Suite::hello_script`].
    pub fn check_hello_world(&self) {
        self.check_hello(&self.worlds.component("hello"), Some(&self.hello_script));
    }

    /// Two instances of world `full` with the full script draw different
    /// random numbers.
    pub fn check_random_reseeded(&self) {
        self.check_random_differs(&self.full(), Some(&self.full_script));
    }

    /// `make-everything` returns [`script_everything`] (script -> WIT).
    pub fn check_values_lower(&self) {
        let mut run = self.full_run();
        let got = run.types("make-everything", &[]).unwrap();
        assert_eq!(normalize(got), normalize(script_everything()));
    }

    /// `check-everything` of [`host_everything`] finds no field the script
    /// saw wrongly (WIT -> script).
    pub fn check_values_lift(&self) {
        let mut run = self.full_run();
        let fails = run.types("check-everything", &[host_everything()]).unwrap();
        assert_eq!(
            fails,
            Val::List(vec![]),
            "fields the script saw wrongly; stderr: {}",
            run.stderr()
        );
    }

    /// The `echo-*` functions give back what they got.
    pub fn check_round_trips(&self) {
        let mut run = self.full_run();
        for v in [host_everything(), script_everything(), edge_everything()] {
            let got = run.types("echo-everything", std::slice::from_ref(&v));
            assert_eq!(normalize(got.unwrap()), normalize(v));
        }
        for shape in [
            Val::Variant("circle".into(), Some(Box::new(Val::Float64(-0.5)))),
            Val::Variant("rect".into(), Some(Box::new(point(7, 8)))),
            Val::Variant("nothing".into(), None),
        ] {
            let got = run.types("echo-shape", std::slice::from_ref(&shape));
            assert_eq!(got.unwrap(), shape);
        }
        for n in [
            Val::Option(None),
            some(Val::Option(None)),
            some(some(Val::U32(3))),
        ] {
            let got = run.types("echo-nested", std::slice::from_ref(&n));
            assert_eq!(got.unwrap(), n);
        }
        for n in [0, 1, i64::MAX as u64, 1 << 63, u64::MAX - 1, u64::MAX] {
            assert_eq!(run.types("echo-u64", &[Val::U64(n)]).unwrap(), Val::U64(n));
        }
    }

    /// The exported resource `counter`: constructor, method, static,
    /// `own` coming back (no close), and the close (`__close`,
    /// `[Symbol.dispose]`) of the last handle counted by `closed-count`.
    pub fn check_exported_resource(&self) {
        let mut run = self.full_run();
        let new = |run: &mut Run, start: i64| {
            let r = run.call(Some(TYPES), "[constructor]counter", &[Val::S64(start)]);
            resource(r.unwrap())
        };
        let a = new(&mut run, 5);
        let b = new(&mut run, 7);
        let r = run.types(
            "[method]counter.increment",
            &[Val::Resource(a), Val::S64(2)],
        );
        assert_eq!(r.unwrap(), Val::S64(7));
        let sum = run.call(
            Some(TYPES),
            "[static]counter.sum",
            &[Val::Resource(a), Val::Resource(b)],
        );
        let sum = resource(sum.unwrap());
        let got = run.types("[method]counter.get", &[Val::Resource(sum)]);
        assert_eq!(got.unwrap(), Val::S64(14));
        // own<counter> back into the component: the object, handle gone,
        // not closed.
        let got = run.types("consume", &[Val::Resource(sum)]);
        assert_eq!(got.unwrap(), Val::S64(14));
        assert_eq!(run.types("closed-count", &[]).unwrap(), Val::U32(0));
        // s64 values near the top of the range through the class.
        let mut run = self.full_run();
        let a = new(&mut run, i64::MAX - 1);
        let got = run.types(
            "[method]counter.increment",
            &[Val::Resource(a), Val::S64(1)],
        );
        assert_eq!(got.unwrap(), Val::S64(i64::MAX));
        let b = new(&mut run, 0);
        a.resource_drop(&mut run.store).unwrap();
        assert_eq!(run.types("closed-count", &[]).unwrap(), Val::U32(1));
        b.resource_drop(&mut run.store).unwrap();
        assert_eq!(run.types("closed-count", &[]).unwrap(), Val::U32(2));
    }

    /// Imported resources in exports: borrowed, moved in and out, made.
    pub fn check_imported_resource_in_exports(&self) {
        let mut run = self.full_run();
        let size = |run: &mut Run, b: ResourceAny| run.types("blob-size", &[Val::Resource(b)]);
        let grow = |run: &mut Run, b: ResourceAny, suffix: &str| {
            let args = [Val::Resource(b), string(suffix)];
            resource(run.call(Some(TYPES), "blob-grow", &args).unwrap())
        };
        let made = resource(run.call(Some(TYPES), "make-blob", &[string("hi")]).unwrap());
        assert_eq!(size(&mut run, made).unwrap(), Val::U32(2));
        let grown = grow(&mut run, made, "!!");
        assert_eq!(size(&mut run, grown).unwrap(), Val::U32(4));
        assert_eq!(run.take_blob(grown), b"hi!!");
        // A host-made blob given to the script and back.
        let host_blob = run.host_blob(b"x");
        let back = grow(&mut run, host_blob, "yz");
        assert_eq!(size(&mut run, back).unwrap(), Val::U32(3));
        back.resource_drop(&mut run.store).unwrap();
        assert_eq!(run.host().live_blobs, 0, "blobs leaked");
    }

    /// `run-imports` (the script's own checks of the imports) after a
    /// `blob-size`, whose borrow the script keeps and must find expired;
    /// the log, the blobs left alive, and `get-env`.
    pub fn check_imports(&self) {
        let expected_log = format!("from {}", self.language.to_lowercase());
        let mut run = self.full_run();
        let blob = run.host_blob(b"abc");
        let size = run.types("blob-size", &[Val::Resource(blob)]);
        assert_eq!(size.unwrap(), Val::U32(3));
        assert_eq!(run.take_blob(blob), b"abc");
        let fails = run.call(None, "run-imports", &[]).unwrap();
        assert_eq!(fails, Some(Val::List(vec![])), "stderr: {}", run.stderr());
        assert_eq!(run.host().log, vec![expected_log]);
        assert_eq!(
            run.host().live_blobs,
            0,
            "blobs the script dropped or lost are alive"
        );
        let env = run.call(None, "get-env", &[string(self.env_var)]).unwrap();
        assert_eq!(env, Some(some(string(ENV_VALUE))));
        let env = run.call(None, "get-env", &[string("NOT_SET")]).unwrap();
        assert_eq!(env, Some(Val::Option(None)));
    }

    /// Two instances of `component` (initialized with `source`, or a
    /// snapshot when `None`) draw different `random-pair`s.
    pub fn check_random_differs(&self, component: &Component, source: Option<&str>) {
        let pairs: Vec<_> = (0..2)
            .map(|_| {
                let mut run = match source {
                    Some(source) => self.run_script(component, source),
                    None => self.instance(component),
                };
                let pair = run.call(None, "random-pair", &[]).unwrap();
                let Some(Val::Tuple(items)) = &pair else {
                    panic!("random-pair returned {pair:?}")
                };
                assert_eq!(items.len(), 2);
                pair
            })
            .collect();
        assert_ne!(pairs[0], pairs[1], "two instances drew the same numbers");
    }

    /// World `name` snapshotted by [`Suite::snapshot`] with `source`,
    /// compiled.
    pub fn snapshot_of(&self, name: &str, source: &str) -> Component {
        let wasm = (self.snapshot)(self.worlds.wasm(name).to_vec(), self.script_name, source);
        crate::compile(&wasm).unwrap()
    }

    /// Snapshots by the init stage work without init (which the stage
    /// removed): world `hello`, and world `snapshot` (`full` without
    /// interface `types`, whose map type the init stage's engine does not
    /// accept yet) with the full script, whose instances draw their own
    /// random numbers.
    pub fn check_snapshots(&self) {
        let hello = self.snapshot_of("hello", &self.hello_script);
        self.check_hello(&hello, None);
        let snapshot = &self.snapshot_of("snapshot", &self.full_script);
        let mut run = self.instance(snapshot);
        let init = run.func(Some(INIT_INTERFACE), INIT_FUNCTION);
        assert!(init.is_err(), "the init export was not removed");
        let fails = run.call(None, "run-imports", &[]).unwrap();
        assert_eq!(fails, Some(Val::List(vec![])), "stderr: {}", run.stderr());
        let fails = run.call(None, "selftest", &[]).unwrap();
        assert_eq!(fails, Some(Val::List(vec![])), "stderr: {}", run.stderr());
        // The snapshot fixed the seed; the binding reseeds on first use.
        self.check_random_differs(snapshot, None);
    }

    /// `selftest` of the full script finds no failure.
    pub fn check_selftest(&self) {
        let mut run = self.full_run();
        let fails = run.call(None, "selftest", &[]).unwrap();
        assert_eq!(fails, Some(Val::List(vec![])), "stderr: {}", run.stderr());
    }

    /// `run-command` (`result` without payload) is `ok`; with `fail`
    /// appended to the script it is `err`, and stderr has `message`.
    pub fn check_result_without_payload(&self, fail: &str, message: &str) {
        let mut run = self.full_run();
        let ok = run.call(None, "run-command", &[]).unwrap();
        assert_eq!(ok, Some(Val::Result(Ok(None))), "stderr: {}", run.stderr());
        let mut run = self.full_run_with(fail);
        let err = run.call(None, "run-command", &[]).unwrap();
        assert_eq!(err, Some(Val::Result(Err(None))));
        assert!(run.stderr().contains(message), "{}", run.stderr());
    }

    /// Calling an export before init traps with `before_init` on stderr;
    /// a second init fails with `again`.
    pub fn check_init_first_and_once(&self, before_init: &str, again: &str) {
        let mut run = self.instance(&self.full());
        assert!(run.call(None, "boom", &[]).is_err());
        assert!(run.stderr().contains(before_init), "{}", run.stderr());
        let mut run = self.full_run();
        let err = run.init(self.script_name, "x = 1").unwrap();
        assert_eq!(err, Err(again.to_string()));
    }

    /// With `extra` appended to the full script, `make-everything` traps
    /// and stderr has `header` and `expected`.
    pub fn check_make_everything_traps(&self, extra: &str, header: &str, expected: &str) {
        let mut run = self.full_run_with(extra);
        let got = run.types("make-everything", &[]);
        assert!(got.is_err(), "{extra}: no trap but {got:?}");
        let stderr = run.stderr();
        assert!(stderr.contains(header), "{extra}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{extra}: expected {expected:?} in {stderr}"
        );
    }
}

/// The text of file `path`, or a panic.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Runs a conformance command (a snapshot whose `wasi:cli/run` runs every
/// check, prints a line per failure and ends with `conformance: N passed,
/// M failed`) with `args` and `host`, and asserts that nothing failed and
/// at least `at_least` checks passed. Its stdout.
pub fn check_conformance(
    wasm: &[u8],
    args: &[&str],
    host: &mut HostBuilder,
    at_least: usize,
) -> String {
    let run = crate::run_command(wasm, args, host).unwrap();
    let stdout = run.output.stdout();
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        run.status.is_ok() && summary.ends_with(" passed, 0 failed"),
        "{stdout}\nstderr: {}",
        run.output.stderr()
    );
    let passed: usize = summary
        .trim_start_matches("conformance: ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a summary: {summary:?}"));
    assert!(
        passed >= at_least,
        "{summary}: fewer than {at_least} checks ran"
    );
    stdout
}

/// Asserts that `bundled`, the libraries an interpreter crate embeds, are
/// byte for byte `binding`'s build, in its link order. `crate_dir` (such as
/// `interpreters/lua`) has the `bundle.sh` that refreshes them.
pub fn check_bundled(binding: &Binding, bundled: &[BundledLibrary], crate_dir: &str) {
    let built: Vec<_> = std::iter::once(binding.interpreter())
        .chain(binding.dependencies())
        .collect();
    let names: Vec<_> = built.iter().map(|lib| lib.name).collect();
    let bundled_names: Vec<_> = bundled.iter().map(|lib| lib.name).collect();
    assert_eq!(bundled_names, names, "bundled libraries and link order");
    let stale: Vec<_> = bundled
        .iter()
        .zip(&built)
        .filter(|(bundled, lib)| std::fs::read(&lib.path).unwrap() != bundled.bytes)
        .map(|(bundled, lib)| format!("{} (built: {})", bundled.name, lib.path.display()))
        .collect();
    assert!(
        stale.is_empty(),
        "the bundled {} differ from what the sources build; run \
         `bash toolchain/build.sh && bash {crate_dir}/bundle.sh` and commit \
         {crate_dir}/bundled/",
        stale.join(", ")
    );
}

/// Defines the `#[test]`s every interpreter's suite runs, one per shared
/// check of [`Suite`], on the suite the function `$suite` returns
/// (`fn() -> &'static Suite`):
///
/// - `hello_command_prints`: world `hello` with [`Suite::hello_script`];
/// - `values_lower_to_wit`, `wit_values_lift`, `values_round_trip`;
/// - `exported_resource_is_a_class`, `imported_resource_in_exports`;
/// - `imports_called_from_the_script`, `math_random_is_reseeded_after_init`;
/// - `runtime_selftest`;
/// - `snapshot_by_the_init_stage_runs_without_init`.
#[macro_export]
macro_rules! script_suite_tests {
    ($suite:path) => {
        $crate::script_suite_tests!(@each $suite:
            hello_command_prints => check_hello_world,
            values_lower_to_wit => check_values_lower,
            wit_values_lift => check_values_lift,
            values_round_trip => check_round_trips,
            exported_resource_is_a_class => check_exported_resource,
            imported_resource_in_exports => check_imported_resource_in_exports,
            imports_called_from_the_script => check_imports,
            math_random_is_reseeded_after_init => check_random_reseeded,
            runtime_selftest => check_selftest,
            snapshot_by_the_init_stage_runs_without_init => check_snapshots);
    };
    (@each $suite:path: $($name:ident => $check:ident),*) => {
        $(
            #[test]
            fn $name() {
                $suite().$check();
            }
        )*
    };
}
