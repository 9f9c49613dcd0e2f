//! Starting and stopping one agent: the storage engine, the Kafka protocol
//! server and the HTTP API in one process.
//!
//! The invariant that matters is the shutdown order: stop accepting on
//! both listeners, let the Kafka server answer what it has received, then
//! shut the engine down (which flushes, commits and answers every buffered
//! append), and only then wait for the HTTP requests still in flight —
//! produce requests among them are answered by that last flush.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use streamhouse_kafka::{
    GroupCoordinator, GroupLimits, KafkaConfig, KafkaListener, KafkaServer, SecurityProtocol,
    SslPrincipalMapper, TlsConfig, TlsError, TlsFiles,
};
use streamhouse_metadata::MetadataStore;
use streamhouse_storage::jobs::JobsConfig;
use streamhouse_storage::{
    FlushConfig, ObjectStorage, SecurityConfig, StorageConfig, StorageEngine,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, HostPort, ServerConfig, Setting, redact_url};
use crate::error::ServerError;
use crate::http::{self, AppState};
use crate::readiness::{self, ReadinessConfig};

/// How long shutdown waits for HTTP requests still running after the
/// engine has answered every append (slow readers of large responses).
const HTTP_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts agents. See [`RunningServer`] for what runs.
pub struct Server;

impl Server {
    /// Opens the metadata store and object store named in `config`, binds
    /// both listeners and starts serving.
    pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
        config.validate()?;
        let tls = load_tls(&config)?;
        // Before any store is touched, so that their first requests count.
        let metrics = http::metrics::install_recorder();
        let object_store_url = config.object_store_url();
        let storage =
            ObjectStorage::from_url(&object_store_url).map_err(|e| ServerError::ObjectStore {
                location: redact_url(&object_store_url),
                reason: e.to_string(),
            })?;
        // Probed before the metadata store is opened, so that a missing
        // bucket does not leave a fresh SQLite database behind.
        probe_object_store(&storage, &redact_url(&object_store_url)).await?;
        let metadata_url = config.metadata_url();
        let metadata = streamhouse_metadata::open(&metadata_url)
            .await
            .map_err(|source| ServerError::Metadata {
                url: redact_url(&metadata_url),
                source,
            })?;
        let described = Described {
            metadata: redact_url(&metadata_url),
            object_store: redact_url(&object_store_url),
        };
        launch(config, tls, metadata, storage, described, metrics).await
    }

    /// Like [`Server::start`], with a metadata store and object storage
    /// built by the caller (an isolated PostgreSQL schema, an S3 prefix, a
    /// fault-injecting store); `config.metadata_url` and
    /// `config.object_store_url` are ignored.
    pub async fn start_with_components(
        config: ServerConfig,
        metadata: Arc<dyn MetadataStore>,
        storage: ObjectStorage,
    ) -> Result<RunningServer, ServerError> {
        config.validate()?;
        let metrics = http::metrics::install_recorder();
        let described = Described {
            metadata: format!("{} (provided)", metadata.backend()),
            object_store: format!("{:?} (provided)", storage),
        };
        let tls = load_tls(&config)?;
        probe_object_store(&storage, &described.object_store).await?;
        launch(config, tls, metadata, storage, described, metrics).await
    }
}

/// How the stores are shown in logs and errors.
struct Described {
    metadata: String,
    object_store: String,
}

/// Reads the TLS files: a bad one is a configuration error, reported
/// before any store is opened or port bound.
fn load_tls(config: &ServerConfig) -> Result<Option<TlsConfig>, ServerError> {
    let Some(files) = config.tls_files() else {
        return Ok(None);
    };
    TlsConfig::load(files.clone()).map(Some).map_err(|error| {
        ServerError::Config(ConfigError::new(
            tls_setting(&files, &error),
            None,
            error.to_string(),
        ))
    })
}

