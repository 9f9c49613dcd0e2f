//! The REST API of `streamhouse serve` as typed calls: one method per
//! endpoint, exchanging the bodies defined in [`streamhouse_api`].
//!
//! The invariant that matters: those types are also what `--output json`
//! prints, so a field the server adds appears in streamctl's output only
//! once it is added to `streamhouse_api`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use streamhouse_api::{
    Acl, AclFilter, ConsumeResponse, CreateTopic, Encoding, GroupDetail, GroupListing,
    IsolationLevel, ProduceRecord, ProduceRequest, ProduceResponse, SegmentRow, SetUser,
    StoredOffset, TopicDetail, TopicSummary, User,
};

use crate::client::ApiClient;

/// One read from a partition.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadRequest {
    /// `None`: from the log start offset.
    pub(crate) offset: Option<i64>,
    pub(crate) max_records: usize,
    pub(crate) encoding: Encoding,
    pub(crate) isolation_level: IsolationLevel,
    /// Long poll: how long the server may wait for a record at `offset`.
    pub(crate) wait: Duration,
}

/// Most rows the server returns per segments request.
pub(crate) const SEGMENT_PAGE: usize = 1000;

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
        let body = CreateTopic {
            name: name.to_owned(),
            partitions: i64::from(partitions),
            config: config
                .iter()
                .map(|(key, value)| (key.clone(), serde_json::Value::from(value.as_str())))
                .collect(),
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
        let body = ProduceRequest {
            records: records.to_vec(),
            encoding,
        };
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
    ) -> Result<ConsumeResponse> {
        let mut query = vec![
            ("max_records", request.max_records.to_string()),
            ("encoding", request.encoding.as_str().to_string()),
            (
                "isolation_level",
                request.isolation_level.as_str().to_string(),
            ),
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

    pub(crate) async fn list_users(&self) -> Result<Vec<User>> {
        self.get(self.endpoint(&["users"], &[])).await
    }

    pub(crate) async fn set_user(&self, name: &str, request: &SetUser) -> Result<User> {
        self.put(self.endpoint(&["users", name], &[]), request)
            .await
    }

    /// Deletes one credential of `name`, or all of them.
    pub(crate) async fn delete_user(&self, name: &str, mechanism: Option<&str>) -> Result<()> {
        let query: Vec<(&str, String)> = mechanism
            .map(|m| ("mechanism", m.to_owned()))
            .into_iter()
            .collect();
        self.delete(self.endpoint(&["users", name], &query)).await
    }

    pub(crate) async fn list_acls(&self, filter: &AclFilter) -> Result<Vec<Acl>> {
        self.get(self.endpoint(&["acls"], &filter_query(filter)))
            .await
    }

    pub(crate) async fn create_acls(&self, acls: &[Acl]) -> Result<Vec<Acl>> {
        self.post(self.endpoint(&["acls"], &[]), acls).await
    }

    /// Returns the bindings deleted.
    pub(crate) async fn delete_acls(&self, filter: &AclFilter) -> Result<Vec<Acl>> {
        self.delete_json(self.endpoint(&["acls"], &filter_query(filter)))
            .await
    }
}

/// An ACL filter as the query parameters of `/api/v1/acls`.
fn filter_query(filter: &AclFilter) -> Vec<(&'static str, String)> {
    [
        ("resource_type", &filter.resource_type),
        ("resource_name", &filter.resource_name),
        ("pattern_type", &filter.pattern_type),
        ("principal", &filter.principal),
        ("host", &filter.host),
        ("operation", &filter.operation),
        ("permission", &filter.permission),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.clone().map(|value| (name, value)))
    .collect()
}
