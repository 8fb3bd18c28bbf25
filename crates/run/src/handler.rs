//! One HTTP request: for a wasi:http 0.2 proxy, a fresh instance from the
//! pre-instantiated component and its `wasi:http/incoming-handler.handle`;
//! for a wasi:http 0.3 service, a call of `wasi:http/handler.handle` on an
//! instance it shares with other requests ([`crate::service`]). Either way
//! the body limits are applied and failures answered with 500 and logged.

use crate::host::{Host, export_names, linker, prepare};
use crate::limits::{LimitedRequest, LimitedResponse};
use crate::sandbox::Sandbox;
use crate::service::{HANDLER, Reuse, Service};
use anyhow::{Result, anyhow, bail};
use http::{Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmtime::component::Component;
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::{Error, WasiBody, WasiHttpView};

/// The body of every response the server sends: the handler's, limited, or
/// a short text of the server's own (413, 500).
pub type ResponseBody = UnsyncBoxBody<Bytes, Error>;

/// The export that makes a component a wasi:http proxy (any 0.2.x).
const INCOMING_HANDLER: &str = "wasi:http/incoming-handler@0.2.0";

/// Answers requests with instances of one pre-instantiated component.
pub(crate) struct Handler {
    kind: Kind,
    engine: Engine,
    sandbox: Sandbox,
    max_request_body: u64,
    max_response_body: u64,
}

/// Which wasi:http the component serves, and how its instances are made.
enum Kind {
    /// wasi:http 0.2: a fresh instance per request.
    Proxy(ProxyPre<Host>),
    /// wasi:http 0.3: instances shared by concurrent requests.
    Service(Service),
}

impl Handler {
    /// Links `component` once. A component that exports neither
    /// `wasi:http/incoming-handler@0.2.x` nor `wasi:http/handler@0.3.x`, an
    /// import neither WASI nor wasi:http provides, and a folder of `sandbox`
    /// that cannot be opened are errors. A component exporting both is
    /// served as a wasi:http 0.3 service, `reuse` instances at a time.
    pub fn new(
        engine: &Engine,
        component: &Component,
        sandbox: &Sandbox,
        max_request_body: u64,
        max_response_body: u64,
        reuse: Reuse,
    ) -> Result<Handler> {
        let exports = |name| component.get_export_index(None, name).is_some();
        let (p3, p2) = (exports(HANDLER), exports(INCOMING_HANDLER));
        if !p3 && !p2 {
            bail!(
                "the component is not an HTTP service: it exports neither \
                 `wasi:http/incoming-handler@0.2.x` (wasi:http/proxy) nor \
                 `wasi:http/handler@0.3.x` (wasi:http/service); it exports {}",
                export_names(engine, component)
            );
        }
        let pre = prepare(&linker(engine)?, component)?;
        let kind = if p3 {
            let pre = ServicePre::new(pre).map_err(|e| {
                anyhow::Error::from(e).context(
                    "the component's `wasi:http/handler` export does not have the type of \
                     wasi:http 0.3",
                )
            })?;
            Kind::Service(Service::new(pre, sandbox.clone(), reuse))
        } else {
            let pre = ProxyPre::new(pre).map_err(|e| {
                anyhow::Error::from(e).context(
                    "the component's `wasi:http/incoming-handler` export does not have the type \
                     of wasi:http 0.2",
                )
            })?;
            Kind::Proxy(pre)
        };
        // Open the folders once now: a missing one fails here, not at every
        // request.
        sandbox.handler()?;
        Ok(Handler {
            kind,
            engine: engine.clone(),
            sandbox: sandbox.clone(),
            max_request_body,
            max_response_body,
        })
    }

    /// The pre-instantiated wasi:http 0.2 component; `None` for a 0.3
    /// service, whose instances the service makes itself.
    pub fn pre(&self) -> Option<&ProxyPre<Host>> {
        match &self.kind {
            Kind::Proxy(pre) => Some(pre),
            Kind::Service(_) => None,
        }
    }

    /// A store for one instance, in the request sandbox.
    pub fn store(&self) -> Result<Store<Host>> {
        Host::store(&self.engine, &self.sandbox)
    }

    /// Says that the server stopped: wasi:http 0.3 instances dropped from
    /// now on (with the runtime) are not failures to log.
    pub fn stopped(&self) {
        if let Kind::Service(service) = &self.kind {
            service.stopped();
        }
    }

    /// Answers `request`. Never fails: what goes wrong
    /// is a 413 (request body over the limit) or a 500 logged to stderr with
    /// the request's method and path.
    pub async fn respond<B>(&self, request: Request<B>) -> Response<ResponseBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Error>,
    {
        let name: Arc<str> = format!("{} {}", request.method(), request.uri().path()).into();
        if declared_length(request.headers()).is_some_and(|n| n > self.max_request_body) {
            return self.too_large();
        }
        let over = Arc::new(AtomicBool::new(false));
        let limit = self.max_request_body;
        let request = request.map(|body| LimitedRequest::new(body, limit, over.clone()));
        let response = match &self.kind {
            Kind::Proxy(pre) => self.handle(pre, request, &name).await,
            Kind::Service(service) => service
                .handle(request.map(BodyExt::boxed_unsync))
                .await
                .map_err(|e| e.context("the handler failed")),
        };
        match response {
            Ok(response) => {
                let declared = declared_length(response.headers());
                if declared.is_some_and(|n| n > self.max_response_body) {
                    let limit = self.max_response_body;
                    return failed(
                        &name,
                        &anyhow!(
                            "the response's content-length is over the limit of {limit} bytes \
                             (--max-response-body)"
                        ),
                    );
                }
                let limit = self.max_response_body;
                response.map(|body| LimitedResponse::new(body, limit, name).boxed_unsync())
            }
            Err(_) if over.load(Ordering::Relaxed) => self.too_large(),
            Err(e) => failed(&name, &e),
        }
    }

    /// Instantiates `pre` and calls its handler with `request`;
    /// the response once the handler set it. The handler keeps running in
    /// its own task while the body streams; an error after the response
    /// was set is logged, naming the request `name`.
    async fn handle<B>(
        &self,
        pre: &ProxyPre<Host>,
        request: Request<B>,
        name: &Arc<str>,
    ) -> Result<Response<WasiBody>>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Error>,
    {
        let mut store = self.store()?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let http = &mut store.data_mut().http();
        let request = http.new_incoming_request(Scheme::Http, request)?;
        let out = http.new_response_outparam(sender)?;
        let pre = pre.clone();
        let task = tokio::task::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, out)
                .await
        });
        match receiver.await {
            Ok(Ok(response)) => {
                let name = name.clone();
                tokio::task::spawn(async move {
                    if let Err(e) = finished(task).await {
                        log(&name, &e.context("after the handler set the response"));
                    }
                });
                Ok(response)
            }
            Ok(Err(code)) => {
                // The handler's own error, if it failed too, says more.
                finished(task).await?;
                Err(anyhow!("the handler answered with the error code {code:?}"))
            }
            Err(_) => match finished(task).await {
                Ok(()) => Err(anyhow!(
                    "the handler returned without setting a response \
                     (`response-outparam.set`)"
                )),
                Err(e) => Err(e),
            },
        }
    }

    /// 413, naming the limit.
    fn too_large(&self) -> Response<ResponseBody> {
        let limit = self.max_request_body;
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over the limit of {limit} bytes\n"),
        )
    }
}