async fn launch(
    config: ServerConfig,
    tls: Option<TlsConfig>,
    metadata: Arc<dyn MetadataStore>,
    storage: ObjectStorage,
    described: Described,
    metrics: Option<PrometheusHandle>,
) -> Result<RunningServer, ServerError> {
    let ssl_principal_mapping = SslPrincipalMapper::parse(&config.ssl_principal_mapping_rules)
        .map_err(|e| {
            ServerError::Config(ConfigError::new(
                Setting::SslPrincipalMappingRules,
                None,
                e.to_string(),
            ))
        })?;
    let mut kafka_listeners = Vec::new();
    let mut kafka_addrs = Vec::new();
    for listen in &config.kafka_listen {
        let listener = bind(&listen.addr, Setting::KafkaListen).await?;
        kafka_addrs.push((
            listen.protocol,
            local_addr(&listener, &listen.addr, Setting::KafkaListen)?,
        ));
        kafka_listeners.push(KafkaListener::new(listen.protocol, listener));
    }
    let first_listen = config
        .kafka_listen
        .first()
        .map(|l| l.addr.clone())
        .ok_or_else(|| ConfigError::new(Setting::KafkaListen, None, "no listener given"))?;
    let kafka_addr = kafka_addrs
        .first()
        .map(|&(_, addr)| addr)
        .ok_or_else(|| ConfigError::new(Setting::KafkaListen, None, "no listener given"))?;
    let http_listener = bind(&config.http_listen, Setting::HttpListen).await?;
    let http_addr = local_addr(&http_listener, &config.http_listen, Setting::HttpListen)?;

    let agent_id = config
        .agent_id
        .clone()
        .unwrap_or_else(|| format!("{}-{}", hostname(), kafka_addr.port()));
    let node_id = node_id(metadata.as_ref(), &agent_id, &described.metadata).await?;
    let advertised_host = config.advertised_host.clone().unwrap_or_else(|| {
        if first_listen.is_unspecified() {
            hostname()
        } else {
            first_listen.host.clone()
        }
    });
    tracing::info!(
        data_dir = %config.data_dir.display(),
        metadata = %described.metadata,
        object_store = %described.object_store,
        kafka_listen = %config
            .kafka_listen
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        tls_cert = ?config.tls_cert,
        tls_client_ca = ?config.tls_client_ca,
        http_tls = config.http_tls,
        sasl_mechanisms = %config
            .sasl_mechanisms
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(","),
        http_listen = %config.http_listen,
        advertised = %HostPort::new(advertised_host.clone(), kafka_addr.port()),
        agent_id = %agent_id,
        node_id,
        flush_interval_ms = config.flush_interval.as_millis() as u64,
        cache_bytes = config.cache_bytes,
        max_body_bytes = config.max_body_bytes,
        compaction_target_bytes = config.compaction_target_bytes,
        job_interval_ms = config.job_interval.as_millis() as u64,
        gc_grace_ms = config.gc_grace.as_millis() as u64,
        max_unflushed_bytes = config.max_unflushed_bytes,
        queued_max_request_bytes = config.queued_max_request_bytes,
        socket_request_max_bytes = config.socket_request_max_bytes,
        fetch_max_bytes = config.fetch_max_bytes,
        max_connections = config.max_connections,
        max_connections_per_ip = config.max_connections_per_ip,
        connections_max_idle_ms = config.connections_max_idle.as_millis() as u64,
        authorizer = if config.authorizer { "acl" } else { "none" },
        super_users = %config
            .super_users
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(";"),
        "starting streamhouse"
    );

    let engine = StorageEngine::start(
        metadata,
        storage,
        StorageConfig {
            flush: FlushConfig {
                flush_interval: config.flush_interval,
                max_pending_bytes: usize::try_from(config.max_unflushed_bytes)
                    .unwrap_or(usize::MAX),
                ..FlushConfig::default()
            },
            cache_bytes: config.cache_bytes,
            max_partitions: to_usize(config.max_partitions),
            security: SecurityConfig {
                authorizer: config.authorizer,
                super_users: config.super_users.clone(),
                ..SecurityConfig::default()
            },
            ..StorageConfig::default()
        },
    );
    let mut jobs = JobsConfig::new(agent_id.clone());
    jobs.compaction.target_bytes = config.compaction_target_bytes;
    jobs.compaction.key_map_bytes = config.compaction_key_map_bytes;
    jobs.compaction.span = config.compaction_span;
    jobs.compaction_interval = config.job_interval;
    jobs.retention_interval = config.job_interval;
    jobs.gc_interval = config.job_interval;
    jobs.gc_grace = config.gc_grace;
    // A dead runner's jobs move to another agent after its lease expires:
    // a few job periods, within 1 to 30 seconds.
    jobs.lease_ttl =
        (config.job_interval * 3).clamp(Duration::from_secs(1), Duration::from_secs(30));
    engine.start_jobs(jobs);
    let kafka = KafkaServer::new(
        engine.clone(),
        KafkaConfig {
            agent_id: agent_id.clone(),
            zone: config.zone.clone(),
            node_id,
            advertised_host,
            advertised_port: kafka_addr.port(),
            advertised_listeners: kafka_addrs
                .iter()
                .map(|&(protocol, addr)| (protocol, addr.port()))
                .collect(),
            sasl_mechanisms: config.sasl_mechanisms.clone(),
            failed_authentication_delay: config.connection_failed_authentication_delay,
            ssl_principal_mapping,
            max_frame_bytes: to_usize(config.socket_request_max_bytes),
            queued_max_request_bytes: to_usize(config.queued_max_request_bytes),
            max_uncompressed_batch_factor: to_usize(config.max_uncompressed_batch_factor),
            fetch_max_bytes: to_usize(config.fetch_max_bytes),
            connections_max_idle: config.connections_max_idle,
            request_read_timeout: config.request_read_timeout,
            max_connections: to_usize(config.max_connections),
            max_connections_per_ip: to_usize(config.max_connections_per_ip),
            auto_create_topics: config.auto_create_topics_enable,
            default_partitions: i32::try_from(config.num_partitions).unwrap_or(i32::MAX),
            group_limits: GroupLimits {
                min_session_timeout: config.group_min_session_timeout,
                max_session_timeout: config.group_max_session_timeout,
                max_rebalance_timeout: config.group_max_rebalance_timeout,
                max_group_size: to_usize(config.group_max_size),
                max_groups: to_usize(config.max_groups),
                offsets_retention: config.offsets_retention,
                offsets_retention_check_interval: config.offsets_retention_check_interval,
                consumer_session_timeout: config.group_consumer_session_timeout,
                consumer_heartbeat_interval: config.group_consumer_heartbeat_interval,
            },
            transaction_max_timeout: config.transaction_max_timeout,
            transaction_abort_check_interval: config.transaction_abort_check_interval,
            transactional_id_expiration: config.transactional_id_expiration,
            ..KafkaConfig::default()
        },
    );
    let kafka = match &tls {
        Some(tls) => kafka.with_tls(tls.clone()),
        None => kafka,
    };
    let groups = kafka.groups();

    let shutdown = CancellationToken::new();
    let failed = CancellationToken::new();
    let kafka_task = tokio::spawn(watch_task(
        kafka.run_listeners(kafka_listeners, shutdown.clone().cancelled_owned()),
        shutdown.clone(),
        failed.clone(),
        "kafka",
    ));
    let security = http::HttpSecurity {
        enabled: http_requires_credentials(&config),
        open_probes: config.http_open_probes,
        failed_login_delay: config.connection_failed_authentication_delay,
    };
    let state = AppState::new(
        engine.clone(),
        groups.clone(),
        shutdown.clone(),
        metrics,
        security,
    );
    let limits = http::HttpLimits {
        max_body_bytes: config.max_body_bytes,
        max_uri_bytes: to_usize(config.http_max_uri_bytes),
        max_header_bytes: to_usize(config.http_max_header_bytes),
        max_headers: to_usize(config.http_max_headers),
        max_inflight_body_bytes: to_usize(config.http_max_inflight_body_bytes),
        body_timeout: config.http_request_timeout,
        header_timeout: config.http_header_timeout,
        max_connections: to_usize(config.http_max_connections),
    };
    let router = http::router_with(state, &limits, ReadinessConfig::default());
    let http_serve = http::serve(
        http_listener,
        router,
        &limits,
        tls.clone().filter(|_| config.http_tls),
        shutdown.clone().cancelled_owned(),
    );
    let http_task = tokio::spawn(watch_task(
        http_serve,
        shutdown.clone(),
        failed.clone(),
        "http",
    ));
    // The test harness and operators parse these two lines.
    tracing::info!("kafka listening on {kafka_addr}");
    for (protocol, addr) in &kafka_addrs {
        tracing::info!("kafka {protocol} listening on {addr}");
    }
    tracing::info!("http listening on {http_addr}");

    Ok(RunningServer {
        kafka_addr,
        kafka_addrs,
        tls,
        http_addr,
        agent_id,
        node_id,
        engine,
        groups,
        shutdown,
        failed,
        kafka_task: Some(kafka_task),
        http_task: Some(http_task),
    })
}

