//! Accepting connections and serving requests.
//!
//! Each connection reads requests one at a time and answers them in the
//! order they arrived, as Kafka requires. A request's handler runs in order
//! with the others up to the point where it only waits (a produce waiting
//! for its flush, a fetch waiting for data); that wait runs concurrently,
//! so a client with several produce requests in flight gets them into the
//! same flush, and a long-poll fetch does not hold up the requests behind
//! it.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use parking_lot::Mutex;
use streamhouse_storage::StorageEngine;
use streamhouse_storage::security::{Caller, Principal};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::broker::{Broker, RequestContext, SMALL_RESPONSE_BYTES, connection_budget_size};
use crate::config::KafkaConfig;
use crate::coordinator::GroupCoordinator;
use crate::frame::{self, DecodeError, Frame, FrameError, FrameLimits};
use crate::handlers::{self, Reply};

/// Requests of one connection whose responses are not yet written; the
/// connection is not read further until the client takes some.
const MAX_IN_FLIGHT: usize = 16;
/// How long a shutdown waits for connections to answer what they received.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The Kafka protocol server of one agent.
pub struct KafkaServer {
    broker: Arc<Broker>,
}

impl KafkaServer {
    pub fn new(engine: StorageEngine, config: KafkaConfig) -> Self {
        Self {
            broker: Arc::new(Broker::new(engine, config)),
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
        // Learn the topic list once before serving, so that Metadata can
        // answer from it if the metadata store goes away before any client
        // asked for every topic.
        if let Err(error) = self.broker.engine.list_topics().await {
            tracing::warn!(%error, "cannot list topics at start");
        }
        let stop = CancellationToken::new();
        let mut connections = JoinSet::new();
        let open = Arc::new(Mutex::new(Connections::default()));
        let groups = self.broker.groups.start(stop.clone());
        let offset_expiry = self.broker.groups.start_offset_expiry(
            self.broker.engine.group_offsets(),
            self.broker.cluster.clone(),
            self.broker.engine.clock().clone(),
            stop.clone(),
        );
        let membership = self
            .broker
            .cluster
            .start(self.broker.config.heartbeat_interval, stop.clone());
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => match admit(&open, peer.ip(), &self.broker.config) {
                        Ok(slot) => {
                            connections.spawn(serve_connection(
                                self.broker.clone(),
                                stream,
                                peer,
                                stop.clone(),
                                slot,
                            ));
                        }
                        Err(limit) => {
                            metrics::counter!("streamhouse_limit_rejections_total", "limit" => limit)
                                .increment(1);
                            drop(stream);
                        }
                    },
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
        let _ = offset_expiry.await;
        let _ = membership.await;
        Ok(())
    }
}

/// A response in the connection's output queue, with the share of the
/// response budgets it holds until it is written.
struct Outgoing {
    response: Response,
    _budget: Vec<OwnedSemaphorePermit>,
}

enum Response {
    Ready(Bytes),
    Pending(AbortOnDropHandle<Option<Bytes>>),
}

/// Open connections in total and per client address.
#[derive(Default)]
struct Connections {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    refused: u64,
    last_refusal_log: Option<Instant>,
}

/// A connection's place in [`Connections`], given back when dropped.
struct ConnectionSlot {
    connections: Arc<Mutex<Connections>>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut connections = self.connections.lock();
        connections.total = connections.total.saturating_sub(1);
        if let Some(count) = connections.per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                connections.per_ip.remove(&self.ip);
            }
        }
    }
}

/// Takes a slot for a new connection from `ip`, or says which limit it hit.
fn admit(
    connections: &Arc<Mutex<Connections>>,
    ip: IpAddr,
    config: &KafkaConfig,
) -> Result<ConnectionSlot, &'static str> {
    let mut open = connections.lock();
    let from_ip = open.per_ip.get(&ip).copied().unwrap_or(0);
    let refused = if open.total >= config.max_connections {
        Some("max.connections")
    } else if from_ip >= config.max_connections_per_ip {
        Some("max.connections.per.ip")
    } else {
        None
    };
    if let Some(limit) = refused {
        open.refused += 1;
        // One line per 10 s, not one per refused connection.
        let now = Instant::now();
        if open
            .last_refusal_log
            .is_none_or(|last| now.duration_since(last) >= Duration::from_secs(10))
        {
            tracing::warn!(
                %ip,
                limit,
                open = open.total,
                from_ip,
                refused = open.refused,
                "refusing Kafka connections: {limit} reached (--{})",
                limit.replace('.', "-")
            );
            open.last_refusal_log = Some(now);
            open.refused = 0;
        }
        return Err(limit);
    }
    open.total += 1;
    *open.per_ip.entry(ip).or_insert(0) += 1;
    Ok(ConnectionSlot {
        connections: connections.clone(),
        ip,
    })
}

