//! The server's settings: what they mean, their defaults, how each one is
//! checked, and how the layers (flags, environment, TOML file) combine.
//!
//! The invariant that matters: every value is checked here, before anything
//! connects or binds, and a bad one is reported as ONE line naming the flag
//! it belongs to (and where the value came from), so an operator can fix it
//! without reading a stack of errors.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

/// Default Kafka listen address.
pub const DEFAULT_KAFKA_LISTEN: &str = "127.0.0.1:9092";
/// Default HTTP listen address.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory; the default metadata and object store live in it.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// Default largest accepted HTTP request body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;
/// Default size of a compacted segment.
pub const DEFAULT_COMPACTION_TARGET_BYTES: u64 = 64 << 20;
/// Default age after which small trailing segments are compacted anyway.
pub const DEFAULT_COMPACTION_SPAN: Duration = Duration::from_secs(60);
/// Default period of the background jobs.
pub const DEFAULT_JOB_INTERVAL: Duration = Duration::from_secs(30);
/// Default grace period of garbage collection.
pub const DEFAULT_GC_GRACE: Duration = Duration::from_secs(600);
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
    pub kafka_listen: HostPort,
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
    /// Age after which a partition's newest flushed segments are compacted
    /// even below the target size.
    pub compaction_span: Duration,
    /// How often compaction, retention and garbage collection run (each on
    /// one agent of the cluster at a time).
    pub job_interval: Duration,
    /// How long an object outlives its last reference before garbage
    /// collection deletes it.
    pub gc_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let storage = streamhouse_storage::StorageConfig::default();
        Self {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            metadata_url: None,
            object_store_url: None,
            kafka_listen: HostPort::new("127.0.0.1", 9092),
            advertised_host: None,
            http_listen: HostPort::new("127.0.0.1", 8080),
            agent_id: None,
            zone: None,
            flush_interval: storage.flush.flush_interval,
            cache_bytes: storage.cache_bytes,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            compaction_target_bytes: DEFAULT_COMPACTION_TARGET_BYTES,
            compaction_span: DEFAULT_COMPACTION_SPAN,
            job_interval: DEFAULT_JOB_INTERVAL,
            gc_grace: DEFAULT_GC_GRACE,
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
        Ok(())
    }
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

/// One configurable setting: its TOML key, flag and environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Setting {
    DataDir,
    Metadata,
    ObjectStore,
    KafkaListen,
    AdvertisedHost,
    HttpListen,
    AgentId,
    Zone,
    FlushIntervalMs,
    CacheBytes,
    MaxBodyBytes,
    CompactionTargetBytes,
    CompactionSpanMs,
    JobIntervalMs,
    GcGraceMs,
}

impl Setting {
    pub const ALL: [Setting; 15] = [
        Setting::DataDir,
        Setting::Metadata,
        Setting::ObjectStore,
        Setting::KafkaListen,
        Setting::AdvertisedHost,
        Setting::HttpListen,
        Setting::AgentId,
        Setting::Zone,
        Setting::FlushIntervalMs,
        Setting::CacheBytes,
        Setting::MaxBodyBytes,
        Setting::CompactionTargetBytes,
        Setting::CompactionSpanMs,
        Setting::JobIntervalMs,
        Setting::GcGraceMs,
    ];

