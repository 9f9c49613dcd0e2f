//! The settings table: every setting of `streamhouse serve` is declared
//! once below (TOML key, flag, environment variable, kind, default, help),
//! and the command line, the environment, the TOML file, `--help` and the
//! README's table (checked by a test) all come from that one declaration.
//!
//! How a value is checked and where it lands in [`ServerConfig`] is
//! [`RawSettings::resolve`]'s one `match`, so a new setting is one table
//! row, one arm there and one field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    ConfigError, Origin, ServerConfig, at_least, check_agent_id, check_flush_interval_ms,
    check_host, check_max_body_bytes, check_metadata_url, check_object_store_url, in_range,
    non_empty_path, one_line, parse_authorizer, parse_bool, parse_super_users, parse_u64,
};

/// What a setting's value is, for clap and the TOML file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// A non-negative integer; negative input reaches the range check (and
    /// its message naming the flag) instead of clap reading `-1` as a flag.
    Number,
    /// `true` or `false`.
    Bool,
    /// Several values: the flag repeated, the variable comma-separated,
    /// in the file a string or an array of strings.
    List,
}

macro_rules! settings {
    ($(
        $variant:ident: $key:literal, $flag:literal, $env:literal, $kind:ident,
            $value_name:literal, $default:literal, $help:literal;
    )*) => {
        /// One configurable setting.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Setting {
            $($variant),*
        }

        impl Setting {
            pub const ALL: &'static [Setting] = &[$(Setting::$variant),*];

            /// The TOML key, which is also clap's argument id.
            pub fn key(self) -> &'static str {
                match self { $(Setting::$variant => $key),* }
            }

            pub fn flag(self) -> &'static str {
                match self { $(Setting::$variant => $flag),* }
            }

            pub fn env(self) -> &'static str {
                match self { $(Setting::$variant => $env),* }
            }

            pub fn kind(self) -> Kind {
                match self { $(Setting::$variant => Kind::$kind),* }
            }

            /// The placeholder shown in `--help` (`HOST:PORT`, `N`, …).
            pub fn value_name(self) -> &'static str {
                match self { $(Setting::$variant => $value_name),* }
            }

            /// The default as documented; for numbers and booleans it is
            /// the literal value, and a test checks it against
            /// [`ServerConfig::default`].
            pub fn default_text(self) -> &'static str {
                match self { $(Setting::$variant => $default),* }
            }

            pub fn help(self) -> &'static str {
                match self { $(Setting::$variant => $help),* }
            }
        }
    };
}

