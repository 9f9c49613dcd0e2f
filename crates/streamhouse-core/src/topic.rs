use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::error::ValidationError;

/// Kafka's limit on topic name length.
pub const MAX_TOPIC_NAME_LEN: usize = 249;
/// Upper bound on partitions per topic, to keep one request from creating an
/// unbounded number of metadata rows.
pub const MAX_PARTITIONS: i32 = 10_000;
/// Kafka's default `max.message.bytes` (1 MiB plus record batch overhead).
pub const DEFAULT_MAX_MESSAGE_BYTES: i32 = 1_048_588;
/// Kafka's default `retention.ms`: seven days.
pub const DEFAULT_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka's default `delete.retention.ms`: one day.
pub const DEFAULT_DELETE_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
/// Kafka's default `min.cleanable.dirty.ratio`.
pub const DEFAULT_MIN_CLEANABLE_DIRTY_RATIO: f64 = 0.5;

/// Checks a topic name against Kafka's rules: 1 to 249 characters of
/// `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), ValidationError> {
    let invalid = |reason| {
        Err(ValidationError::InvalidTopicName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("must not be empty");
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return invalid("must be at most 249 characters");
    }
    if name == "." || name == ".." {
        return invalid("must not be '.' or '..'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return invalid("may contain only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// Checks a requested partition count.
pub fn validate_partition_count(count: i64) -> Result<i32, ValidationError> {
    if (1..=i64::from(MAX_PARTITIONS)).contains(&count) {
        // The range check above makes the conversion lossless.
        Ok(count as i32)
    } else {
        Err(ValidationError::InvalidPartitionCount {
            count,
            max: MAX_PARTITIONS,
        })
    }
}

/// A topic name and partition number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// What happens to old data of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    Delete,
    Compact,
    CompactDelete,
}

impl CleanupPolicy {
    /// Whether records are compacted by key (`compact`, `compact,delete`).
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }

    /// Whether `retention.ms` and `retention.bytes` drop old segments
    /// (`delete`, `compact,delete`).
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }
}

/// Configs with a default that StreamHouse applies.
const TYPED_CONFIGS: &[&str] = &[
    "cleanup.policy",
    "delete.retention.ms",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "retention.bytes",
    "retention.ms",
];

/// One config of a topic, as reported to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    /// True when the value is the default rather than set on the topic.
    pub is_default: bool,
    /// Kafka's type for the config's value.
    pub kind: ConfigType,
    /// What the config does in StreamHouse.
    pub doc: &'static str,
}

/// The type of a topic config's value, as Kafka declares it (and reports
/// it in DescribeConfigs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Long,
    Double,
    List,
}

/// One topic config StreamHouse accepts: its name, Kafka's type for it and
/// what it does here.
struct ConfigSpec {
    name: &'static str,
    kind: ConfigType,
    doc: &'static str,
}

const fn spec(name: &'static str, kind: ConfigType, doc: &'static str) -> ConfigSpec {
    ConfigSpec { name, kind, doc }
}

/// Stored so that tools which set it work; StreamHouse does not act on it.
const STORED_ONLY: &str = "Accepted and stored for compatibility; StreamHouse does not act on it.";

