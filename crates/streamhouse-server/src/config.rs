//! The server's settings: what they mean, their defaults, how each one is
//! checked, and how the layers (flags, environment, TOML file) combine.
//!
//! The invariant that matters: every value is checked here, before anything
//! connects or binds, and a bad one is reported as ONE line naming the flag
//! it belongs to (and where the value came from), so an operator can fix it
//! without reading a stack of errors.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use streamhouse_core::security::Principal;
use streamhouse_kafka::{SaslMechanism, SecurityProtocol};
use thiserror::Error;

mod settings;

#[cfg(test)]
pub(crate) use settings::parse_config_file;
pub use settings::{Kind, RawSettings, Setting, load_config_file};

/// Default Kafka listen address.
pub const DEFAULT_KAFKA_LISTEN: &str = "127.0.0.1:9092";
/// Default HTTP listen address.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory; the default metadata and object store live in it.
pub const DEFAULT_DATA_DIR: &str = "./data";
pub use crate::http::DEFAULT_MAX_BODY_BYTES;
/// Allowed range of `--flush-interval-ms`.
pub const FLUSH_INTERVAL_MS_RANGE: std::ops::RangeInclusive<u64> = 1..=10_000;

/// Everything `streamhouse serve` needs, resolved and checked.
///
/// `None` for `metadata_url`, `object_store_url`, `advertised_host` and
/// `agent_id` means "derive it" (see the accessors and [`crate::Server`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`.
    pub metadata_url: Option<String>,
    /// `file://PATH` or `s3://BUCKET[/PREFIX]`.
    pub object_store_url: Option<String>,
    /// The Kafka listeners, in the order given; the first one's port is
    /// the agent's in older views of the cluster.
    pub kafka_listen: Vec<KafkaListenAddress>,
    /// TLS certificate chain and key files of SSL / SASL_SSL listeners
    /// and `--http-tls`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// CA of client certificates; when set they are required (mTLS).
    pub tls_client_ca: Option<PathBuf>,
    /// Kafka's `ssl.principal.mapping.rules`, checked.
    pub ssl_principal_mapping_rules: String,
    /// Serve the HTTP API over TLS.
    pub http_tls: bool,
    /// Mechanisms SASL listeners offer.
    pub sasl_mechanisms: Vec<SaslMechanism>,
    /// Wait before answering a failed authentication.
    pub connection_failed_authentication_delay: Duration,
    /// Host Kafka clients are told to connect to.
    pub advertised_host: Option<String>,
    pub http_listen: HostPort,
    /// This agent's name; the Kafka node id is a hash of it.
    pub agent_id: Option<String>,
    /// The zone (rack) reported to clients, if any.
    pub zone: Option<String>,
    pub flush_interval: Duration,
    /// Bytes of segment data the read cache keeps in memory.
    pub cache_bytes: u64,
    /// Largest HTTP request body accepted (413 above it).
    pub max_body_bytes: usize,
    /// Size a compacted segment aims for.
    pub compaction_target_bytes: u64,
    pub compaction_key_map_bytes: u64,
    /// Age after which a partition's newest flushed segments are compacted
    /// even below the target size.
    pub compaction_span: Duration,
    /// How often compaction, retention and garbage collection run (each on
    /// one agent of the cluster at a time).
    pub job_interval: Duration,
    /// How long an object outlives its last reference before garbage
    /// collection deletes it.
    pub gc_grace: Duration,
    /// Longest HTTP request target.
    pub http_max_uri_bytes: u64,
    /// Largest total size of an HTTP request's headers.
    pub http_max_header_bytes: u64,
    /// Header lines of an HTTP request.
    pub http_max_headers: u64,
    /// HTTP request bodies held in memory at once.
    pub http_max_inflight_body_bytes: u64,
    /// Time an HTTP request head may take (and keep-alive idle time).
    pub http_header_timeout: Duration,
    /// Time an HTTP request body may take after its head.
    pub http_request_timeout: Duration,
    pub http_max_connections: u64,
    /// `/ready` and `/metrics` need no credentials even when the API does.
    pub http_open_probes: bool,
    /// Bytes of appends buffered or uploading before produce is refused.
    pub max_unflushed_bytes: u64,
    /// Kafka request bytes being read or waiting, across connections.
    pub queued_max_request_bytes: u64,
    /// Largest Kafka request frame.
    pub socket_request_max_bytes: u64,
    /// How many times its topic's `max.message.bytes` a produced batch may
    /// decompress to.
    pub max_uncompressed_batch_factor: u64,
    /// Largest Fetch answer.
    pub fetch_max_bytes: u64,
    /// A Kafka connection with no request and nothing in flight for this
    /// long is closed.
    pub connections_max_idle: Duration,
    /// A started request must arrive (and a response leave) within this.
    pub request_read_timeout: Duration,
    pub max_connections: u64,
    pub max_connections_per_ip: u64,
    pub group_min_session_timeout: Duration,
    pub group_max_session_timeout: Duration,
    pub group_max_rebalance_timeout: Duration,
    pub group_consumer_session_timeout: Duration,
    pub group_consumer_heartbeat_interval: Duration,
    pub group_max_size: u64,
    pub max_groups: u64,
    pub transaction_max_timeout: Duration,
    pub transaction_abort_check_interval: Duration,
    pub transactional_id_expiration: Duration,
    /// How long a group's committed offsets outlive its last member.
    pub offsets_retention: Duration,
    pub offsets_retention_check_interval: Duration,
    pub auto_create_topics_enable: bool,
    /// Partitions of an auto-created topic.
    pub num_partitions: u32,
    /// Partitions the cluster may hold.
    pub max_partitions: u64,
    /// Whether Kafka ACLs are enforced (`--authorizer acl`).
    pub authorizer: bool,
    /// Principals that bypass ACLs (`--super-users`).
    pub super_users: Vec<Principal>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let storage = streamhouse_storage::StorageConfig::default();
        let jobs = streamhouse_storage::jobs::JobsConfig::new("");
        let kafka = streamhouse_kafka::KafkaConfig::default();
        let kafka = &kafka;
        let http = crate::http::HttpLimits::default();
        Self {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            metadata_url: None,
            object_store_url: None,
            kafka_listen: vec![KafkaListenAddress::plaintext(HostPort::new(
                "127.0.0.1",
                9092,
            ))],
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            ssl_principal_mapping_rules: "DEFAULT".into(),
            http_tls: false,
            sasl_mechanisms: kafka.sasl_mechanisms.clone(),
            connection_failed_authentication_delay: kafka.failed_authentication_delay,
            advertised_host: None,
            http_listen: HostPort::new("127.0.0.1", 8080),
            agent_id: None,
            zone: None,
            flush_interval: storage.flush.flush_interval,
            cache_bytes: storage.cache_bytes,
            max_body_bytes: http.max_body_bytes,
            compaction_target_bytes: jobs.compaction.target_bytes,
            compaction_key_map_bytes: jobs.compaction.key_map_bytes,
            compaction_span: jobs.compaction.span,
            job_interval: jobs.compaction_interval,
            gc_grace: jobs.gc_grace,
            max_unflushed_bytes: storage.flush.max_pending_bytes as u64,
            http_max_uri_bytes: http.max_uri_bytes as u64,
            http_max_header_bytes: http.max_header_bytes as u64,
            http_max_headers: http.max_headers as u64,
            http_max_inflight_body_bytes: http.max_inflight_body_bytes as u64,
            http_header_timeout: http.header_timeout,
            http_request_timeout: http.body_timeout,
            http_max_connections: http.max_connections as u64,
            http_open_probes: crate::http::HttpSecurity::default().open_probes,
            queued_max_request_bytes: kafka.queued_max_request_bytes as u64,
            socket_request_max_bytes: kafka.max_frame_bytes as u64,
            max_uncompressed_batch_factor: kafka.max_uncompressed_batch_factor as u64,
            fetch_max_bytes: kafka.fetch_max_bytes as u64,
            connections_max_idle: kafka.connections_max_idle,
            request_read_timeout: kafka.request_read_timeout,
            max_connections: kafka.max_connections as u64,
            max_connections_per_ip: kafka.max_connections_per_ip as u64,
            group_min_session_timeout: kafka.group_limits.min_session_timeout,
            group_max_session_timeout: kafka.group_limits.max_session_timeout,
            group_max_rebalance_timeout: kafka.group_limits.max_rebalance_timeout,
            group_consumer_session_timeout: kafka.group_limits.consumer_session_timeout,
            group_consumer_heartbeat_interval: kafka.group_limits.consumer_heartbeat_interval,
            group_max_size: kafka.group_limits.max_group_size as u64,
            max_groups: kafka.group_limits.max_groups as u64,
            transaction_max_timeout: kafka.transaction_max_timeout,
            transaction_abort_check_interval: kafka.transaction_abort_check_interval,
            transactional_id_expiration: kafka.transactional_id_expiration,
            offsets_retention: kafka.group_limits.offsets_retention,
            offsets_retention_check_interval: kafka.group_limits.offsets_retention_check_interval,
            auto_create_topics_enable: kafka.auto_create_topics,
            num_partitions: kafka.default_partitions as u32,
            max_partitions: storage.max_partitions as u64,
            authorizer: storage.security.authorizer,
            super_users: storage.security.super_users,
        }
    }
}