settings! {
    DataDir: "data_dir", "--data-dir", "STREAMHOUSE_DATA_DIR", Text, "DIR", "./data",
        "Directory holding the default metadata database and object store";
    Metadata: "metadata", "--metadata", "STREAMHOUSE_METADATA", Text, "URL",
        "sqlite://DATA_DIR/metadata.db",
        "Metadata store: sqlite://PATH or postgres://USER[:PASSWORD]@HOST/DB";
    ObjectStore: "object_store", "--object-store", "STREAMHOUSE_OBJECT_STORE", Text, "URL",
        "file://DATA_DIR/objects",
        "Object store: file://PATH or s3://BUCKET[/PREFIX]; S3 endpoint and credentials come \
         from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION";
    KafkaListen: "kafka_listen", "--kafka-listen", "STREAMHOUSE_KAFKA_LISTEN", List,
        "[PROTOCOL://]HOST:PORT", "127.0.0.1:9092",
        "Kafka listener, repeatable: PROTOCOL is PLAINTEXT (when omitted), SSL, SASL_PLAINTEXT or \
         SASL_SSL; each protocol and port once; port 0 picks a free port";
    TlsCert: "tls_cert", "--tls-cert", "STREAMHOUSE_TLS_CERT", Text, "PEM", "none",
        "TLS certificate chain (PEM, leaf first) of SSL and SASL_SSL listeners and --http-tls; \
         re-read on SIGHUP";
    TlsKey: "tls_key", "--tls-key", "STREAMHOUSE_TLS_KEY", Text, "PEM", "none",
        "Private key (PEM) of --tls-cert; re-read on SIGHUP";
    TlsClientCa: "tls_client_ca", "--tls-client-ca", "STREAMHOUSE_TLS_CLIENT_CA", Text, "PEM",
        "none",
        "CA certificates (PEM) client certificates must chain to; when set, TLS clients must \
         present one (mTLS); re-read on SIGHUP";
    SslPrincipalMappingRules: "ssl_principal_mapping_rules", "--ssl-principal-mapping-rules",
        "STREAMHOUSE_SSL_PRINCIPAL_MAPPING_RULES", Text, "RULES", "DEFAULT",
        "Kafka's ssl.principal.mapping.rules: how a client certificate's subject becomes \
         User:NAME (RULE:pattern/replacement/[LU], comma-separated); DEFAULT is the subject's CN";
    HttpTls: "http_tls", "--http-tls", "STREAMHOUSE_HTTP_TLS", Bool, "BOOL", "false",
        "Serve the HTTP API over TLS with --tls-cert and --tls-key";
    SaslMechanisms: "sasl_mechanisms", "--sasl-mechanisms", "STREAMHOUSE_SASL_MECHANISMS", List,
        "MECHANISMS", "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "SASL mechanisms SASL_PLAINTEXT and SASL_SSL listeners offer, comma-separated";
    ConnectionFailedAuthenticationDelayMs: "connection_failed_authentication_delay_ms",
        "--connection-failed-authentication-delay-ms",
        "STREAMHOUSE_CONNECTION_FAILED_AUTHENTICATION_DELAY_MS", Number, "N", "100",
        "Kafka's connection.failed.authentication.delay.ms: how long a failed SASL \
         authentication waits before its answer and the connection's close";
    AdvertisedHost: "advertised_host", "--advertised-host", "STREAMHOUSE_ADVERTISED_HOST", Text,
        "HOST", "the listen host (the hostname for 0.0.0.0 or ::)",
        "Host Kafka clients are told to connect to";
    HttpListen: "http_listen", "--http-listen", "STREAMHOUSE_HTTP_LISTEN", Text, "HOST:PORT",
        "127.0.0.1:8080", "HTTP API listen address; port 0 picks a free port";
    AgentId: "agent_id", "--agent-id", "STREAMHOUSE_AGENT_ID", Text, "ID", "HOSTNAME-KAFKAPORT",
        "This agent's name; it keeps its Kafka node id (allocated in the metadata store, \
         from 0) across restarts";
    Zone: "zone", "--zone", "STREAMHOUSE_ZONE", Text, "ZONE", "none",
        "The zone (rack) this agent runs in, reported to Kafka clients";
    FlushIntervalMs: "flush_interval_ms", "--flush-interval-ms", "STREAMHOUSE_FLUSH_INTERVAL_MS",
        Number, "N", "50", "Longest time an append waits before its flush starts, 1-10000";
    CacheBytes: "cache_bytes", "--cache-bytes", "STREAMHOUSE_CACHE_BYTES", Number, "N",
        "268435456", "Bytes of segment data the read cache keeps in memory";
    MaxUnflushedBytes: "max_unflushed_bytes", "--max-unflushed-bytes",
        "STREAMHOUSE_MAX_UNFLUSHED_BYTES", Number, "N", "67108864",
        "Bytes of appends buffered or uploading before new produce requests are refused \
         with a retriable error (KAFKA_STORAGE_ERROR) instead of buffered, at least 1048576";
    MaxBodyBytes: "max_body_bytes", "--max-body-bytes", "STREAMHOUSE_MAX_BODY_BYTES", Number,
        "N", "16777216", "Largest HTTP request body accepted, at least 1024";
    HttpMaxUriBytes: "http_max_uri_bytes", "--http-max-uri-bytes",
        "STREAMHOUSE_HTTP_MAX_URI_BYTES", Number, "N", "8192",
        "Longest HTTP request target (path and query); longer ones get 414, at least 256";
    HttpMaxHeaderBytes: "http_max_header_bytes", "--http-max-header-bytes",
        "STREAMHOUSE_HTTP_MAX_HEADER_BYTES", Number, "N", "16384",
        "Largest total size of an HTTP request's headers; larger ones get 431, at least 1024";
    HttpMaxHeaders: "http_max_headers", "--http-max-headers", "STREAMHOUSE_HTTP_MAX_HEADERS",
        Number, "N", "100", "Header lines of an HTTP request; more get 431, 1-1000";
    HttpMaxInflightBodyBytes: "http_max_inflight_body_bytes", "--http-max-inflight-body-bytes",
        "STREAMHOUSE_HTTP_MAX_INFLIGHT_BODY_BYTES", Number, "N", "268435456",
        "HTTP request bodies held in memory at once across connections; a request that finds \
         no room in time gets 503, at least 1048576";
    HttpHeaderTimeoutMs: "http_header_timeout_ms", "--http-header-timeout-ms",
        "STREAMHOUSE_HTTP_HEADER_TIMEOUT_MS", Number, "N", "10000",
        "Time an HTTP connection may take to send a request head, and how long an idle \
         keep-alive connection stays open, at least 100";
    HttpRequestTimeoutMs: "http_request_timeout_ms", "--http-request-timeout-ms",
        "STREAMHOUSE_HTTP_REQUEST_TIMEOUT_MS", Number, "N", "30000",
        "Time from the end of an HTTP request head to the end of its body; slower bodies get \
         408, at least 100";
    HttpMaxConnections: "http_max_connections", "--http-max-connections",
        "STREAMHOUSE_HTTP_MAX_CONNECTIONS", Number, "N", "1024",
        "Open HTTP connections; further ones wait in the listen backlog";
    HttpOpenProbes: "http_open_probes", "--http-open-probes", "STREAMHOUSE_HTTP_OPEN_PROBES",
        Bool, "BOOL", "true",
        "Serve /ready and /metrics without credentials when the HTTP API requires them (any \
         SASL listener or --authorizer acl); /health is always open";
    CompactionTargetBytes: "compaction_target_bytes", "--compaction-target-bytes",
        "STREAMHOUSE_COMPACTION_TARGET_BYTES", Number, "N", "67108864",
        "Size a compacted object aims for, at least 1024";
    CompactionKeyMapBytes: "compaction_key_map_bytes", "--compaction-key-map-bytes",
        "STREAMHOUSE_COMPACTION_KEY_MAP_BYTES", Number, "N", "67108864",
        "Memory of key compaction's key map (24 bytes per key, at least 1024); a partition of \
         a compacted topic with more keys is compacted in several passes";
    CompactionSpanMs: "compaction_span_ms", "--compaction-span-ms",
        "STREAMHOUSE_COMPACTION_SPAN_MS", Number, "N", "60000",
        "Age after which a partition's newest small segments are compacted even below the \
         target size";
    JobIntervalMs: "job_interval_ms", "--job-interval-ms", "STREAMHOUSE_JOB_INTERVAL_MS",
        Number, "N", "30000",
        "How often compaction, retention and garbage collection run, each on one agent of the \
         cluster at a time, at least 10";
    GcGraceMs: "gc_grace_ms", "--gc-grace-ms", "STREAMHOUSE_GC_GRACE_MS", Number, "N", "600000",
        "How long an object outlives its last reference (or, never committed, its upload) \
         before garbage collection deletes it";
    QueuedMaxRequestBytes: "queued_max_request_bytes", "--queued-max-request-bytes",
        "STREAMHOUSE_QUEUED_MAX_REQUEST_BYTES", Number, "N", "268435456",
        "Kafka's queued.max.request.bytes: request bytes being read or waiting to be handled, \
         across all connections; when full the agent stops reading sockets, at least 1048576";
    SocketRequestMaxBytes: "socket_request_max_bytes", "--socket-request-max-bytes",
        "STREAMHOUSE_SOCKET_REQUEST_MAX_BYTES", Number, "N", "104857600",
        "Kafka's socket.request.max.bytes: a larger request frame closes its connection";
    MaxUncompressedBatchFactor: "max_uncompressed_batch_factor",
        "--max-uncompressed-batch-factor", "STREAMHOUSE_MAX_UNCOMPRESSED_BATCH_FACTOR", Number,
        "N", "8",
        "A produced record batch may decompress to at most this many times its topic's \
         max.message.bytes (and never more than --queued-max-request-bytes); beyond it the \
         partition gets INVALID_RECORD, 1-1024";
    FetchMaxBytes: "fetch_max_bytes", "--fetch-max-bytes", "STREAMHOUSE_FETCH_MAX_BYTES", Number,
        "N", "57671680",
        "Kafka's fetch.max.bytes: the largest Fetch answer, whatever the client asks for, at \
         least 1024";
    ConnectionsMaxIdleMs: "connections_max_idle_ms", "--connections-max-idle-ms",
        "STREAMHOUSE_CONNECTIONS_MAX_IDLE_MS", Number, "N", "600000",
        "Kafka's connections.max.idle.ms: a connection with no request for this long and \
         nothing in flight is closed";
    RequestReadTimeoutMs: "request_read_timeout_ms", "--request-read-timeout-ms",
        "STREAMHOUSE_REQUEST_READ_TIMEOUT_MS", Number, "N", "30000",
        "A request (or response) that has started must be read (or written) completely within \
         this time, or its connection is closed, at least 100";
    MaxConnections: "max_connections", "--max-connections", "STREAMHOUSE_MAX_CONNECTIONS",
        Number, "N", "10000", "Kafka's max.connections: open Kafka connections per agent";
    MaxConnectionsPerIp: "max_connections_per_ip", "--max-connections-per-ip",
        "STREAMHOUSE_MAX_CONNECTIONS_PER_IP", Number, "N", "1000",
        "Kafka's max.connections.per.ip: open Kafka connections from one client address";
    GroupMinSessionTimeoutMs: "group_min_session_timeout_ms", "--group-min-session-timeout-ms",
        "STREAMHOUSE_GROUP_MIN_SESSION_TIMEOUT_MS", Number, "N", "6000",
        "Kafka's group.min.session.timeout.ms: shorter session timeouts get \
         INVALID_SESSION_TIMEOUT";
    GroupMaxSessionTimeoutMs: "group_max_session_timeout_ms", "--group-max-session-timeout-ms",
        "STREAMHOUSE_GROUP_MAX_SESSION_TIMEOUT_MS", Number, "N", "1800000",
        "Kafka's group.max.session.timeout.ms: longer session timeouts get \
         INVALID_SESSION_TIMEOUT";
    GroupMaxRebalanceTimeoutMs: "group_max_rebalance_timeout_ms",
        "--group-max-rebalance-timeout-ms", "STREAMHOUSE_GROUP_MAX_REBALANCE_TIMEOUT_MS", Number,
        "N", "1800000",
        "Longest a rebalance waits for members to rejoin, whatever rebalance timeout \
         (max.poll.interval.ms) they ask for";
    TransactionMaxTimeoutMs: "transaction_max_timeout_ms", "--transaction-max-timeout-ms",
        "STREAMHOUSE_TRANSACTION_MAX_TIMEOUT_MS", Number, "N", "900000",
        "Kafka's transaction.max.timeout.ms: producers asking for a longer \
         transaction.timeout.ms get INVALID_TRANSACTION_TIMEOUT";
    TransactionAbortCheckIntervalMs: "transaction_abort_timed_out_transaction_cleanup_interval_ms",
        "--transaction-abort-timed-out-transaction-cleanup-interval-ms",
        "STREAMHOUSE_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS", Number, "N",
        "10000",
        "How often each agent aborts the transactions it coordinates that are open longer than \
         their transaction.timeout.ms, and completes those an agent that died left half ended";
    TransactionalIdExpirationMs: "transactional_id_expiration_ms",
        "--transactional-id-expiration-ms", "STREAMHOUSE_TRANSACTIONAL_ID_EXPIRATION_MS", Number,
        "N", "604800000",
        "Kafka's transactional.id.expiration.ms: a transactional id with no transaction in \
         progress for this long is forgotten (its next producer gets a new producer id)";
    GroupConsumerSessionTimeoutMs: "group_consumer_session_timeout_ms",
        "--group-consumer-session-timeout-ms", "STREAMHOUSE_GROUP_CONSUMER_SESSION_TIMEOUT_MS",
        Number, "N", "45000",
        "Kafka's group.consumer.session.timeout.ms: a member of a consumer-protocol group \
         (group.protocol=consumer) that sends no heartbeat for this long is removed, at least 1";
    GroupConsumerHeartbeatIntervalMs: "group_consumer_heartbeat_interval_ms",
        "--group-consumer-heartbeat-interval-ms",
        "STREAMHOUSE_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS", Number, "N", "5000",
        "Kafka's group.consumer.heartbeat.interval.ms: how often members of consumer-protocol \
         groups heartbeat, less than the session timeout";
    GroupMaxSize: "group_max_size", "--group-max-size", "STREAMHOUSE_GROUP_MAX_SIZE", Number, "N",
        "1000", "Kafka's group.max.size: members of one group; more get GROUP_MAX_SIZE_REACHED";
    MaxGroups: "max_groups", "--max-groups", "STREAMHOUSE_MAX_GROUPS", Number, "N", "100000",
        "Groups with members one coordinator holds; joins of further groups get \
         COORDINATOR_NOT_AVAILABLE";
    OffsetsRetentionMinutes: "offsets_retention_minutes", "--offsets-retention-minutes",
        "STREAMHOUSE_OFFSETS_RETENTION_MINUTES", Number, "N", "10080",
        "Kafka's offsets.retention.minutes: how long a group's committed offsets outlive its \
         last member, at least 1";
    OffsetsRetentionCheckIntervalMs: "offsets_retention_check_interval_ms",
        "--offsets-retention-check-interval-ms",
        "STREAMHOUSE_OFFSETS_RETENTION_CHECK_INTERVAL_MS", Number, "N", "600000",
        "Kafka's offsets.retention.check.interval.ms: how often expired offsets are looked \
         for, at least 100";
    AutoCreateTopicsEnable: "auto_create_topics_enable", "--auto-create-topics-enable",
        "STREAMHOUSE_AUTO_CREATE_TOPICS_ENABLE", Bool, "BOOL", "true",
        "Kafka's auto.create.topics.enable: create a topic when a client asks for the metadata \
         of one that does not exist";
    NumPartitions: "num_partitions", "--num-partitions", "STREAMHOUSE_NUM_PARTITIONS", Number,
        "N", "1",
        "Kafka's num.partitions: partitions of a topic created on first use or with \
         num_partitions = -1, at least 1";
    MaxPartitions: "max_partitions", "--max-partitions", "STREAMHOUSE_MAX_PARTITIONS", Number,
        "N", "100000",
        "Partitions the cluster may hold; CreateTopics, CreatePartitions and auto-creation \
         beyond it get POLICY_VIOLATION";
    Authorizer: "authorizer", "--authorizer", "STREAMHOUSE_AUTHORIZER", Text, "KIND", "none",
        "Kafka's authorizer: acl enforces Kafka ACLs on every Kafka and HTTP request (changes \
         reach every agent within 2 s); none allows everything";
    SuperUsers: "super_users", "--super-users", "STREAMHOUSE_SUPER_USERS", Text, "PRINCIPALS",
        "none", "Kafka's super.users: principals that bypass ACLs, separated by ; \
         (User:admin;User:ops)";
}

