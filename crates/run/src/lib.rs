//! Runs the components componentize builds, in wasmtime 48: a wasi:cli
//! command ([`run_command`]), one exported function given as a WAVE call
//! ([`invoke`]), or a wasi:http component (a 0.2 `wasi:http/proxy` or a 0.3
//! `wasi:http/service`) as an HTTP/1.1 server ([`Server`], [`serve`]). These
//! are `componentize run` and `componentize serve`.
//!
//! Every component runs with WASI 0.2 and 0.3 from wasmtime-wasi and
//! wasi:http 0.2 and 0.3 from wasmtime-wasi-http; outgoing HTTP requests go out over plain HTTP/1.1
//! ([`componentize_outgoing::PlainHttp`]). What a component sees of the host
//! is its [`Sandbox`]: the folders and environment variables granted with
//! `--dir` and `--env`, spelled like `wasmtime run` (no network sockets, as in
//! `wasmtime run` without `-S inherit-network`).
//!
//! Compiled code is cached with wasmtime's code cache ([`engine`] with a
//! folder; the CLI uses `<componentize cache>/code`, like the pipeline), so
//! running the same component again does not compile it again.
//!
//! [`precompile`] compiles a component ahead of time into a `.cwasm`
//! (`componentize compile`, `componentize --precompile`), which [`load`]
//! loads without compiling. A `.cwasm` is native code for this host and this
//! build (wasmtime 48 with the configuration of [`engine`]); any other
//! wasmtime version or configuration refuses it, and the `.wasm` stays the
//! portable artifact. Load only `.cwasm` files you trust.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use componentize_run::{Sandbox, engine, load, run_command};
//! let engine = engine(None)?;
//! let component = load(&engine, "hello.wasm".as_ref())?;
//! let code = run_command(&engine, &component, &Sandbox::default(), "hello.wasm", &[])?;
//! std::process::exit(code);
//! # }
//! ```

#![deny(missing_docs)]

// From the component file to a running instance, then what runs in it.
mod engine;
mod host;
mod sandbox;
// A wasi:cli command or an exported function.
mod command;
// An HTTP server: connections, one request, body limits, shared 0.3
// instances.
mod handler;
mod limits;
mod serve;
mod service;

pub use command::{TRAP_EXIT_CODE, exit_code, invoke, run_command};
pub use engine::{DENSE_IMAGE_LIMIT, engine, load, precompile};
pub use handler::ResponseBody;
pub use host::{Host, linker};
pub use limits::{DEFAULT_MAX_REQUEST_BODY, DEFAULT_MAX_RESPONSE_BODY, parse_bytes};
pub use sandbox::Sandbox;
pub use serve::{
    DEFAULT_ADDR, DEFAULT_INSTANCE_CONCURRENCY, DEFAULT_INSTANCE_REUSE, SHUTDOWN_GRACE,
    ServeOptions, Server, serve,
};
pub use service::IDLE_INSTANCE_TIMEOUT;
