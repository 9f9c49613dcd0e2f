//! A minimal Kafka client over kafka-protocol, and a server started
//! in-process on a free port, on the embedded default or on PostgreSQL +
//! S3 when the test script provides them.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use streamhouse_kafka::{KafkaConfig, KafkaServer};
use streamhouse_metadata::MetadataStore;
use streamhouse_metadata::testing::{isolated_postgres, temp_sqlite};
use streamhouse_storage::testing::isolated_s3;
use streamhouse_storage::{FlushConfig, ObjectStorage, StorageConfig, StorageEngine};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) struct TestServer {
    pub addr: SocketAddr,
    pub engine: StorageEngine,
    pub name: &'static str,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _dirs: Vec<tempfile::TempDir>,
}

impl TestServer {
    pub(crate) async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.engine.shutdown().await;
    }
}

fn test_storage_config() -> StorageConfig {
    StorageConfig {
        flush: FlushConfig {
            flush_interval: Duration::from_millis(20),
            upload_backoff: Duration::from_millis(10),
            ..FlushConfig::default()
        },
        ..StorageConfig::default()
    }
}

async fn start(
    name: &'static str,
    metadata: Arc<dyn MetadataStore>,
    storage: ObjectStorage,
    dirs: Vec<tempfile::TempDir>,
) -> TestServer {
    let engine = StorageEngine::start(metadata, storage, test_storage_config());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = KafkaConfig {
        advertised_port: addr.port(),
        max_frame_bytes: 1 << 20,
        ..KafkaConfig::default()
    };
    let server = KafkaServer::new(engine.clone(), config);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = server
            .run(listener, async {
                let _ = stopped.await;
            })
            .await;
    });
    TestServer {
        addr,
        engine,
        name,
        stop: Some(stop),
        task: Some(task),
        _dirs: dirs,
    }
}

pub(crate) async fn embedded() -> TestServer {
    let sqlite = temp_sqlite().await.expect("sqlite");
    let objects = tempfile::tempdir().expect("tempdir");
    let storage = ObjectStorage::local(objects.path()).expect("local");
    start(
        "sqlite+local",
        Arc::new(sqlite.store.clone()),
        storage,
        vec![sqlite.dir, objects],
    )
    .await
}

pub(crate) async fn postgres_s3(test: &str) -> Option<TestServer> {
    let metadata = isolated_postgres(test).await?;
    let storage = isolated_s3(test)?;
    Some(start("postgres+s3", Arc::new(metadata), storage, Vec::new()).await)
}

#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_local() {
                    let server = $crate::common::embedded().await;
                    super::$name(&server).await;
                    server.shutdown().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_s3() {
                    if let Some(server) =
                        $crate::common::postgres_s3(concat!("kafka_", stringify!($name))).await
                    {
                        super::$name(&server).await;
                        server.shutdown().await;
                    }
                }
            }
        )*
    };
}

/// One connection speaking raw Kafka requests.
pub(crate) struct Client {
    stream: TcpStream,
    next_correlation: i32,
}

impl Client {
    pub(crate) async fn connect(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.expect("connect"),
            next_correlation: 1,
        }
    }

    /// Sends a request without waiting; returns its correlation id.
    pub(crate) async fn send(&mut self, api_key: ApiKey, version: i16, body: RequestKind) -> i32 {
        let correlation_id = self.next_correlation;
        self.next_correlation += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = api_key as i16;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        header.client_id = Some(StrBytes::from_static_str("protocol-test"));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, api_key.request_header_version(version))
            .expect("header");
        body.encode(&mut buf, version).expect("body");
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        self.send_raw(&buf).await;
        correlation_id
    }

    pub(crate) async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Reads the next response; `None` when the server closed the connection.
    pub(crate) async fn receive(
        &mut self,
        api_key: ApiKey,
        version: i16,
    ) -> Option<(i32, ResponseKind)> {
        let mut len = [0u8; 4];
        if self.stream.read_exact(&mut len).await.is_err() {
            return None;
        }
        let mut frame = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut frame).await.ok()?;
        let mut buf = Bytes::from(frame);
        let header = ResponseHeader::decode(&mut buf, api_key.response_header_version(version))
            .expect("header");
        let body = ResponseKind::decode(api_key, &mut buf, version).expect("body");
        Some((header.correlation_id, body))
    }

    pub(crate) async fn call(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: RequestKind,
    ) -> ResponseKind {
        let correlation_id = self.send(api_key, version, body).await;
        let (received, response) = self.receive(api_key, version).await.expect("a response");
        assert_eq!(received, correlation_id);
        response
    }

    /// True when the server closed the connection (a read sees EOF).
    pub(crate) async fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut byte)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

pub(crate) fn i32_at(bytes: &[u8], at: usize) -> i32 {
    (&bytes[at..at + 4]).get_i32()
}
