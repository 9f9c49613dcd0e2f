//! Listeners with TLS and SASL, driven with raw frames over a rustls
//! client: certificates made with rcgen for each test, mTLS refusals,
//! clients that do not speak TLS, certificate reload, and the SASL PLAIN,
//! SCRAM and v0 exchanges.

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, MetadataRequest, RequestHeader, RequestKind, ResponseHeader,
    ResponseKind, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use streamhouse_kafka::{
    KafkaConfig, KafkaListener, KafkaServer, SecurityProtocol, TlsConfig, TlsFiles,
};
use streamhouse_storage::security::{ScramCredential, ScramMechanism, scram};
use streamhouse_storage::{ObjectStorage, StorageConfig, StorageEngine};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

// ---- certificates ----

/// A test certificate authority.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let pem = params.self_signed(&key).unwrap().pem();
    Ca {
        issuer: Issuer::new(params, key),
        pem,
    }
}

/// A leaf certificate and key (PEM) for `cn`, valid for localhost and
/// 127.0.0.1, expired if asked.
fn leaf(ca: &Ca, cn: &str, expired: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "StreamHouse tests");
    if expired {
        params.not_before = rcgen::date_time_ymd(2001, 1, 1);
        params.not_after = rcgen::date_time_ymd(2002, 1, 1);
    }
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn server_files(dir: &Path, ca: &Ca, cn: &str, client_ca: Option<&Ca>) -> TlsFiles {
    let (cert, key) = leaf(ca, cn, false);
    TlsFiles {
        cert: write(dir, "server.pem", &cert),
        key: write(dir, "server.key", &key),
        client_ca: client_ca.map(|ca| write(dir, "client-ca.pem", &ca.pem)),
    }
}

fn client_config(trusted: &Ca, identity: Option<(String, String)>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(trusted.pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    Arc::new(config)
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn tls_connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

// ---- server ----

struct Secured {
    engine: StorageEngine,
    addrs: Vec<(SecurityProtocol, SocketAddr)>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Secured {
    fn addr(&self, protocol: SecurityProtocol) -> SocketAddr {
        self.addrs
            .iter()
            .find(|(p, _)| *p == protocol)
            .map(|&(_, a)| a)
            .unwrap()
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.task.take().unwrap().await;
        self.engine.shutdown().await;
    }
}

async fn start(
    protocols: &[SecurityProtocol],
    tls: Option<TlsConfig>,
    tweak: impl FnOnce(&mut KafkaConfig),
) -> Secured {
    let sqlite = streamhouse_metadata::testing::temp_sqlite().await.unwrap();
    let objects = tempfile::tempdir().unwrap();
    let storage = ObjectStorage::local(objects.path()).unwrap();
    let mut server = start_on(
        Arc::new(sqlite.store.clone()),
        storage,
        protocols,
        tls,
        tweak,
    )
    .await;
    server._dirs = vec![sqlite.dir, objects];
    server
}

/// An agent on a metadata store and object storage others may share.
async fn start_on(
    metadata: Arc<dyn streamhouse_metadata::MetadataStore>,
    storage: ObjectStorage,
    protocols: &[SecurityProtocol],
    tls: Option<TlsConfig>,
    tweak: impl FnOnce(&mut KafkaConfig),
) -> Secured {
    let engine = StorageEngine::start(metadata, storage, StorageConfig::default());
    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for &protocol in protocols {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push((protocol, listener.local_addr().unwrap()));
        listeners.push(KafkaListener::new(protocol, listener));
    }
    let mut config = KafkaConfig {
        advertised_port: addrs[0].1.port(),
        advertised_listeners: addrs.iter().map(|&(p, a)| (p, a.port())).collect(),
        tls_handshake_timeout: Duration::from_millis(500),
        ..KafkaConfig::default()
    };
    tweak(&mut config);
    let mut server = KafkaServer::new(engine.clone(), config);
    if let Some(tls) = tls {
        server = server.with_tls(tls);
    }
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run_listeners(listeners, async {
        let _ = stopped.await;
    }));
    Secured {
        engine,
        addrs,
        stop: Some(stop),
        task: Some(task),
        _dirs: Vec::new(),
    }
}

// ---- raw requests over any stream ----

fn request_frame(api_key: ApiKey, version: i16, correlation_id: i32, body: &RequestKind) -> Bytes {
    let mut header = RequestHeader::default();
    header.request_api_key = api_key as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_static_str("security-test"));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

/// One frame's bytes; `None` when the connection closed or failed.
async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Bytes> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.ok()?;
    let len = u32::from_be_bytes(len) as usize;
    if len > 1 << 24 {
        return None;
    }
    let mut frame = vec![0u8; len];
    stream.read_exact(&mut frame).await.ok()?;
    Some(Bytes::from(frame))
}

/// Sends a request and reads its answer; `None` if the connection closed.
async fn call<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    api_key: ApiKey,
    version: i16,
    body: RequestKind,
) -> Option<ResponseKind> {
    stream
        .write_all(&request_frame(api_key, version, 7, &body))
        .await
        .ok()?;
    let mut frame = tokio::time::timeout(Duration::from_secs(10), read_frame(stream))
        .await
        .ok()??;
    let header =
        ResponseHeader::decode(&mut frame, api_key.response_header_version(version)).ok()?;
    assert_eq!(header.correlation_id, 7);
    Some(ResponseKind::decode(api_key, &mut frame, version).unwrap())
}

