//! Shared helpers: an in-process server on loopback ports with a temporary
//! data directory, a small JSON client, and the REST round trip that runs
//! against every backend.
#![allow(dead_code)] // each test file uses a different part

pub(crate) mod agent;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use streamhouse_metadata::MetadataStore;
use streamhouse_server::{HostPort, KafkaListenAddress, RunningServer, Server, ServerConfig};
use streamhouse_storage::{ObjectStorage, partition_for_key};

/// Settings for a test server: free loopback ports, a short flush interval.
pub(crate) fn test_config(data_dir: &std::path::Path) -> ServerConfig {
    ServerConfig {
        kafka_listen: vec![KafkaListenAddress::plaintext(HostPort::new("127.0.0.1", 0))],
        http_listen: HostPort::new("127.0.0.1", 0),
        flush_interval: Duration::from_millis(5),
        ..ServerConfig::with_data_dir(data_dir)
    }
}

/// A running in-process server and a client for its HTTP API.
pub(crate) struct TestServer {
    pub server: RunningServer,
    pub base: String,
    pub client: reqwest::Client,
    /// Kept so the data outlives the server.
    pub dir: tempfile::TempDir,
}

impl TestServer {
    /// SQLite and a local directory in a fresh temporary directory.
    pub(crate) async fn start() -> Result<Self> {
        Self::start_with(|config| config).await
    }