impl ServerConfig {
    /// The defaults, with data kept under `data_dir`.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            ..Self::default()
        }
    }

    /// The metadata store URL, defaulting to SQLite in the data directory.
    pub fn metadata_url(&self) -> String {
        match &self.metadata_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("metadata.db").display()),
        }
    }

    /// The object store URL, defaulting to a directory in the data directory.
    pub fn object_store_url(&self) -> String {
        match &self.object_store_url {
            Some(url) => url.clone(),
            None => format!("file://{}", self.data_dir.join("objects").display()),
        }
    }

    /// Checks the values a library caller may have set by hand; the command
    /// line path checks the same rules while parsing.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |setting: Setting, result: Result<(), String>| {
            result.map_err(|message| ConfigError::new(setting, None, message))
        };
        check(Setting::DataDir, non_empty_path(&self.data_dir))?;
        check(
            Setting::Metadata,
            check_metadata_url(&self.metadata_url()).map(drop),
        )?;
        check(
            Setting::ObjectStore,
            check_object_store_url(&self.object_store_url()).map(drop),
        )?;
        if let Some(host) = &self.advertised_host {
            check(Setting::AdvertisedHost, check_host(host).map(drop))?;
        }
        if let Some(agent_id) = &self.agent_id {
            check(Setting::AgentId, check_agent_id(agent_id).map(drop))?;
        }
        if let Some(zone) = &self.zone {
            check(Setting::Zone, check_agent_id(zone).map(drop))?;
        }
        let interval_ms = u64::try_from(self.flush_interval.as_millis()).unwrap_or(u64::MAX);
        check(
            Setting::FlushIntervalMs,
            check_flush_interval_ms(interval_ms).map(drop),
        )?;
        check(
            Setting::MaxBodyBytes,
            check_max_body_bytes(self.max_body_bytes as u64).map(drop),
        )?;
        check(
            Setting::KafkaListen,
            check_kafka_listeners(&self.kafka_listen),
        )?;
        self.check_security()
            .map_err(|(setting, message)| ConfigError::new(setting, None, message))?;
        Ok(())
    }

    /// TLS listeners and `--http-tls` need `--tls-cert` and `--tls-key`;
    /// one of the two alone is a mistake.
    pub(crate) fn check_security(&self) -> Result<(), (Setting, String)> {
        if self.group_consumer_heartbeat_interval >= self.group_consumer_session_timeout {
            return Err((
                Setting::GroupConsumerHeartbeatIntervalMs,
                format!(
                    "must be less than --group-consumer-session-timeout-ms ({} ms)",
                    self.group_consumer_session_timeout.as_millis()
                ),
            ));
        }
        if let Some(listener) = self.kafka_listen.iter().find(|l| l.protocol.uses_tls())
            && (self.tls_cert.is_none() || self.tls_key.is_none())
        {
            return Err((
                Setting::KafkaListen,
                format!(
                    "the {} listener {} needs --tls-cert and --tls-key",
                    listener.protocol, listener.addr
                ),
            ));
        }
        if self.http_tls && (self.tls_cert.is_none() || self.tls_key.is_none()) {
            return Err((Setting::HttpTls, "needs --tls-cert and --tls-key".into()));
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => Err((
                Setting::TlsKey,
                "--tls-cert is set but not --tls-key".into(),
            )),
            (None, Some(_)) => Err((
                Setting::TlsCert,
                "--tls-key is set but not --tls-cert".into(),
            )),
            _ => Ok(()),
        }
    }

    /// The TLS files, if a certificate is configured.
    pub fn tls_files(&self) -> Option<streamhouse_kafka::TlsFiles> {
        Some(streamhouse_kafka::TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
    }
}