async fn api_versions<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> bool {
    matches!(
        call(stream, ApiKey::ApiVersions, 3, RequestKind::ApiVersions(
            ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("t"))
                .with_client_software_version(StrBytes::from_static_str("1"))
        ))
        .await,
        Some(ResponseKind::ApiVersions(r)) if r.error_code == 0
    )
}

/// The broker ports a Metadata answer names.
async fn broker_ports<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Option<Vec<i32>> {
    match call(
        stream,
        ApiKey::Metadata,
        12,
        RequestKind::Metadata(MetadataRequest::default().with_topics(Some(Vec::new()))),
    )
    .await?
    {
        ResponseKind::Metadata(m) => Some(m.brokers.iter().map(|b| b.port).collect()),
        _ => None,
    }
}

/// Whether the server closes the connection within `within`.
async fn closed_within<S: AsyncRead + Unpin>(stream: &mut S, within: Duration) -> bool {
    let mut sink = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut sink))
        .await
        .is_ok()
}

// ---- TLS ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_are_served_and_told_their_listeners_port() {
    let dir = tempfile::tempdir().unwrap();
    let authority = ca("server CA");
    let tls = TlsConfig::load(server_files(dir.path(), &authority, "broker", None)).unwrap();
    let server = start(
        &[SecurityProtocol::Plaintext, SecurityProtocol::Ssl],
        Some(tls),
        |_| {},
    )
    .await;
    let ssl = server.addr(SecurityProtocol::Ssl);
    let plain = server.addr(SecurityProtocol::Plaintext);

    let mut client = tls_connect(ssl, client_config(&authority, None))
        .await
        .unwrap();
    assert!(api_versions(&mut client).await);
    assert_eq!(
        broker_ports(&mut client).await,
        Some(vec![i32::from(ssl.port())])
    );
    let version = client.get_ref().1.protocol_version();
    assert!(matches!(
        version,
        Some(rustls::ProtocolVersion::TLSv1_3 | rustls::ProtocolVersion::TLSv1_2)
    ));

    let mut plaintext = TcpStream::connect(plain).await.unwrap();
    assert_eq!(
        broker_ports(&mut plaintext).await,
        Some(vec![i32::from(plain.port())])
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_refuses_missing_untrusted_and_expired_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = ca("server CA");
    let client_ca = ca("client CA");
    let stranger_ca = ca("someone else");
    let tls = TlsConfig::load(server_files(
        dir.path(),
        &server_ca,
        "broker",
        Some(&client_ca),
    ))
    .unwrap();
    assert!(tls.requires_client_certificate());
    let server = start(&[SecurityProtocol::Ssl], Some(tls), |_| {}).await;
    let ssl = server.addr(SecurityProtocol::Ssl);

    let good = client_config(&server_ca, Some(leaf(&client_ca, "alice", false)));
    let mut client = tls_connect(ssl, good.clone()).await.unwrap();
    assert!(api_versions(&mut client).await);

    for (what, config) in [
        ("no certificate", client_config(&server_ca, None)),
        (
            "untrusted certificate",
            client_config(&server_ca, Some(leaf(&stranger_ca, "alice", false))),
        ),
        (
            "expired certificate",
            client_config(&server_ca, Some(leaf(&client_ca, "alice", true))),
        ),
    ] {
        let started = Instant::now();
        // With TLS 1.3 the client may finish its side before the server
        // refuses; then the first request fails.
        let served = match tls_connect(ssl, config).await {
            Err(_) => false,
            Ok(mut stream) => api_versions(&mut stream).await,
        };
        assert!(!served, "{what} was served");
        assert!(started.elapsed() < Duration::from_secs(5), "{what}");
    }
    // The agent keeps serving the good client.
    assert!(api_versions(&mut client).await);
    let mut again = tls_connect(ssl, good).await.unwrap();
    assert!(api_versions(&mut again).await);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_do_not_speak_tls_fail_fast_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let authority = ca("server CA");
    let tls = TlsConfig::load(server_files(dir.path(), &authority, "broker", None)).unwrap();
    let server = start(&[SecurityProtocol::Ssl], Some(tls), |_| {}).await;
    let ssl = server.addr(SecurityProtocol::Ssl);
    let mut good = tls_connect(ssl, client_config(&authority, None))
        .await
        .unwrap();

    // A plaintext Kafka client: refused at its first bytes.
    let started = Instant::now();
    let mut plaintext = TcpStream::connect(ssl).await.unwrap();
    let body = RequestKind::ApiVersions(ApiVersionsRequest::default());
    plaintext
        .write_all(&request_frame(ApiKey::ApiVersions, 0, 1, &body))
        .await
        .unwrap();
    assert!(closed_within(&mut plaintext, Duration::from_secs(2)).await);
    assert!(started.elapsed() < Duration::from_secs(2));

    // A client that never starts the handshake: closed after the timeout.
    let mut silent = TcpStream::connect(ssl).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(3)).await);

    assert!(api_versions(&mut good).await);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloaded_certificates_serve_new_connections_and_old_ones_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let first_ca = ca("first CA");
    let files = server_files(dir.path(), &first_ca, "first", None);
    let tls = TlsConfig::load(files.clone()).unwrap();
    let server = start(&[SecurityProtocol::Ssl], Some(tls.clone()), |_| {}).await;
    let ssl = server.addr(SecurityProtocol::Ssl);
    let mut old = tls_connect(ssl, client_config(&first_ca, None))
        .await
        .unwrap();
    assert!(api_versions(&mut old).await);

    let second_ca = ca("second CA");
    let (cert, key) = leaf(&second_ca, "second", false);
    std::fs::write(&files.cert, cert).unwrap();
    std::fs::write(&files.key, key).unwrap();
    tls.reload().unwrap();
    let mut new = tls_connect(ssl, client_config(&second_ca, None))
        .await
        .unwrap();
    assert!(api_versions(&mut new).await);
    assert!(
        tls_connect(ssl, client_config(&first_ca, None))
            .await
            .is_err(),
        "new handshakes use the new certificate"
    );
    assert!(
        api_versions(&mut old).await,
        "the old connection still works"
    );

    // A broken file keeps the configuration in force.
    std::fs::write(&files.key, "not a key").unwrap();
    let error = tls.reload().unwrap_err().to_string();
    assert!(error.contains("server.key"), "{error}");
    let mut after = tls_connect(ssl, client_config(&second_ca, None))
        .await
        .unwrap();
    assert!(api_versions(&mut after).await);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_listener_without_certificates_is_refused_at_start() {
    let sqlite = streamhouse_metadata::testing::temp_sqlite().await.unwrap();
    let objects = tempfile::tempdir().unwrap();
    let engine = StorageEngine::start(
        Arc::new(sqlite.store.clone()),
        ObjectStorage::local(objects.path()).unwrap(),
        StorageConfig::default(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = KafkaServer::new(engine.clone(), KafkaConfig::default())
        .run_listeners(
            vec![KafkaListener::new(SecurityProtocol::SaslSsl, listener)],
            std::future::pending(),
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("--tls-cert"), "{error}");
    engine.shutdown().await;
}

// ---- SASL ----

const PASSWORD: &str = "alice-secret";

async fn sasl_server(delay: Duration) -> Secured {
    let server = start(
        &[SecurityProtocol::Plaintext, SecurityProtocol::SaslPlaintext],
        None,
        |config| config.failed_authentication_delay = delay,
    )
    .await;
    for mechanism in ScramMechanism::ALL {
        let credential = ScramCredential::from_password(
            mechanism,
            PASSWORD.as_bytes(),
            b"0123456789abcdef",
            4096,
        );
        server
            .engine
            .set_scram_credential("alice", credential)
            .await
            .unwrap();
    }
    server
}

fn handshake(mechanism: &str) -> RequestKind {
    RequestKind::SaslHandshake(
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.into())),
    )
}

