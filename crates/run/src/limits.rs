//! Body size limits of the server: a request body over the limit is
//! refused (413), a response body over the limit is cut off. Sizes are
//! given as [`parse_bytes`] reads them.

use anyhow::{Result, anyhow};
use hyper::body::{Body, Bytes, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use wasmtime_wasi_http::{Error, WasiBody};

/// Default request body limit: 16 MiB, larger than any form or JSON post,
/// small enough that a stray upload cannot fill the host's memory (a guest
/// may buffer the whole body).
pub const DEFAULT_MAX_REQUEST_BODY: u64 = 16 << 20;

/// Default response body limit: 256 MiB, room for large downloads while a
/// handler that writes forever is still stopped.
pub const DEFAULT_MAX_RESPONSE_BODY: u64 = 256 << 20;

/// Parses a size in bytes: a whole number, optionally followed by `KiB`,
/// `MiB` or `GiB` (also `K`, `M`, `G`; powers of 1024), such as `1048576`
/// or `16MiB`.
pub fn parse_bytes(size: &str) -> Result<u64> {
    let size = size.trim();
    let digits = size.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &size[digits.len()..];
    let scale: u64 = match unit {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        _ => {
            return Err(anyhow!(
                "invalid size `{size}`: the unit `{unit}` is not one of KiB, MiB, GiB"
            ));
        }
    };
    let number: u64 = digits.trim().parse().map_err(|_| {
        anyhow!("invalid size `{size}`: expected a whole number of bytes, such as 1048576 or 16MiB")
    })?;
    number
        .checked_mul(scale)
        .ok_or_else(|| anyhow!("invalid size `{size}`: too large"))
}

/// A request body that fails once more than `max` bytes arrived, and
/// records that in `over` so the server answers 413 rather than 500 when
/// the handler then fails.
pub(crate) struct LimitedRequest<B> {
    inner: B,
    read: u64,
    max: u64,
    over: Arc<AtomicBool>,
}

impl<B> LimitedRequest<B> {
    /// `inner`, limited to `max` bytes; `over` is set when it is exceeded.
    pub fn new(inner: B, max: u64, over: Arc<AtomicBool>) -> Self {
        LimitedRequest {
            inner,
            read: 0,
            max,
            over,
        }
    }
}

impl<B> Body for LimitedRequest<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Error>,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        if this.over.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            None => return Poll::Ready(None),
        };
        if let Some(data) = frame.data_ref() {
            this.read += data.len() as u64;
            if this.read > this.max {
                this.over.store(true, Ordering::Relaxed);
                return Poll::Ready(Some(Err(Error::HttpRequestBodySize(Some(this.read)))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that is cut off (an error, so the connection is closed
/// and the client sees an incomplete response) once more than `max` bytes
/// were sent, logging one line naming the request.
pub(crate) struct LimitedResponse {
    inner: WasiBody,
    sent: u64,
    max: u64,
    request: Arc<str>,
}

impl LimitedResponse {
    /// `inner`, the body of the response to `request` (`GET /path`),
    /// limited to `max` bytes.
    pub fn new(inner: WasiBody, max: u64, request: Arc<str>) -> Self {
        LimitedResponse {
            inner,
            sent: 0,
            max,
            request,
        }
    }
}

impl Body for LimitedResponse {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref))
            && let Some(data) = data
        {
            this.sent += data.len() as u64;
            if this.sent > this.max {
                eprintln!(
                    "error: {}: the response body is over the limit of {} bytes \
                     (--max-response-body): cut off",
                    this.request, this.max
                );
                return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(this.sent)))));
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[test]
    fn sizes_are_bytes_with_binary_units() {
        assert_eq!(parse_bytes("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_bytes("16MiB").unwrap(), 16 << 20);
        assert_eq!(parse_bytes("16M").unwrap(), 16 << 20);
        assert_eq!(parse_bytes(" 3 KiB ").unwrap(), 3 << 10);
        assert_eq!(parse_bytes("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("0").unwrap(), 0);
        let e = parse_bytes("5MB").unwrap_err().to_string();
        assert!(e.contains("the unit `MB` is not one of"), "{e}");
        for bad in ["", "-1", "1.5MiB", "MiB", "lots"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        let e = parse_bytes("99999999999GiB").unwrap_err().to_string();
        assert!(e.contains("too large"), "{e}");
    }

    /// Reads `body` to the end: the bytes, or the error that stopped it.
    fn read<B: Body<Data = Bytes, Error = Error> + Unpin>(body: B) -> Result<Vec<u8>, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async { Ok(body.collect().await?.to_bytes().to_vec()) })
    }

    /// A body that yields its chunks one frame each.
    struct Chunks(std::collections::VecDeque<&'static [u8]>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
            Poll::Ready(
                self.0
                    .pop_front()
                    .map(|c| Ok(Frame::data(Bytes::from_static(c)))),
            )
        }
    }

    fn chunked(chunks: &[&'static [u8]]) -> Chunks {
        Chunks(chunks.iter().copied().collect())
    }

    #[test]
    fn a_request_body_over_the_limit_fails_and_says_so() {
        let over = Arc::new(AtomicBool::new(false));
        let body = LimitedRequest::new(chunked(&[b"abc", b"def"]), 6, over.clone());
        assert_eq!(read(body).unwrap(), b"abcdef");
        assert!(!over.load(Ordering::Relaxed));

        let body = LimitedRequest::new(chunked(&[b"abc", b"defg"]), 6, over.clone());
        assert!(matches!(
            read(body),
            Err(Error::HttpRequestBodySize(Some(7)))
        ));
        assert!(over.load(Ordering::Relaxed));
    }

    #[test]
    fn a_response_body_over_the_limit_is_cut_off() {
        let full = |bytes: &'static [u8]| {
            Full::new(Bytes::from_static(bytes))
                .map_err(|never| match never {})
                .boxed_unsync()
        };
        let body = LimitedResponse::new(full(b"hello"), 5, "GET /ok".into());
        assert_eq!(read(body).unwrap(), b"hello");
        let body = LimitedResponse::new(full(b"hello!"), 5, "GET /big".into());
        assert!(matches!(
            read(body),
            Err(Error::HttpResponseBodySize(Some(6)))
        ));
    }
}