/// Kafka topic configs that StreamHouse accepts and stores, sorted by name.
/// Those with a typed accessor on [`TopicConfig`] change StreamHouse's
/// behaviour; the others are kept so that tools which set them work.
const KNOWN_CONFIGS: &[ConfigSpec] = {
    use ConfigType::{Boolean, Double, Int, List, Long, String};
    &[
        spec(
            "cleanup.policy",
            List,
            "delete drops old segments by retention.ms and retention.bytes; compact keeps the \
             latest record of each key (records need a key); compact,delete does both.",
        ),
        spec("compression.type", String, STORED_ONLY),
        spec(
            "delete.retention.ms",
            Long,
            "How long a tombstone (a record with a null value) of a compacted topic stays \
             readable after compaction made it its key's latest record.",
        ),
        spec("file.delete.delay.ms", Long, STORED_ONLY),
        spec("flush.messages", Long, STORED_ONLY),
        spec("flush.ms", Long, STORED_ONLY),
        spec("index.interval.bytes", Int, STORED_ONLY),
        spec(
            "max.compaction.lag.ms",
            Long,
            "The longest a record may stay uncompacted: a partition holding an older one is \
             compacted whatever its dirty ratio.",
        ),
        spec(
            "max.message.bytes",
            Int,
            "The largest record batch the topic takes, as sent (compressed).",
        ),
        spec("message.downconversion.enable", Boolean, STORED_ONLY),
        spec("message.format.version", String, STORED_ONLY),
        spec("message.timestamp.after.max.ms", Long, STORED_ONLY),
        spec("message.timestamp.before.max.ms", Long, STORED_ONLY),
        spec("message.timestamp.difference.max.ms", Long, STORED_ONLY),
        spec(
            "message.timestamp.type",
            String,
            "CreateTime keeps the producer's timestamp; LogAppendTime stamps each record \
             with the time it is appended.",
        ),
        spec(
            "min.cleanable.dirty.ratio",
            Double,
            "The share of a partition's log not yet compacted at which it is compacted.",
        ),
        spec(
            "min.compaction.lag.ms",
            Long,
            "The shortest time a record stays uncompacted; at most max.compaction.lag.ms.",
        ),
        spec("min.insync.replicas", Int, STORED_ONLY),
        spec("preallocate", Boolean, STORED_ONLY),
        spec(
            "retention.bytes",
            Long,
            "The size a partition may grow to before its oldest segments are dropped, when \
             cleanup.policy includes delete; -1 for no limit.",
        ),
        spec(
            "retention.ms",
            Long,
            "How long records are kept before their segments are dropped, when \
             cleanup.policy includes delete; -1 keeps them forever.",
        ),
        spec("segment.bytes", Int, STORED_ONLY),
        spec("segment.index.bytes", Int, STORED_ONLY),
        spec("segment.jitter.ms", Long, STORED_ONLY),
        spec("segment.ms", Long, STORED_ONLY),
        spec("unclean.leader.election.enable", Boolean, STORED_ONLY),
    ]
};

fn known_config(name: &str) -> Option<&'static ConfigSpec> {
    KNOWN_CONFIGS.iter().find(|spec| spec.name == name)
}

/// A topic's configuration overrides, keyed by Kafka config name.
///
/// Only overrides are stored; the typed accessors fall back to Kafka's
/// defaults. Values are validated when the config is built, so a stored
/// config always parses.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct TopicConfig {
    overrides: BTreeMap<String, String>,
}

