//! What an operator checks: `/health`, `/ready` (and that it turns 503
//! when the object store breaks), and `/metrics` after real traffic.

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use anyhow::{Context, Result};
use common::TestServer;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn health_and_ready() -> Result<()> {
    let t = TestServer::start().await?;
    let (status, body) = t.get("/health").await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));

    let (status, body) = t.get("/ready").await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"status": "ready", "metadata": "ok", "object_store": "ok"})
    );
    t.shutdown().await
}

#[tokio::test]
async fn ready_fails_when_the_object_store_directory_is_unusable() -> Result<()> {
    let t = TestServer::start().await?;
    t.create_topic("before", 1).await?;
    let (status, _) = t
        .post(
            "/api/v1/topics/before/records",
            json!({"records": [{"value": "v"}]}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK);

    // Replace the objects directory with a plain file.
    let objects = t.dir.path().join("objects");
    std::fs::remove_dir_all(&objects)?;
    std::fs::write(&objects, b"not a directory")?;

    let (status, body) = t.get("/ready").await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["metadata"], "ok");
    let failure = body["object_store"].as_str().context("object_store")?;
    assert_ne!(failure, "ok");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("object store: ")),
        "{body}"
    );
    // Liveness is unaffected: the process still answers.
    assert_eq!(t.get("/health").await?.0, StatusCode::OK);

    // Put it back so the shutdown flush has somewhere to go.
    std::fs::remove_file(&objects)?;
    std::fs::create_dir(&objects)?;
    // A check's result answers /ready for a second; then it is checked again.
    let mut status = t.get("/ready").await?.0;
    for _ in 0..30 {
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        status = t.get("/ready").await?.0;
    }
    assert_eq!(status, StatusCode::OK);
    t.shutdown().await
}

#[tokio::test]
async fn metrics_show_storage_http_and_cache_figures() -> Result<()> {
    let t = TestServer::start().await?;
    t.create_topic("measured", 1).await?;
    let (status, _) = t
        .post(
            "/api/v1/topics/measured/records",
            json!({"records": [{"value": "one"}, {"value": "two"}]}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t
        .get("/api/v1/topics/measured/partitions/0/records")
        .await?;
    assert_eq!(status, StatusCode::OK);

    let response = t.client.get(t.url("/metrics")).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await?;
    let has_line = |predicate: &dyn Fn(&str) -> bool| text.lines().any(predicate);

    assert!(
        has_line(&|l| l.starts_with("streamhouse_flushes_total ")),
        "{text}"
    );
    assert!(
        has_line(&|l| l.starts_with("streamhouse_object_store_requests_total{operation=\"put\"}")),
        "{text}"
    );
    // A seconds histogram renders as buckets, not as a summary.
    assert!(
        has_line(&|l| l.starts_with("streamhouse_flush_seconds_bucket{le=")),
        "{text}"
    );
    assert!(
        has_line(&|l| l == "# TYPE streamhouse_flush_seconds histogram"),
        "{text}"
    );
    assert!(
        has_line(&|l| l.starts_with("streamhouse_http_requests_total{")),
        "{text}"
    );
    for gauge in [
        "streamhouse_segment_cache_hits",
        "streamhouse_segment_cache_misses",
        "streamhouse_segment_cache_hit_ratio",
        "streamhouse_segment_cache_bytes",
        "streamhouse_segment_cache_entries",
    ] {
        assert!(
            has_line(&|l| l == format!("# TYPE {gauge} gauge")),
            "{gauge} missing: {text}"
        );
    }
    // The read was served from the segments the flush put in the cache.
    assert!(
        has_line(&|l| l.starts_with("streamhouse_segment_cache_hits ")
            && l != "streamhouse_segment_cache_hits 0"),
        "{text}"
    );
    t.shutdown().await
}
