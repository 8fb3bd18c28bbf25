//! WASIp3 `wasi:http/handler` services: an instance answers many requests at
//! once. Each instance is a store running `run_concurrent`, fed requests
//! through a channel; a request goes to the first instance with room (fewer
//! than `concurrent` requests waiting for their response head), so a burst
//! stays on one instance until it is full, and a new instance (from the
//! snapshot) starts only then.

use crate::host::Host;
use crate::sandbox::Sandbox;
use anyhow::{Result, anyhow};
use componentize_outgoing::PlainHttp;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use http::{Request, Response};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use wasmtime::component::Accessor;
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::p3::bindings::{Service as Bindings, ServicePre};

/// The export that makes a component a WASIp3 HTTP service (any 0.3.x).
pub(crate) const HANDLER: &str = "wasi:http/handler@0.3.0";

/// How long an instance with nothing to do is kept for the next request.
pub const IDLE_INSTANCE_TIMEOUT: Duration = Duration::from_secs(1);

/// How many requests one instance of a WASIp3 service takes: in all, and at
/// the same time. Past either, a new instance starts (from the snapshot).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Reuse {
    pub requests: usize,
    pub concurrent: usize,
}

/// The instances of one service, made as requests need them.
pub(crate) struct Service {
    pool: Arc<Pool>,
}

struct Pool {
    pre: ServicePre<Host>,
    sandbox: Sandbox,
    reuse: Reuse,
    /// The instances that take requests, oldest first.
    open: Mutex<Vec<Entry>>,
    next_id: AtomicU64,
    /// Set once the server stopped: instances dropped then (with the
    /// runtime) are not failures to log.
    stopped: AtomicBool,
}

/// An instance that takes requests: its queue and its load.
struct Entry {
    id: u64,
    jobs: mpsc::UnboundedSender<Job>,
    accepted: usize,
    in_flight: Arc<AtomicUsize>,
}

/// A request and where its response (or the reason for a 500) goes.
struct Job {
    request: Request<WasiBody>,
    reply: oneshot::Sender<Result<Response<WasiBody>>>,
}

impl Service {
    /// Requests go to instances of `pre` in `sandbox`, at most `reuse` each.
    pub fn new(pre: ServicePre<Host>, sandbox: Sandbox, reuse: Reuse) -> Service {
        Service {
            pool: Arc::new(Pool {
                pre,
                sandbox,
                reuse,
                open: Mutex::default(),
                next_id: AtomicU64::new(0),
                stopped: AtomicBool::new(false),
            }),
        }
    }

    /// The response to `request` once the handler returned it (its body
    /// streams on), or why there is none.
    pub async fn handle(&self, request: Request<WasiBody>) -> Result<Response<WasiBody>> {
        let (reply, answer) = oneshot::channel();
        self.pool.dispatch(Job { request, reply });
        answer.await.unwrap_or_else(|_| {
            Err(anyhow!(
                "the wasi:http/handler instance answering it failed (logged once, above)"
            ))
        })
    }

    /// The server stopped: instances dropped from now on are not logged.
    pub fn stopped(&self) {
        self.pool.stopped.store(true, Ordering::Relaxed);
    }
}

impl Pool {
    /// Queues `job` on the first instance with room, or on a new one.
    fn dispatch(self: &Arc<Self>, job: Job) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let room = |e: &Entry| e.in_flight.load(Ordering::Relaxed) < self.reuse.concurrent;
        let at = match open.iter().position(room) {
            Some(at) => at,
            None => {
                open.push(self.start());
                open.len() - 1
            }
        };
        let entry = &mut open[at];
        entry.accepted += 1;
        entry.in_flight.fetch_add(1, Ordering::Relaxed);
        // A worker that just failed drops the job, and so its reply: the
        // request is answered 500.
        let _ = entry.jobs.send(job);
        if entry.accepted >= self.reuse.requests {
            // Its queue closes: it answers what it has, then ends.
            open.remove(at);
        }
    }

    /// Starts an instance's worker; its entry for [`Pool::open`].
    fn start(self: &Arc<Self>) -> Entry {
        let (jobs, queue) = mpsc::unbounded_channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(worker(self.clone(), id, queue, in_flight.clone()));
        Entry {
            id,
            jobs,
            accepted: 0,
            in_flight,
        }
    }

    /// Takes instance `id` out of [`Pool::open`] (if it is still there), so
    /// that its queue closes.
    fn retire(&self, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|e| e.id != id);
    }
}