/// Whether the HTTP API asks every request for a user's credentials: when
/// Kafka clients must authenticate (a SASL listener) or are authorized by
/// ACLs, the HTTP API must not be the way around it.
fn http_requires_credentials(config: &ServerConfig) -> bool {
    config.authorizer
        || config
            .kafka_listen
            .iter()
            .any(|listen| listen.protocol.uses_sasl())
}

/// Finds a missing bucket or an unreadable directory now, with a clear
/// message, rather than at the first flush.
pub(crate) async fn probe_object_store(
    storage: &ObjectStorage,
    location: &str,
) -> Result<(), ServerError> {
    readiness::check_object_store(storage)
        .await
        .map_err(|reason| ServerError::ObjectStore {
            location: location.to_string(),
            reason,
        })
}

/// Runs a listener and cancels `failed` if it stops without being asked to.
async fn watch_task(
    serve: impl Future<Output = std::io::Result<()>>,
    shutdown: CancellationToken,
    failed: CancellationToken,
    what: &'static str,
) -> std::io::Result<()> {
    let result = serve.await;
    if !shutdown.is_cancelled() {
        match &result {
            Ok(()) => tracing::error!("{what} server stopped unexpectedly"),
            Err(error) => tracing::error!(%error, "{what} server failed"),
        }
        failed.cancel();
    }
    result
}

