//! Sends a component's outgoing wasi:http requests over plain HTTP/1.1.
//!
//! wasmtime-wasi-http's own sender (its `default-send-request` feature)
//! brings TLS through rustls and ring, and ring needs a C compiler to build.
//! componentize must build with Rust alone, so it sends `http://` requests
//! itself and refuses `https://` ones with an error that says so. The init
//! sandbox (when `--allow-http` opens it) and `componentize serve` share
//! this sender.

#![deny(missing_docs)]

use http::uri::Scheme;
use http_body_util::BodyExt;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// How long connecting and waiting for the response head may each take
/// when the guest sets no timeout: long enough for any real service, short
/// enough that a dead peer does not hang init forever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A future that drives the connection after the response head arrived,
/// resolving when the response body has been read.
pub type Connection = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// wasi:http hooks that send outgoing requests with [`send`]. (wasi:http
/// 0.2 sends a request without a scheme as `https`, which fails here: set
/// it.)
#[derive(Debug, Default, Clone, Copy)]
pub struct PlainHttp;

impl WasiHttpHooks for PlainHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_error: Connection,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, Connection), Error>> + Send>
    {
        Box::new(send(request, options))
    }
}

/// Sends `request` over a new HTTP/1.1 connection to its authority (port 80
/// unless given) and returns the response once its head arrived, with the
/// future that drives the rest of the connection.
///
/// An `https` request fails with [`Error::InternalError`] explaining that
/// componentize has no TLS.
pub async fn send(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(http::Response<WasiBody>, Connection), Error> {
    let uri = request.uri();
    if uri.scheme() == Some(&Scheme::HTTPS) {
        return Err(Error::InternalError(Some(format!(
            "cannot send `{uri}`: componentize's HTTP client has no TLS (building it needs a C \
             compiler); use an http:// URL, or run the component under `wasmtime serve`"
        ))));
    }
    let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
    let address = match authority.port() {
        Some(_) => authority.to_string(),
        None => format!("{authority}:80"),
    };
    let timeout = |pick: fn(&RequestOptions) -> Option<Duration>| {
        options.as_ref().and_then(pick).unwrap_or(DEFAULT_TIMEOUT)
    };
    let connect_timeout = timeout(|o| o.connect_timeout);
    let first_byte_timeout = timeout(|o| o.first_byte_timeout);

    let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(&address))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(Error::Connect)?;
    // A streamed request body leaves in several writes; without this each
    // small one can wait 40 ms for the server's delayed ACK (Nagle). A
    // socket that refuses it only sends more slowly.
    stream.set_nodelay(true).ok();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(Error::Hyper)?;
    // The request line names only the path: scheme and authority are for
    // proxies (the Host header carries the authority).
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = http::Uri::try_from(path).map_err(|_| Error::HttpRequestUriInvalid)?;

    // hyper needs its connection polled while the request is in flight.
    let driver = tokio::spawn(connection);
    let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)?
        .map_err(Error::Hyper)?;
    let connection: Connection = Box::new(async move {
        match driver.await {
            Ok(result) => result.map_err(Error::Hyper),
            Err(_) => Err(Error::ConnectionTerminated),
        }
    });
    let response = response.map(|body| body.map_err(Error::Hyper).boxed_unsync());
    Ok((response, connection))
}
