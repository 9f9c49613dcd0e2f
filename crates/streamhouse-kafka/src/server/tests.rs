use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use bytes::Bytes;
use rcgen::{CertificateParams, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::{Outgoing, write_responses};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A TLS server and client joined by an in-memory pipe that holds only
/// `capacity` bytes, so the server's writes fill it again and again.
async fn tls_pair(
    capacity: usize,
) -> (
    tokio_rustls::server::TlsStream<tokio::io::DuplexStream>,
    tokio_rustls::client::TlsStream<tokio::io::DuplexStream>,
) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der = CertificateDer::from(cert.der().to_vec());
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![der.clone()],
            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (client_io, server_io) = tokio::io::duplex(capacity);
    let accept = tokio_rustls::TlsAcceptor::from(Arc::new(server)).accept(server_io);
    let connect = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(ServerName::try_from("localhost").unwrap(), client_io);
    let (server, client) = tokio::join!(accept, connect);
    (server.unwrap(), client.unwrap())
}

/// A TLS stream accepts a write once it has encrypted it, possibly before
/// the socket took the last bytes; the writer must flush, or the end of an
/// answer waits inside the stream until the next one (a consumer waiting
/// on it stalls until its request timeout).
#[tokio::test]
async fn an_answer_reaches_a_slow_tls_reader_without_a_later_write() {
    let (server, mut client) = tls_pair(4096).await;
    let (queue, outgoing) = mpsc::channel(4);
    let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let in_flight = Arc::new(AtomicUsize::new(1));
    let writer = tokio::spawn(write_responses(
        server,
        outgoing,
        peer,
        in_flight,
        Duration::from_secs(30),
    ));
    let answer = vec![7u8; 1 << 20];
    queue
        .send(Outgoing::ready(Bytes::from(answer.clone())))
        .await
        .unwrap();
    // The queue stays open: no further write will push the answer out.
    let mut received = vec![0u8; answer.len()];
    let mut read = 0;
    let done = tokio::time::timeout(Duration::from_secs(10), async {
        while read < received.len() {
            // Slower than the writer, so the pipe is full whenever the
            // writer looks at it.
            tokio::time::sleep(Duration::from_micros(200)).await;
            let end = (read + 1024).min(received.len());
            let n = client.read(&mut received[read..end]).await.unwrap();
            assert!(n > 0, "closed after {read} bytes");
            read += n;
        }
    })
    .await;
    assert!(
        done.is_ok(),
        "only {read} of {} bytes arrived",
        received.len()
    );
    assert_eq!(received, answer);
    drop(queue);
    writer.await.unwrap();
}
