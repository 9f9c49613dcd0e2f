//! The HTTP listener: accepts connections and serves the router on each
//! with hyper, configured by [`HttpLimits`] (what `axum::serve` does, with
//! limits it does not set: a request head read timeout, a bound on the
//! head's size and header count, and a bound on open connections).
//!
//! The invariant that matters: a connection holds at most
//! [`HttpLimits::hard_head_bytes`] of unparsed head and is closed when a
//! head takes longer than [`HttpLimits::header_timeout`], so slow or
//! oversized request heads cost a bounded amount of memory for a bounded
//! time.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{Service as _, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use streamhouse_kafka::TlsConfig;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::limits::HttpLimits;

/// Pause after a failed accept (out of file descriptors, say), so that the
/// loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown` resolves; then stops
/// accepting, lets every connection finish the request it is serving, and
/// returns once all are closed.
///
/// With `tls`, every connection starts with a TLS
/// handshake (bounded by the header timeout) using the configuration in
/// force when it is accepted.
pub(crate) fn serve(
    listener: TcpListener,
    router: Router,
    limits: &HttpLimits,
    tls: Option<TlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
    let builder = connection_builder(limits);
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    accept_loop(
        listener,
        router,
        builder,
        open,
        tls,
        limits.header_timeout,
        shutdown,
    )
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    builder: http1::Builder,
    open: Arc<Semaphore>,
    tls: Option<TlsConfig>,
    handshake_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let connections = TaskTracker::new();
    let closing = CancellationToken::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = open.clone().acquire_owned() => permit.map_err(std::io::Error::other)?,
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // A connection reset before it was accepted is the
                    // client's business; anything else is worth a line.
                    if !matches!(
                        error.kind(),
                        std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                    ) {
                        tracing::warn!(%error, "cannot accept an HTTP connection");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                    continue;
                }
            },
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on an HTTP connection");
        }
        let closing = closing.clone();
        let router = router.clone();
        let builder = builder.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let _permit = permit;
            match tls {
                None => serve_one(&builder, stream, peer, router, closing).await,
                Some(tls) => {
                    let acceptor =
                        tokio_rustls::TlsAcceptor::from(tls.server_config_without_client_auth());
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => serve_one(&builder, stream, peer, router, closing).await,
                        Ok(Err(error)) => {
                            tracing::debug!(%error, "HTTP TLS handshake failed");
                        }
                        Err(_) => tracing::debug!("HTTP TLS handshake not finished in time"),
                    }
                }
            }
        });
    }
    drop(listener);
    closing.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Serves one connection until it ends or, once `closing` is cancelled,
/// until its request in progress is answered.
async fn serve_one<S>(
    builder: &http1::Builder,
    stream: S,
    peer: SocketAddr,
    router: Router,
    closing: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    // Each request carries the peer address, as axum's `ConnectInfo` (the
    // caller's host for ACLs and logs).
    let service = TowerToHyperService::new(router);
    let service = service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        service.call(request)
    });
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = closing.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        // Timeouts, resets and malformed heads: the client's doing.
        tracing::debug!(%error, "HTTP connection ended with an error");
    }
}

fn connection_builder(limits: &HttpLimits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    let head = limits.hard_head_bytes();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(limits.hard_headers())
        .max_header_size(head)
        // The read buffer never needs more than one head plus a chunk of
        // body; hyper's default is ~400 KiB per connection.
        .max_buf_size(head + (64 << 10));
    builder
}

#[cfg(test)]
mod tests;
