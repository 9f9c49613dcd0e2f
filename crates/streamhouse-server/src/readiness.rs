//! Whether this agent can serve: the checks behind `GET /ready`, and the
//! object store check made once at startup.
//!
//! Each dependency is checked by a cheap request (the metadata store
//! answers `SELECT 1`; the object store lists a prefix that never holds
//! data) and by what the write path learned: when the last
//! [`ReadinessConfig::failed_writes`] uploads or metadata commits failed
//! (a full disk, a read-only bucket or database answer reads but not
//! writes), the dependency is not ready until a write succeeds again; the
//! check then makes one small test write itself, so that an agent taken
//! out of rotation can come back without client traffic.
//!
//! The invariant that matters: `/ready` answers within
//! [`ReadinessConfig::timeout`] plus a little, however the dependencies
//! behave. Both are checked at once, each within the timeout, and one
//! check's result serves every caller for [`ReadinessConfig::cache_for`],
//! so a flood of `/ready` requests costs one check a second.

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use streamhouse_storage::{ObjectStorage, StorageEngine, WriteOutcomes};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Longest the startup check of the object store may take.
pub(crate) const STARTUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Prefix listed by the object store check; StreamHouse writes nothing
/// there but the write probe's one small object.
const PROBE_PREFIX: &str = "streamhouse-readiness-probe";

/// Settings of `/ready`.
#[derive(Debug, Clone)]
pub(crate) struct ReadinessConfig {
    /// Longest a dependency's check may take before it counts as failed.
    /// Default 1.5 s, so that `/ready` answers within 2 s (what load
    /// balancers and Kubernetes probes wait by default is 1–5 s).
    pub(crate) timeout: Duration,
    /// Consecutive failed uploads (or metadata commits) after which the
    /// object store (or metadata store) counts as not ready; 0 ignores
    /// write outcomes. Default 3: one flush's upload attempts.
    pub(crate) failed_writes: u32,
    /// How long one check's result answers every `/ready`. Default 1 s.
    pub(crate) cache_for: Duration,
}

impl Default for ReadinessConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(1500),
            failed_writes: 3,
            cache_for: Duration::from_secs(1),
        }
    }
}

/// The outcome of one check: `Ok`, or why the dependency is not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    pub(crate) metadata: Result<(), String>,
    pub(crate) object_store: Result<(), String>,
}

impl Report {
    pub(crate) fn is_ready(&self) -> bool {
        self.metadata.is_ok() && self.object_store.is_ok()
    }
}

/// Runs the checks for `/ready`, at most one at a time, and keeps the
/// latest result for [`ReadinessConfig::cache_for`].
pub(crate) struct Readiness {
    config: ReadinessConfig,
    last: Mutex<Option<(Instant, Arc<Report>)>>,
}

impl Readiness {
    pub(crate) fn new(config: ReadinessConfig) -> Self {
        Self {
            config,
            last: Mutex::new(None),
        }
    }

    /// The latest report, checking again if it is older than `cache_for`.
    /// Callers arriving during a check wait for its result, which takes
    /// at most `timeout`.
    pub(crate) async fn check(&self, engine: &StorageEngine) -> Arc<Report> {
        let mut last = self.last.lock().await;
        let previous = match &*last {
            Some((at, report)) if at.elapsed() < self.config.cache_for => return report.clone(),
            Some((_, report)) => Some(report.is_ready()),
            None => None,
        };
        let report = Arc::new(check(engine, &self.config).await);
        match (previous, report.is_ready()) {
            (Some(true) | None, false) => {
                tracing::warn!(report = ?*report, "not ready");
            }
            (Some(false), true) => tracing::info!("ready again"),
            _ => {}
        }
        *last = Some((Instant::now(), report.clone()));
        report
    }
}

/// Both dependencies at once, each within `config.timeout`.
async fn check(engine: &StorageEngine, config: &ReadinessConfig) -> Report {
    let (metadata, object_store) = tokio::join!(
        within(config.timeout, metadata_ready(engine, config.failed_writes)),
        within(
            config.timeout,
            object_store_ready(engine, config.failed_writes)
        ),
    );
    Report {
        metadata,
        object_store,
    }
}

async fn metadata_ready(engine: &StorageEngine, failed_writes: u32) -> Result<(), String> {
    engine
        .metadata()
        .ping()
        .await
        .map_err(|e| one_line(&e.to_string()))?;
    let commits = engine.write_health().commits;
    if failing(&commits, failed_writes) {
        engine
            .probe_commit()
            .await
            .map_err(|probe| streak_message("metadata commits", &commits, &probe.to_string()))?;
    }
    Ok(())
}

async fn object_store_ready(engine: &StorageEngine, failed_writes: u32) -> Result<(), String> {
    list_probe(engine.storage()).await?;
    let uploads = engine.write_health().uploads;
    if failing(&uploads, failed_writes) {
        engine
            .probe_upload()
            .await
            .map_err(|probe| streak_message("uploads", &uploads, &probe.to_string()))?;
    }
    Ok(())
}

fn failing(outcomes: &WriteOutcomes, threshold: u32) -> bool {
    threshold > 0 && outcomes.consecutive_failures >= threshold
}

fn streak_message(what: &str, outcomes: &WriteOutcomes, probe: &str) -> String {
    one_line(&format!(
        "the last {} {what} failed (latest: {}); a test write failed too: {probe}",
        outcomes.consecutive_failures,
        outcomes.last_error.as_deref().unwrap_or("unknown error"),
    ))
}

async fn within(
    timeout: Duration,
    check: impl Future<Output = Result<(), String>>,
) -> Result<(), String> {
    tokio::time::timeout(timeout, check)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())))
}

/// One LIST of a prefix that holds at most the write probe: one request,
/// almost no data, and unlike a HEAD of a missing key it fails when the
/// bucket is missing (S3 answers a HEAD with 404 either way) or when a
/// local directory cannot be read.
async fn list_probe(storage: &ObjectStorage) -> Result<(), String> {
    let prefix = Path::from(storage.key(PROBE_PREFIX));
    storage
        .store()
        .list_with_delimiter(Some(&prefix))
        .await
        .map(drop)
        .map_err(|e| one_line(&e.to_string()))
}

/// `Ok` when the object store answers a listing within
/// [`STARTUP_TIMEOUT`]; used once at startup.
pub(crate) async fn check_object_store(storage: &ObjectStorage) -> Result<(), String> {
    within(STARTUP_TIMEOUT, list_probe(storage)).await
}

/// An error message on one line (backends' messages span several).
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
