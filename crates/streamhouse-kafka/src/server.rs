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
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
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
use crate::listener::{KafkaListener, SecurityProtocol};
use crate::session::{Gate, MAX_UNAUTHENTICATED_FRAME, Session};
use crate::tls::TlsConfig;

/// Requests of one connection whose responses are not yet written; the
/// connection is not read further until the client takes some.
const MAX_IN_FLIGHT: usize = 16;
/// How long a shutdown waits for connections to answer what they received.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The Kafka protocol server of one agent.
pub struct KafkaServer {
    broker: Arc<Broker>,
    tls: Option<TlsConfig>,
}

impl KafkaServer {
    pub fn new(engine: StorageEngine, config: KafkaConfig) -> Self {
        Self {
            broker: Arc::new(Broker::new(engine, config)),
            tls: None,
        }
    }

    /// Serves SSL and SASL_SSL listeners with `tls` (reloaded in place by
    /// [`TlsConfig::reload`]).
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
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
        self.run_listeners(
            vec![KafkaListener::new(SecurityProtocol::Plaintext, listener)],
            shutdown,
        )
        .await
    }

    /// Like [`KafkaServer::run`], on several listeners, each with its own
    /// protocol, sharing one broker. A TLS listener without
    /// [`KafkaServer::with_tls`] is an error before anything is served.
    pub async fn run_listeners(
        self,
        listeners: Vec<KafkaListener>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        if let Some(listener) = listeners
            .iter()
            .find(|l| l.protocol.uses_tls() && self.tls.is_none())
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "a {} listener needs a TLS certificate and key (--tls-cert, --tls-key)",
                    listener.protocol
                ),
            ));
        }
        if listeners.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no Kafka listener",
            ));
        }
        // Learn the topic list once before serving, so that Metadata can
        // answer from it if the metadata store goes away before any client
        // asked for every topic.
        if let Err(error) = self.broker.engine.list_topics().await {
            tracing::warn!(%error, "cannot list topics at start");
        }
        // And the partitions' leader epochs, so that the first answers do
        // not report epochs older than other agents do.
        if let Err(error) = self.broker.engine.refresh_leader_epochs().await {
            tracing::warn!(%error, "cannot read leader epochs at start");
        }
        let stop = CancellationToken::new();
        let mut connections = JoinSet::new();
        let open = Arc::new(Mutex::new(Connections::default()));
        let groups = self.broker.groups.start(stop.clone());
        let consumer_groups = self.broker.groups.consumer().ok().map(|consumer| {
            let cluster = self.broker.cluster.clone();
            consumer.start(
                Arc::new(move |group: &str| cluster.is_me(&cluster.coordinator(group))),
                stop.clone(),
            )
        });
        let offset_expiry = self.broker.groups.start_offset_expiry(
            self.broker.engine.group_offsets(),
            self.broker.cluster.clone(),
            self.broker.engine.clock().clone(),
            stop.clone(),
        );
        let transaction_expiry = start_transaction_expiry(self.broker.clone(), stop.clone());
        let membership = self
            .broker
            .cluster
            .start(self.broker.config.heartbeat_interval, stop.clone());
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                (accepted, protocol) = accept_any(&listeners) => match accepted {
                    Ok((stream, peer)) => match admit(&open, peer.ip(), &self.broker.config) {
                        Ok(slot) => {
                            connections.spawn(accept_connection(
                                self.broker.clone(),
                                stream,
                                peer,
                                protocol,
                                self.tls.clone(),
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
        drop(listeners);
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
        if let Some(consumer_groups) = consumer_groups {
            let _ = consumer_groups.await;
        }
        let _ = offset_expiry.await;
        let _ = transaction_expiry.await;
        let _ = membership.await;
        Ok(())
    }
}

/// A response in the connection's output queue, with the share of the
/// response budgets it holds until it is written.
struct Outgoing {
    response: Response,
    _budget: Vec<OwnedSemaphorePermit>,
    /// The connection closes once this is written (a failed
    /// authentication).
    close_after: bool,
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

/// The next connection on any listener, with that listener's protocol.
/// `accept` is cancel-safe, so the futures can be dropped and made anew.
async fn accept_any(
    listeners: &[KafkaListener],
) -> (std::io::Result<(TcpStream, SocketAddr)>, SecurityProtocol) {
    let accepts = listeners
        .iter()
        .map(|l| Box::pin(async move { (l.listener.accept().await, l.protocol) }));
    futures::future::select_all(accepts).await.0
}

/// Runs the TLS handshake when the listener needs one, learns the
/// transport's principal, and serves the connection.
async fn accept_connection(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    protocol: SecurityProtocol,
    tls: Option<TlsConfig>,
    stop: CancellationToken,
    slot: ConnectionSlot,
) {
    let _ = stream.set_nodelay(true);
    let tls = match tls {
        Some(tls) if protocol.uses_tls() => tls,
        _ => {
            let session = Session::new(protocol, Principal::anonymous(), peer);
            return serve_connection(broker, stream, peer, protocol, session, stop, slot).await;
        }
    };
    let config = if protocol.uses_sasl() {
        tls.server_config_without_client_auth()
    } else {
        tls.server_config()
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let handshake =
        tokio::time::timeout(broker.config.tls_handshake_timeout, acceptor.accept(stream));
    let stream = tokio::select! {
        _ = stop.cancelled() => return,
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                // Debug, not info: anyone can open connections that fail
                // (the counter below shows how many).
                tracing::debug!(%peer, %protocol, %error, "TLS handshake failed");
                metrics::counter!("streamhouse_kafka_tls_handshake_failures_total", "reason" => "error")
                    .increment(1);
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, %protocol, "TLS handshake not finished in time; closing");
                metrics::counter!("streamhouse_kafka_tls_handshake_failures_total", "reason" => "timeout")
                    .increment(1);
                return;
            }
        },
    };
    let certificate = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| cert.as_ref().to_vec());
    let principal = match certificate {
        None => Principal::anonymous(),
        Some(der) => {
            let subject = crate::tls::subject_dn(&der);
            match subject
                .as_deref()
                .and_then(|s| broker.config.ssl_principal_mapping.map(s))
            {
                Some(name) => Principal::user(name),
                None => {
                    tracing::info!(
                        %peer,
                        subject = subject.as_deref().unwrap_or("(unreadable)"),
                        "no ssl.principal.mapping.rules rule matches the client certificate; closing"
                    );
                    return;
                }
            }
        }
    };
    let session = Session::new(protocol, principal, peer);
    serve_connection(broker, stream, peer, protocol, session, stop, slot).await
}

async fn serve_connection<S>(
    broker: Arc<Broker>,
    stream: S,
    peer: SocketAddr,
    protocol: SecurityProtocol,
    mut session: Session,
    stop: CancellationToken,
    _slot: ConnectionSlot,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    metrics::gauge!("streamhouse_kafka_connections").increment(1.0);
    let (mut reader, writer) = tokio::io::split(stream);
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
    let mut limits = FrameLimits {
        max_bytes: config.max_frame_bytes,
        budget: broker.request_budget.clone(),
        read_timeout: config.request_read_timeout,
    };
    // Whether the loop ended because the agent is stopping: then the
    // responses already owed are written before the connection closes.
    let mut draining = false;
    loop {
        limits.max_bytes = if session.authenticated() {
            config.max_frame_bytes
        } else {
            config.max_frame_bytes.min(MAX_UNAUTHENTICATED_FRAME)
        };
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
        let outgoing = match handle_frame(
            &broker,
            frame,
            peer,
            protocol,
            &mut session,
            &connection_budget,
        )
        .await
        {
            Handled::Answer(outgoing) => outgoing,
            Handled::Close => break,
        };
        let close = outgoing.as_ref().is_some_and(|o| o.close_after);
        if let Some(outgoing) = outgoing {
            in_flight.fetch_add(1, Ordering::SeqCst);
            if queue.send(outgoing).await.is_err() {
                break;
            }
        }
        if close {
            // The answer is written before the connection closes.
            draining = true;
            break;
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

/// What the connection does after a frame.
enum Handled {
    /// Queue this answer (`None`: no answer, acks=0) and go on.
    Answer(Option<Outgoing>),
    Close,
}

async fn handle_frame(
    broker: &Arc<Broker>,
    frame: Frame,
    peer: SocketAddr,
    listener: SecurityProtocol,
    session: &mut Session,
    connection_budget: &Arc<Semaphore>,
) -> Handled {
    let started = Instant::now();
    let Frame {
        bytes,
        _budget: request_budget,
    } = frame;
    if session.expects_raw_token() {
        return match session.raw_token(broker, &bytes).await {
            Gate::Answer(bytes) => Handled::Answer(Some(Outgoing::ready(bytes))),
            Gate::AnswerAndClose(bytes) => Handled::Answer(Some(Outgoing::closing(bytes))),
            Gate::Dispatch | Gate::Close => Handled::Close,
        };
    }
    match handle_request(
        broker,
        bytes,
        request_budget,
        peer,
        listener,
        session,
        connection_budget,
        started,
    )
    .await
    {
        Some(Some(outgoing)) => Handled::Answer(Some(outgoing)),
        Some(None) => Handled::Answer(None),
        None => Handled::Close,
    }
}

/// `None` closes the connection; `Some(None)` means no response (acks=0).
#[allow(clippy::too_many_arguments)]
async fn handle_request(
    broker: &Arc<Broker>,
    bytes: Bytes,
    request_budget: Option<OwnedSemaphorePermit>,
    peer: SocketAddr,
    listener: SecurityProtocol,
    session: &mut Session,
    connection_budget: &Arc<Semaphore>,
    started: Instant,
) -> Option<Option<Outgoing>> {
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
    match session.gate(broker, &request).await {
        Gate::Dispatch => {}
        Gate::Answer(bytes) => {
            record(request.api_key, started);
            return Some(Some(Outgoing::ready(bytes)));
        }
        Gate::AnswerAndClose(bytes) => {
            record(request.api_key, started);
            return Some(Some(Outgoing::closing(bytes)));
        }
        Gate::Close => return None,
    }
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
        listener,
        caller: Caller::new(session.principal().clone(), peer.ip().to_string()),
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
                close_after: false,
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
            close_after: false,
        }
    }

    fn closing(bytes: Bytes) -> Self {
        Self {
            close_after: true,
            ..Self::ready(bytes)
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

async fn write_responses<W: AsyncWrite + Unpin>(
    mut writer: W,
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
        // gets as long as a request may take to arrive. A TLS stream keeps
        // what it encrypted until flushed, so the answer is flushed unless
        // another one is already queued behind it (plain TCP flushes are
        // free).
        let more_queued = !outgoing.is_empty();
        let write = async {
            writer.write_all(&bytes).await?;
            if !more_queued {
                writer.flush().await?;
            }
            Ok::<(), std::io::Error>(())
        };
        match tokio::time::timeout(write_timeout, write).await {
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

#[cfg(test)]
mod tests;

/// Aborts the transactions this agent coordinates once they are open
/// longer than their timeout, completes those an agent left prepared, and
/// forgets transactional ids idle longer than `transactional_id_expiration`,
/// every `transaction_abort_check_interval` (Kafka's
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms`), until
/// `stop`.
fn start_transaction_expiry(
    broker: Arc<Broker>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let every = broker
        .config
        .transaction_abort_check_interval
        .max(Duration::from_millis(10));
    let stale_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
    let id_expiration_ms =
        i64::try_from(broker.config.transactional_id_expiration.as_millis()).unwrap_or(i64::MAX);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let cluster = broker.cluster.clone();
            let pass = broker
                .engine
                .expire_transactions(stale_ms, id_expiration_ms, |id| {
                    cluster.is_me(&cluster.coordinator(id))
                });
            tokio::select! {
                _ = stop.cancelled() => return,
                result = pass => if let Err(error) = result {
                    tracing::warn!(%error, "transaction expiry failed; retrying at the next check");
                },
            }
        }
    })
}
