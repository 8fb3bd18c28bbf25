//! `componentize serve`: a wasi:http component as an HTTP/1.1 server, a
//! connection per tokio task, a graceful shutdown on SIGINT and SIGTERM. A
//! wasi:http 0.2 proxy gets a fresh instance per request; a wasi:http 0.3
//! service answers many requests with one instance, concurrently.

use crate::handler::{Handler, ResponseBody};
use crate::host::Host;
use crate::limits::{DEFAULT_MAX_REQUEST_BODY, DEFAULT_MAX_RESPONSE_BODY};
use crate::sandbox::Sandbox;
use crate::service::Reuse;
use anyhow::{Context, Result};
use http::{Request, Response};
use hyper::body::{Body, Bytes};
use hyper::server::conn::http1;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use wasmtime::component::Component;
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// The address `componentize serve` listens on by default: this host only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// How many requests one instance of a wasi:http 0.3 service answers by
/// default before a new one takes over (as `wasmtime serve`).
pub const DEFAULT_INSTANCE_REUSE: usize = 128;

/// How many requests one instance of a wasi:http 0.3 service answers at the
/// same time by default (as `wasmtime serve`).
pub const DEFAULT_INSTANCE_CONCURRENCY: usize = 16;

/// How long a shutdown waits for requests in flight before it closes their
/// connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Where the server listens, what each instance sees, the body limits, and
/// how wasi:http 0.3 instances are shared.
///
/// With the `cli` feature this is a set of `clap` arguments: `--addr`,
/// [`Sandbox`]'s `--dir` and `--env`, `--max-request-body` and
/// `--max-response-body` (sizes as [`parse_bytes`](crate::parse_bytes)
/// reads them), `--max-instance-reuse-count` and
/// `--max-instance-concurrent-reuse-count` (spelled as in `wasmtime serve`).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct ServeOptions {
    /// The address to listen on (port 0 picks a free port; the address
    /// served is printed).
    #[cfg_attr(feature = "cli", arg(long, value_name = "ADDR", default_value = DEFAULT_ADDR))]
    pub addr: SocketAddr,
    /// Answer 413 to a request whose body is larger.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "BYTES", default_value = "16MiB", value_parser = crate::parse_bytes)
    )]
    pub max_request_body: u64,
    /// Cut off a response whose body is larger (a 500 when its
    /// content-length says so, before the head is sent).
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "BYTES", default_value = "256MiB", value_parser = crate::parse_bytes)
    )]
    pub max_response_body: u64,
    /// A wasi:http 0.3 service: how many requests one instance answers
    /// before a fresh one (from the snapshot) takes over. No effect on
    /// wasi:http 0.2, whose every request gets a fresh instance.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "N", default_value_t = DEFAULT_INSTANCE_REUSE,
            value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))
    )]
    pub max_instance_reuse_count: usize,
    /// A wasi:http 0.3 service: how many requests one instance answers at
    /// the same time; more start another instance.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "N", default_value_t = DEFAULT_INSTANCE_CONCURRENCY,
            value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))
    )]
    pub max_instance_concurrent_reuse_count: usize,
    /// What each request's instance sees (last: clap gives the fields after
    /// it its help heading).
    #[cfg_attr(feature = "cli", command(flatten))]
    pub sandbox: Sandbox,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            addr: DEFAULT_ADDR.parse().expect("the default address parses"),
            sandbox: Sandbox::default(),
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            max_response_body: DEFAULT_MAX_RESPONSE_BODY,
            max_instance_reuse_count: DEFAULT_INSTANCE_REUSE,
            max_instance_concurrent_reuse_count: DEFAULT_INSTANCE_CONCURRENCY,
        }
    }
}

/// A wasi:http component ready to answer requests, linked once. Each
/// request to a wasi:http 0.2 proxy gets a fresh instance, so no state of
/// one request reaches the next. A wasi:http 0.3 service answers up to
/// `--max-instance-concurrent-reuse-count` requests at once with one
/// instance, and `--max-instance-reuse-count` in all, so its global state
/// is shared by those requests. Either way every instance starts from the
/// snapshot. Cloning is cheap.
#[derive(Clone)]
pub struct Server {
    handler: Arc<Handler>,
}