/// Raw values of the settings, each with where it came from, before they
/// are checked. Flags, environment and file each fill one layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawSettings {
    values: BTreeMap<Setting, (String, Origin)>,
}

impl RawSettings {
    pub fn set(&mut self, setting: Setting, value: impl Into<String>, origin: Origin) {
        self.values.insert(setting, (value.into(), origin));
    }

    /// Fills every setting this layer lacks from `lower` (lower precedence).
    pub fn or(mut self, lower: RawSettings) -> Self {
        for (setting, value) in lower.values {
            self.values.entry(setting).or_insert(value);
        }
        self
    }

    pub fn get(&self, setting: Setting) -> Option<&(String, Origin)> {
        self.values.get(&setting)
    }

    /// Checks every value and builds the configuration; unset values take
    /// their defaults.
    pub fn resolve(&self) -> Result<ServerConfig, ConfigError> {
        let mut config = ServerConfig::default();
        for (&setting, (raw, origin)) in &self.values {
            let fail = |message: String| ConfigError::new(setting, Some(origin.clone()), message);
            let number = || parse_u64(raw).map_err(fail);
            let millis = |min: u64| {
                parse_u64(raw)
                    .and_then(|n| at_least(n, min, "milliseconds"))
                    .map(Duration::from_millis)
                    .map_err(fail)
            };
            let bytes_at_least = |min: u64| {
                parse_u64(raw)
                    .and_then(|n| at_least(n, min, "bytes"))
                    .map_err(fail)
            };
            match setting {
                Setting::DataDir => {
                    config.data_dir = PathBuf::from(raw);
                    non_empty_path(&config.data_dir).map_err(fail)?;
                }
                Setting::Metadata => {
                    config.metadata_url = Some(check_metadata_url(raw).map_err(fail)?)
                }
                Setting::ObjectStore => {
                    config.object_store_url = Some(check_object_store_url(raw).map_err(fail)?)
                }
                Setting::KafkaListen => {
                    config.kafka_listen = super::parse_kafka_listeners(raw).map_err(fail)?
                }
                Setting::TlsCert => config.tls_cert = Some(PathBuf::from(raw)),
                Setting::TlsKey => config.tls_key = Some(PathBuf::from(raw)),
                Setting::TlsClientCa => config.tls_client_ca = Some(PathBuf::from(raw)),
                Setting::SslPrincipalMappingRules => {
                    streamhouse_kafka::SslPrincipalMapper::parse(raw)
                        .map_err(|e| fail(e.to_string()))?;
                    config.ssl_principal_mapping_rules = raw.clone();
                }
                Setting::HttpTls => config.http_tls = parse_bool(raw).map_err(fail)?,
                Setting::SaslMechanisms => {
                    config.sasl_mechanisms = super::parse_sasl_mechanisms(raw).map_err(fail)?
                }
                Setting::ConnectionFailedAuthenticationDelayMs => {
                    config.connection_failed_authentication_delay = millis(0)?
                }
                Setting::HttpListen => config.http_listen = raw.parse().map_err(fail)?,
                Setting::AdvertisedHost => {
                    config.advertised_host = Some(check_host(raw).map_err(fail)?)
                }
                Setting::AgentId => config.agent_id = Some(check_agent_id(raw).map_err(fail)?),
                Setting::Zone => config.zone = Some(check_agent_id(raw).map_err(fail)?),
                Setting::FlushIntervalMs => {
                    let ms = parse_u64(raw)
                        .and_then(check_flush_interval_ms)
                        .map_err(fail)?;
                    config.flush_interval = Duration::from_millis(ms);
                }
                Setting::CacheBytes => config.cache_bytes = number()?,
                Setting::MaxUnflushedBytes => config.max_unflushed_bytes = bytes_at_least(1 << 20)?,
                Setting::MaxBodyBytes => {
                    config.max_body_bytes = parse_u64(raw)
                        .and_then(check_max_body_bytes)
                        .map_err(fail)?
                }
                Setting::HttpMaxUriBytes => config.http_max_uri_bytes = bytes_at_least(256)?,
                Setting::HttpMaxHeaderBytes => config.http_max_header_bytes = bytes_at_least(1024)?,
                Setting::HttpMaxHeaders => {
                    config.http_max_headers = parse_u64(raw)
                        .and_then(|n| in_range(n, 1, 1000))
                        .map_err(fail)?
                }
                Setting::HttpMaxInflightBodyBytes => {
                    config.http_max_inflight_body_bytes = bytes_at_least(1 << 20)?
                }
                Setting::HttpHeaderTimeoutMs => config.http_header_timeout = millis(100)?,
                Setting::HttpRequestTimeoutMs => config.http_request_timeout = millis(100)?,
                Setting::HttpMaxConnections => {
                    config.http_max_connections = parse_u64(raw)
                        .and_then(|n| at_least(n, 1, "connections"))
                        .map_err(fail)?
                }
                Setting::HttpOpenProbes => {
                    config.http_open_probes = parse_bool(raw).map_err(fail)?
                }
                Setting::CompactionTargetBytes => {
                    config.compaction_target_bytes = bytes_at_least(1 << 10)?
                }
                Setting::CompactionKeyMapBytes => {
                    config.compaction_key_map_bytes = bytes_at_least(1 << 10)?
                }
                Setting::CompactionSpanMs => config.compaction_span = millis(0)?,
                Setting::JobIntervalMs => config.job_interval = millis(10)?,
                Setting::GcGraceMs => config.gc_grace = millis(0)?,
                Setting::QueuedMaxRequestBytes => {
                    config.queued_max_request_bytes = bytes_at_least(1 << 20)?
                }
                Setting::SocketRequestMaxBytes => {
                    config.socket_request_max_bytes = parse_u64(raw)
                        .and_then(|n| in_range(n, 1024, i32::MAX as u64))
                        .map_err(fail)?
                }
                Setting::MaxUncompressedBatchFactor => {
                    config.max_uncompressed_batch_factor = parse_u64(raw)
                        .and_then(|n| in_range(n, 1, 1024))
                        .map_err(fail)?
                }
                Setting::FetchMaxBytes => {
                    config.fetch_max_bytes = parse_u64(raw)
                        .and_then(|n| in_range(n, 1024, i32::MAX as u64))
                        .map_err(fail)?
                }
                Setting::ConnectionsMaxIdleMs => config.connections_max_idle = millis(100)?,
                Setting::RequestReadTimeoutMs => config.request_read_timeout = millis(100)?,
                Setting::MaxConnections => {
                    config.max_connections = parse_u64(raw)
                        .and_then(|n| at_least(n, 1, "connections"))
                        .map_err(fail)?
                }
                Setting::MaxConnectionsPerIp => {
                    config.max_connections_per_ip = parse_u64(raw)
                        .and_then(|n| at_least(n, 1, "connections"))
                        .map_err(fail)?
                }
                Setting::GroupMinSessionTimeoutMs => config.group_min_session_timeout = millis(1)?,
                Setting::GroupMaxSessionTimeoutMs => config.group_max_session_timeout = millis(1)?,
                Setting::GroupMaxRebalanceTimeoutMs => {
                    config.group_max_rebalance_timeout = millis(1)?
                }
                Setting::TransactionMaxTimeoutMs => config.transaction_max_timeout = millis(1)?,
                Setting::TransactionAbortCheckIntervalMs => {
                    config.transaction_abort_check_interval = millis(10)?
                }
                Setting::TransactionalIdExpirationMs => {
                    config.transactional_id_expiration = millis(1)?
                }
                Setting::GroupConsumerSessionTimeoutMs => {
                    config.group_consumer_session_timeout = millis(1)?
                }
                Setting::GroupConsumerHeartbeatIntervalMs => {
                    config.group_consumer_heartbeat_interval = millis(1)?
                }
                Setting::GroupMaxSize => {
                    config.group_max_size = parse_u64(raw)
                        .and_then(|n| at_least(n, 1, "members"))
                        .map_err(fail)?
                }
                Setting::MaxGroups => {
                    config.max_groups = parse_u64(raw)
                        .and_then(|n| at_least(n, 1, "groups"))
                        .map_err(fail)?
                }
                Setting::OffsetsRetentionMinutes => {
                    let minutes = parse_u64(raw)
                        .and_then(|n| in_range(n, 1, 1 << 40))
                        .map_err(fail)?;
                    config.offsets_retention = Duration::from_secs(minutes * 60)
                }
                Setting::OffsetsRetentionCheckIntervalMs => {
                    config.offsets_retention_check_interval = millis(100)?
                }
                Setting::AutoCreateTopicsEnable => {
                    config.auto_create_topics_enable = parse_bool(raw).map_err(fail)?
                }
                Setting::NumPartitions => {
                    config.num_partitions = parse_u64(raw)
                        .and_then(|n| in_range(n, 1, 100_000))
                        .map_err(fail)? as u32
                }
                Setting::MaxPartitions => {
                    config.max_partitions = parse_u64(raw)
                        .and_then(|n| at_least(n, 1, "partitions"))
                        .map_err(fail)?
                }
                Setting::Authorizer => config.authorizer = parse_authorizer(raw).map_err(fail)?,
                Setting::SuperUsers => config.super_users = parse_super_users(raw).map_err(fail)?,
            }
        }
        self.check_security(&config)?;
        Ok(config)
    }

