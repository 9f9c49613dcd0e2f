//! The listener and the request check against hostile clients, over real
//! TCP connections with short limits: slow bodies, slow heads, oversized
//! heads, too many connections, and shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::middleware;
use axum::routing::post;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::serve;
use crate::http::limits::{HttpLimits, RequestGuard, check_request};

fn short_limits() -> HttpLimits {
    HttpLimits {
        max_body_bytes: 1024,
        max_inflight_body_bytes: 4096,
        max_uri_bytes: 256,
        max_header_bytes: 1024,
        max_headers: 10,
        body_timeout: Duration::from_millis(300),
        header_timeout: Duration::from_millis(300),
        max_connections: 16,
    }
}

struct Listening {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start(limits: HttpLimits) -> Listening {
    let router = Router::new()
        .route(
            "/echo",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
        .layer(middleware::from_fn_with_state(
            RequestGuard::new(limits.clone()),
            check_request,
        ));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, router, &limits, None, async move {
        let _ = stopped.await;
    }));
    Listening {
        addr,
        stop: Some(stop),
        task,
    }
}

/// Everything the server sends until it closes the connection, and how
/// long that took; panics if it is still open after `within`.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut answer))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the connection is still open after {within:?}; got {:?}",
                String::from_utf8_lossy(&answer)
            )
        })
        .expect("read");
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

/// The status code of the first response in `answer`.
fn status(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {answer:?}"))
}

fn json_body(answer: &str) -> serde_json::Value {
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {answer:?}"))
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_closes() {
    let server = start(short_limits()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten..")
        .await
        .expect("write");
    let (answer, took) = read_to_close(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status(&answer), 408, "{answer}");
    assert_eq!(json_body(&answer)["error"]["code"], "request_timeout");
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
}

#[tokio::test]
async fn a_head_that_does_not_arrive_in_time_is_cut_off() {
    let server = start(short_limits()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let (_, took) = read_to_close(&mut stream, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(2), "closed after {took:?}");
    // An idle keep-alive connection is closed the same way.
    let mut idle = TcpStream::connect(server.addr).await.expect("connect");
    idle.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        .await
        .expect("write");
    let (answer, took) = read_to_close(&mut idle, Duration::from_secs(5)).await;
    assert_eq!(status(&answer), 200, "{answer}");
    assert!(answer.ends_with("\r\n\r\n2"), "{answer}");
    assert!(
        took < Duration::from_secs(2),
        "idle connection closed after {took:?}"
    );
}

#[tokio::test]
async fn heads_over_the_limits_get_json_and_past_the_hard_bound_a_bare_431() {
    let limits = short_limits();
    let server = start(limits.clone()).await;

    let over = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n",
        "a".repeat(limits.max_header_bytes)
    );
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(over.as_bytes()).await.expect("write");
    let (answer, _) = read_to_close(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status(&answer), 431, "{answer}");
    assert_eq!(json_body(&answer)["error"]["code"], "invalid_input");

    let many: String = (0..limits.max_headers + 1)
        .map(|i| format!("X-H{i}: v\r\n"))
        .collect();
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(format!("POST /echo HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes())
        .await
        .expect("write");
    let (answer, _) = read_to_close(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status(&answer), 431, "{answer}");
    assert_eq!(json_body(&answer)["error"]["code"], "invalid_input");

    let long_uri = format!(
        "POST /echo?{} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "q".repeat(limits.max_uri_bytes)
    );
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(long_uri.as_bytes()).await.expect("write");
    let (answer, _) = read_to_close(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status(&answer), 414, "{answer}");
    assert_eq!(json_body(&answer)["error"]["code"], "invalid_input");

    // Far past the hard bound hyper stops reading, answers and closes,
    // whatever the client still sends.
    let huge = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n",
        "b".repeat(limits.hard_head_bytes() * 4)
    );
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    // The server may reset the connection before it has read everything.
    let _ = stream.write_all(huge.as_bytes()).await;
    let mut answer = vec![0; 256];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap_or(0);
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert!(
        answer.is_empty() || status(&answer) == 431,
        "expected 431 or a closed connection: {answer:?}"
    );
}

#[tokio::test]
async fn oversized_bodies_get_413_whether_declared_or_streamed() {
    let limits = short_limits();
    let server = start(limits.clone()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(
            format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                limits.max_body_bytes + 1
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    let (answer, _) = read_to_close(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status(&answer), 413, "{answer}");

    let chunk = "c".repeat(600);
    let chunked = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(chunked.as_bytes()).await.expect("write");
    let (answer, _) = read_to_close(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status(&answer), 413, "{answer}");
    assert_eq!(json_body(&answer)["error"]["code"], "invalid_input");

    // Within the limit, chunked, the handler sees the whole body.
    let fits = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(fits.as_bytes()).await.expect("write");
    let (answer, _) = read_to_close(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status(&answer), 200, "{answer}");
    assert!(answer.ends_with("\r\n\r\n600"), "{answer}");
}

#[tokio::test]
async fn connections_past_the_bound_wait_for_one_to_close() {
    let limits = HttpLimits {
        max_connections: 2,
        header_timeout: Duration::from_secs(10),
        ..short_limits()
    };
    let server = start(limits).await;
    let first = TcpStream::connect(server.addr).await.expect("connect");
    let _second = TcpStream::connect(server.addr).await.expect("connect");
    // The kernel completes the handshake; the server does not serve it.
    let mut third = TcpStream::connect(server.addr).await.expect("connect");
    third
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nz",
        )
        .await
        .expect("write");
    let mut byte = [0; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), third.peek(&mut byte)).await;
    assert!(
        early.is_err(),
        "a third connection was served while two were open"
    );
    drop(first);
    let (answer, _) = read_to_close(&mut third, Duration::from_secs(5)).await;
    assert_eq!(status(&answer), 200, "{answer}");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_returns_once_connections_close() {
    let mut server = start(HttpLimits {
        header_timeout: Duration::from_secs(30),
        ..short_limits()
    })
    .await;
    // An idle keep-alive connection does not hold shutdown up.
    let mut idle = TcpStream::connect(server.addr).await.expect("connect");
    idle.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz")
        .await
        .expect("write");
    let mut answer = vec![0; 512];
    let read = idle.read(&mut answer).await.expect("read");
    assert_eq!(status(&String::from_utf8_lossy(&answer[..read])), 200);
    if let Some(stop) = server.stop.take() {
        let _ = stop.send(());
    }
    let result = tokio::time::timeout(Duration::from_secs(5), &mut server.task)
        .await
        .expect("serve returned after shutdown")
        .expect("joined");
    assert!(result.is_ok(), "{result:?}");
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "the listener still accepts after shutdown"
    );
}