impl Server {
    /// Links `component` for serving with `options` (the address is used by
    /// [`serve`] only). A component that exports neither
    /// `wasi:http/incoming-handler@0.2.x` nor `wasi:http/handler@0.3.x`, an
    /// import neither WASI nor wasi:http provides, and a `--dir` folder that
    /// cannot be opened are errors.
    pub fn new(engine: &Engine, component: &Component, options: &ServeOptions) -> Result<Server> {
        let handler = Handler::new(
            engine,
            component,
            &options.sandbox,
            options.max_request_body,
            options.max_response_body,
            Reuse {
                requests: options.max_instance_reuse_count,
                concurrent: options.max_instance_concurrent_reuse_count,
            },
        )?;
        Ok(Server {
            handler: Arc::new(handler),
        })
    }

    /// Answers one request in process, as a connection would: an instance
    /// (fresh for wasi:http 0.2), the body limits, 500 for a failed handler. The request
    /// needs an authority (an absolute URI or a `host` header).
    pub async fn respond<B>(&self, request: Request<B>) -> Response<ResponseBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        self.handler.respond(request).await
    }

    /// The pre-instantiated wasi:http 0.2 component every request is served
    /// from; `None` for a wasi:http 0.3 service.
    pub fn pre(&self) -> Option<&ProxyPre<Host>> {
        self.handler.pre()
    }

    /// A store as one request gets it (its sandbox), for instantiating
    /// [`Server::pre`] by hand.
    pub fn store(&self) -> Result<Store<Host>> {
        self.handler.store()
    }

    /// Serves HTTP/1.1 connections from `listener`, each in a task of its
    /// own (keep-alive), until `shutdown` resolves; then stops accepting,
    /// lets the requests in flight finish (at most [`SHUTDOWN_GRACE`]) and
    /// returns.
    pub async fn run(&self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let handler = self.handler.clone();
                        let stopping = stopping.clone();
                        connections.spawn(connection(handler, stream, stopping));
                    }
                    Err(e) => {
                        // Out of file descriptors, say: wait for some to close.
                        eprintln!("error: accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                // Reap finished connections as they end.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        let _ = stop.send(true);
        let drained = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
            eprintln!(
                "warning: {} connection(s) still busy {}s after the shutdown began: closed",
                connections.len(),
                SHUTDOWN_GRACE.as_secs()
            );
            connections.abort_all();
        }
        self.handler.stopped();
    }
}

/// Serves one connection until the client closes it or the server stops
/// (then the request in flight, if any, finishes first).
async fn connection(
    handler: Arc<Handler>,
    stream: tokio::net::TcpStream,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    // A streamed response leaves in several writes (the head, each body
    // chunk). With Nagle's algorithm a small write waits for the ACK of the
    // one before, which the client's delayed ACK holds back for 40 ms.
    if let Err(e) = stream.set_nodelay(true) {
        eprintln!("warning: setting TCP_NODELAY on a connection: {e}");
    }
    let service = hyper::service::service_fn(move |request| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler.respond(request).await) }
    });
    let connection = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    // Client errors (a reset, a malformed request) end only their
    // connection; hyper answers a malformed request with 400 itself.
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = stopping.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Serves `component` on `options.addr` until SIGINT (Ctrl-C) or SIGTERM,
/// printing `Serving HTTP on http://ADDR/` (the address bound, so a port 0
/// shows the port) to stderr once listening; then shuts down gracefully
/// (see [`Server::run`]). Blocks; runs its own multi-threaded tokio runtime.
pub fn serve(engine: &Engine, component: &Component, options: &ServeOptions) -> Result<()> {
    let server = Server::new(engine, component, options)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        // Signals are caught before anyone can know the address, so a
        // signal sent right after the line below shuts down gracefully.
        let shutdown = shutdown_signal()?;
        let addr = options.addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| listen_error(addr, e))?;
        let bound = listener
            .local_addr()
            .context("reading the address served")?;
        eprintln!("Serving HTTP on http://{bound}/");
        server.run(listener, shutdown).await;
        Ok(())
    })
}

/// Resolves at the first SIGINT or SIGTERM.
fn shutdown_signal() -> Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot catch SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot catch SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Why the server cannot listen on `addr`, with the fix.
fn listen_error(addr: SocketAddr, e: std::io::Error) -> anyhow::Error {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "cannot listen on {addr}: the address is in use (another server listens there); \
             choose another --addr, or port 0 for any free port"
        ),
        _ => anyhow::Error::from(e).context(format!("cannot listen on {addr}")),
    }
}
