//! Support for tests that run against real backends.
//!
//! Tests read the PostgreSQL URL from `STREAMHOUSE_TEST_POSTGRES_URL`. When
//! it is unset they print a loud SKIPPED line; when
//! `STREAMHOUSE_TEST_REQUIRE_SERVERS=1` is also set (the project's test
//! script sets it) a missing server fails the test instead, so CI can never
//! pass without exercising PostgreSQL.

use std::str::FromStr;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use crate::error::{MetadataError, Result};
use crate::sql::{PostgresStore, SqliteStore};

pub const POSTGRES_URL_ENV: &str = "STREAMHOUSE_TEST_POSTGRES_URL";
pub const REQUIRE_SERVERS_ENV: &str = "STREAMHOUSE_TEST_REQUIRE_SERVERS";

/// Whether tests must fail rather than skip when a server is not configured.
pub fn servers_required() -> bool {
    std::env::var(REQUIRE_SERVERS_ENV).is_ok_and(|v| v == "1" || v == "true")
}

/// Reads a server URL from `env_var`; prints SKIPPED (or panics when servers
/// are required) if it is unset.
pub fn server_url(env_var: &str, test_name: &str) -> Option<String> {
    match std::env::var(env_var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if servers_required() {
                panic!("{test_name}: {env_var} is not set but {REQUIRE_SERVERS_ENV}=1");
            }
            eprintln!(
                "\n*** SKIPPED {test_name}: {env_var} is not set; run scripts/test.sh to test against a real server ***\n"
            );
            None
        }
    }
}

/// A SQLite store in a fresh temporary directory, removed on drop.
pub struct TempSqlite {
    pub store: SqliteStore,
    pub dir: tempfile::TempDir,
}

pub async fn temp_sqlite() -> Result<TempSqlite> {
    let dir = tempfile::tempdir().map_err(|e| MetadataError::InvalidUrl {
        url: "temporary directory".into(),
        reason: e.to_string(),
    })?;
    let store = SqliteStore::open(dir.path().join("metadata.db")).await?;
    Ok(TempSqlite { store, dir })
}

/// A PostgreSQL store whose tables live in a schema of their own, so tests
/// running in parallel never see each other's topics. `None` (after a
/// SKIPPED line) when no server is configured.
pub async fn isolated_postgres(test_name: &str) -> Option<PostgresStore> {
    let url = server_url(POSTGRES_URL_ENV, test_name)?;
    Some(
        isolated_postgres_at(&url, test_name)
            .await
            .unwrap_or_else(|e| panic!("{test_name}: cannot prepare PostgreSQL at {url}: {e}")),
    )
}

/// Creates a fresh schema at `url` and connects a store to it. Returns the
/// store and the schema name.
pub async fn isolated_postgres_at(url: &str, test_name: &str) -> Result<PostgresStore> {
    let schema = unique_schema(test_name);
    let options = create_schema(url, &schema).await?;
    PostgresStore::connect_with(options).await
}

/// Creates `schema` at `url` and returns connection options that use it.
pub async fn create_schema(url: &str, schema: &str) -> Result<PgConnectOptions> {
    let options = PgConnectOptions::from_str(url).map_err(|e| MetadataError::InvalidUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let mut conn = PgConnection::connect_with(&options)
        .await
        .map_err(|e| MetadataError::from_sqlx("connect to postgres", e))?;
    // The name is built from [a-z0-9_] only, so interpolation is safe.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}"
    )))
    .execute(&mut conn)
    .await
    .map_err(|e| MetadataError::from_sqlx("create schema", e))?;
    conn.close()
        .await
        .map_err(|e| MetadataError::from_sqlx("close connection", e))?;
    Ok(options.options([("search_path", schema)]))
}

/// A schema name unique to this test run: `t_<test name>_<random>`.
pub fn unique_schema(test_name: &str) -> String {
    let mut name: String = test_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    name.insert_str(0, "t_");
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{name}_{}", &suffix[..12])
}
