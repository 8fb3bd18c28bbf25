//! Shared by the init tests: the fixture libraries, the linked test
//! component (bindings + libsnapinterp + libsnaptable + libc), one engine per
//! test binary with a cache of compiled components, and a typed client for
//! the `snapdemo` world.
//!
//! Needs the fixtures: `bash fixtures/toolchain.sh`.
#![allow(dead_code)]

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use wasmtime::component::{Component, Instance, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wit_parser::{Resolve, WorldId};

pub const INTERPRETER: &str = "libsnapinterp.so";

/// `<target>/fixtures/current`, built by `fixtures/toolchain.sh`.
pub fn fixtures_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FIXTURES_DIR") {
        return dir.into();
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => PathBuf::from(t),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
    };
    target.join("fixtures/current")
}

pub fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

fn read_fixture(rel: &str) -> Vec<u8> {
    let path = fixtures_dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); build the fixtures first: bash fixtures/toolchain.sh",
            path.display()
        )
    })
}

pub struct Libraries {
    pub interpreter: Vec<u8>,
    pub table: Vec<u8>,
    pub libc: Vec<u8>,
}

pub fn libraries() -> &'static Libraries {
    static LIBS: OnceLock<Libraries> = OnceLock::new();
    LIBS.get_or_init(|| Libraries {
        interpreter: read_fixture("lib/libsnapinterp.so"),
        table: read_fixture("lib/libsnaptable.so"),
        libc: read_fixture("sysroot/lib/wasm32-wasip2/libc.so"),
    })
}

/// The `snapdemo` world and the same world with the init export.
pub fn worlds() -> (Resolve, WorldId, WorldId) {
    let mut resolve = Resolve::default();
    let pkg = resolve
        .push_file(repo_file("fixtures/init/snapdemo.wit"))
        .expect("fixtures/init/snapdemo.wit");
    let user = resolve.select_world(&[pkg], Some("snapdemo")).unwrap();
    let with_init = componentize_init::add_init_export(&mut resolve, user).unwrap();
    (resolve, user, with_init)
}

/// Links generated bindings for `world` with the interpreter, its table
/// library and libc (interpreter first: it defines `cabi_realloc`).
pub fn link_world(resolve: &Resolve, world: WorldId) -> Result<Vec<u8>> {
    let bindings = componentize_generate::generate(
        resolve,
        world,
        &componentize_generate::Options {
            interpreter: Some(INTERPRETER.into()),
        },
    )?
    .into_wasm();
    let libs = libraries();
    let mut linker = wit_component::Linker::default();
    linker.library(INTERPRETER, &libs.interpreter, false)?;
    linker.library("bindings.so", &bindings, false)?;
    linker.library("libsnaptable.so", &libs.table, false)?;
    linker.library("libc.so", &libs.libc, false)?;
    linker.encoder().validate(true);
    linker.encode().context("linking the component")
}

/// The linked `snapdemo` component with the init export.
pub fn linked() -> &'static [u8] {
    static LINKED: OnceLock<Vec<u8>> = OnceLock::new();
    LINKED.get_or_init(|| {
        let (resolve, _, with_init) = worlds();
        link_world(&resolve, with_init).expect("linking snapdemo")
    })
}

/// The runtime every init in this test binary shares.
pub fn runtime() -> &'static componentize_init::Runtime {
    static RUNTIME: OnceLock<componentize_init::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| componentize_init::Runtime::with_incremental_cache().expect("runtime"))
}

/// `Init` on the shared runtime.
pub fn init(wasm: &[u8]) -> componentize_init::Init {
    componentize_init::Init::new(wasm.to_vec()).runtime(runtime())
}

/// The engine outputs run on (no epoch interruption, like a user's).
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.wasm_component_model(true).wasm_exceptions(true);
        config
            .enable_incremental_compilation(Arc::new(componentize_init::MemoryCache::default()))
            .unwrap();
        Engine::new(&config).unwrap()
    })
}

