//! Bounds on what one HTTP client can make the server hold or wait for,
//! and the request check that enforces them with the API's JSON errors.
//!
//! Two layers share the work. The connection (see `serve.rs`) bounds the
//! request head in hyper itself, at a multiple of these limits, so that a
//! client cannot make it buffer more than a few dozen KiB; past that hyper
//! answers a bare 431 and closes the connection. Everything below that
//! hard bound reaches [`check_request`], which answers with a JSON body:
//! 405 for a method no route can serve, 414 for a long URI, 431 for big
//! or many headers, 413 for a big body, 408 for a body that does not
//! arrive in time, 503 while too many request bodies are held at once.
//! Rejections that leave unread bytes on the connection close it.
//!
//! The invariant that matters: a request reaches a handler only with its
//! whole body in memory, read within [`HttpLimits::body_timeout`], counted
//! against [`HttpLimits::max_inflight_body_bytes`] until the handler is
//! done with it.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::ApiError;

/// Default largest accepted HTTP request body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;

/// Limits of the HTTP listener. Every field has the default a production
/// deployment would choose; see each field.
#[derive(Debug, Clone)]
pub(crate) struct HttpLimits {
    /// Largest request body (413 above it). Default 16 MiB, as
    /// `--max-body-bytes`: a produce request of a few thousand records.
    pub(crate) max_body_bytes: usize,
    /// Request bodies held in memory at once, over all connections. A
    /// request waits for room (within `body_timeout`) and then gets 503.
    /// Default 256 MiB: sixteen maximal bodies.
    pub(crate) max_inflight_body_bytes: usize,
    /// Longest request target (path and query; 414 above it). Default
    /// 8 KiB, like nginx's and most proxies'.
    pub(crate) max_uri_bytes: usize,
    /// Total size of the request's header lines (431 above it). Default
    /// 16 KiB: browsers and proxies stay under 8 KiB.
    pub(crate) max_header_bytes: usize,
    /// Number of header lines (431 above it). Default 100, hyper's own.
    pub(crate) max_headers: usize,
    /// Time from the end of the request head to the end of its body
    /// (408 after it). Default 30 s: 16 MiB at 4 Mbit/s.
    pub(crate) body_timeout: Duration,
    /// Time a connection may take to send a request head, and how long
    /// an idle keep-alive connection stays open (closed after it).
    /// Default 10 s: clients send a head in one packet.
    pub(crate) header_timeout: Duration,
    /// Open connections; further ones wait in the listen backlog until
    /// one closes. Default 1024.
    pub(crate) max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_inflight_body_bytes: 256 << 20,
            max_uri_bytes: 8 << 10,
            max_header_bytes: 16 << 10,
            max_headers: 100,
            body_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// How far above the checked limits hyper itself cuts a request head off
/// (bare 431, connection closed).
pub(crate) const HARD_LIMIT_FACTOR: usize = 4;

impl HttpLimits {
    /// The largest request head (request line and headers) hyper buffers.
    pub(crate) fn hard_head_bytes(&self) -> usize {
        (self.max_uri_bytes + self.max_header_bytes)
            .saturating_mul(HARD_LIMIT_FACTOR)
            .max(16 << 10)
    }

