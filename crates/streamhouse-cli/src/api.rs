//! The REST API of `streamhouse serve` as typed calls: one method per
//! endpoint and the JSON shapes it exchanges, mirrored from
//! `crates/streamhouse-server/src/http/` (the source of truth).
//!
//! The invariant that matters: these structs are also what `--output json`
//! prints, so they carry exactly the fields documented here. A field the
//! server adds later is ignored until it is added here, which keeps
//! streamctl's JSON output stable across server versions.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::client::ApiClient;

/// A topic as listed: `config` holds only the overrides.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TopicSummary {
    pub(crate) name: String,
    pub(crate) topic_id: String,
    pub(crate) partitions: i32,
    #[serde(default)]
    pub(crate) config: BTreeMap<String, String>,
    /// Milliseconds since the Unix epoch.
    pub(crate) created_at: i64,
}

/// A described topic: `config` holds the effective values of the main
/// settings plus every override.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TopicDetail {
    pub(crate) name: String,
    pub(crate) topic_id: String,
    pub(crate) created_at: i64,
    #[serde(default)]
    pub(crate) config: BTreeMap<String, String>,
    pub(crate) partitions: Vec<PartitionDetail>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct PartitionDetail {
    pub(crate) partition: i32,
    /// The next offset to be assigned.
    pub(crate) high_watermark: i64,
    /// The first readable offset.
    pub(crate) log_start_offset: i64,
}

#[derive(Serialize)]
struct NewTopic<'a> {
    name: &'a str,
    partitions: i32,
    config: &'a BTreeMap<String, String>,
}

/// How key, value and header value bytes travel as JSON strings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Encoding {
    /// UTF-8 text.
    #[default]
    Utf8,
    /// Standard base64, for binary data.
    Base64,
}

impl Encoding {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf8",
            Encoding::Base64 => "base64",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecordHeader {
    pub(crate) key: String,
    pub(crate) value: Option<String>,
}

/// One record of a produce request, its bytes encoded as the request says.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ProduceRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
    /// Always sent: `null` is a tombstone.
    pub(crate) value: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) headers: Vec<RecordHeader>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) partition: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) timestamp: Option<i64>,
}

#[derive(Serialize)]
struct ProduceRequest<'a> {
    records: &'a [ProduceRecord],
    encoding: Encoding,
}

#[derive(Deserialize)]
struct ProduceResponse {
    offsets: Vec<StoredOffset>,
}

/// Where one produced record was stored.
#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct StoredOffset {
    pub(crate) partition: i32,
    pub(crate) offset: i64,
}

/// One read from a partition.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadRequest {
    /// `None`: from the log start offset.
    pub(crate) offset: Option<i64>,
    pub(crate) max_records: usize,
    pub(crate) encoding: Encoding,
    /// Long poll: how long the server may wait for a record at `offset`.
    pub(crate) wait: Duration,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReadResponse {
    pub(crate) records: Vec<ConsumedRecord>,
    /// The offset to ask for next.
    pub(crate) next_offset: i64,
}

/// A record as read; `encoding` says how this record's key, value and
/// header values are encoded (a `utf8` read returns binary records in
/// base64).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ConsumedRecord {
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    pub(crate) key: Option<String>,
    /// `null` for a tombstone.
    pub(crate) value: Option<String>,
    #[serde(default)]
    pub(crate) headers: Vec<RecordHeader>,
    #[serde(default)]
    pub(crate) encoding: Encoding,
}

/// One row of the metadata store's `segments` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SegmentRow {
    pub(crate) id: i64,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) base_offset: i64,
    /// Inclusive.
    pub(crate) end_offset: i64,
    pub(crate) record_count: i64,
    /// Uncompressed size of the records' encodings; the stored size is
    /// `byte_length`.
    pub(crate) size_bytes: i64,
    pub(crate) bucket: String,
    /// Object key.
    pub(crate) key: String,
    /// Where the segment starts inside its object.
    pub(crate) byte_offset: i64,
    pub(crate) byte_length: i64,
    pub(crate) min_timestamp: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) created_at: i64,
    /// `flushed` (inside a flush object shared by partitions) or
    /// `compacted` (in its own object); absent from older servers.
    #[serde(default)]
    pub(crate) kind: Option<String>,
}

