//! What a store holds for one instance (WASI, wasi:http and their resource
//! table) and the linker that gives a component WASI 0.2 and wasi:http.

use crate::sandbox::Sandbox;
use anyhow::Result;
use componentize_outgoing::PlainHttp;
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The data of a store running one instance: its WASI context (from a
/// [`Sandbox`](crate::Sandbox)), its wasi:http context and the resources
/// both hand out. Outgoing HTTP requests go through [`PlainHttp`].
pub struct Host {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: PlainHttp,
}

impl Host {
    /// A store for one instance of a server's component, in its request
    /// sandbox.
    pub(crate) fn store(engine: &Engine, sandbox: &Sandbox) -> Result<Store<Host>> {
        Ok(Store::new(engine, Host::new(sandbox.handler()?)))
    }

    /// A host for an instance that sees `wasi`.
    pub fn new(wasi: WasiCtx) -> Host {
        Host {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: PlainHttp,
        }
    }
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// A linker with WASI 0.2 and 0.3 (wasmtime-wasi) and wasi:http 0.2 and 0.3
/// (wasmtime-wasi-http), all asynchronous: instances are driven by tokio.
pub fn linker(engine: &Engine) -> Result<Linker<Host>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// Links `component` with `linker` once, for many instances. An import the
/// linker does not provide is an error naming it.
pub(crate) fn prepare(linker: &Linker<Host>, component: &Component) -> Result<InstancePre<Host>> {
    linker.instantiate_pre(component).map_err(|e| {
        anyhow::Error::from(e).context(
            "the component needs an import that neither WASI (0.2 or 0.3) nor wasi:http (0.2 or \
             0.3) provides (componentize run and serve provide only those)",
        )
    })
}

/// The names of the component's top-level exports, for messages.
pub(crate) fn export_names(engine: &Engine, component: &Component) -> String {
    let names: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| format!("`{name}`"))
        .collect();
    match names.is_empty() {
        true => "nothing".to_string(),
        false => names.join(", "),
    }
}
