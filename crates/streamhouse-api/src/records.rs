//! `/api/v1/topics/{name}/records` (produce) and
//! `/api/v1/topics/{name}/partitions/{p}/records` (consume).

use serde::{Deserialize, Serialize};

use crate::Encoding;

/// `POST /api/v1/topics/{name}/records`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceRequest {
    pub records: Vec<ProduceRecord>,
    /// How every key, value and header value of the request is encoded.
    #[serde(default)]
    pub encoding: Encoding,
}

/// One record of a produce request, its bytes encoded as the request says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Required, and may be `null`: a tombstone.
    #[serde(deserialize_with = "nullable")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ProduceHeader>,
    /// The key's partition (or the next in turn without a key) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// Milliseconds since the Unix epoch; now when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

/// Deserializes a field that must be present but may be `null` (serde
/// treats a missing `Option` field as `None` unless told otherwise).
fn nullable<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(deserializer)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceHeader {
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
}

/// The answer to a produce request, once every record is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceResponse {
    /// One per record, in request order.
    pub offsets: Vec<StoredOffset>,
}

/// Where one produced record was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredOffset {
    pub partition: i32,
    pub offset: i64,
}

/// Query of `GET /api/v1/topics/{name}/partitions/{p}/records`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumeQuery {
    /// First offset to return; the log start offset when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_records: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<usize>,
    #[serde(default)]
    pub encoding: Encoding,
    /// When nothing is readable at `offset`, wait up to this long for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    /// Kafka's `isolation.level`: `read_uncommitted` (the default) or
    /// `read_committed`.
    #[serde(default)]
    pub isolation_level: IsolationLevel,
}

/// Which records of transactions a read returns, as Kafka's consumer
/// setting `isolation.level`. Transaction markers are never returned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum IsolationLevel {
    /// Every record up to the high watermark, aborted ones too.
    #[default]
    #[cfg_attr(feature = "clap", value(alias = "read_uncommitted"))]
    ReadUncommitted,
    /// Only records of committed transactions (and records outside
    /// transactions), up to the last stable offset.
    #[cfg_attr(feature = "clap", value(alias = "read_committed"))]
    ReadCommitted,
}

impl IsolationLevel {
    /// The name used in JSON and in query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            IsolationLevel::ReadUncommitted => "read_uncommitted",
            IsolationLevel::ReadCommitted => "read_committed",
        }
    }
}

/// The answer to a read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumeResponse {
    pub records: Vec<ConsumedRecord>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// The first offset of the partition's oldest open transaction, or the
    /// high watermark: where a read_committed read stops.
    pub last_stable_offset: i64,
    /// The offset to ask for next: past the last record read, including
    /// transaction markers and aborted records not returned.
    pub next_offset: i64,
}

/// A record as read; `encoding` says how this record's key, value and
/// header values are encoded (a `utf8` read returns a record holding bytes
/// that are not UTF-8 in base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumedRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<String>,
    /// `null` for a tombstone.
    pub value: Option<String>,
    #[serde(default)]
    pub headers: Vec<ConsumedHeader>,
    #[serde(default)]
    pub encoding: Encoding,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumedHeader {
    pub key: String,
    pub value: Option<String>,
}