/// One `--kafka-listen` value: `[PROTOCOL://]HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaListenAddress {
    pub protocol: SecurityProtocol,
    pub addr: HostPort,
}

impl KafkaListenAddress {
    pub fn new(protocol: SecurityProtocol, addr: HostPort) -> Self {
        Self { protocol, addr }
    }

    pub fn plaintext(addr: HostPort) -> Self {
        Self::new(SecurityProtocol::Plaintext, addr)
    }
}

impl fmt::Display for KafkaListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.protocol, self.addr)
    }
}

impl FromStr for KafkaListenAddress {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let value = value.trim();
        let (protocol, addr) = match value.split_once("://") {
            Some((protocol, addr)) => (protocol.parse()?, addr),
            None => (SecurityProtocol::Plaintext, value),
        };
        Ok(Self::new(protocol, addr.parse()?))
    }
}

/// Comma-separated `[PROTOCOL://]HOST:PORT` values, each protocol and each
/// port (other than 0) at most once.
pub(crate) fn parse_kafka_listeners(raw: &str) -> Result<Vec<KafkaListenAddress>, String> {
    let listeners = raw
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<KafkaListenAddress>, String>>()?;
    check_kafka_listeners(&listeners)?;
    Ok(listeners)
}

fn check_kafka_listeners(listeners: &[KafkaListenAddress]) -> Result<(), String> {
    if listeners.is_empty() {
        return Err("no listener given".into());
    }
    for (i, listener) in listeners.iter().enumerate() {
        for earlier in &listeners[..i] {
            if earlier.protocol == listener.protocol {
                return Err(format!("{} is given twice", listener.protocol));
            }
            if earlier.addr.port == listener.addr.port && listener.addr.port != 0 {
                return Err(format!("port {} is given twice", listener.addr.port));
            }
        }
    }
    Ok(())
}