    /// The most header lines hyper parses.
    pub(crate) fn hard_headers(&self) -> usize {
        self.max_headers.saturating_mul(HARD_LIMIT_FACTOR).max(16)
    }
}

/// Body bytes are counted in KiB, so that any limit fits the semaphore.
const PERMIT_BYTES: usize = 1024;

/// The state of [`check_request`].
pub(crate) struct RequestGuard {
    limits: HttpLimits,
    inflight_body: Arc<Semaphore>,
    inflight_permits: u32,
}

impl RequestGuard {
    pub(crate) fn new(limits: HttpLimits) -> Arc<Self> {
        let inflight_permits = u32::try_from(limits.max_inflight_body_bytes.div_ceil(PERMIT_BYTES))
            .unwrap_or(u32::MAX)
            .clamp(1, u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        Arc::new(Self {
            inflight_body: Arc::new(Semaphore::new(inflight_permits as usize)),
            inflight_permits,
            limits,
        })
    }
}

/// The method as a metric label: one of the standard methods, or `other`.
pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Rejects what the limits do not allow, then reads the whole body (within
/// the timeout, counted against the in-flight bound) before the handler.
pub(crate) async fn check_request(
    State(guard): State<Arc<RequestGuard>>,
    request: Request,
    next: Next,
) -> Response {
    let limits = &guard.limits;
    let started = Instant::now();
    if method_label(request.method()) == "other" {
        let method: String = request.method().as_str().chars().take(32).collect();
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_input",
            format!("{method:?} is not an HTTP method this API serves"),
        )
        .into_response();
    }
    let uri_bytes = uri_len(request.uri());
    if uri_bytes > limits.max_uri_bytes {
        return closing(ApiError::new(
            StatusCode::URI_TOO_LONG,
            "invalid_input",
            format!(
                "the request URI is {uri_bytes} bytes; the limit is {} bytes",
                limits.max_uri_bytes
            ),
        ));
    }
    let (count, header_bytes) = header_size(request.headers());
    if count > limits.max_headers || header_bytes > limits.max_header_bytes {
        return closing(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "invalid_input",
            format!(
                "the request has {count} headers of {header_bytes} bytes; the limits are {} \
                 headers and {} bytes",
                limits.max_headers, limits.max_header_bytes
            ),
        ));
    }
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let declared = content_length(request.headers());
    if declared.is_some_and(|length| length > limits.max_body_bytes as u64) {
        return closing(too_large(limits));
    }
    let (parts, body) = request.into_parts();
    let deadline = started + limits.body_timeout;
    let reserve = declared.map_or(limits.max_body_bytes, |length| length as usize);
    let Some(permit) = guard.reserve(reserve, deadline).await else {
        return closing(ApiError::unavailable(format!(
            "more than {} bytes of request bodies are being handled; retry later",
            limits.max_inflight_body_bytes
        )));
    };
    let body = match tokio::time::timeout_at(deadline, read_body(body, limits.max_body_bytes)).await
    {
        Ok(Ok(body)) => body,
        Ok(Err(BodyError::TooLarge)) => return closing(too_large(limits)),
        Ok(Err(BodyError::Read(error))) => {
            return closing(ApiError::invalid_input(format!(
                "cannot read the request body: {error}"
            )));
        }
        Err(_) => {
            return closing(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the request body did not arrive within {} ms",
                    limits.body_timeout.as_millis()
                ),
            ));
        }
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(body.freeze())))
        .await;
    drop(permit);
    response
}

impl RequestGuard {
    /// Room for `bytes` of body among the bodies in flight, waiting until
    /// `deadline` at most.
    async fn reserve(&self, bytes: usize, deadline: Instant) -> Option<OwnedSemaphorePermit> {
        let permits = u32::try_from(bytes.div_ceil(PERMIT_BYTES))
            .unwrap_or(u32::MAX)
            .clamp(1, self.inflight_permits);
        tokio::time::timeout_at(
            deadline,
            self.inflight_body.clone().acquire_many_owned(permits),
        )
        .await
        .ok()
        .and_then(Result::ok)
    }
}

enum BodyError {
    TooLarge,
    Read(axum::Error),
}

async fn read_body(body: Body, max: usize) -> Result<BytesMut, BodyError> {
    let hint = usize::try_from(body.size_hint().lower()).unwrap_or(max);
    let mut buffer = BytesMut::with_capacity(hint.min(max));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(BodyError::Read)?;
        if buffer.len() + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer)
}

fn too_large(limits: &HttpLimits) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_input",
        format!(
            "the request body is larger than the configured limit of {} bytes (--max-body-bytes)",
            limits.max_body_bytes
        ),
    )
}

/// The error as a response that closes the connection: the client may
/// still be sending bytes nobody will read.
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Bytes of the request target as the client sent it.
fn uri_len(uri: &Uri) -> usize {
    let target = uri.path_and_query().map_or(0, |p| p.as_str().len());
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + 3);
    target + authority + scheme
}

/// Header lines and their bytes as sent (`name: value\r\n`).
fn header_size(headers: &HeaderMap) -> (usize, usize) {
    let bytes = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    (headers.len(), bytes)
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_methods_share_one_label() {
        for name in ["FOO", "XMETHOD12345", "get"] {
            let method = Method::from_bytes(name.as_bytes()).expect("valid token");
            assert_eq!(method_label(&method), "other", "{name}");
        }
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
    }

    #[test]
    fn sizes_count_what_the_client_sent() {
        let uri: Uri = "/api/v1/topics?x=1".parse().expect("uri");
        assert_eq!(uri_len(&uri), 18);
        let absolute: Uri = "http://host:80/a".parse().expect("uri");
        assert_eq!(uri_len(&absolute), "http://host:80/a".len());
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("12345"));
        headers.append("x-a", HeaderValue::from_static("1"));
        assert_eq!(header_size(&headers), (2, (3 + 5 + 4) + (3 + 1 + 4)));
    }

    #[test]
    fn hard_limits_sit_above_the_checked_ones() {
        let limits = HttpLimits::default();
        assert!(limits.hard_head_bytes() >= limits.max_header_bytes + limits.max_uri_bytes);
        assert!(limits.hard_headers() > limits.max_headers);
    }
}