fn authenticate(token: &[u8]) -> RequestKind {
    RequestKind::SaslAuthenticate(
        SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)),
    )
}

/// SaslAuthenticate v2: (error code, message, token, session lifetime).
async fn sasl_step<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    token: &[u8],
) -> Option<(i16, String, Bytes, i64)> {
    match call(stream, ApiKey::SaslAuthenticate, 2, authenticate(token)).await? {
        ResponseKind::SaslAuthenticate(r) => Some((
            r.error_code,
            r.error_message.map(|m| m.to_string()).unwrap_or_default(),
            r.auth_bytes,
            r.session_lifetime_ms,
        )),
        _ => None,
    }
}

async fn handshake_ok<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    mechanism: &str,
    version: i16,
) {
    match call(stream, ApiKey::SaslHandshake, version, handshake(mechanism)).await {
        Some(ResponseKind::SaslHandshake(r)) => {
            assert_eq!(r.error_code, 0);
            let names: Vec<String> = r.mechanisms.iter().map(|m| m.to_string()).collect();
            assert_eq!(names, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
        }
        other => panic!("handshake: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_plain_logs_in_and_refuses_a_wrong_password_after_the_delay() {
    let delay = Duration::from_millis(300);
    let server = sasl_server(delay).await;
    let sasl = server.addr(SecurityProtocol::SaslPlaintext);

    let mut client = TcpStream::connect(sasl).await.unwrap();
    assert!(
        api_versions(&mut client).await,
        "ApiVersions comes before auth"
    );
    handshake_ok(&mut client, "PLAIN", 1).await;
    let (code, _, _, lifetime) = sasl_step(&mut client, format!("\0alice\0{PASSWORD}").as_bytes())
        .await
        .unwrap();
    assert_eq!((code, lifetime), (0, 0));
    assert_eq!(
        broker_ports(&mut client).await,
        Some(vec![i32::from(sasl.port())])
    );

    let mut wrong = TcpStream::connect(sasl).await.unwrap();
    handshake_ok(&mut wrong, "PLAIN", 1).await;
    let started = Instant::now();
    let (code, message, _, _) = sasl_step(&mut wrong, b"\0alice\0guess").await.unwrap();
    assert_eq!(code, 58, "SASL_AUTHENTICATION_FAILED");
    assert_eq!(
        message,
        "Authentication failed: Invalid username or password"
    );
    assert!(started.elapsed() >= delay);
    assert!(closed_within(&mut wrong, Duration::from_secs(2)).await);

    let mut unknown = TcpStream::connect(sasl).await.unwrap();
    handshake_ok(&mut unknown, "PLAIN", 1).await;
    let (code, message, _, _) = sasl_step(&mut unknown, b"\0mallory\0guess").await.unwrap();
    assert_eq!(code, 58);
    assert_eq!(
        message,
        "Authentication failed: Invalid username or password"
    );

    // The authenticated connection goes on.
    assert!(broker_ports(&mut client).await.is_some());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_before_authentication_closes_the_connection() {
    let server = sasl_server(Duration::ZERO).await;
    let sasl = server.addr(SecurityProtocol::SaslPlaintext);
    let mut client = TcpStream::connect(sasl).await.unwrap();
    assert_eq!(broker_ports(&mut client).await, None);

    let mut early = TcpStream::connect(sasl).await.unwrap();
    match sasl_step(&mut early, b"\0alice\0x").await {
        Some((code, _, _, _)) => assert_eq!(code, 34, "ILLEGAL_SASL_STATE"),
        None => panic!("SaslAuthenticate before SaslHandshake gets an answer"),
    }
    assert!(closed_within(&mut early, Duration::from_secs(2)).await);

    // The plaintext listener needs nothing, and refuses a SASL handshake.
    let mut open = TcpStream::connect(server.addr(SecurityProtocol::Plaintext))
        .await
        .unwrap();
    assert!(broker_ports(&mut open).await.is_some());
    match call(&mut open, ApiKey::SaslHandshake, 1, handshake("PLAIN")).await {
        Some(ResponseKind::SaslHandshake(r)) => assert_eq!(r.error_code, 34),
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_mechanism_names_the_enabled_ones() {
    let server = start(&[SecurityProtocol::SaslPlaintext], None, |config| {
        config.sasl_mechanisms = vec!["SCRAM-SHA-512".parse().unwrap()];
    })
    .await;
    let mut client = TcpStream::connect(server.addr(SecurityProtocol::SaslPlaintext))
        .await
        .unwrap();
    match call(&mut client, ApiKey::SaslHandshake, 1, handshake("PLAIN")).await {
        Some(ResponseKind::SaslHandshake(r)) => {
            assert_eq!(r.error_code, 33, "UNSUPPORTED_SASL_MECHANISM");
            let names: Vec<String> = r.mechanisms.iter().map(|m| m.to_string()).collect();
            assert_eq!(names, ["SCRAM-SHA-512"]);
        }
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_handshake_v0_is_followed_by_raw_tokens() {
    let server = sasl_server(Duration::ZERO).await;
    let sasl = server.addr(SecurityProtocol::SaslPlaintext);
    let mut client = TcpStream::connect(sasl).await.unwrap();
    handshake_ok(&mut client, "PLAIN", 0).await;
    let token = format!("\0alice\0{PASSWORD}");
    let mut frame = BytesMut::new();
    frame.put_u32(token.len() as u32);
    frame.put_slice(token.as_bytes());
    client.write_all(&frame).await.unwrap();
    let answer = read_frame(&mut client).await.expect("a raw answer");
    assert!(answer.is_empty(), "PLAIN answers an empty token");
    assert!(broker_ports(&mut client).await.is_some());

    // A wrong password in raw mode closes the connection.
    let mut wrong = TcpStream::connect(sasl).await.unwrap();
    handshake_ok(&mut wrong, "PLAIN", 0).await;
    let token = b"\0alice\0guess";
    let mut frame = BytesMut::new();
    frame.put_u32(token.len() as u32);
    frame.put_slice(token);
    wrong.write_all(&frame).await.unwrap();
    assert!(closed_within(&mut wrong, Duration::from_secs(2)).await);
    server.shutdown().await;
}

/// Runs a SCRAM exchange with `password`; the final SaslAuthenticate's
/// error code and message.
async fn scram_login<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    mechanism: ScramMechanism,
    user: &str,
    password: &str,
) -> (i16, String) {
    handshake_ok(stream, mechanism.name(), 1).await;
    let bare = format!("n={user},r=clientnonce123");
    let (code, message, server_first, _) = sasl_step(stream, format!("n,,{bare}").as_bytes())
        .await
        .unwrap();
    if code != 0 {
        return (code, message);
    }
    let server_first = String::from_utf8(server_first.to_vec()).unwrap();
    let attribute = |key: &str| {
        server_first
            .split(',')
            .find_map(|a| a.strip_prefix(key))
            .unwrap()
            .to_string()
    };
    let nonce = attribute("r=");
    assert!(nonce.starts_with("clientnonce123") && nonce.len() > 20);
    let salt = BASE64.decode(attribute("s=")).unwrap();
    let iterations: u32 = attribute("i=").parse().unwrap();
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{bare},{server_first},{without_proof}");
    let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
    let proof = scram::client_proof(mechanism, &salted, auth_message.as_bytes());
    let last = format!("{without_proof},p={}", BASE64.encode(proof));
    let (code, message, server_final, _) = sasl_step(stream, last.as_bytes()).await.unwrap();
    if code == 0 {
        let credential =
            ScramCredential::from_salted_password(mechanism, &salted, &salt, iterations);
        let expected = format!(
            "v={}",
            BASE64.encode(credential.server_signature(auth_message.as_bytes()))
        );
        assert_eq!(
            server_final,
            expected.as_bytes(),
            "the server proves itself"
        );
    }
    (code, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_logs_in_and_an_unknown_user_fails_like_a_wrong_password() {
    let server = sasl_server(Duration::ZERO).await;
    let sasl = server.addr(SecurityProtocol::SaslPlaintext);
    for mechanism in ScramMechanism::ALL {
        let mut client = TcpStream::connect(sasl).await.unwrap();
        assert_eq!(
            scram_login(&mut client, mechanism, "alice", PASSWORD).await,
            (0, String::new())
        );
        assert!(broker_ports(&mut client).await.is_some());

        let expected = (
            58,
            format!(
                "Authentication failed during authentication due to invalid credentials with \
                 SASL mechanism {mechanism}"
            ),
        );
        let mut wrong = TcpStream::connect(sasl).await.unwrap();
        assert_eq!(
            scram_login(&mut wrong, mechanism, "alice", "guess").await,
            expected
        );
        assert!(closed_within(&mut wrong, Duration::from_secs(2)).await);
        let mut unknown = TcpStream::connect(sasl).await.unwrap();
        assert_eq!(
            scram_login(&mut unknown, mechanism, "mallory", "guess").await,
            expected
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_the_exchange_fails_and_closes_while_others_are_served() {
    let server = sasl_server(Duration::ZERO).await;
    let sasl = server.addr(SecurityProtocol::SaslPlaintext);
    let mut good = TcpStream::connect(sasl).await.unwrap();
    assert_eq!(
        scram_login(&mut good, ScramMechanism::Sha256, "alice", PASSWORD)
            .await
            .0,
        0
    );
    for (mechanism, token) in [
        ("SCRAM-SHA-256", &b"\xff\x00garbage"[..]),
        ("SCRAM-SHA-256", b"y,,n=alice,r=abc"),
        ("SCRAM-SHA-512", b""),
        ("PLAIN", b"no separators"),
    ] {
        let mut client = TcpStream::connect(sasl).await.unwrap();
        handshake_ok(&mut client, mechanism, 1).await;
        let (code, _, _, _) = sasl_step(&mut client, token).await.unwrap();
        assert_eq!(code, 58, "{mechanism} {token:?}");
        assert!(closed_within(&mut client, Duration::from_secs(2)).await);
    }
    // An oversized frame before authentication closes the connection.
    let mut big = TcpStream::connect(sasl).await.unwrap();
    let mut frame = BytesMut::new();
    frame.put_u32(1 << 20);
    big.write_all(&frame).await.unwrap();
    assert!(closed_within(&mut big, Duration::from_secs(2)).await);
    assert!(broker_ports(&mut good).await.is_some());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_runs_scram_inside_tls() {
    let dir = tempfile::tempdir().unwrap();
    let authority = ca("server CA");
    let tls = TlsConfig::load(server_files(dir.path(), &authority, "broker", None)).unwrap();
    let server = start(
        &[SecurityProtocol::SaslSsl, SecurityProtocol::Plaintext],
        Some(tls),
        |_| {},
    )
    .await;
    server
        .engine
        .set_scram_credential(
            "alice",
            ScramCredential::from_password(
                ScramMechanism::Sha512,
                PASSWORD.as_bytes(),
                b"0123456789abcdef",
                4096,
            ),
        )
        .await
        .unwrap();
    let addr = server.addr(SecurityProtocol::SaslSsl);
    let mut client = tls_connect(addr, client_config(&authority, None))
        .await
        .unwrap();
    assert_eq!(
        scram_login(&mut client, ScramMechanism::Sha512, "alice", PASSWORD).await,
        (0, String::new())
    );
    assert_eq!(
        broker_ports(&mut client).await,
        Some(vec![i32::from(addr.port())]),
        "the SASL_SSL port, not the PLAINTEXT one"
    );
    let mut unauthenticated = tls_connect(addr, client_config(&authority, None))
        .await
        .unwrap();
    assert_eq!(broker_ports(&mut unauthenticated).await, None);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_lists_only_the_agents_with_the_clients_listener() {
    let dir = tempfile::tempdir().unwrap();
    let authority = ca("server CA");
    let tls = TlsConfig::load(server_files(dir.path(), &authority, "broker", None)).unwrap();
    let sqlite = streamhouse_metadata::testing::temp_sqlite().await.unwrap();
    let objects = tempfile::tempdir().unwrap();
    let store: Arc<dyn streamhouse_metadata::MetadataStore> = Arc::new(sqlite.store.clone());
    let fast = |id: &'static str, node: i32| {
        move |config: &mut KafkaConfig| {
            config.agent_id = id.into();
            config.node_id = node;
            config.heartbeat_interval = Duration::from_millis(50);
        }
    };
    let a = start_on(
        store.clone(),
        ObjectStorage::local(objects.path()).unwrap(),
        &[SecurityProtocol::Plaintext, SecurityProtocol::Ssl],
        Some(tls),
        fast("a", 1),
    )
    .await;
    let b = start_on(
        store.clone(),
        ObjectStorage::local(objects.path()).unwrap(),
        &[SecurityProtocol::Plaintext],
        None,
        fast("b", 2),
    )
    .await;
    let mut plaintext = TcpStream::connect(a.addr(SecurityProtocol::Plaintext))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ports = Vec::new();
    while ports.len() < 2 {
        assert!(Instant::now() < deadline, "b never joined: {ports:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        ports = broker_ports(&mut plaintext).await.unwrap();
    }
    ports.sort();
    let mut expected = vec![
        i32::from(a.addr(SecurityProtocol::Plaintext).port()),
        i32::from(b.addr(SecurityProtocol::Plaintext).port()),
    ];
    expected.sort();
    assert_eq!(ports, expected, "PLAINTEXT clients see both agents");
    let mut ssl = tls_connect(
        a.addr(SecurityProtocol::Ssl),
        client_config(&authority, None),
    )
    .await
    .unwrap();
    assert_eq!(
        broker_ports(&mut ssl).await,
        Some(vec![i32::from(a.addr(SecurityProtocol::Ssl).port())]),
        "SSL clients see only the agent with an SSL listener"
    );
    b.shutdown().await;
    a.shutdown().await;
}
