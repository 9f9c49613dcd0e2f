//! The REST round trip on the production backends: PostgreSQL metadata
//! and an S3 object store. Skipped with a loud line when
//! `STREAMHOUSE_TEST_POSTGRES_URL` / `STREAMHOUSE_TEST_S3_URL` are unset;
//! a failure under `scripts/test.sh` (`STREAMHOUSE_TEST_REQUIRE_SERVERS=1`).

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use anyhow::Result;
use common::TestServer;
use reqwest::StatusCode;

#[tokio::test]
async fn round_trip_on_postgres_and_s3() -> Result<()> {
    const NAME: &str = "server_rest_round_trip";
    let Some(metadata) = streamhouse_metadata::testing::isolated_postgres(NAME).await else {
        return Ok(());
    };
    let Some(storage) = streamhouse_storage::testing::isolated_s3(NAME) else {
        return Ok(());
    };
    let t = TestServer::start_with_components(Arc::new(metadata), storage).await?;
    let (status, ready) = t.get("/ready").await?;
    assert_eq!(status, StatusCode::OK, "{ready}");
    common::rest_round_trip(&t).await?;
    t.shutdown().await
}