async fn bind(addr: &HostPort, setting: Setting) -> Result<TcpListener, ServerError> {
    TcpListener::bind((addr.host.as_str(), addr.port))
        .await
        .map_err(|source| ServerError::Bind {
            flag: setting.flag(),
            addr: addr.to_string(),
            source,
        })
}

fn local_addr(
    listener: &TcpListener,
    addr: &HostPort,
    setting: Setting,
) -> Result<SocketAddr, ServerError> {
    listener.local_addr().map_err(|source| ServerError::Bind {
        flag: setting.flag(),
        addr: addr.to_string(),
        source,
    })
}

/// The setting whose file a TLS error is about.
fn tls_setting(files: &TlsFiles, error: &TlsError) -> Setting {
    let path = match error {
        TlsError::Read { path, .. }
        | TlsError::NoCertificate { path }
        | TlsError::NoKey { path }
        | TlsError::Invalid { path, .. } => path,
    };
    if *path == files.key {
        Setting::TlsKey
    } else if files.client_ca.as_ref() == Some(path) {
        Setting::TlsClientCa
    } else {
        Setting::TlsCert
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// This machine's host name, or `localhost` if it has none.
pub(crate) fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// How long a node id stays with an agent id that shut down, before
/// another agent may take it.
const NODE_ID_REUSE_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// The agent's Kafka node id, allocated in the metadata store: small (the
/// smallest free one the first time an agent id starts) and kept across
/// restarts of the same `--agent-id`, so that tools addressing broker 0, 1,
/// … find the agents.
async fn node_id(
    metadata: &dyn MetadataStore,
    agent_id: &str,
    metadata_url: &str,
) -> Result<i32, ServerError> {
    let now = streamhouse_core::clock::Clock::now_ms(&streamhouse_core::clock::SystemClock);
    let reuse_after = i64::try_from(NODE_ID_REUSE_AFTER.as_millis()).unwrap_or(i64::MAX);
    metadata
        .node_id(agent_id, now, now.saturating_sub(reuse_after))
        .await
        .map_err(|source| ServerError::Metadata {
            url: metadata_url.to_string(),
            source,
        })
}

/// A started agent. Dropping it stops the listeners without draining;
/// call [`RunningServer::shutdown`] to stop cleanly.
pub struct RunningServer {
    kafka_addr: SocketAddr,
    kafka_addrs: Vec<(SecurityProtocol, SocketAddr)>,
    tls: Option<TlsConfig>,
    http_addr: SocketAddr,
    agent_id: String,
    node_id: i32,
    engine: StorageEngine,
    groups: GroupCoordinator,
    shutdown: CancellationToken,
    failed: CancellationToken,
    kafka_task: Option<JoinHandle<std::io::Result<()>>>,
    http_task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningServer {
    /// The address the Kafka listener is bound to.
    pub fn kafka_addr(&self) -> SocketAddr {
        self.kafka_addr
    }

    /// The address of the Kafka listener for `protocol`, if there is one.
    pub fn kafka_listener_addr(&self, protocol: SecurityProtocol) -> Option<SocketAddr> {
        self.kafka_addrs
            .iter()
            .find(|(p, _)| *p == protocol)
            .map(|&(_, addr)| addr)
    }

    /// Re-reads the TLS certificate, key and client CA (what SIGHUP
    /// does): new handshakes use them, open connections keep theirs. On
    /// error the configuration in force stays. `Ok(false)` without TLS.
    pub fn reload_tls(&self) -> Result<bool, TlsError> {
        match &self.tls {
            Some(tls) => tls.reload().map(|()| true),
            None => Ok(false),
        }
    }

    /// The address the HTTP listener is bound to.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn engine(&self) -> &StorageEngine {
        &self.engine
    }

    pub fn groups(&self) -> &GroupCoordinator {
        &self.groups
    }

    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// The Kafka broker id, derived from the agent id.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// Resolves if a listener stops without [`RunningServer::shutdown`]
    /// having been called; the caller should then shut down.
    pub async fn stopped(&self) {
        self.failed.cancelled().await;
    }

    /// Stops accepting on both listeners, lets the Kafka server answer what
    /// it received, flushes and commits every buffered append, and waits
    /// (bounded) for HTTP requests in flight. Returns the first listener
    /// error, if any.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        tracing::info!("shutting down: no new connections");
        self.shutdown.cancel();
        let kafka = join("kafka", self.kafka_task.take()).await;
        tracing::info!("kafka server stopped; flushing buffered appends");
        self.engine.shutdown().await;
        tracing::info!("storage engine stopped");
        let http = match self.http_task.take() {
            Some(task) => {
                let abort = task.abort_handle();
                match tokio::time::timeout(HTTP_DRAIN_TIMEOUT, join("http", Some(task))).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::warn!(
                            "http requests still running after {}s; closing them",
                            HTTP_DRAIN_TIMEOUT.as_secs()
                        );
                        abort.abort();
                        Ok(())
                    }
                }
            }
            None => Ok(()),
        };
        tracing::info!("shutdown complete");
        kafka.and(http)
    }
}

async fn join(
    what: &'static str,
    task: Option<JoinHandle<std::io::Result<()>>>,
) -> Result<(), ServerError> {
    let Some(task) = task else { return Ok(()) };
    match task.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(ServerError::Serve { what, source }),
        Err(join_error) => Err(ServerError::Serve {
            what,
            source: std::io::Error::other(join_error.to_string()),
        }),
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