/// Comma-separated SASL mechanism names, at least one, each once.
pub(crate) fn parse_sasl_mechanisms(raw: &str) -> Result<Vec<SaslMechanism>, String> {
    let mut mechanisms = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let mechanism: SaslMechanism = name.parse()?;
        if mechanisms.contains(&mechanism) {
            return Err(format!("{mechanism} is given twice"));
        }
        mechanisms.push(mechanism);
    }
    if mechanisms.is_empty() {
        return Err("no mechanism given".into());
    }
    Ok(mechanisms)
}

/// A `HOST:PORT` listen address; HOST may be a name, an IPv4 address or a
/// bracketed IPv6 address (`[::1]:9092`). Port 0 picks a free port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }

    /// Whether the host is a wildcard address (`0.0.0.0` or `::`).
    pub fn is_unspecified(&self) -> bool {
        self.host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified())
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for HostPort {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let not_host_port = || format!("{value:?} is not HOST:PORT");
        let (host, port) = value.rsplit_once(':').ok_or_else(not_host_port)?;
        let host = match host.strip_prefix('[') {
            Some(inner) => inner.strip_suffix(']').ok_or_else(not_host_port)?,
            // An unbracketed IPv6 address would make the port ambiguous.
            None if host.contains(':') => return Err(not_host_port()),
            None => host,
        };
        if host.is_empty() {
            return Err(format!("{value:?} is not HOST:PORT (the host is empty)"));
        }
        check_host(host).map_err(|_| not_host_port())?;
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("{value:?} is not HOST:PORT (the port must be 0-65535)"))?;
        Ok(Self::new(host, port))
    }
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag,
    /// The named environment variable.
    Env(&'static str),
    File(PathBuf),
}

/// A configuration value that cannot be used. Displays as one line:
/// `--flag: what is wrong (from WHERE)`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{flag}: {message}{}", origin_suffix(.origin))]
pub struct ConfigError {
    /// The flag the value belongs to (`--config` for the file itself).
    pub flag: &'static str,
    pub origin: Option<Origin>,
    pub message: String,
}

impl ConfigError {
    pub fn new(setting: Setting, origin: Option<Origin>, message: impl Into<String>) -> Self {
        Self {
            flag: setting.flag(),
            origin,
            message: message.into(),
        }
    }

    pub(crate) fn config_file(message: impl Into<String>) -> Self {
        Self {
            flag: "--config",
            origin: None,
            message: message.into(),
        }
    }
}

fn origin_suffix(origin: &Option<Origin>) -> String {
    match origin {
        None | Some(Origin::Flag) => String::new(),
        Some(Origin::Env(variable)) => format!(" (from {variable})"),
        Some(Origin::File(path)) => format!(" (from {})", path.display()),
    }
}

/// Collapses a possibly multi-line message into one line.
pub(crate) fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `true` or `false`, as Kafka writes booleans.
fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{raw:?} is not true or false")),
    }
}

/// `--authorizer`: `none` or `acl` (Kafka's `authorizer.class.name`, in
/// the only two forms StreamHouse has).
fn parse_authorizer(raw: &str) -> Result<bool, String> {
    match raw.trim() {
        "none" | "" => Ok(false),
        "acl" => Ok(true),
        _ => Err(format!("{raw:?} is not none or acl")),
    }
}

/// `--super-users`: `User:a;User:b`, as Kafka's `super.users`; empty
/// entries are ignored.
fn parse_super_users(raw: &str) -> Result<Vec<Principal>, String> {
    raw.split(';')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| Principal::parse(entry).map_err(|e| e.to_string()))
        .collect()
}

