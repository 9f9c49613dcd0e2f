//! The REST API against an in-process server on SQLite and a local
//! directory: every endpoint's success path and every error path a client
//! can hit.

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use common::{TestServer, assert_error, b64, into_json};
use reqwest::StatusCode;
use serde_json::{Value, json};
use streamhouse_metadata::OffsetCommit;
use streamhouse_storage::ObjectStorage;
use streamhouse_storage::testing::FaultInjectingStore;

#[tokio::test]
async fn round_trip_on_sqlite_and_local_directory() -> Result<()> {
    let t = TestServer::start().await?;
    common::rest_round_trip(&t).await?;
    t.shutdown().await
}

#[tokio::test]
async fn long_poll_returns_as_soon_as_another_request_produces() -> Result<()> {
    let t = TestServer::start().await?;
    t.create_topic("tail", 1).await?;

    let client = t.client.clone();
    let url = t.url("/api/v1/topics/tail/partitions/0/records?offset=0&wait_ms=10000");
    let started = Instant::now();
    let poll = tokio::spawn(async move { common::into_json(client.get(url).send().await?).await });

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !poll.is_finished(),
        "the poll must wait while there is no data"
    );
    let (status, _) = t
        .post(
            "/api/v1/topics/tail/records",
            json!({"records": [{"value": "wake up"}]}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK);

    let (status, read) = poll.await??;
    let elapsed = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["records"][0]["value"], "wake up");
    assert_eq!(read["next_offset"], 1);
    assert!(
        elapsed < Duration::from_secs(3),
        "the poll returned after {elapsed:?}, not as soon as data arrived"
    );
    t.shutdown().await
}

#[tokio::test]
async fn long_poll_without_data_returns_empty_after_the_wait() -> Result<()> {
    let t = TestServer::start().await?;
    t.create_topic("quiet", 1).await?;
    let started = Instant::now();
    let (status, read) = t
        .get("/api/v1/topics/quiet/partitions/0/records?wait_ms=300")
        .await?;
    let elapsed = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["records"], json!([]));
    assert_eq!(read["next_offset"], 0);
    assert!(
        elapsed >= Duration::from_millis(300),
        "returned after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "returned after {elapsed:?}"
    );
    t.shutdown().await
}

#[tokio::test]
async fn reads_respect_max_records_and_continue_from_next_offset() -> Result<()> {
    let t = TestServer::start().await?;
    t.create_topic("paged", 1).await?;
    let records: Vec<Value> = (0..5).map(|i| json!({"value": format!("v{i}")})).collect();
    let (status, _) = t
        .post("/api/v1/topics/paged/records", json!({"records": records}))
        .await?;
    assert_eq!(status, StatusCode::OK);

    let (_, first) = t
        .get("/api/v1/topics/paged/partitions/0/records?max_records=2")
        .await?;
    assert_eq!(first["records"].as_array().map(Vec::len), Some(2));
    assert_eq!(first["next_offset"], 2);
    assert_eq!(first["high_watermark"], 5);
    let (_, rest) = t
        .get("/api/v1/topics/paged/partitions/0/records?offset=2&max_records=100")
        .await?;
    let values: Vec<&str> = rest["records"]
        .as_array()
        .context("records")?
        .iter()
        .filter_map(|r| r["value"].as_str())
        .collect();
    assert_eq!(values, ["v2", "v3", "v4"]);
    // At the high watermark: no records, no error.
    let (status, at_end) = t
        .get("/api/v1/topics/paged/partitions/0/records?offset=5")
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(at_end["records"], json!([]));
    t.shutdown().await
}

#[tokio::test]
async fn unkeyed_records_spread_over_partitions() -> Result<()> {
    let t = TestServer::start().await?;
    t.create_topic("spread", 4).await?;
    let records: Vec<Value> = (0..8).map(|i| json!({"value": i.to_string()})).collect();
    let (status, produced) = t
        .post("/api/v1/topics/spread/records", json!({"records": records}))
        .await?;
    assert_eq!(status, StatusCode::OK, "{produced}");
    let mut partitions: Vec<i64> = produced["offsets"]
        .as_array()
        .context("offsets")?
        .iter()
        .filter_map(|o| o["partition"].as_i64())
        .collect();
    partitions.sort_unstable();
    assert_eq!(
        partitions,
        [0, 0, 1, 1, 2, 2, 3, 3],
        "round robin like Producer::send"
    );
    t.shutdown().await
}

