//! Shared by the init tests: the toolchain's test libraries, the linked test
//! component (bindings + libsnapinterp + libsnaptable + libc), one init
//! runtime per test binary, and a typed client for the `snapdemo` world.
//!
//! Needs the toolchain build: `bash toolchain/build.sh`.
#![allow(dead_code)]

use anyhow::{Context, Result};
use componentize_contract::{INIT_FUNCTION, INIT_INTERFACE};
use componentize_testkit::{Captured, Host, HostBuilder};
use std::sync::OnceLock;
use wasmtime::Store;
use wasmtime::component::Instance;
use wit_parser::{Resolve, WorldId};

pub const INTERPRETER: &str = "libsnapinterp.so";

pub struct Libraries {
    pub interpreter: &'static [u8],
    pub table: &'static [u8],
    pub libc: &'static [u8],
}

pub fn libraries() -> Libraries {
    use componentize_testkit::toolchain_file;
    Libraries {
        interpreter: toolchain_file("lib/libsnapinterp.so"),
        table: toolchain_file("lib/libsnaptable.so"),
        libc: toolchain_file(componentize_testkit::LIBC),
    }
}

/// The `snapdemo` world and the same world with the init export.
pub fn worlds() -> (Resolve, WorldId, WorldId) {
    let mut resolve = Resolve::default();
    let pkg = resolve
        .push_file(componentize_testkit::repo_file(
            "fixtures/init/snapdemo.wit",
        ))
        .expect("fixtures/init/snapdemo.wit");
    let user = resolve.select_world(&[pkg], Some("snapdemo")).unwrap();
    let with_init = componentize_contract::add_init_export(&mut resolve, user).unwrap();
    (resolve, user, with_init)
}

/// Links generated bindings for `world` with the interpreter, its table
/// library and libc (interpreter first: it defines `cabi_realloc`).
pub fn link_world(resolve: &Resolve, world: WorldId) -> Result<Vec<u8>> {
    let bindings = componentize_generate::generate(
        resolve,
        world,
        componentize_generate::Options::default().interpreter(INTERPRETER),
    )?
    .into_wasm();
    let libs = libraries();
    let mut linker = wit_component::Linker::default();
    linker.library(INTERPRETER, libs.interpreter, false)?;
    linker.library("bindings.so", &bindings, false)?;
    linker.library("libsnaptable.so", libs.table, false)?;
    linker.library("libc.so", libs.libc, false)?;
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

/// The runtime every init in this test binary shares, with the test
/// binary's incremental compilation cache.
pub fn runtime() -> &'static componentize_init::Runtime {
    static RUNTIME: OnceLock<componentize_init::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        componentize_init::Runtime::builder()
            .function_cache(componentize_testkit::memory_cache())
            .build()
            .expect("runtime")
    })
}

/// Compiles a snapshot of a component that imports nothing and
/// instantiates it in a fresh store, to call its exports.
pub fn instantiate_plain(wasm: &[u8]) -> (Store<()>, Instance) {
    let component = componentize_testkit::compile(wasm).unwrap();
    let engine = componentize_testkit::engine();
    let mut store = Store::new(engine, ());
    let instance = wasmtime::component::Linker::new(engine)
        .instantiate(&mut store, &component)
        .unwrap();
    (store, instance)
}

/// `Init` on the shared runtime.
pub fn init(wasm: &[u8]) -> componentize_init::Init {
    let mut init = componentize_init::Init::new(wasm);
    init.runtime(runtime());
    init
}

/// An instance of a `snapdemo` component, with captured output.
pub struct Demo {
    pub store: Store<Host>,
    pub instance: Instance,
    pub output: Captured,
}

impl Demo {
    pub fn new(wasm: &[u8]) -> Demo {
        Demo::with_env(wasm, &[])
    }

    pub fn with_env(wasm: &[u8], env: &[(&str, &str)]) -> Demo {
        let component = componentize_testkit::compile(wasm).unwrap();
        let mut host = HostBuilder::new();
        for (k, v) in env {
            host.env(k, v);
        }
        let (mut store, output) = host.store(());
        let instance = componentize_testkit::linker()
            .instantiate(&mut store, &component)
            .expect("instantiating");
        Demo {
            store,
            instance,
            output,
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
            .get_export_index(&mut self.store, None, INIT_INTERFACE)
            .expect("the init export");
        let f = self
            .instance
            .get_export_index(&mut self.store, Some(&iface), INIT_FUNCTION)
            .unwrap();
        let f = self
            .instance
            .get_typed_func::<(&str, &[u8]), (Result<(), String>,)>(&mut self.store, &f)
            .unwrap();
        f.call(&mut self.store, (name, source)).unwrap().0
    }

    pub fn stdout(&self) -> String {
        self.output.stdout()
    }

    pub fn stderr(&self) -> String {
        self.output.stderr()
    }
}

/// The names a component exports, sorted.
pub fn export_names(wasm: &[u8]) -> Vec<String> {
    let component = componentize_testkit::compile(wasm).unwrap();
    let ty = component.component_type();
    let mut names: Vec<String> = ty
        .exports(componentize_testkit::engine())
        .map(|(n, _)| n.to_string())
        .collect();
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
