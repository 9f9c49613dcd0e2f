//! Accepting connections and serving requests.
//!
//! Each connection reads requests one at a time and answers them in the
//! order they arrived, as Kafka requires. A request's handler runs in order
//! with the others up to the point where it only waits (a produce waiting
//! for its flush, a fetch waiting for data); that wait runs concurrently,
//! so a client with several produce requests in flight gets them into the
//! same flush, and a long-poll fetch does not hold up the requests behind
//! it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ResponseKind};
use streamhouse_storage::StorageEngine;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::cluster::{Agent, Cluster};
use crate::config::KafkaConfig;
use crate::frame::{self, DecodeError};
use crate::groups::GroupCoordinator;
use crate::handlers::{self, Reply};

/// Requests of one connection whose responses are not yet written.
const MAX_IN_FLIGHT: usize = 128;
/// How long a shutdown waits for connections to answer what they received.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What the handlers share.
pub(crate) struct Broker {
    pub(crate) engine: StorageEngine,
    pub(crate) config: KafkaConfig,
    pub(crate) groups: GroupCoordinator,
    pub(crate) cluster: Cluster,
}

/// Who sent a request.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) version: i16,
}

/// The Kafka protocol server of one agent.
pub struct KafkaServer {
    broker: Arc<Broker>,
}

impl KafkaServer {
    pub fn new(engine: StorageEngine, config: KafkaConfig) -> Self {
        let groups = GroupCoordinator::new();
        let me = Agent {
            agent_id: config.agent_id.clone(),
            node_id: config.node_id,
            host: config.advertised_host.clone(),
            port: i32::from(config.advertised_port),
            zone: config.zone.clone(),
        };
        let cluster = Cluster::new(engine.metadata().clone(), me, config.agent_timeout);
        Self {
            broker: Arc::new(Broker {
                engine,
                config,
                groups,
                cluster,
            }),
        }
    }

    /// The group coordinator, for the HTTP API.
    pub fn groups(&self) -> GroupCoordinator {
        self.broker.groups.clone()
    }

    /// Serves connections from `listener` until `shutdown` completes; then
    /// stops accepting and reading, answers the requests already received
    /// (waiting up to 30 s), and returns.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let stop = CancellationToken::new();
        let mut connections = JoinSet::new();
        let groups = self.broker.groups.start(stop.clone());
        let membership = self
            .broker
            .cluster
            .start(self.broker.config.heartbeat_interval, stop.clone());
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn(serve_connection(
                            self.broker.clone(),
                            stream,
                            peer,
                            stop.clone(),
                        ));
                    }
                    // Running out of file descriptors and similar errors
                    // must not end the server; back off and keep going.
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        stop.cancel();
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                open = connections.len(),
                "connections did not finish in time; closing them"
            );
            connections.shutdown().await;
        }
        let _ = groups.await;
        let _ = membership.await;
        Ok(())
    }
}

/// A response in the connection's output queue.
enum Outgoing {
    Ready(Bytes),
    Pending(AbortOnDropHandle<Option<Bytes>>),
}

async fn serve_connection(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    metrics::gauge!("streamhouse_kafka_connections").increment(1.0);
    let (mut reader, writer) = stream.into_split();
    let (queue, outgoing) = mpsc::channel(MAX_IN_FLIGHT);
    let writer = tokio::spawn(write_responses(writer, outgoing, peer));
    let max_frame = broker.config.max_frame_bytes;
    loop {
        let frame = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            frame = frame::read_frame(&mut reader, max_frame) => frame,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(error) => {
                tracing::info!(%peer, %error, "closing connection");
                metrics::counter!("streamhouse_kafka_request_errors_total", "kind" => "frame")
                    .increment(1);
                break;
            }
        };
        let Some(outgoing) = handle_frame(&broker, frame, peer).await else {
            break;
        };
        if let Some(outgoing) = outgoing
            && queue.send(outgoing).await.is_err()
        {
            break;
        }
    }
    drop(queue);
    let _ = writer.await;
    metrics::gauge!("streamhouse_kafka_connections").decrement(1.0);
}

/// `None` closes the connection; `Some(None)` means no response (acks=0).
async fn handle_frame(
    broker: &Arc<Broker>,
    frame: Bytes,
    peer: SocketAddr,
) -> Option<Option<Outgoing>> {
    let started = Instant::now();
    let request = match frame::decode_request(frame) {
        Ok(request) => request,
        Err(DecodeError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            correlation_id,
            version,
        }) => {
            // Kafka answers an ApiVersions it cannot parse with version 0 of
            // the response, so that the client can pick a version it knows.
            tracing::debug!(%peer, version, "ApiVersions version not supported");
            let response = handlers::api_versions::unsupported_version();
            return encode(ApiKey::ApiVersions, 0, correlation_id, &response, started)
                .map(|bytes| Some(Outgoing::Ready(bytes)));
        }
        Err(error) => {
            tracing::warn!(%peer, %error, "closing connection after an undecodable request");
            metrics::counter!("streamhouse_kafka_request_errors_total", "kind" => error.label())
                .increment(1);
            return None;
        }
    };
    let api_key = request.api_key;
    let version = request.version;
    let correlation_id = request.header.correlation_id;
    let context = RequestContext {
        client_id: request
            .header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        client_host: peer.ip().to_string(),
        version,
    };
    match handlers::dispatch(broker, &context, request.body).await {
        Reply::Now(response) => encode(api_key, version, correlation_id, &response, started)
            .map(|bytes| Some(Outgoing::Ready(bytes))),
        Reply::Later(pending) => {
            let task = tokio::spawn(async move {
                let response = pending.await;
                encode(api_key, version, correlation_id, &response, started)
            });
            Some(Some(Outgoing::Pending(AbortOnDropHandle::new(task))))
        }
        Reply::Nothing => {
            record(api_key, started);
            Some(None)
        }
    }
}

fn encode(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
    started: Instant,
) -> Option<Bytes> {
    match frame::encode_response(api_key, version, correlation_id, response) {
        Ok(bytes) => {
            record(api_key, started);
            Some(bytes)
        }
        Err(error) => {
            tracing::error!(?api_key, version, %error, "cannot encode response; closing connection");
            None
        }
    }
}

fn record(api_key: ApiKey, started: Instant) {
    let api = handlers::api_name(api_key);
    metrics::counter!("streamhouse_kafka_requests_total", "api" => api).increment(1);
    metrics::histogram!("streamhouse_kafka_request_seconds", "api" => api)
        .record(started.elapsed().as_secs_f64());
}

async fn write_responses(
    mut writer: OwnedWriteHalf,
    mut outgoing: mpsc::Receiver<Outgoing>,
    peer: SocketAddr,
) {
    while let Some(next) = outgoing.recv().await {
        let bytes: Option<Bytes> = match next {
            Outgoing::Ready(bytes) => Some(bytes),
            Outgoing::Pending(task) => task.await.unwrap_or(None),
        };
        let Some(bytes) = bytes else {
            // The response could not be produced: the client would wait for
            // it forever, so close the connection.
            break;
        };
        if let Err(error) = writer.write_all(&bytes).await {
            tracing::debug!(%peer, %error, "write failed");
            break;
        }
    }
    let _ = writer.shutdown().await;
}