#[tokio::test]
async fn topic_errors() -> Result<()> {
    let t = TestServer::start().await?;
    t.create_topic("exists", 1).await?;

    let cases = [
        (
            json!({"name": "bad name!", "partitions": 1}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"name": "..", "partitions": 1}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"name": "zero", "partitions": 0}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"name": "many", "partitions": 10_001}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"name": "cfg", "config": {"no.such.config": "1"}}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"name": "cfg", "config": {"retention.ms": "soon"}}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"name": "cfg", "config": {"retention.ms": [1]}}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"name": 5, "partitions": 1}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"name": "t", "partitions": "three"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"name": "t", "partitons": 3}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"partitions": 3}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"name": "exists", "partitions": 1}),
            StatusCode::CONFLICT,
            "already_exists",
        ),
    ];
    for (body, status, code) in cases {
        let response = t.post("/api/v1/topics", body.clone()).await?;
        assert_error(&response, status, code);
        if status == StatusCode::BAD_REQUEST {
            println!("{body} -> {}", response.1["error"]["message"]);
        }
    }

    // Numbers are accepted as config values.
    let (status, created) = t
        .post(
            "/api/v1/topics",
            json!({"name": "numeric", "config": {"retention.ms": 60000}}),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["partitions"], 1, "one partition by default");
    assert_eq!(created["config"]["retention.ms"], "60000");

    // Malformed JSON and a missing content type.
    let response = common::into_json(
        t.client
            .post(t.url("/api/v1/topics"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await?,
    )
    .await?;
    assert_error(&response, StatusCode::BAD_REQUEST, "invalid_input");
    let response = common::into_json(
        t.client
            .post(t.url("/api/v1/topics"))
            .body(r#"{"name":"x"}"#)
            .send()
            .await?,
    )
    .await?;
    assert_error(
        &response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid_input",
    );

    assert_error(
        &t.get("/api/v1/topics/missing").await?,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &t.delete("/api/v1/topics/missing").await?,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &t.get("/api/v1/topics/missing/partitions/0/segments")
            .await?,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &t.get("/api/v1/topics/exists/partitions/7/segments").await?,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &t.get("/api/v1/topics/exists/partitions/0/segments?limit=0")
            .await?,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    assert_error(
        &t.get("/api/v1/no/such/route").await?,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let response = common::into_json(t.client.put(t.url("/api/v1/topics")).send().await?).await?;
    assert_error(&response, StatusCode::METHOD_NOT_ALLOWED, "invalid_input");
    t.shutdown().await
}

#[tokio::test]
async fn produce_errors() -> Result<()> {
    let t = TestServer::start().await?;
    t.create_topic("p", 2).await?;
    let produce = "/api/v1/topics/p/records";

    let bad_base64 = t
        .post(
            produce,
            json!({"encoding": "base64", "records": [{"value": "***"}]}),
        )
        .await?;
    assert_error(&bad_base64, StatusCode::BAD_REQUEST, "invalid_input");
    let message = bad_base64.1["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("records[0].value"), "{message}");

    let cases = [
        json!({"records": []}),
        json!({"records": [{"value": 5}]}),
        json!({"records": [{"key": "no value field"}]}),
        json!({"records": [{"key": ["k"], "value": "v"}]}),
        json!({"records": [{"value": "v", "partition": "one"}]}),
        json!({"records": [{"value": "v", "headers": [{"key": "h", "value": 1}]}]}),
        json!({"records": [{"value": "v", "timestamp": -5}]}),
        json!({"records": [{"value": "v", "partition": 2}]}),
        json!({"records": [{"value": "v"}], "encoding": "hex"}),
        json!({"records": {"value": "v"}}),
        json!({"record": [{"value": "v"}]}),
    ];
    for body in cases {
        let response = t.post(produce, body.clone()).await?;
        assert_error(&response, StatusCode::BAD_REQUEST, "invalid_input");
        println!("{body} -> {}", response.1["error"]["message"]);
    }
    // Nothing of the rejected requests was stored.
    let (_, described) = t.get("/api/v1/topics/p").await?;
    assert_eq!(
        described["partitions"][0]["high_watermark"], 0,
        "{described}"
    );
    assert_eq!(
        described["partitions"][1]["high_watermark"], 0,
        "{described}"
    );

    assert_error(
        &t.post(
            "/api/v1/topics/missing/records",
            json!({"records": [{"value": "v"}]}),
        )
        .await?,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    t.shutdown().await
}

#[tokio::test]
async fn oversized_bodies_and_records_are_rejected() -> Result<()> {
    let t = TestServer::start_with(|config| streamhouse_server::ServerConfig {
        max_body_bytes: 4096,
        ..config
    })
    .await?;
    t.create_topic("big", 1).await?;
    let response = t
        .post(
            "/api/v1/topics/big/records",
            json!({"records": [{"value": "x".repeat(8192)}]}),
        )
        .await?;
    assert_error(&response, StatusCode::PAYLOAD_TOO_LARGE, "invalid_input");

    // A record above the topic's max.message.bytes.
    let (status, _) = t
        .post(
            "/api/v1/topics",
            json!({"name": "small", "config": {"max.message.bytes": "100"}}),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED);
    let response = t
        .post(
            "/api/v1/topics/small/records",
            json!({"records": [{"value": "y".repeat(200)}]}),
        )
        .await?;
    assert_error(&response, StatusCode::BAD_REQUEST, "invalid_input");
    t.shutdown().await
}

#[tokio::test]
async fn consume_errors() -> Result<()> {
    let t = TestServer::start().await?;
    t.create_topic("c", 1).await?;
    let (status, _) = t
        .post(
            "/api/v1/topics/c/records",
            json!({"records": [{"value": "a"}, {"value": "b"}]}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    let read = "/api/v1/topics/c/partitions/0/records";

    let out_of_range = t.get(&format!("{read}?offset=1000")).await?;
    assert_error(
        &out_of_range,
        StatusCode::RANGE_NOT_SATISFIABLE,
        "offset_out_of_range",
    );
    assert_eq!(out_of_range.1["error"]["log_start_offset"], 0);
    assert_eq!(out_of_range.1["error"]["high_watermark"], 2);
    assert_error(
        &t.get(&format!("{read}?offset=-1")).await?,
        StatusCode::RANGE_NOT_SATISFIABLE,
        "offset_out_of_range",
    );

    for query in [
        "offset=abc",
        "max_records=0",
        "max_records=many",
        "max_bytes=0",
        "encoding=hex",
        "wait_ms=-1",
        "wait_ms=600000",
        "ofset=1",
    ] {
        let response = t.get(&format!("{read}?{query}")).await?;
        assert_error(&response, StatusCode::BAD_REQUEST, "invalid_input");
        println!("{query} -> {}", response.1["error"]["message"]);
    }
    assert_error(
        &t.get("/api/v1/topics/c/partitions/x/records").await?,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    assert_error(
        &t.get("/api/v1/topics/c/partitions/3/records").await?,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &t.get("/api/v1/topics/missing/partitions/0/records").await?,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    t.shutdown().await
}

#[tokio::test]
async fn groups_show_committed_offsets_and_lag() -> Result<()> {
    let t = TestServer::start().await?;
    t.create_topic("events", 2).await?;
    let records: Vec<Value> = (0..4)
        .map(|i| json!({"value": format!("e{i}"), "partition": 0}))
        .chain([json!({"value": "other", "partition": 1})])
        .collect();
    let (status, _) = t
        .post("/api/v1/topics/events/records", json!({"records": records}))
        .await?;
    assert_eq!(status, StatusCode::OK);
    t.server
        .engine()
        .commit_offsets(
            "billing",
            &[
                OffsetCommit {
                    topic: "events".into(),
                    partition: 0,
                    offset: 1,
                    metadata: Some("consumer-a".into()),
                    leader_epoch: -1,
                },
                OffsetCommit {
                    topic: "events".into(),
                    partition: 1,
                    offset: 1,
                    metadata: None,
                    leader_epoch: -1,
                },
            ],
        )
        .await?;

    let (status, groups) = t.get("/api/v1/groups").await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        groups,
        json!([{"group": "billing", "state": "Empty", "members": 0}])
    );

    let (status, group) = t.get("/api/v1/groups/billing").await?;
    assert_eq!(status, StatusCode::OK, "{group}");
    assert_eq!(group["group"], "billing");
    assert_eq!(group["state"], "Empty");
    assert_eq!(group["members"], json!([]));
    assert_eq!(
        group["offsets"],
        json!([
            {"topic": "events", "partition": 0, "committed_offset": 1, "high_watermark": 4,
             "lag": 3, "metadata": "consumer-a"},
            {"topic": "events", "partition": 1, "committed_offset": 1, "high_watermark": 1,
             "lag": 0, "metadata": null}
        ])
    );
    assert_eq!(group["total_lag"], 3);

    let (status, _) = t.delete("/api/v1/groups/billing").await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &t.get("/api/v1/groups/billing").await?,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &t.delete("/api/v1/groups/billing").await?,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (_, groups) = t.get("/api/v1/groups").await?;
    assert_eq!(groups, json!([]));
    t.shutdown().await
}

#[tokio::test]
async fn binary_values_survive_a_utf8_read_losslessly() -> Result<()> {
    let t = TestServer::start().await?;
    t.create_topic("mixed", 1).await?;
    let (status, _) = t
        .post(
            "/api/v1/topics/mixed/records",
            json!({"encoding": "base64", "records": [
                {"value": b64(b"text")},
                {"value": b64(&[0xff, 0x00])}
            ]}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    let (_, read) = t.get("/api/v1/topics/mixed/partitions/0/records").await?;
    assert_eq!(read["records"][0]["encoding"], "utf8");
    assert_eq!(read["records"][0]["value"], "text");
    assert_eq!(read["records"][1]["encoding"], "base64");
    assert_eq!(read["records"][1]["value"], b64(&[0xff, 0x00]));
    t.shutdown().await
}

/// Topic configs change over REST; retention then drops old segments,
/// compaction rewrites the rest, and the segment rows say which is which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_update_drives_retention_and_compaction() -> Result<()> {
    let t = TestServer::start_with(|mut config| {
        config.job_interval = Duration::from_millis(50);
        config.compaction_span = Duration::ZERO;
        config
    })
    .await?;
    t.create_topic("aging", 1).await?;
    let server = &t;
    // Each call is one request, so its records land in one flushed segment.
    let produce = |values: std::ops::Range<usize>, timestamp: i64| {
        let records: Vec<_> = values
            .map(|n| json!({"partition": 0, "value": format!("v{n}"), "timestamp": timestamp}))
            .collect();
        let body = json!({ "records": records });
        async move {
            let (status, body) = server.post("/api/v1/topics/aging/records", body).await?;
            anyhow::ensure!(status == StatusCode::OK, "{body}");
            Ok(())
        }
    };
    // Three records from long ago. Compaction may rewrite them before the
    // retention change below; a segment of old records is still expired.
    produce(0..3, 1_000_000).await?;
    let patch = |body: serde_json::Value| {
        t.client
            .patch(t.url("/api/v1/topics/aging/config"))
            .json(&body)
            .send()
    };
    let (status, body) = into_json(patch(json!({"retention.ms": "86400000"})).await?).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["config"]["retention.ms"], "86400000");
    let (status, body) = into_json(patch(json!({"retention.ms": "soon"})).await?).await?;
    assert_error(&(status, body), StatusCode::BAD_REQUEST, "invalid_input");

    // Retention moves the log start past the old records.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, topic) = t.get("/api/v1/topics/aging").await?;
        let (_, segments) = t.get("/api/v1/topics/aging/partitions/0/segments").await?;
        if topic["partitions"][0]["log_start_offset"] == 3 && segments == json!([]) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "retention did not happen: {topic} {segments}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Three records from now: compaction leaves one segment holding them.
    produce(3..6, chrono_now()).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, topic) = t.get("/api/v1/topics/aging").await?;
        let (_, segments) = t.get("/api/v1/topics/aging/partitions/0/segments").await?;
        let kinds: Vec<&str> = segments
            .as_array()
            .map(|rows| rows.iter().filter_map(|r| r["kind"].as_str()).collect())
            .unwrap_or_default();
        if kinds == ["compacted"] {
            assert_eq!(topic["partitions"][0]["log_start_offset"], 3, "{topic}");
            assert_eq!(segments[0]["base_offset"], 3);
            assert_eq!(segments[0]["end_offset"], 5);
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "compaction did not happen: {topic} {segments}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, read) = t
        .get("/api/v1/topics/aging/partitions/0/records?offset=3")
        .await?;
    assert_eq!(status, StatusCode::OK, "{read}");
    let values: Vec<&str> = read["records"]
        .as_array()
        .map(|r| r.iter().filter_map(|r| r["value"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(values, ["v3", "v4", "v5"]);
    // Removing the override restores the default.
    let (status, body) = into_json(patch(json!({"retention.ms": null})).await?).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["config"].get("retention.ms").is_none(), "{body}");
    t.shutdown().await
}

fn chrono_now() -> i64 {
    streamhouse_core::clock::Clock::now_ms(&streamhouse_core::clock::SystemClock)
}

/// A request with a made-up method: 405 with the JSON error body.
async fn made_up_method(t: &TestServer, method: &str, path: &str) -> Result<(StatusCode, Value)> {
    let method = reqwest::Method::from_bytes(method.as_bytes())?;
    into_json(t.client.request(method, t.url(path)).send().await?).await
}

#[tokio::test]
async fn made_up_methods_and_paths_do_not_make_metric_series() -> Result<()> {
    let t = TestServer::start().await?;
    let marker = format!("XM{}", std::process::id());
    for i in 0..200 {
        let response = made_up_method(&t, &format!("{marker}{i}"), "/health").await?;
        assert_error(&response, StatusCode::METHOD_NOT_ALLOWED, "invalid_input");
        let response =
            made_up_method(&t, &format!("{marker}{i}"), &format!("/p{marker}{i}")).await?;
        assert_error(&response, StatusCode::METHOD_NOT_ALLOWED, "invalid_input");
        let response = t.get(&format!("/api/v1/{marker}/path{i}")).await?;
        assert_error(&response, StatusCode::NOT_FOUND, "not_found");
    }
    let metrics = t.client.get(t.url("/metrics")).send().await?.text().await?;
    let requests: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("streamhouse_http_requests_total{"))
        .collect();
    assert!(
        requests
            .iter()
            .any(|l| l.contains(r#"method="other""#) && l.contains(r#"status="405""#)),
        "no series for the made-up methods: {requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|l| l.contains(r#"route="unmatched""#) && l.contains(r#"status="404""#)),
        "no series for unmatched paths: {requests:#?}"
    );
    let leaked: Vec<&str> = metrics.lines().filter(|l| l.contains(&marker)).collect();
    assert!(
        leaked.is_empty(),
        "client-chosen text in metric labels: {leaked:#?}"
    );
    t.shutdown().await
}

#[tokio::test]
async fn long_uris_and_big_headers_get_json_errors() -> Result<()> {
    let t = TestServer::start().await?;
    let long = format!("/api/v1/topics/{}", "a".repeat(9 << 10));
    assert_error(
        &t.get(&long).await?,
        StatusCode::URI_TOO_LONG,
        "invalid_input",
    );
    // Just under the limit the request is routed as usual (and refused
    // for the topic name's length).
    let fits = format!("/api/v1/topics/{}", "a".repeat(7 << 10));
    let (status, body) = t.get(&fits).await?;
    assert!(
        status != StatusCode::URI_TOO_LONG && body["error"]["code"].is_string(),
        "{status} {body}"
    );

    let mut big = t.client.get(t.url("/health"));
    for i in 0..4 {
        big = big.header(format!("x-big-{i}"), "h".repeat(5 << 10));
    }
    let response = into_json(big.send().await?).await?;
    assert_error(
        &response,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "invalid_input",
    );
    let mut many = t.client.get(t.url("/health"));
    for i in 0..99 {
        many = many.header(format!("x-h-{i}"), "v");
    }
    // reqwest adds accept and host: 101 in all. Served by axum::serve,
    // hyper's own limit of 100 answers first, without a body.
    let response = into_json(many.send().await?).await?;
    assert_eq!(response.0, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    if !response.1.is_null() {
        assert_error(
            &response,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "invalid_input",
        );
    }
    let (status, _) = t.get("/health").await?;
    assert_eq!(status, StatusCode::OK);
    t.shutdown().await
}

/// A server on SQLite and a local directory seen through a fault injector.
async fn faulty_server() -> Result<(TestServer, Arc<FaultInjectingStore>, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let metadata = streamhouse_metadata::open(&format!(
        "sqlite://{}",
        dir.path().join("metadata.db").display()
    ))
    .await?;
    let mut fault = None;
    let storage = ObjectStorage::local(dir.path().join("objects"))?.wrap_backend(|inner| {
        let store = Arc::new(FaultInjectingStore::new(inner));
        fault = Some(store.clone());
        store
    });
    let fault = fault.context("the backend was wrapped")?;
    let t = TestServer::start_with_components(metadata, storage).await?;
    Ok((t, fault, dir))
}

/// `/ready`, which must answer within 2 s whatever the dependencies do.
async fn ready(t: &TestServer) -> Result<(StatusCode, Value)> {
    let started = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(5), t.get("/ready"))
        .await
        .context("/ready did not answer within 5 s")??;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "/ready took {took:?}: {response:?}"
    );
    Ok(response)
}

async fn wait_for_ready(t: &TestServer, want: StatusCode) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = ready(t).await?;
        if status == want {
            return Ok(body);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "/ready still answers {status} {body}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn ready_is_503_while_uploads_fail_and_200_once_they_succeed() -> Result<()> {
    let (t, fault, _dir) = faulty_server().await?;
    t.create_topic("disk-full", 1).await?;
    wait_for_ready(&t, StatusCode::OK).await?;

    fault.fail_all_puts(true);
    // Listing still works: only the writes tell that the store is failing.
    let response = t
        .post(
            "/api/v1/topics/disk-full/records",
            json!({"records": [{"value": "lost"}]}),
        )
        .await?;
    assert_error(&response, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    let body = wait_for_ready(&t, StatusCode::SERVICE_UNAVAILABLE).await?;
    assert_eq!(body["metadata"], "ok", "{body}");
    let object_store = body["object_store"].as_str().unwrap_or_default();
    assert!(
        object_store.contains("uploads failed") && object_store.contains("injected put failure"),
        "{body}"
    );
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let (status, _) = t.get("/health").await?;
    assert_eq!(status, StatusCode::OK, "/health stays 200");

    // Back without any produce: the check's own test write succeeds.
    fault.fail_all_puts(false);
    let body = wait_for_ready(&t, StatusCode::OK).await?;
    assert_eq!(body["object_store"], "ok", "{body}");
    let (status, produced) = t
        .post(
            "/api/v1/topics/disk-full/records",
            json!({"records": [{"value": "kept"}]}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{produced}");
    t.shutdown().await
}

#[tokio::test]
async fn ready_answers_503_within_two_seconds_when_the_object_store_hangs() -> Result<()> {
    let (t, fault, _dir) = faulty_server().await?;
    wait_for_ready(&t, StatusCode::OK).await?;
    fault.blackhole(true);
    let body = wait_for_ready(&t, StatusCode::SERVICE_UNAVAILABLE).await?;
    assert_eq!(body["metadata"], "ok", "{body}");
    assert!(
        body["object_store"]
            .as_str()
            .is_some_and(|s| s.contains("no answer within")),
        "{body}"
    );
    // Many at once: each answers in time, from one check.
    let checks: Vec<_> = (0..20).map(|_| ready(&t)).collect();
    for result in futures::future::join_all(checks).await {
        let (status, _) = result?;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    let started = Instant::now();
    let (status, _) = t.get("/health").await?;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "/health is slow"
    );
    fault.blackhole(false);
    wait_for_ready(&t, StatusCode::OK).await?;
    t.shutdown().await
}

/// A topic that stamps records on append does so for REST produce too, as
/// for Kafka produce: the producer's timestamp is replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_append_time_topics_stamp_rest_records() -> Result<()> {
    let t = TestServer::start().await?;
    let (status, body) = t
        .post(
            "/api/v1/topics",
            json!({"name": "stamped", "partitions": 1,
                   "config": {"message.timestamp.type": "LogAppendTime"}}),
        )
        .await?;
    assert!(status.is_success(), "{body}");
    let before = chrono_now();
    let (status, body) = t
        .post(
            "/api/v1/topics/stamped/records",
            json!({"records": [{"value": "old", "timestamp": 1_000}]}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = chrono_now();
    let (_, read) = t
        .get("/api/v1/topics/stamped/partitions/0/records?offset=0")
        .await?;
    let timestamp = read["records"][0]["timestamp"]
        .as_i64()
        .context("timestamp")?;
    assert!(
        (before..=after).contains(&timestamp),
        "stamped {timestamp}, produced between {before} and {after}: {read}"
    );
    t.shutdown().await
}

/// A compacted topic refuses records without a key (a 400 naming the
/// record and Kafka's message, nothing stored), and config changes are
/// checked as a whole: min.compaction.lag.ms above max.compaction.lag.ms
/// is refused at creation and by PATCH, naming the config.
#[tokio::test]
async fn compacted_topics_need_keys_and_compaction_lags_agree() -> Result<()> {
    let t = TestServer::start().await?;
    let (status, body) = t
        .post(
            "/api/v1/topics",
            json!({"name": "latest", "partitions": 2, "config": {"cleanup.policy": "compact"}}),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let produce = "/api/v1/topics/latest/records";
    let refused = t
        .post(
            produce,
            json!({"records": [
                {"key": "a", "value": "1", "partition": 0},
                {"value": "2", "partition": 1},
            ]}),
        )
        .await?;
    assert_error(&refused, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(
        refused.1["error"]["message"],
        "records[1] has no key: Compacted topic cannot accept message without key in topic \
         partition latest-1."
    );
    let (_, described) = t.get("/api/v1/topics/latest").await?;
    for partition in 0..2 {
        assert_eq!(
            described["partitions"][partition]["high_watermark"], 0,
            "{described}"
        );
    }
    let (status, body) = t
        .post(
            produce,
            json!({"records": [{"key": "a", "value": "1"}, {"key": "", "value": "2"}]}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "an empty key is a key: {body}");

    let patch = |topic: &str, body: Value| {
        t.client
            .patch(t.url(&format!("/api/v1/topics/{topic}/config")))
            .json(&body)
            .send()
    };
    let (status, body) =
        into_json(patch("latest", json!({"cleanup.policy": "delete"})).await?).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = t
        .post(produce, json!({"records": [{"value": "3"}]}))
        .await?;
    assert_eq!(
        status,
        StatusCode::OK,
        "a delete topic takes keyless records: {body}"
    );

    let inverted = json!({"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"});
    let refused = t
        .post(
            "/api/v1/topics",
            json!({"name": "lagged", "config": inverted}),
        )
        .await?;
    assert_error(&refused, StatusCode::BAD_REQUEST, "invalid_input");
    let message = refused.1["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("min.compaction.lag.ms"), "{message}");
    let (status, body) = t
        .post(
            "/api/v1/topics",
            json!({"name": "lagged", "config": {"max.compaction.lag.ms": "5"}}),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let refused = into_json(patch("lagged", json!({"min.compaction.lag.ms": "10"})).await?).await?;
    assert_error(&refused, StatusCode::BAD_REQUEST, "invalid_input");
    let message = refused.1["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("min.compaction.lag.ms"), "{message}");
    let (_, described) = t.get("/api/v1/topics/lagged").await?;
    assert_eq!(
        described["config"]["max.compaction.lag.ms"], "5",
        "{described}"
    );
    assert!(
        described["config"].get("min.compaction.lag.ms").is_none(),
        "{described}"
    );
    // Both changes at once leave configs that agree.
    let (status, body) = into_json(
        patch(
            "lagged",
            json!({"max.compaction.lag.ms": null, "min.compaction.lag.ms": "10"}),
        )
        .await?,
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["config"], json!({"min.compaction.lag.ms": "10"}));
    t.shutdown().await
}