    /// The TOML key, which is also clap's argument id.
    pub fn key(self) -> &'static str {
        match self {
            Setting::DataDir => "data_dir",
            Setting::Metadata => "metadata",
            Setting::ObjectStore => "object_store",
            Setting::KafkaListen => "kafka_listen",
            Setting::AdvertisedHost => "advertised_host",
            Setting::HttpListen => "http_listen",
            Setting::AgentId => "agent_id",
            Setting::Zone => "zone",
            Setting::FlushIntervalMs => "flush_interval_ms",
            Setting::CacheBytes => "cache_bytes",
            Setting::MaxBodyBytes => "max_body_bytes",
            Setting::CompactionTargetBytes => "compaction_target_bytes",
            Setting::CompactionSpanMs => "compaction_span_ms",
            Setting::JobIntervalMs => "job_interval_ms",
            Setting::GcGraceMs => "gc_grace_ms",
        }
    }

    pub fn flag(self) -> &'static str {
        match self {
            Setting::DataDir => "--data-dir",
            Setting::Metadata => "--metadata",
            Setting::ObjectStore => "--object-store",
            Setting::KafkaListen => "--kafka-listen",
            Setting::AdvertisedHost => "--advertised-host",
            Setting::HttpListen => "--http-listen",
            Setting::AgentId => "--agent-id",
            Setting::Zone => "--zone",
            Setting::FlushIntervalMs => "--flush-interval-ms",
            Setting::CacheBytes => "--cache-bytes",
            Setting::MaxBodyBytes => "--max-body-bytes",
            Setting::CompactionTargetBytes => "--compaction-target-bytes",
            Setting::CompactionSpanMs => "--compaction-span-ms",
            Setting::JobIntervalMs => "--job-interval-ms",
            Setting::GcGraceMs => "--gc-grace-ms",
        }
    }

    pub fn env(self) -> &'static str {
        match self {
            Setting::DataDir => "STREAMHOUSE_DATA_DIR",
            Setting::Metadata => "STREAMHOUSE_METADATA",
            Setting::ObjectStore => "STREAMHOUSE_OBJECT_STORE",
            Setting::KafkaListen => "STREAMHOUSE_KAFKA_LISTEN",
            Setting::AdvertisedHost => "STREAMHOUSE_ADVERTISED_HOST",
            Setting::HttpListen => "STREAMHOUSE_HTTP_LISTEN",
            Setting::AgentId => "STREAMHOUSE_AGENT_ID",
            Setting::Zone => "STREAMHOUSE_ZONE",
            Setting::FlushIntervalMs => "STREAMHOUSE_FLUSH_INTERVAL_MS",
            Setting::CacheBytes => "STREAMHOUSE_CACHE_BYTES",
            Setting::MaxBodyBytes => "STREAMHOUSE_MAX_BODY_BYTES",
            Setting::CompactionTargetBytes => "STREAMHOUSE_COMPACTION_TARGET_BYTES",
            Setting::CompactionSpanMs => "STREAMHOUSE_COMPACTION_SPAN_MS",
            Setting::JobIntervalMs => "STREAMHOUSE_JOB_INTERVAL_MS",
            Setting::GcGraceMs => "STREAMHOUSE_GC_GRACE_MS",
        }
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
                Setting::KafkaListen => config.kafka_listen = raw.parse().map_err(fail)?,
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
                Setting::CacheBytes => config.cache_bytes = parse_u64(raw).map_err(fail)?,
                Setting::MaxBodyBytes => {
                    config.max_body_bytes = parse_u64(raw)
                        .and_then(check_max_body_bytes)
                        .map_err(fail)?
                }
                Setting::CompactionTargetBytes => {
                    config.compaction_target_bytes = parse_u64(raw)
                        .and_then(|n| at_least(n, 1 << 10, "bytes"))
                        .map_err(fail)?
                }
                Setting::CompactionSpanMs => {
                    config.compaction_span = Duration::from_millis(parse_u64(raw).map_err(fail)?)
                }
                Setting::JobIntervalMs => {
                    config.job_interval = Duration::from_millis(
                        parse_u64(raw)
                            .and_then(|n| at_least(n, 10, "milliseconds"))
                            .map_err(fail)?,
                    )
                }
                Setting::GcGraceMs => {
                    config.gc_grace = Duration::from_millis(parse_u64(raw).map_err(fail)?)
                }
            }
        }
        Ok(config)
    }
}

/// The settings a TOML file may hold; unknown keys are an error so that a
/// typo does not silently fall back to a default.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<String>,
    metadata: Option<String>,
    object_store: Option<String>,
    kafka_listen: Option<String>,
    advertised_host: Option<String>,
    http_listen: Option<String>,
    agent_id: Option<String>,
    zone: Option<String>,
    flush_interval_ms: Option<u64>,
    cache_bytes: Option<u64>,
    max_body_bytes: Option<u64>,
    compaction_target_bytes: Option<u64>,
    compaction_span_ms: Option<u64>,
    job_interval_ms: Option<u64>,
    gc_grace_ms: Option<u64>,
}

/// Reads the TOML file given by `--config` into a settings layer.
pub fn load_config_file(path: &Path) -> Result<RawSettings, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::config_file(format!("cannot read {}: {e}", path.display())))?;
    parse_config_file(&text, path)
}

fn parse_config_file(text: &str, path: &Path) -> Result<RawSettings, ConfigError> {
    let file: FileSettings = toml::from_str(text).map_err(|e| {
        let location = e
            .span()
            .map(|span| {
                let (line, column) = line_column(text, span.start);
                format!(":{line}:{column}")
            })
            .unwrap_or_default();
        let message = one_line(e.message());
        ConfigError::config_file(format!("{}{location}: {message}", path.display()))
    })?;
    let origin = Origin::File(path.to_path_buf());
    let mut layer = RawSettings::default();
    let strings = [
        (Setting::DataDir, file.data_dir),
        (Setting::Metadata, file.metadata),
        (Setting::ObjectStore, file.object_store),
        (Setting::KafkaListen, file.kafka_listen),
        (Setting::AdvertisedHost, file.advertised_host),
        (Setting::HttpListen, file.http_listen),
        (Setting::AgentId, file.agent_id),
        (Setting::Zone, file.zone),
    ];
    for (setting, value) in strings {
        if let Some(value) = value {
            layer.set(setting, value, origin.clone());
        }
    }
    let numbers = [
        (Setting::FlushIntervalMs, file.flush_interval_ms),
        (Setting::CacheBytes, file.cache_bytes),
        (Setting::MaxBodyBytes, file.max_body_bytes),
        (Setting::CompactionTargetBytes, file.compaction_target_bytes),
        (Setting::CompactionSpanMs, file.compaction_span_ms),
        (Setting::JobIntervalMs, file.job_interval_ms),
        (Setting::GcGraceMs, file.gc_grace_ms),
    ];
    for (setting, value) in numbers {
        if let Some(value) = value {
            layer.set(setting, value.to_string(), origin.clone());
        }
    }
    Ok(layer)
}

fn line_column(text: &str, byte: usize) -> (usize, usize) {
    let before = &text[..byte.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Collapses a possibly multi-line message into one line.
pub(crate) fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
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
