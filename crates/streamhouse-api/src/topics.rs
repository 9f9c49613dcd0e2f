//! `/api/v1/topics`: topics and a partition's segment rows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A topic as listed and as answered by create and config changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSummary {
    pub name: String,
    pub topic_id: String,
    pub partitions: i32,
    /// Only the overrides; defaults are shown by the describe endpoint.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// `POST /api/v1/topics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    pub name: String,
    /// 1 when absent.
    #[serde(default = "one_partition")]
    pub partitions: i64,
    /// Kafka config names to values; values may be strings, numbers or
    /// booleans (`{"retention.ms": 60000}` is accepted).
    #[serde(default)]
    pub config: BTreeMap<String, serde_json::Value>,
}

fn one_partition() -> i64 {
    1
}

/// A described topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicDetail {
    pub name: String,
    pub topic_id: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Effective values of the main configs plus every override.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    pub partitions: Vec<PartitionDetail>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionDetail {
    pub partition: i32,
    /// The next offset to be assigned.
    pub high_watermark: i64,
    /// The first readable offset.
    pub log_start_offset: i64,
    /// The first offset of the oldest open transaction, or the high
    /// watermark when none is open.
    pub last_stable_offset: i64,
}

/// Query of `GET /api/v1/topics/{name}/partitions/{p}/segments`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentQuery {
    /// Only segments holding offsets at or after this one.
    #[serde(default)]
    pub from_offset: i64,
    /// Most rows to return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// One row of the metadata store's `segments` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRow {
    pub id: i64,
    pub topic: String,
    pub partition: i32,
    pub base_offset: i64,
    /// Inclusive.
    pub end_offset: i64,
    pub record_count: i64,
    /// Uncompressed size of the records' encodings; the stored size is
    /// `byte_length`.
    pub size_bytes: i64,
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Where the segment starts inside its object.
    pub byte_offset: i64,
    pub byte_length: i64,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    pub created_at: i64,
    /// `flushed` (a segment inside a flush object shared by partitions),
    /// `compacted` (one partition's segment in its own object) or
    /// `key-compacted` (written by key compaction of a `cleanup.policy=
    /// compact` topic: it may hold fewer records than its offsets span);
    /// absent from older servers.
    #[serde(default)]
    pub kind: Option<String>,
    /// For a key-compacted segment: when its tombstones were first
    /// compacted (milliseconds since the epoch), from which their
    /// `delete.retention.ms` counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleaned_at: Option<i64>,
    /// For a key-compacted segment: its records with a null value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tombstones: Option<i64>,
}