/// The outcome of the handler's task.
async fn finished(task: tokio::task::JoinHandle<wasmtime::Result<()>>) -> Result<()> {
    match task.await {
        Ok(result) => result.map_err(anyhow::Error::from),
        Err(e) => Err(anyhow!("the handler's task failed: {e}")),
    }
}

/// The `content-length` a message declares, if any (an unparsable one is
/// left to wasmtime-wasi-http, which refuses it).
fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Logs `error` for the request `name` and answers 500.
fn failed(name: &str, error: &anyhow::Error) -> Response<ResponseBody> {
    log(name, error);
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal server error\n".to_string(),
    )
}

/// One line on stderr: the request and the error chain, without wasm
/// backtraces (each on many lines).
fn log(name: &str, error: &anyhow::Error) {
    eprintln!("error: {name}: {}", one_line(error));
}

/// The messages of `error`'s chain joined with `: `, each cut at its first
/// line, leaving out wasmtime's backtrace header.
pub(crate) fn one_line(error: &anyhow::Error) -> String {
    let parts: Vec<String> = error
        .chain()
        .map(|e| {
            let text = e.to_string();
            text.lines()
                .next()
                .unwrap_or_default()
                .trim_end_matches(':')
                .to_string()
        })
        .filter(|line| !line.is_empty() && line != "error while executing at wasm backtrace")
        .collect();
    parts.join(": ")
}

/// A `text/plain` response of the server's own.
fn text(status: StatusCode, body: String) -> Response<ResponseBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_logged_on_one_line() {
        let e = anyhow!("wasm trap: unreachable\nmore detail")
            .context("error while executing at wasm backtrace:\n    0: 0x1 - f\n    1: 0x2 - g")
            .context("after the response head was sent");
        assert_eq!(
            one_line(&e),
            "after the response head was sent: wasm trap: unreachable"
        );
    }

    #[test]
    fn declared_lengths_are_read_when_valid() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(declared_length(&headers), None);
        headers.insert(header::CONTENT_LENGTH, "1048576".parse().unwrap());
        assert_eq!(declared_length(&headers), Some(1 << 20));
        headers.insert(header::CONTENT_LENGTH, "lots".parse().unwrap());
        assert_eq!(declared_length(&headers), None);
    }
}