/// Runs one instance until its queue closed and its work is done; logs its
/// failure (the requests it was answering get 500).
async fn worker(
    pool: Arc<Pool>,
    id: u64,
    queue: mpsc::UnboundedReceiver<Job>,
    in_flight: Arc<AtomicUsize>,
) {
    let result = serve(&pool, id, queue, &in_flight).await;
    pool.retire(id);
    if let Err(e) = result
        && !pool.stopped.load(Ordering::Relaxed)
    {
        eprintln!(
            "error: a wasi:http/handler instance failed, and with it every request it was \
             answering: {}",
            crate::handler::one_line(&e)
        );
    }
}

/// Instantiates the service and answers the jobs of `queue` concurrently.
/// When idle for [`IDLE_INSTANCE_TIMEOUT`] it retires; once its queue is
/// closed and empty, it waits for the guest's remaining work (bodies still
/// streaming) and returns.
async fn serve(
    pool: &Pool,
    id: u64,
    mut queue: mpsc::UnboundedReceiver<Job>,
    in_flight: &AtomicUsize,
) -> Result<()> {
    let mut store = Host::store(pool.pre.engine(), &pool.sandbox)?;
    let service = pool
        .pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| anyhow::Error::from(e).context("instantiating the service"))?;
    let service = &service;
    let answered = store
        .run_concurrent(async |accessor| -> wasmtime::Result<()> {
            let mut calls = FuturesUnordered::new();
            let idle = tokio::time::sleep(IDLE_INSTANCE_TIMEOUT);
            tokio::pin!(idle);
            let (mut open, mut retired) = (true, false);
            loop {
                tokio::select! {
                    job = queue.recv(), if open => match job {
                        Some(job) => calls.push(call(accessor, service, job, in_flight)),
                        None => open = false,
                    },
                    Some(done) = calls.next() => {
                        done?;
                        idle.as_mut().reset(tokio::time::Instant::now() + IDLE_INSTANCE_TIMEOUT);
                    }
                    () = &mut idle, if open && !retired && calls.is_empty() => {
                        // What was queued meanwhile is still answered.
                        pool.retire(id);
                        retired = true;
                    }
                    else => break,
                }
            }
            std::future::poll_fn(|cx| accessor.poll_no_interesting_tasks(cx)).await;
            Ok(())
        })
        .await?;
    Ok(answered?)
}

/// Calls `handle` for `job` and sends the response back; a trap ends the
/// instance (the error is returned).
async fn call(
    accessor: &Accessor<Host>,
    service: &Bindings,
    job: Job,
    in_flight: &AtomicUsize,
) -> wasmtime::Result<()> {
    let Job { request, reply } = job;
    // The hooks every instance has (`Host`): they drop the headers a guest
    // must not see.
    let (request, io) = wasmtime_wasi_http::p3::Request::from_http(&mut PlainHttp, request);
    let outcome = service.handle(accessor, request).await;
    in_flight.fetch_sub(1, Ordering::Relaxed);
    let answer = match outcome {
        Ok(Ok(response)) => accessor
            .with(|mut store| response.into_http(&mut store, io))
            .map_err(anyhow::Error::from),
        Ok(Err(code)) => Err(anyhow!("{code:?}")),
        Err(trap) => {
            let trap = anyhow::Error::from(trap);
            let message = crate::handler::one_line(&trap);
            let _ = reply.send(Err(anyhow!("{message}")));
            return Err(wasmtime::format_err!("{message}"));
        }
    };
    let _ = reply.send(answer);
    Ok(())
}