/// Compiles `wasm` once per test binary.
pub fn compile(wasm: &[u8]) -> Component {
    static CACHE: OnceLock<Mutex<HashMap<Vec<u8>, Component>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(c) = cache.lock().unwrap().get(wasm) {
        return c.clone();
    }
    let c = Component::new(engine(), wasm).expect("compiling a test component");
    cache.lock().unwrap().insert(wasm.to_vec(), c.clone());
    c
}

pub struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// An instance of a `snapdemo` component, with captured output.
pub struct Demo {
    pub store: Store<Host>,
    pub instance: Instance,
    pub stdout: MemoryOutputPipe,
    pub stderr: MemoryOutputPipe,
}

impl Demo {
    pub fn new(wasm: &[u8]) -> Demo {
        Demo::with_env(wasm, &[])
    }

    pub fn with_env(wasm: &[u8], env: &[(&str, &str)]) -> Demo {
        let component = compile(wasm);
        let stdout = MemoryOutputPipe::new(1 << 20);
        let stderr = MemoryOutputPipe::new(1 << 20);
        let mut b = WasiCtx::builder();
        b.stdout(stdout.clone()).stderr(stderr.clone());
        for (k, v) in env {
            b.env(k, v);
        }
        let mut linker = Linker::<Host>::new(engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
        let mut store = Store::new(
            engine(),
            Host {
                wasi: b.build(),
                table: ResourceTable::new(),
            },
        );
        let instance = linker
            .instantiate(&mut store, &component)
            .expect("instantiating");
        Demo {
            store,
            instance,
            stdout,
            stderr,
        }
    }

    fn call<P, R>(&mut self, name: &str, params: P) -> R
    where
        P: wasmtime::component::ComponentNamedList + wasmtime::component::Lower + Send + Sync,
        R: wasmtime::component::ComponentNamedList + wasmtime::component::Lift + Send + Sync,
    {
        let f = self
            .instance
            .get_typed_func::<P, R>(&mut self.store, name)
            .unwrap_or_else(|e| panic!("export `{name}`: {e:?}"));
        f.call(&mut self.store, params)
            .unwrap_or_else(|e| panic!("calling `{name}`: {e:?}"))
    }

    pub fn state(&mut self) -> String {
        self.call::<(), (String,)>("state", ()).0
    }

    pub fn get(&mut self, key: &str) -> Option<String> {
        self.call::<(&str,), (Option<String>,)>("get", (key,)).0
    }

    pub fn bump(&mut self) -> u32 {
        self.call::<(), (u32,)>("bump", ()).0
    }

    pub fn run(&mut self, line: &str) -> Result<String, String> {
        self.call::<(&str,), (Result<String, String>,)>("run", (line,))
            .0
    }

    /// Calls the init contract directly (what the snapshot replaces).
    pub fn init(&mut self, name: &str, source: &[u8]) -> Result<(), String> {
        let iface = self
            .instance
            .get_export_index(&mut self.store, None, componentize_init::INIT_INTERFACE)
            .expect("the init export");
        let f = self
            .instance
            .get_export_index(&mut self.store, Some(&iface), "init")
            .unwrap();
        let f = self
            .instance
            .get_typed_func::<(&str, &[u8]), (Result<(), String>,)>(&mut self.store, &f)
            .unwrap();
        f.call(&mut self.store, (name, source)).unwrap().0
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.contents()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }
}

/// The names a component exports, sorted.
pub fn export_names(wasm: &[u8]) -> Vec<String> {
    let component = compile(wasm);
    let ty = component.component_type();
    let mut names: Vec<String> = ty.exports(engine()).map(|(n, _)| n.to_string()).collect();
    names.sort();
    names
}

/// Number of start sections in the core modules of a component.
pub fn start_sections(wasm: &[u8]) -> usize {
    wasmparser::Parser::new(0)
        .parse_all(wasm)
        .filter(|p| matches!(p, Ok(wasmparser::Payload::StartSection { .. })))
        .count()
}

/// The `InitError` in an init failure.
pub fn init_error(err: &anyhow::Error) -> &componentize_init::InitError {
    err.downcast_ref::<componentize_init::InitError>()
        .unwrap_or_else(|| panic!("expected an InitError, got: {err:?}"))
}