impl TopicConfig {
    /// Builds a config from name/value pairs, rejecting unknown names and
    /// values that do not parse.
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Self, ValidationError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut config = TopicConfig::default();
        for (key, value) in pairs {
            config.set(key.into(), value.into())?;
        }
        config.check()?;
        Ok(config)
    }

    /// Checks the rules that involve more than one config, as Kafka does
    /// when a topic is created or altered: `min.compaction.lag.ms` must not
    /// exceed `max.compaction.lag.ms`.
    pub fn check(&self) -> Result<(), ValidationError> {
        let (min, max) = (self.min_compaction_lag_ms(), self.max_compaction_lag_ms());
        if min > max {
            return Err(ValidationError::InvalidConfigValue {
                key: "min.compaction.lag.ms".to_string(),
                value: min.to_string(),
                reason: "must not be greater than max.compaction.lag.ms",
            });
        }
        Ok(())
    }

    /// Sets one override after validating it.
    pub fn set(&mut self, key: String, value: String) -> Result<(), ValidationError> {
        if known_config(&key).is_none() {
            return Err(ValidationError::UnknownConfig { key });
        }
        validate_value(&key, &value)?;
        self.overrides.insert(key, value);
        Ok(())
    }

    /// Removes an override, restoring the default.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.overrides.remove(key)
    }

    /// The overrides, for storage and for DescribeConfigs.
    pub fn overrides(&self) -> &BTreeMap<String, String> {
        &self.overrides
    }

    /// The value a config has, explicit or default, as Kafka reports it.
    pub fn effective(&self, key: &str) -> Option<String> {
        if let Some(value) = self.overrides.get(key) {
            return Some(value.clone());
        }
        match key {
            "retention.ms" => Some(DEFAULT_RETENTION_MS.to_string()),
            "retention.bytes" => Some("-1".to_string()),
            "cleanup.policy" => Some("delete".to_string()),
            "max.message.bytes" => Some(DEFAULT_MAX_MESSAGE_BYTES.to_string()),
            "delete.retention.ms" => Some(DEFAULT_DELETE_RETENTION_MS.to_string()),
            "min.compaction.lag.ms" => Some("0".to_string()),
            "max.compaction.lag.ms" => Some(i64::MAX.to_string()),
            "min.cleanable.dirty.ratio" => Some(DEFAULT_MIN_CLEANABLE_DIRTY_RATIO.to_string()),
            _ => None,
        }
    }

    /// Every config with a value, as Kafka's DescribeConfigs lists them:
    /// name, effective value, whether it was set on the topic (rather than
    /// a default), its type and what it does. Sorted by name.
    pub fn entries(&self) -> Vec<ConfigEntry> {
        let entry = |name: &str, value: String, is_default: bool| {
            let spec = known_config(name);
            ConfigEntry {
                name: name.to_string(),
                value,
                is_default,
                // A stored name this version does not know (none should
                // be) is reported as a plain string.
                kind: spec.map_or(ConfigType::String, |spec| spec.kind),
                doc: spec.map_or(STORED_ONLY, |spec| spec.doc),
            }
        };
        let mut entries: BTreeMap<&str, ConfigEntry> = TYPED_CONFIGS
            .iter()
            .filter_map(|&name| {
                self.effective(name)
                    .map(|value| (name, entry(name, value, true)))
            })
            .collect();
        for (name, value) in &self.overrides {
            entries.insert(name, entry(name, value.clone(), false));
        }
        entries.into_values().collect()
    }

    /// `retention.ms`; `None` means keep forever (-1).
    pub fn retention_ms(&self) -> Option<i64> {
        let value = self.int("retention.ms").unwrap_or(DEFAULT_RETENTION_MS);
        (value >= 0).then_some(value)
    }

    /// `retention.bytes` per partition; `None` means unbounded (-1).
    pub fn retention_bytes(&self) -> Option<i64> {
        let value = self.int("retention.bytes").unwrap_or(-1);
        (value >= 0).then_some(value)
    }

    pub fn max_message_bytes(&self) -> i32 {
        self.int("max.message.bytes")
            .and_then(|v| i32::try_from(v).ok())
            .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES)
    }

    /// `message.timestamp.type`: whether records keep the producer's
    /// timestamp or get the time they were appended.
    pub fn log_append_time(&self) -> bool {
        self.overrides
            .get("message.timestamp.type")
            .is_some_and(|v| v.trim() == "LogAppendTime")
    }

    pub fn cleanup_policy(&self) -> CleanupPolicy {
        match self.overrides.get("cleanup.policy").map(String::as_str) {
            Some(value) => parse_cleanup_policy(value).unwrap_or(CleanupPolicy::Delete),
            None => CleanupPolicy::Delete,
        }
    }

    /// `delete.retention.ms`: how long a tombstone stays readable after the
    /// compaction that first made it its key's latest record.
    pub fn delete_retention_ms(&self) -> i64 {
        self.int("delete.retention.ms")
            .unwrap_or(DEFAULT_DELETE_RETENTION_MS)
    }

    /// `min.compaction.lag.ms`: records younger than this are never
    /// compacted.
    pub fn min_compaction_lag_ms(&self) -> i64 {
        self.int("min.compaction.lag.ms").unwrap_or(0)
    }

    /// `max.compaction.lag.ms`: a partition whose oldest uncompacted record
    /// is older than this is compacted whatever its dirty ratio.
    pub fn max_compaction_lag_ms(&self) -> i64 {
        self.int("max.compaction.lag.ms").unwrap_or(i64::MAX)
    }

    /// `min.cleanable.dirty.ratio`: the share of a partition's compactable
    /// bytes not yet compacted at which it is compacted.
    pub fn min_cleanable_dirty_ratio(&self) -> f64 {
        self.overrides
            .get("min.cleanable.dirty.ratio")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_MIN_CLEANABLE_DIRTY_RATIO)
    }

    fn int(&self, key: &str) -> Option<i64> {
        self.overrides.get(key).and_then(|v| v.trim().parse().ok())
    }
}

