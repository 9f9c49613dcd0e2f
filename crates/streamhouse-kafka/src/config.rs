use std::time::Duration;

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
    /// Port clients are told to connect to.
    pub advertised_port: u16,
    /// Cluster id reported to clients.
    pub cluster_id: String,
    /// Largest request frame accepted; bigger frames close the connection.
    pub max_frame_bytes: usize,
    /// Partitions of a topic created with `num_partitions = -1` or on
    /// first use.
    pub default_partitions: i32,
    /// Create a topic when a client asks for metadata of one that does not
    /// exist (Kafka's `auto.create.topics.enable`).
    pub auto_create_topics: bool,
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
            cluster_id: "streamhouse".into(),
            max_frame_bytes: 100 << 20,
            default_partitions: 1,
            auto_create_topics: true,
        }
    }
}