/// Most rows the server returns per segments request.
pub(crate) const SEGMENT_PAGE: usize = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GroupListing {
    pub(crate) group: String,
    pub(crate) state: String,
    /// Live members on the answering agent's coordinator.
    pub(crate) members: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GroupDetail {
    pub(crate) group: String,
    pub(crate) state: String,
    pub(crate) protocol_type: String,
    pub(crate) protocol: String,
    pub(crate) members: Vec<GroupMember>,
    pub(crate) offsets: Vec<GroupOffset>,
    pub(crate) total_lag: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GroupMember {
    pub(crate) member_id: String,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) assignment: Vec<Assignment>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Assignment {
    pub(crate) topic: String,
    pub(crate) partitions: Vec<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GroupOffset {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// Negative: the group committed "no offset".
    pub(crate) committed_offset: i64,
    /// `null` when the partition's range could not be read.
    pub(crate) high_watermark: Option<i64>,
    pub(crate) lag: Option<i64>,
    pub(crate) metadata: Option<String>,
}

impl ApiClient {
    /// `/api/v1/` + `path`.
    fn endpoint(&self, path: &[&str], query: &[(&str, String)]) -> reqwest::Url {
        let segments: Vec<&str> = ["api", "v1"].iter().chain(path).copied().collect();
        self.url(&segments, query)
    }

    pub(crate) async fn list_topics(&self) -> Result<Vec<TopicSummary>> {
        self.get(self.endpoint(&["topics"], &[])).await
    }

    pub(crate) async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        config: &BTreeMap<String, String>,
    ) -> Result<TopicSummary> {
        let body = NewTopic {
            name,
            partitions,
            config,
        };
        self.post(self.endpoint(&["topics"], &[]), &body).await
    }

    pub(crate) async fn describe_topic(&self, name: &str) -> Result<TopicDetail> {
        self.get(self.endpoint(&["topics", name], &[])).await
    }

    pub(crate) async fn delete_topic(&self, name: &str) -> Result<()> {
        self.delete(self.endpoint(&["topics", name], &[])).await
    }

    /// Returns each record's partition and offset, in request order.
    pub(crate) async fn produce(
        &self,
        topic: &str,
        records: &[ProduceRecord],
        encoding: Encoding,
    ) -> Result<Vec<StoredOffset>> {
        let body = ProduceRequest { records, encoding };
        let response: ProduceResponse = self
            .post(self.endpoint(&["topics", topic, "records"], &[]), &body)
            .await?;
        Ok(response.offsets)
    }

    pub(crate) async fn read(
        &self,
        topic: &str,
        partition: i32,
        request: ReadRequest,
    ) -> Result<ReadResponse> {
        let mut query = vec![
            ("max_records", request.max_records.to_string()),
            ("encoding", request.encoding.as_str().to_string()),
        ];
        if let Some(offset) = request.offset {
            query.push(("offset", offset.to_string()));
        }
        if !request.wait.is_zero() {
            query.push(("wait_ms", request.wait.as_millis().to_string()));
        }
        let partition = partition.to_string();
        let url = self.endpoint(
            &["topics", topic, "partitions", &partition, "records"],
            &query,
        );
        self.get_waiting(url, request.wait).await
    }

    /// Up to [`SEGMENT_PAGE`] rows whose `end_offset >= from_offset`.
    pub(crate) async fn segments(
        &self,
        topic: &str,
        partition: i32,
        from_offset: i64,
    ) -> Result<Vec<SegmentRow>> {
        let partition = partition.to_string();
        let url = self.endpoint(
            &["topics", topic, "partitions", &partition, "segments"],
            &[
                ("from_offset", from_offset.to_string()),
                ("limit", SEGMENT_PAGE.to_string()),
            ],
        );
        self.get(url).await
    }

    pub(crate) async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        self.get(self.endpoint(&["groups"], &[])).await
    }

    pub(crate) async fn describe_group(&self, group: &str) -> Result<GroupDetail> {
        self.get(self.endpoint(&["groups", group], &[])).await
    }
}
