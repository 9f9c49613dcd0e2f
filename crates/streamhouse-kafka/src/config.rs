use std::time::Duration;

use crate::listener::SecurityProtocol;
use crate::sasl::SaslMechanism;
use crate::tls::SslPrincipalMapper;

/// Settings of the Kafka protocol server.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// This agent's id in the cluster registry.
    pub agent_id: String,
    /// An optional zone (rack), reported to clients.
    pub zone: Option<String>,
    /// How often this agent heart-beats and refreshes the live agents.
    pub heartbeat_interval: Duration,
    /// An agent that has not heart-beaten for this long is not live.
    pub agent_timeout: Duration,
    /// This agent's broker id in Metadata responses.
    pub node_id: i32,
    /// Host name clients are told to connect to.
    pub advertised_host: String,
    /// Port clients are told to connect to: the first listener's.
    pub advertised_port: u16,
    /// Every listener's protocol and port, in the order configured; a
    /// client is told the port of the listener it connected through.
    /// Empty means one PLAINTEXT listener on `advertised_port`.
    pub advertised_listeners: Vec<(SecurityProtocol, u16)>,
    /// Mechanisms SASL listeners offer (`--sasl-mechanisms`).
    pub sasl_mechanisms: Vec<SaslMechanism>,
    /// How long a failed authentication waits before its answer (Kafka's
    /// `connection.failed.authentication.delay.ms`).
    pub failed_authentication_delay: Duration,
    /// A TLS handshake must finish within this.
    pub tls_handshake_timeout: Duration,
    /// How a client certificate's subject becomes a user name
    /// (`ssl.principal.mapping.rules`).
    pub ssl_principal_mapping: SslPrincipalMapper,
    /// Cluster id reported to clients.
    pub cluster_id: String,
    /// Largest request frame accepted; bigger frames close the connection
    /// (Kafka's `socket.request.max.bytes`).
    pub max_frame_bytes: usize,
    /// Request bytes being read or waiting to be handled across all
    /// connections (Kafka's `queued.max.request.bytes`); when they are
    /// used up, connections stop reading until handled requests free some.
    pub queued_max_request_bytes: usize,
    /// A produced batch may decompress to at most this many times its
    /// topic's `max.message.bytes` (and never past the request budget).
    pub max_uncompressed_batch_factor: usize,
    /// The largest Fetch answer (Kafka's `fetch.max.bytes`), whatever the
    /// client asks for; also the response bytes one connection may hold.
    pub fetch_max_bytes: usize,
    /// A connection with no request and nothing in flight for this long is
    /// closed (Kafka's `connections.max.idle.ms`).
    pub connections_max_idle: Duration,
    /// A request whose first bytes arrived must be complete within this,
    /// and a response must be taken by the client within it.
    pub request_read_timeout: Duration,
    /// Open connections per agent (Kafka's `max.connections`).
    pub max_connections: usize,
    /// Open connections from one address (`max.connections.per.ip`).
    pub max_connections_per_ip: usize,
    /// Partitions of a topic created with `num_partitions = -1` or on
    /// first use.
    pub default_partitions: i32,
    /// Create a topic when a client asks for metadata of one that does not
    /// exist (Kafka's `auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Bounds on consumer groups: session and rebalance timeouts, members
    /// per group, groups, and how long offsets outlive an empty group.
    pub group_limits: crate::coordinator::GroupLimits,
    /// The longest `transaction.timeout.ms` a producer may ask for
    /// (Kafka's `transaction.max.timeout.ms`).
    pub transaction_max_timeout: Duration,
    /// How often transactions past their timeout are aborted (Kafka's
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`).
    pub transaction_abort_check_interval: Duration,
    /// How long a transactional id with no transaction in progress is
    /// kept (Kafka's `transactional.id.expiration.ms`).
    pub transactional_id_expiration: Duration,
}

impl KafkaConfig {
    /// The listeners clients are told about.
    pub(crate) fn listeners(&self) -> Vec<(SecurityProtocol, u16)> {
        if self.advertised_listeners.is_empty() {
            vec![(SecurityProtocol::Plaintext, self.advertised_port)]
        } else {
            self.advertised_listeners.clone()
        }
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            agent_id: "streamhouse".into(),
            zone: None,
            heartbeat_interval: Duration::from_secs(2),
            agent_timeout: Duration::from_secs(10),
            node_id: 0,
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            advertised_listeners: Vec::new(),
            sasl_mechanisms: SaslMechanism::ALL.to_vec(),
            failed_authentication_delay: Duration::from_millis(100),
            tls_handshake_timeout: Duration::from_secs(3),
            ssl_principal_mapping: SslPrincipalMapper::default(),
            cluster_id: "streamhouse".into(),
            max_frame_bytes: 100 << 20,
            queued_max_request_bytes: 256 << 20,
            max_uncompressed_batch_factor: 8,
            fetch_max_bytes: 55 << 20,
            connections_max_idle: Duration::from_secs(600),
            request_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            default_partitions: 1,
            auto_create_topics: true,
            group_limits: crate::coordinator::GroupLimits::default(),
            transaction_max_timeout: Duration::from_secs(15 * 60),
            transaction_abort_check_interval: Duration::from_secs(10),
            transactional_id_expiration: Duration::from_secs(7 * 24 * 3600),
        }
    }
}