    /// What no single value shows: TLS listeners and `--http-tls` need a
    /// certificate and its key; consumer-protocol heartbeats come more
    /// often than sessions end.
    fn check_security(&self, config: &ServerConfig) -> Result<(), ConfigError> {
        let origin = |setting: Setting| self.get(setting).map(|(_, origin)| origin.clone());
        config
            .check_security()
            .map_err(|(setting, message)| ConfigError::new(setting, origin(setting), message))
    }
}

/// Reads the TOML file given by `--config` into a settings layer.
pub fn load_config_file(path: &Path) -> Result<RawSettings, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::config_file(format!("cannot read {}: {e}", path.display())))?;
    parse_config_file(&text, path)
}

type Spanned<T> = toml::Spanned<T>;

/// Unknown keys and values of the wrong type are errors naming the file,
/// line and column, so that a typo does not silently fall back to a
/// default.
pub(crate) fn parse_config_file(text: &str, path: &Path) -> Result<RawSettings, ConfigError> {
    let at = |span: std::ops::Range<usize>, message: &str| {
        let (line, column) = line_column(text, span.start);
        ConfigError::config_file(format!(
            "{}:{line}:{column}: {}",
            path.display(),
            one_line(message)
        ))
    };
    let table: BTreeMap<Spanned<String>, Spanned<toml::Value>> =
        toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => at(span, e.message()),
            None => {
                ConfigError::config_file(format!("{}: {}", path.display(), one_line(e.message())))
            }
        })?;
    let origin = Origin::File(path.to_path_buf());
    let mut layer = RawSettings::default();
    for (key, value) in table {
        let Some(setting) = Setting::ALL
            .iter()
            .copied()
            .find(|s| s.key() == key.get_ref())
        else {
            let known: Vec<&str> = Setting::ALL.iter().map(|s| s.key()).collect();
            return Err(at(
                key.span(),
                &format!(
                    "unknown setting `{}`, expected one of {}",
                    key.get_ref(),
                    known.join(", ")
                ),
            ));
        };
        let text = match (setting.kind(), value.get_ref()) {
            (Kind::Text, toml::Value::String(s)) => s.clone(),
            (Kind::Number, toml::Value::Integer(n)) => n.to_string(),
            (Kind::Bool, toml::Value::Boolean(b)) => b.to_string(),
            (Kind::List, toml::Value::String(s)) => s.clone(),
            (Kind::List, toml::Value::Array(items))
                if items.iter().all(|item| item.is_str()) && !items.is_empty() =>
            {
                items
                    .iter()
                    .filter_map(|item| item.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            }
            (kind, other) => {
                let expected = match kind {
                    Kind::Text => "a string",
                    Kind::Number => "an integer",
                    Kind::Bool => "true or false",
                    Kind::List => "a string or a non-empty array of strings",
                };
                return Err(at(
                    value.span(),
                    &format!(
                        "`{}` must be {expected}, not {}",
                        setting.key(),
                        other.type_str()
                    ),
                ));
            }
        };
        layer.set(setting, text, origin.clone());
    }
    Ok(layer)
}

fn line_column(text: &str, byte: usize) -> (usize, usize) {
    let before = &text[..byte.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
