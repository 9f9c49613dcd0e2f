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
//! behave. Both are checked at once, each within the timeout; one check
//! runs at a time and answers every caller that arrived while it ran; a
//! successful check answers every caller for [`ReadinessConfig::cache_for`]
//! and test writes run at most once per that period, so a flood of
//! `/ready` requests costs a healthy agent one check a second. A failed
//! check is not reused: the first `/ready` after a dependency recovers
//! says so.

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
    /// How long a successful check answers every `/ready`, and the least
    /// time between two test writes. Default 1 s.
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

/// Runs the checks for `/ready`, at most one at a time.
pub(crate) struct Readiness {
    config: ReadinessConfig,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// The latest report and when its check finished.
    last: Option<(Instant, Arc<Report>)>,
    /// When the last test writes ran.
    upload_probed: Option<Instant>,
    commit_probed: Option<Instant>,
}

impl Readiness {
    pub(crate) fn new(config: ReadinessConfig) -> Self {
        Self {
            config,
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// The outcome of a check that finished after this call began (one
    /// running now, or a new one), or of a successful one younger than
    /// `cache_for`. Waits for at most one check, which takes at most
    /// `timeout`. The check runs in its own task, so a caller that goes
    /// away does not cut short the check others are waiting for.
    pub(crate) async fn check(&self, engine: &StorageEngine) -> Arc<Report> {
        let arrived = Instant::now();
        let mut state = self.state.clone().lock_owned().await;
        let previous = match &state.last {
            Some((finished, report))
                if *finished >= arrived
                    || (report.is_ready() && finished.elapsed() < self.config.cache_for) =>
            {
                return report.clone();
            }
            Some((_, report)) => Some(report.is_ready()),
            None => None,
        };
        let (engine, config) = (engine.clone(), self.config.clone());
        let task = tokio::spawn(async move {
            let report = Arc::new(check(&engine, &config, &mut state).await);
            match (previous, report.is_ready()) {
                (Some(true) | None, false) => tracing::warn!(report = ?*report, "not ready"),
                (Some(false), true) => tracing::info!("ready again"),
                _ => {}
            }
            state.last = Some((Instant::now(), report.clone()));
            report
        });
        task.await.unwrap_or_else(|error| {
            let failed = Err(format!("the readiness check failed: {error}"));
            Arc::new(Report {
                metadata: failed.clone(),
                object_store: failed,
            })
        })
    }
}

/// Both dependencies at once, each within `config.timeout`.
async fn check(engine: &StorageEngine, config: &ReadinessConfig, state: &mut State) -> Report {
    let (metadata, object_store) = tokio::join!(
        within(
            config.timeout,
            metadata_ready(engine, config, &mut state.commit_probed),
        ),
        within(
            config.timeout,
            object_store_ready(engine, config, &mut state.upload_probed),
        ),
    );
    Report {
        metadata,
        object_store,
    }
}

/// Whether a test write may run now (none ran in the last `cache_for`);
/// if so, notes that it does.
fn may_probe(probed: &mut Option<Instant>, config: &ReadinessConfig) -> bool {
    let may = probed.is_none_or(|at| at.elapsed() >= config.cache_for);
    if may {
        *probed = Some(Instant::now());
    }
    may
}

async fn metadata_ready(
    engine: &StorageEngine,
    config: &ReadinessConfig,
    probed: &mut Option<Instant>,
) -> Result<(), String> {
    engine
        .ping_metadata()
        .await
        .map_err(|e| one_line(&e.to_string()))?;
    let commits = engine.write_health().commits;
    if !failing(&commits, config.failed_writes) {
        return Ok(());
    }
    if !may_probe(probed, config) {
        return Err(streak_message("metadata commits", &commits, None));
    }
    engine
        .probe_commit()
        .await
        .map_err(|e| streak_message("metadata commits", &commits, Some(&e.to_string())))
}

async fn object_store_ready(
    engine: &StorageEngine,
    config: &ReadinessConfig,
    probed: &mut Option<Instant>,
) -> Result<(), String> {
    list_probe(engine.storage()).await?;
    let uploads = engine.write_health().uploads;
    if !failing(&uploads, config.failed_writes) {
        return Ok(());
    }
    if !may_probe(probed, config) {
        return Err(streak_message("uploads", &uploads, None));
    }
    engine
        .probe_upload()
        .await
        .map_err(|e| streak_message("uploads", &uploads, Some(&e.to_string())))
}

fn failing(outcomes: &WriteOutcomes, threshold: u32) -> bool {
    threshold > 0 && outcomes.consecutive_failures >= threshold
}

fn streak_message(what: &str, outcomes: &WriteOutcomes, probe: Option<&str>) -> String {
    let probe = probe.map_or_else(String::new, |p| format!("; a test write failed too: {p}"));
    one_line(&format!(
        "the last {} {what} failed (latest: {}){probe}",
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
