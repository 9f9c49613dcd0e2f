//! What the write path has learned about its two dependencies: whether the
//! latest object uploads and metadata commits succeeded.
//!
//! A cheap check (a LIST, `SELECT 1`) can pass while every write fails: a
//! full disk under a local directory or an SQLite file (ENOSPC), a bucket
//! that allows listing but not writing, a database that is read-only. So
//! every upload attempt (in [`crate::InstrumentedStore`]) and every commit
//! attempt (in the flusher) records its outcome here, and readiness looks
//! at the streak of failures.
//!
//! The invariant that matters: recording costs a relaxed atomic load on
//! success (a store only when a failure streak ends), so it can sit on the
//! write path.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use parking_lot::Mutex;
use streamhouse_metadata::MetadataStore;

use crate::clock::Clock;
use crate::error::{Result, StorageError};
use crate::object_storage::ObjectStorage;

/// Object written by [`probe_upload`]; the readiness LIST probes the same
/// prefix, which holds nothing else.
pub(crate) const PROBE_KEY: &str = "streamhouse-readiness-probe/write-probe";
/// Job lease taken (and expired at once) by [`probe_commit`]; no job has
/// this name.
const PROBE_LEASE: &str = "streamhouse-readiness-probe";

/// Consecutive failures of one kind of write, and the latest error.
#[derive(Debug, Default)]
pub(crate) struct OutcomeTracker {
    consecutive_failures: AtomicU32,
    last_error: Mutex<Option<String>>,
}

impl OutcomeTracker {
    pub(crate) fn succeeded(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    pub(crate) fn failed(&self, error: &dyn std::fmt::Display) {
        *self.last_error.lock() = Some(error.to_string());
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record<T, E: std::fmt::Display>(&self, result: &Result<T, E>) {
        match result {
            Ok(_) => self.succeeded(),
            Err(error) => self.failed(error),
        }
    }

    pub(crate) fn status(&self) -> WriteOutcomes {
        let consecutive_failures = self.consecutive_failures.load(Ordering::Relaxed);
        WriteOutcomes {
            consecutive_failures,
            last_error: if consecutive_failures == 0 {
                None
            } else {
                self.last_error.lock().clone()
            },
        }
    }
}

/// The streak of one kind of write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcomes {
    /// Attempts that failed since the last one that succeeded.
    pub consecutive_failures: u32,
    /// The latest failure's message, while the streak lasts.
    pub last_error: Option<String>,
}

/// The write path's view of its dependencies
/// ([`crate::StorageEngine::write_health`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteHealth {
    /// Object store PUTs (flushes, compaction output, write probes).
    pub uploads: WriteOutcomes,
    /// Metadata transactions of flushes (and commit probes).
    pub commits: WriteOutcomes,
}

/// PUTs a tiny object, so that a streak of failed uploads can end while
/// no flush is attempted. Its outcome is recorded like any upload's, by
/// the instrumented store.
pub(crate) async fn probe_upload(storage: &ObjectStorage) -> Result<()> {
    let key = storage.key(PROBE_KEY);
    let path = Path::from(key.as_str());
    storage
        .store()
        .put_opts(&path, PutPayload::from_static(b"ok"), Default::default())
        .await
        .map(|_| ())
        .map_err(|e| StorageError::object_store("put", key, e))
}

/// A metadata write transaction (an expired job lease, which nothing
/// else uses), so that a streak of failed commits can end while no flush
/// is attempted. The outcome is recorded as a commit's.
pub(crate) async fn probe_commit(
    metadata: &dyn MetadataStore,
    commits: &Arc<OutcomeTracker>,
    clock: &dyn Clock,
) -> Result<()> {
    let now = clock.now_ms();
    let result = metadata
        .acquire_lease(PROBE_LEASE, PROBE_LEASE, now, now)
        .await;
    commits.record(&result);
    result.map(|_| ()).map_err(StorageError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_ends_the_streak_and_clears_the_error() {
        let tracker = OutcomeTracker::default();
        assert_eq!(tracker.status(), WriteOutcomes::default());
        let enospc = std::io::Error::from_raw_os_error(28);
        tracker.record::<(), _>(&Err(&enospc));
        tracker.record::<(), _>(&Err(&enospc));
        let status = tracker.status();
        assert_eq!(status.consecutive_failures, 2);
        assert!(
            status
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("No space left")),
            "{status:?}"
        );
        tracker.record::<_, std::io::Error>(&Ok(()));
        assert_eq!(tracker.status(), WriteOutcomes::default());
    }
}