async fn serve_connection(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: CancellationToken,
    _slot: ConnectionSlot,
) {
    let _ = stream.set_nodelay(true);
    metrics::gauge!("streamhouse_kafka_connections").increment(1.0);
    let (mut reader, writer) = stream.into_split();
    let (queue, outgoing) = mpsc::channel(MAX_IN_FLIGHT);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let config = &broker.config;
    let writer = AbortOnDropHandle::new(tokio::spawn(write_responses(
        writer,
        outgoing,
        peer,
        in_flight.clone(),
        config.request_read_timeout,
    )));
    // One Fetch answer of the largest size, plus room for small answers.
    let connection_budget = Arc::new(Semaphore::new(connection_budget_size(&broker.config)));
    let limits = FrameLimits {
        max_bytes: config.max_frame_bytes,
        budget: broker.request_budget.clone(),
        read_timeout: config.request_read_timeout,
    };
    // Whether the loop ended because the agent is stopping: then the
    // responses already owed are written before the connection closes.
    let mut draining = false;
    loop {
        let read = frame::read_frame(&mut reader, &limits);
        tokio::pin!(read);
        let frame = loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => {
                    draining = true;
                    break None;
                }
                frame = &mut read => break Some(frame),
                _ = tokio::time::sleep(config.connections_max_idle) => {
                    if in_flight.load(Ordering::SeqCst) > 0 {
                        // A long poll or a join is in progress: not idle.
                        continue;
                    }
                    tracing::debug!(%peer, "closing idle connection (connections.max.idle.ms)");
                    metrics::counter!("streamhouse_kafka_idle_connections_closed_total")
                        .increment(1);
                    break None;
                }
            }
        };
        let Some(frame) = frame else { break };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(error) => {
                tracing::info!(%peer, %error, "closing connection");
                let kind = match error {
                    FrameError::TooLarge { .. } => "frame_too_large",
                    FrameError::ReadTimeout { .. } => "read_timeout",
                    _ => "frame",
                };
                metrics::counter!("streamhouse_kafka_request_errors_total", "kind" => kind)
                    .increment(1);
                break;
            }
        };
        let Some(outgoing) = handle_frame(&broker, frame, peer, &connection_budget).await else {
            break;
        };
        if let Some(outgoing) = outgoing {
            in_flight.fetch_add(1, Ordering::SeqCst);
            if queue.send(outgoing).await.is_err() {
                break;
            }
        }
    }
    drop(queue);
    if draining {
        let _ = writer.await;
    } else {
        // The client is gone (or broke the protocol): nobody will read the
        // answers still owed, so drop them (a pending JoinGroup or long
        // poll included) and release the socket now.
        drop(writer);
    }
    metrics::gauge!("streamhouse_kafka_connections").decrement(1.0);
}

/// `None` closes the connection; `Some(None)` means no response (acks=0).
async fn handle_frame(
    broker: &Arc<Broker>,
    frame: Frame,
    peer: SocketAddr,
    connection_budget: &Arc<Semaphore>,
) -> Option<Option<Outgoing>> {
    let started = Instant::now();
    let Frame {
        bytes,
        _budget: request_budget,
    } = frame;
    let request = match frame::decode_request(bytes) {
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
                .map(|bytes| Some(Outgoing::ready(bytes)));
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
        caller: Caller::new(Principal::anonymous(), peer.ip().to_string()),
    };
    let mut body = request.body;
    // A Fetch answer is capped (fetch.max.bytes) and its size reserved
    // before it is read, from this connection's budget (so a client that
    // pipelines fetches without reading the answers stops being read) and
    // from the agent's (so all connections together stay bounded).
    let mut budget = Vec::new();
    if let RequestKind::Fetch(fetch) = &mut body {
        let cap = i32::try_from(broker.config.fetch_max_bytes).unwrap_or(i32::MAX);
        fetch.max_bytes = fetch.max_bytes.clamp(0, cap);
        let reserve = (usize::try_from(fetch.max_bytes).unwrap_or(0) + SMALL_RESPONSE_BYTES)
            .min(connection_budget_size(&broker.config)) as u32;
        budget.push(
            connection_budget
                .clone()
                .acquire_many_owned(reserve)
                .await
                .ok()?,
        );
        budget.push(
            broker
                .response_budget
                .clone()
                .acquire_many_owned(reserve.min(broker.response_budget_size))
                .await
                .ok()?,
        );
    }
    let reply = handlers::dispatch(broker, &context, body).await;
    // The request's bytes are no longer needed: what a produce holds is
    // in the write buffer now, under its own limit.
    drop(request_budget);
    match reply {
        Reply::Now(response) => encode(api_key, version, correlation_id, &response, started)
            .map(|bytes| Some(Outgoing::ready(bytes))),
        Reply::Later(pending) => {
            let task = tokio::spawn(async move {
                let response = pending.await;
                encode(api_key, version, correlation_id, &response, started)
            });
            Some(Some(Outgoing {
                response: Response::Pending(AbortOnDropHandle::new(task)),
                _budget: budget,
            }))
        }
        Reply::Nothing => {
            record(api_key, started);
            Some(None)
        }
    }
}

impl Outgoing {
    fn ready(bytes: Bytes) -> Self {
        Self {
            response: Response::Ready(bytes),
            _budget: Vec::new(),
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
    in_flight: Arc<AtomicUsize>,
    write_timeout: Duration,
) {
    while let Some(next) = outgoing.recv().await {
        let bytes: Option<Bytes> = match next.response {
            Response::Ready(bytes) => Some(bytes),
            Response::Pending(task) => task.await.unwrap_or(None),
        };
        let Some(bytes) = bytes else {
            // The response could not be produced: the client would wait for
            // it forever, so close the connection.
            break;
        };
        // A client that does not read its answers holds their memory: it
        // gets as long as a request may take to arrive.
        match tokio::time::timeout(write_timeout, writer.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "write failed");
                break;
            }
            Err(_) => {
                tracing::info!(%peer, "closing connection: the client did not read its response");
                metrics::counter!("streamhouse_kafka_request_errors_total", "kind" => "write_timeout")
                    .increment(1);
                break;
            }
        }
        drop(next._budget);
        in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    let _ = writer.shutdown().await;
}