fn parse_cleanup_policy(value: &str) -> Option<CleanupPolicy> {
    let mut parts: Vec<&str> = value.split(',').map(str::trim).collect();
    parts.sort_unstable();
    parts.dedup();
    match parts.as_slice() {
        ["delete"] => Some(CleanupPolicy::Delete),
        ["compact"] => Some(CleanupPolicy::Compact),
        ["compact", "delete"] => Some(CleanupPolicy::CompactDelete),
        _ => None,
    }
}

fn validate_value(key: &str, value: &str) -> Result<(), ValidationError> {
    let invalid = |reason| {
        Err(ValidationError::InvalidConfigValue {
            key: key.to_string(),
            value: value.to_string(),
            reason,
        })
    };
    match key {
        "retention.ms" | "retention.bytes" => match value.trim().parse::<i64>() {
            Ok(v) if v >= -1 => Ok(()),
            _ => invalid("must be an integer >= -1"),
        },
        "delete.retention.ms" | "min.compaction.lag.ms" => match value.trim().parse::<i64>() {
            Ok(v) if v >= 0 => Ok(()),
            _ => invalid("must be an integer >= 0"),
        },
        "max.compaction.lag.ms" => match value.trim().parse::<i64>() {
            Ok(v) if v >= 1 => Ok(()),
            _ => invalid("must be an integer >= 1"),
        },
        "min.cleanable.dirty.ratio" => match value.trim().parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => Ok(()),
            _ => invalid("must be a number between 0 and 1"),
        },
        "max.message.bytes" => match value.trim().parse::<i32>() {
            Ok(v) if v > 0 => Ok(()),
            _ => invalid("must be a positive 32-bit integer"),
        },
        "message.timestamp.type" => match value.trim() {
            "CreateTime" | "LogAppendTime" => Ok(()),
            _ => invalid("must be CreateTime or LogAppendTime"),
        },
        "cleanup.policy" => match parse_cleanup_policy(value) {
            Some(_) => Ok(()),
            None => invalid("must be delete, compact or compact,delete"),
        },
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_configs_are_sorted_and_cover_the_typed_ones() {
        let names: Vec<&str> = KNOWN_CONFIGS.iter().map(|spec| spec.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        for typed in TYPED_CONFIGS {
            assert!(names.contains(typed), "{typed}");
        }
    }

    #[test]
    fn accepts_valid_topic_names() {
        for name in ["a", "orders", "my.topic_v2-eu", &"x".repeat(249), "..."] {
            assert_eq!(validate_topic_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn rejects_invalid_topic_names() {
        for name in ["", ".", "..", "has space", "slash/", "ü", &"x".repeat(250)] {
            assert!(
                matches!(
                    validate_topic_name(name),
                    Err(ValidationError::InvalidTopicName { .. })
                ),
                "{name:?} should be rejected"
            );
        }
    }

    #[test]
    fn partition_count_bounds() {
        assert_eq!(validate_partition_count(1), Ok(1));
        assert_eq!(validate_partition_count(10_000), Ok(10_000));
        assert!(validate_partition_count(0).is_err());
        assert!(validate_partition_count(-3).is_err());
        assert!(validate_partition_count(10_001).is_err());
    }

    #[test]
    fn config_defaults_and_overrides() {
        let config = TopicConfig::default();
        assert_eq!(config.retention_ms(), Some(DEFAULT_RETENTION_MS));
        assert_eq!(config.retention_bytes(), None);
        assert_eq!(config.max_message_bytes(), DEFAULT_MAX_MESSAGE_BYTES);
        assert_eq!(config.cleanup_policy(), CleanupPolicy::Delete);

        let config = TopicConfig::from_pairs([
            ("retention.ms", "-1"),
            ("retention.bytes", "1000"),
            ("max.message.bytes", "512"),
            ("cleanup.policy", "delete,compact"),
            ("min.insync.replicas", "2"),
        ])
        .expect("valid config");
        assert_eq!(config.retention_ms(), None);
        assert_eq!(config.retention_bytes(), Some(1000));
        assert_eq!(config.max_message_bytes(), 512);
        assert_eq!(config.cleanup_policy(), CleanupPolicy::CompactDelete);
        assert_eq!(
            config.effective("min.insync.replicas").as_deref(),
            Some("2")
        );
    }

    #[test]
    fn entries_list_defaults_and_overrides() {
        let config = TopicConfig::from_pairs([("retention.ms", "1000"), ("segment.bytes", "1024")])
            .expect("config");
        let entries = config.entries();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "cleanup.policy",
                "delete.retention.ms",
                "max.compaction.lag.ms",
                "max.message.bytes",
                "min.cleanable.dirty.ratio",
                "min.compaction.lag.ms",
                "retention.bytes",
                "retention.ms",
                "segment.bytes"
            ]
        );
        let retention = &entries[7];
        assert_eq!(
            (retention.value.as_str(), retention.is_default),
            ("1000", false)
        );
        assert!(entries[0].is_default);
        let kinds: Vec<ConfigType> = entries.iter().map(|e| e.kind).collect();
        use ConfigType::{Double, Int, List, Long};
        assert_eq!(
            kinds,
            [List, Long, Long, Int, Double, Long, Long, Long, Int]
        );
        assert!(entries.iter().all(|e| !e.doc.is_empty()));
    }

    #[test]
    fn compaction_configs_have_kafkas_defaults_and_rules() {
        let config = TopicConfig::default();
        assert_eq!(config.delete_retention_ms(), 86_400_000);
        assert_eq!(config.min_compaction_lag_ms(), 0);
        assert_eq!(config.max_compaction_lag_ms(), i64::MAX);
        assert_eq!(config.min_cleanable_dirty_ratio(), 0.5);
        assert_eq!(
            config.effective("max.compaction.lag.ms").as_deref(),
            Some("9223372036854775807")
        );
        let config = TopicConfig::from_pairs([
            ("cleanup.policy", "compact"),
            ("delete.retention.ms", "100"),
            ("min.compaction.lag.ms", "5"),
            ("max.compaction.lag.ms", "5"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ])
        .expect("valid");
        assert!(config.cleanup_policy().compacts() && !config.cleanup_policy().deletes());
        assert_eq!(config.delete_retention_ms(), 100);
        assert_eq!(config.min_cleanable_dirty_ratio(), 0.01);
        for (key, value) in [
            ("delete.retention.ms", "-1"),
            ("min.compaction.lag.ms", "-1"),
            ("max.compaction.lag.ms", "0"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("min.cleanable.dirty.ratio", "half"),
        ] {
            assert!(
                matches!(
                    TopicConfig::from_pairs([(key, value)]),
                    Err(ValidationError::InvalidConfigValue { .. })
                ),
                "{key}={value}"
            );
        }
        assert!(matches!(
            TopicConfig::from_pairs([
                ("min.compaction.lag.ms", "10"),
                ("max.compaction.lag.ms", "5")
            ]),
            Err(ValidationError::InvalidConfigValue { .. })
        ));
    }

    #[test]
    fn config_rejects_bad_values_and_unknown_names() {
        assert!(matches!(
            TopicConfig::from_pairs([("retention.ms", "soon")]),
            Err(ValidationError::InvalidConfigValue { .. })
        ));
        assert!(matches!(
            TopicConfig::from_pairs([("max.message.bytes", "0")]),
            Err(ValidationError::InvalidConfigValue { .. })
        ));
        assert!(matches!(
            TopicConfig::from_pairs([("cleanup.policy", "shred")]),
            Err(ValidationError::InvalidConfigValue { .. })
        ));
        assert!(matches!(
            TopicConfig::from_pairs([("message.timestamp.type", "Whenever")]),
            Err(ValidationError::InvalidConfigValue { .. })
        ));
        assert!(
            TopicConfig::from_pairs([("message.timestamp.type", "LogAppendTime")])
                .expect("valid")
                .log_append_time()
        );
        assert!(matches!(
            TopicConfig::from_pairs([("no.such.config", "1")]),
            Err(ValidationError::UnknownConfig { .. })
        ));
    }
}