fn in_range(n: u64, min: u64, max: u64) -> Result<u64, String> {
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!("must be between {min} and {max}"))
    }
}

fn parse_u64(raw: &str) -> Result<u64, String> {
    raw.trim()
        .parse::<u64>()
        .map_err(|_| format!("{raw:?} is not a non-negative integer"))
}

fn at_least(n: u64, min: u64, unit: &str) -> Result<u64, String> {
    if n >= min {
        Ok(n)
    } else {
        Err(format!("must be at least {min} {unit}"))
    }
}

fn non_empty_path(path: &Path) -> Result<(), String> {
    if path.as_os_str().is_empty() {
        Err("the path is empty".into())
    } else {
        Ok(())
    }
}

fn check_flush_interval_ms(ms: u64) -> Result<u64, String> {
    if FLUSH_INTERVAL_MS_RANGE.contains(&ms) {
        Ok(ms)
    } else {
        Err(format!(
            "must be between {} and {}",
            FLUSH_INTERVAL_MS_RANGE.start(),
            FLUSH_INTERVAL_MS_RANGE.end()
        ))
    }
}

fn check_max_body_bytes(bytes: u64) -> Result<usize, String> {
    // Below 1 KiB not even a small produce request fits.
    match usize::try_from(bytes) {
        Ok(bytes) if bytes >= 1024 => Ok(bytes),
        _ => Err("must be at least 1024".into()),
    }
}

fn check_host(host: &str) -> Result<String, String> {
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(format!("{host:?} is not a host name or address"))
    } else {
        Ok(host.to_string())
    }
}

fn check_agent_id(id: &str) -> Result<String, String> {
    if id.is_empty() || id.len() > 255 || id.chars().any(|c| c.is_control()) {
        Err(format!(
            "{id:?} is not a valid agent id (1 to 255 printable characters)"
        ))
    } else {
        Ok(id.to_string())
    }
}

/// Checks the form of a metadata URL without connecting.
pub fn check_metadata_url(url: &str) -> Result<String, String> {
    let unsupported =
        || format!("unsupported URL {url:?} (expected sqlite://PATH or postgres://…)");
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() {
            return Err(format!("{url:?} has no path (expected sqlite://PATH)"));
        }
        return Ok(url.to_string());
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let parsed = url::Url::parse(url)
            .map_err(|e| format!("{:?} is not a valid URL: {e}", redact_url(url)))?;
        // A socket directory may be given as ?host=/path instead of a host.
        let has_host = parsed.host_str().is_some_and(|h| !h.is_empty())
            || parsed.query_pairs().any(|(k, _)| k == "host");
        if !has_host {
            return Err(format!("{:?} has no host", redact_url(url)));
        }
        return Ok(url.to_string());
    }
    Err(unsupported())
}

/// Checks the form of an object store URL without connecting.
pub fn check_object_store_url(url: &str) -> Result<String, String> {
    if let Some(path) = url.strip_prefix("file://") {
        if path.is_empty() {
            return Err(format!("{url:?} has no path (expected file://PATH)"));
        }
        return Ok(url.to_string());
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        let bucket = rest.split('/').next().unwrap_or_default();
        // S3's bucket naming rules: 3-63 of [a-z0-9.-], starting and ending
        // with a letter or digit. Checking here turns a confusing request
        // error later into a clear message now.
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !valid {
            return Err(format!(
                "{url:?} does not name a valid bucket (expected s3://BUCKET[/PREFIX], \
                 3-63 lowercase letters, digits, '.' or '-')"
            ));
        }
        return Ok(url.to_string());
    }
    Err(format!(
        "unsupported URL {url:?} (expected file://PATH or s3://BUCKET[/PREFIX])"
    ))
}

/// The URL with any password (userinfo or `password=` query parameter)
/// replaced by `***`, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let is_secret = |key: &str| key.to_ascii_lowercase().contains("password");
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let secret_query = parsed.query_pairs().any(|(k, _)| is_secret(&k));
            if parsed.password().is_none() && !secret_query {
                // Unchanged, rather than re-serialised (which may normalise).
                return url.to_string();
            }
            if parsed.password().is_some() {
                // Only fails for URLs that cannot carry credentials.
                let _ = parsed.set_password(Some("***"));
            }
            if secret_query {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if is_secret(&k) {
                            "***".into()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string()
        }
        // Not parseable: hide everything between the scheme and an '@'.
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end + 3 => {
                format!("{}***{}", &url[..scheme_end + 3], &url[at..])
            }
            _ => url.to_string(),
        },
    }
}

#[cfg(test)]
mod tests;
