//! What the benchmark examples share: where they run, random values and
//! latency percentiles.

use std::time::Duration;

use bytes::Bytes;
use rand::RngExt;

/// The stores a benchmark runs against: `STREAMHOUSE_METADATA` and
/// `STREAMHOUSE_OBJECT_STORE` when set, otherwise the embedded default in a
/// temporary directory, removed when this is dropped.
pub(crate) struct Target {
    pub metadata_url: String,
    pub object_url: String,
    /// How the report names the setup.
    pub setup: &'static str,
    _temp: tempfile::TempDir,
}

impl Target {
    pub(crate) fn from_env() -> anyhow::Result<Self> {
        let temp = tempfile::tempdir()?;
        let metadata_url = std::env::var("STREAMHOUSE_METADATA")
            .unwrap_or_else(|_| format!("sqlite://{}", temp.path().join("metadata.db").display()));
        let object_url = std::env::var("STREAMHOUSE_OBJECT_STORE")
            .unwrap_or_else(|_| format!("file://{}", temp.path().join("objects").display()));
        let setup = if metadata_url.starts_with("sqlite") {
            "embedded (SQLite + local directory)"
        } else {
            "PostgreSQL + S3"
        };
        Ok(Self {
            metadata_url,
            object_url,
            setup,
            _temp: temp,
        })
    }
}

/// A pool of 1,024 random (incompressible) values of `size` bytes, reused
/// round-robin: generating random bytes would otherwise cost as much as
/// producing them.
pub(crate) fn value_pool(size: usize) -> Vec<Bytes> {
    let mut rng = rand::rng();
    (0..1024)
        .map(|_| Bytes::from((0..size).map(|_| rng.random()).collect::<Vec<u8>>()))
        .collect()
}

/// The `p` quantile (0..=1) of sorted latencies, in milliseconds.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}
