//! WASIp3 `wasi:http/handler` services: an instance answers many requests at
//! once. wasmtime-wasi-http's [`ProxyHandler`] runs each instance in one
//! store under `run_concurrent` and feeds it requests through a queue; this
//! file says how instances are made (the sandbox, the snapshot), how many
//! requests each takes, and when an idle one is dropped.

use crate::host::Host;
use crate::sandbox::Sandbox;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, Proxy, ProxyHandler, ShouldAccept, WorkerExpiration, WorkerState,
    WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;

/// The export that makes a component a WASIp3 HTTP service (any 0.3.x).
pub(crate) const HANDLER: &str = "wasi:http/handler@0.3.0";

/// How long an instance with nothing to do is kept for the next request.
pub const IDLE_INSTANCE_TIMEOUT: Duration = Duration::from_secs(1);

/// How many requests one instance of a WASIp3 service takes: in all, and at
/// the same time. Past the first, a new instance starts (from the snapshot).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Reuse {
    pub requests: usize,
    pub concurrent: usize,
}

/// Makes the instances of one service: each a fresh store in `sandbox`.
pub(crate) struct Instances {
    pre: ServicePre<Host>,
    sandbox: Sandbox,
    reuse: Reuse,
}

/// Requests go to instances of `pre`, at most `reuse` each.
pub(crate) fn handler(pre: ServicePre<Host>, sandbox: Sandbox, reuse: Reuse) -> Service {
    ProxyHandler::new(Instances {
        pre,
        sandbox,
        reuse,
    })
}

/// The dispatcher [`crate::handler::Handler`] hands WASIp3 requests to.
pub(crate) type Service = ProxyHandler<Instances>;

impl HandlerState for Instances {
    type StoreData = Host;
    type WorkerExpiration = IdleTimer;
    type WorkerState = Limits;

    async fn instantiate(&self) -> wasmtime::Result<Instance<Host, IdleTimer, Limits>> {
        let wasi = self
            .sandbox
            .handler()
            .map_err(wasmtime::Error::from_anyhow)?;
        let mut store = Store::new(self.pre.engine(), Host::new(wasi));
        let service = self.pre.instantiate_async(&mut store).await?;
        Ok(Instance {
            store,
            proxy: Proxy::P3(service),
            view: <Host as WasiHttpView>::http,
            expiration: IdleTimer::default(),
            state: Limits(self.reuse),
        })
    }
}

/// Ends an instance once it was idle for [`IDLE_INSTANCE_TIMEOUT`]. Busy
/// instances do not expire: a request takes as long as its handler does.
#[derive(Default)]
pub(crate) struct IdleTimer {
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl WorkerExpiration for IdleTimer {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        since: Instant,
    ) -> Poll<()> {
        if status != WorkerStatus::Idle {
            self.sleep = None;
            return Poll::Pending;
        }
        let deadline = tokio::time::Instant::from_std(since + IDLE_INSTANCE_TIMEOUT);
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        sleep.as_mut().poll(cx)
    }
}

/// The [`Reuse`] limits of one instance, and what is logged when it fails.
pub(crate) struct Limits(Reuse);

impl WorkerState for Limits {
    type StoreData = Host;
    type RequestData = ();

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.0.requests {
            ShouldAccept::Never
        } else if concurrent >= self.0.concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        _: StoreContextMut<'_, Host>,
        (): (),
        _: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        // No deadline: a request may stream for as long as its client reads.
        Box::pin(std::future::pending())
    }

    fn drop(&self, _: Store<Host>, result: wasmtime::Result<()>) {
        // The requests in flight were answered 500 with the same error; this
        // says that they shared an instance and that it is gone.
        if let Err(e) = result {
            let e = anyhow::Error::from(e);
            eprintln!(
                "error: a wasi:http/handler instance failed, and with it every request it was \
                 answering: {}",
                crate::handler::one_line(&e)
            );
        }
    }
}