    /// Like [`TestServer::start`], with the config adjusted by `adjust`.
    pub(crate) async fn start_with(
        adjust: impl FnOnce(ServerConfig) -> ServerConfig,
    ) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let server = Server::start(adjust(test_config(dir.path()))).await?;
        Ok(Self::wrap(server, dir))
    }

    /// With a metadata store and object storage built by the test.
    pub(crate) async fn start_with_components(
        metadata: Arc<dyn MetadataStore>,
        storage: ObjectStorage,
    ) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let server =
            Server::start_with_components(test_config(dir.path()), metadata, storage).await?;
        Ok(Self::wrap(server, dir))
    }

    fn wrap(server: RunningServer, dir: tempfile::TempDir) -> Self {
        Self {
            base: format!("http://{}", server.http_addr()),
            server,
            client: reqwest::Client::new(),
            dir,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn get(&self, path: &str) -> Result<(StatusCode, Value)> {
        into_json(self.client.get(self.url(path)).send().await?).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Result<(StatusCode, Value)> {
        into_json(self.client.post(self.url(path)).json(&body).send().await?).await
    }

    pub(crate) async fn delete(&self, path: &str) -> Result<(StatusCode, Value)> {
        into_json(self.client.delete(self.url(path)).send().await?).await
    }

    /// Creates a topic and checks it was created.
    pub(crate) async fn create_topic(&self, name: &str, partitions: i64) -> Result<()> {
        let (status, body) = self
            .post(
                "/api/v1/topics",
                json!({"name": name, "partitions": partitions}),
            )
            .await?;
        ensure!(
            status == StatusCode::CREATED,
            "create {name}: {status} {body}"
        );
        Ok(())
    }

    pub(crate) async fn shutdown(self) -> Result<()> {
        self.server.shutdown().await?;
        Ok(())
    }
}

/// Status and JSON body (`null` for an empty body). A non-JSON body is an
/// error: the API promises JSON for everything but `/metrics`.
pub(crate) async fn into_json(response: reqwest::Response) -> Result<(StatusCode, Value)> {
    let status = response.status();
    let text = response.text().await?;
    if text.is_empty() {
        return Ok((status, Value::Null));
    }
    let body = serde_json::from_str(&text)
        .with_context(|| format!("{status}: body is not JSON: {text:?}"))?;
    Ok((status, body))
}

/// Checks an error response: the status and `{"error":{"code","message"}}`.
pub(crate) fn assert_error(response: &(StatusCode, Value), status: StatusCode, code: &str) {
    let (actual, body) = response;
    assert_eq!(*actual, status, "unexpected status; body {body}");
    assert_eq!(body["error"]["code"], code, "unexpected code in {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "error without a message: {body}");
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// The REST round trip a user would try first, written once and run
/// against every backend: create a topic, produce keyed, unkeyed, binary
/// and explicitly placed records with headers, read them back, inspect
/// the topic and its segments, delete it.
pub(crate) async fn rest_round_trip(t: &TestServer) -> Result<()> {
    // Create, with a config override.
    let (status, created) = t
        .post(
            "/api/v1/topics",
            json!({"name": "orders", "partitions": 3, "config": {"retention.ms": "60000"}}),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "orders");
    assert_eq!(created["partitions"], 3);
    assert_eq!(created["config"], json!({"retention.ms": "60000"}));
    assert!(
        created["topic_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert!(created["created_at"].as_i64().is_some_and(|t| t > 0));

    let (status, topics) = t.get("/api/v1/topics").await?;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = topics
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(names.contains(&"orders"), "{topics}");

    // Produce text records: keyed (placed by murmur2), unkeyed with an
    // explicit partition, one with a timestamp, and a tombstone.
    let (status, produced) = t
        .post(
            "/api/v1/topics/orders/records",
            json!({"records": [
                {"key": "customer-7", "value": "hello",
                 "headers": [{"key": "trace", "value": "abc"}, {"key": "empty", "value": null}]},
                {"key": null, "value": "no key", "partition": 1},
                {"value": "stamped", "partition": 2, "timestamp": 1_700_000_000_000_i64},
                {"key": "customer-7", "value": "again"},
                {"key": "customer-7", "value": null}
            ]}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{produced}");
    let offsets = produced["offsets"].as_array().context("offsets")?;
    assert_eq!(offsets.len(), 5, "{produced}");
    let keyed = i64::from(partition_for_key(b"customer-7", 3));
    assert_eq!(offsets[0]["partition"], keyed);
    assert_eq!(offsets[1]["partition"], 1);
    assert_eq!(offsets[2], json!({"partition": 2, "offset": 0}));
    assert_eq!(offsets[3]["partition"], keyed);
    // One request's records for one partition get consecutive offsets,
    // in request order.
    let in_keyed: Vec<i64> = offsets
        .iter()
        .filter(|o| o["partition"] == keyed)
        .filter_map(|o| o["offset"].as_i64())
        .collect();
    assert!(in_keyed.len() >= 3, "{produced}");
    assert!(in_keyed.windows(2).all(|w| w[1] == w[0] + 1), "{produced}");
    assert_eq!(offsets[4]["partition"], keyed);

    // Binary values through base64, into partition 0.
    let binary_value = [0x00_u8, 0xff, 0xfe, 0x80];
    let binary_key = [0xc3_u8, 0x28];
    let (status, produced) = t
        .post(
            "/api/v1/topics/orders/records",
            json!({"encoding": "base64", "records": [
                {"key": b64(&binary_key), "value": b64(&binary_value), "partition": 0,
                 "headers": [{"key": "raw", "value": b64(&[0x01, 0x9f])}, {"key": "none", "value": null}]}
            ]}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{produced}");
    let binary_offset = produced["offsets"][0]["offset"]
        .as_i64()
        .context("offset")?;

    // Read the keyed partition back.
    let (status, read) = t
        .get(&format!(
            "/api/v1/topics/orders/partitions/{keyed}/records?offset=0"
        ))
        .await?;
    assert_eq!(status, StatusCode::OK, "{read}");
    let records = read["records"].as_array().context("records")?;
    let hello = records
        .iter()
        .find(|r| r["value"] == "hello")
        .context("the keyed record is in its partition")?;
    assert_eq!(hello["key"], "customer-7");
    assert_eq!(hello["encoding"], "utf8");
    assert_eq!(
        hello["headers"],
        json!([{"key": "trace", "value": "abc"}, {"key": "empty", "value": null}])
    );
    // A null value (tombstone) reads back as null, not as "".
    let tombstone = records.last().context("tombstone")?;
    assert_eq!(tombstone["key"], "customer-7");
    assert_eq!(tombstone["value"], Value::Null);
    assert_eq!(read["next_offset"], read["high_watermark"]);
    assert_eq!(read["log_start_offset"], 0);

    // The unkeyed record keeps its null key; the timestamp is kept.
    let (_, read) = t.get("/api/v1/topics/orders/partitions/1/records").await?;
    let no_key = read["records"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["value"] == "no key"))
        .context("unkeyed record")?;
    assert_eq!(no_key["key"], Value::Null);
    let (_, read) = t
        .get("/api/v1/topics/orders/partitions/2/records?offset=0")
        .await?;
    assert_eq!(read["records"][0]["timestamp"], 1_700_000_000_000_i64);
    assert_eq!(read["records"][0]["value"], "stamped");

    // Binary record: exact bytes in base64; asked for utf8 it falls back
    // to base64 and says so.
    let path =
        format!("/api/v1/topics/orders/partitions/0/records?offset={binary_offset}&max_records=1");
    let (status, read) = t.get(&format!("{path}&encoding=base64")).await?;
    assert_eq!(status, StatusCode::OK, "{read}");
    let record = &read["records"][0];
    assert_eq!(record["encoding"], "base64");
    assert_eq!(record["key"], b64(&binary_key));
    assert_eq!(record["value"], b64(&binary_value));
    assert_eq!(
        record["headers"],
        json!([{"key": "raw", "value": b64(&[0x01, 0x9f])}, {"key": "none", "value": null}])
    );
    assert_eq!(read["next_offset"], binary_offset + 1);
    let (_, as_text) = t.get(&path).await?;
    assert_eq!(as_text["records"][0]["encoding"], "base64");
    assert_eq!(as_text["records"][0]["value"], b64(&binary_value));

    // Describe: effective configs and watermarks.
    let (status, described) = t.get("/api/v1/topics/orders").await?;
    assert_eq!(status, StatusCode::OK, "{described}");
    assert_eq!(described["config"]["retention.ms"], "60000");
    assert_eq!(described["config"]["cleanup.policy"], "delete");
    assert_eq!(described["config"]["retention.bytes"], "-1");
    assert!(
        described["config"]["max.message.bytes"].is_string(),
        "{described}"
    );
    let partitions = described["partitions"].as_array().context("partitions")?;
    assert_eq!(partitions.len(), 3);
    let total: i64 = partitions
        .iter()
        .filter_map(|p| p["high_watermark"].as_i64())
        .sum();
    assert_eq!(total, 6, "six records were produced: {described}");

    // Segment rows of partition 2: one row for its one record.
    let (status, segments) = t.get("/api/v1/topics/orders/partitions/2/segments").await?;
    assert_eq!(status, StatusCode::OK, "{segments}");
    let row = &segments[0];
    for column in [
        "id",
        "base_offset",
        "end_offset",
        "record_count",
        "size_bytes",
        "bucket",
        "key",
        "byte_offset",
        "byte_length",
        "min_timestamp",
        "max_timestamp",
        "created_at",
    ] {
        assert!(!row[column].is_null(), "column {column} missing in {row}");
    }
    assert_eq!(row["base_offset"], 0);
    assert_eq!(row["end_offset"], 0);
    assert_eq!(row["record_count"], 1);
    assert_eq!(row["min_timestamp"], 1_700_000_000_000_i64);
    assert!(
        row["key"].as_str().is_some_and(|k| k.contains("batches/")),
        "{row}"
    );

    // Delete.
    let (status, _) = t.delete("/api/v1/topics/orders").await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let response = t.get("/api/v1/topics/orders").await?;
    assert_error(&response, StatusCode::NOT_FOUND, "not_found");
    Ok(())
}
