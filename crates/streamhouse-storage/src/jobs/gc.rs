//! Garbage collection: deletes objects that no segment row references.
//!
//! Two sources, both held back by the same grace period:
//! - tombstoned objects — they lost their last reference (compaction,
//!   retention, DeleteRecords, topic deletion); the grace period counts
//!   from the last reference lost, so a reader that looked up an old row
//!   just before the change still finds the bytes;
//! - orphans — uploads never committed (an agent died between upload and
//!   commit, or a compaction swap was refused); they go once older than
//!   the grace period and never before [`super::MIN_ORPHAN_AGE`], twice the
//!   deadline by which writers commit an upload or give up
//!   ([`super::COMMIT_DEADLINE`]), so an upload still being committed is
//!   never taken for an orphan.
//!
//! References are re-checked just before deleting. Object keys are never
//! reused, so nothing can start referencing a key once it has none.
//!
//! Finding orphans lists the whole prefix, so the background job does it
//! only when it can find something ([`OrphanScanSchedule`]): an idle agent
//! makes no object requests.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use object_store::ObjectStoreExt;
use object_store::path::Path;
use streamhouse_metadata::StorageStats;
use tokio_util::sync::CancellationToken;

use super::JobContext;
use crate::error::{Result, StorageError};

/// What one garbage collection pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Objects deleted after losing their last reference.
    pub tombstoned_deleted: u64,
    /// Uploads that were never committed, deleted.
    pub orphans_deleted: u64,
    /// Tombstones dropped without deleting, because another segment row
    /// (of another partition of a shared flush object) still references
    /// the object; it is tombstoned again when it loses that reference.
    pub tombstones_kept_alive: u64,
}

const BATCH: usize = 500;

/// The longest the background job goes without listing the prefix for
/// orphans. It covers the one case the schedule cannot see: a writer that
/// uploaded and died when nothing else in the cluster was writing.
const ORPHAN_RESCAN: Duration = Duration::from_secs(3600);

/// Decides when the background job lists the prefix for orphans. An orphan
/// appears only where something was written, so a scan is due when:
/// - none has run yet;
/// - the last scan saw unreferenced objects still inside the grace period
///   (they may turn out to be orphans);
/// - segment rows, objects or tombstones changed since the last scan
///   (writes, compaction, retention or deletion happened);
/// - [`ORPHAN_RESCAN`] has passed.
#[derive(Debug, Default)]
pub(crate) struct OrphanScanSchedule {
    last: Option<(StorageStats, Instant)>,
    young_unreferenced: usize,
}

impl OrphanScanSchedule {
    pub(crate) fn due(&self, stats: &StorageStats, now: Instant) -> bool {
        match &self.last {
            None => true,
            Some((seen, at)) => {
                self.young_unreferenced > 0
                    || seen != stats
                    || now.saturating_duration_since(*at) >= ORPHAN_RESCAN
            }
        }
    }

    fn scanned(&mut self, stats: StorageStats, young_unreferenced: usize, at: Instant) {
        self.last = Some((stats, at));
        self.young_unreferenced = young_unreferenced;
    }
}

/// One pass: expired tombstones, then orphans. With a schedule, the orphan
/// scan runs only when it is due; without one, always.
pub(crate) async fn collect(
    ctx: &JobContext,
    grace: Duration,
    orphan_age: Duration,
    cancel: &CancellationToken,
    schedule: Option<&mut OrphanScanSchedule>,
) -> Result<GcReport> {
    let mut report = GcReport::default();
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    let cutoff = ctx.clock.now_ms().saturating_sub(grace_ms);
    let bucket = ctx.storage.bucket().to_string();
    let store = ctx.storage.store();
    loop {
        if cancel.is_cancelled() {
            return Ok(report);
        }
        let expired = ctx
            .metadata
            .expired_tombstones(&bucket, cutoff, BATCH)
            .await?;
        if expired.is_empty() {
            break;
        }
        let referenced: HashSet<String> = ctx
            .metadata
            .referenced_objects(&bucket, &expired)
            .await?
            .into_iter()
            .collect();
        for key in &expired {
            if referenced.contains(key) {
                report.tombstones_kept_alive += 1;
                continue;
            }
            delete(store.as_ref(), key).await?;
            report.tombstoned_deleted += 1;
        }
        ctx.metadata.remove_tombstones(&bucket, &expired).await?;
        if expired.len() < BATCH {
            break;
        }
    }
    let orphans = match schedule {
        None => {
            crate::orphans::scan(
                &ctx.storage,
                ctx.metadata.as_ref(),
                orphan_age,
                ctx.clock.as_ref(),
            )
            .await?
            .orphans
        }
        Some(schedule) => {
            // Stats read before the listing: a change during the scan makes
            // the next one due.
            let stats = ctx.metadata.storage_stats().await?;
            let now = Instant::now();
            if schedule.due(&stats, now) {
                let scan = crate::orphans::scan(
                    &ctx.storage,
                    ctx.metadata.as_ref(),
                    orphan_age,
                    ctx.clock.as_ref(),
                )
                .await?;
                // Orphans deleted below change nothing the stats count.
                schedule.scanned(stats, scan.young_unreferenced, now);
                scan.orphans
            } else {
                Vec::new()
            }
        }
    };
    for orphan in orphans {
        if cancel.is_cancelled() {
            return Ok(report);
        }
        delete(store.as_ref(), orphan.location.as_ref()).await?;
        report.orphans_deleted += 1;
    }
    metrics::counter!("streamhouse_gc_objects_deleted_total", "kind" => "unreferenced")
        .increment(report.tombstoned_deleted);
    metrics::counter!("streamhouse_gc_objects_deleted_total", "kind" => "orphan")
        .increment(report.orphans_deleted);
    if report.tombstoned_deleted + report.orphans_deleted > 0 {
        tracing::info!(
            unreferenced = report.tombstoned_deleted,
            orphans = report.orphans_deleted,
            "garbage collection deleted objects"
        );
    }
    Ok(report)
}

/// Deletes one object; one that is already gone counts as deleted.
async fn delete(store: &dyn object_store::ObjectStore, key: &str) -> Result<()> {
    let path = Path::parse(key)
        .map_err(|e| StorageError::object_store("delete", key, object_store::Error::from(e)))?;
    match store.delete(&path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(error) => Err(StorageError::object_store("delete", key, error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(segment_rows: i64, tombstones: i64) -> StorageStats {
        StorageStats {
            segment_rows,
            objects: 1,
            bytes: 100,
            max_rows_per_partition: segment_rows,
            tombstones,
        }
    }

    #[test]
    fn orphan_scans_run_only_when_something_could_have_changed() {
        let start = Instant::now();
        let mut schedule = OrphanScanSchedule::default();
        assert!(schedule.due(&stats(5, 0), start), "the first scan is due");
        schedule.scanned(stats(5, 0), 0, start);
        let later = start + Duration::from_secs(60);
        assert!(
            !schedule.due(&stats(5, 0), later),
            "idle: nothing to scan for"
        );
        assert!(schedule.due(&stats(6, 0), later), "a commit happened");
        assert!(
            schedule.due(&stats(5, 1), later),
            "an object lost its reference"
        );
        assert!(
            schedule.due(&stats(5, 0), start + ORPHAN_RESCAN),
            "the periodic rescan"
        );

        // Unreferenced objects inside the grace period bring the scan back
        // until they are either committed or old enough to delete.
        schedule.scanned(stats(5, 0), 2, later);
        assert!(schedule.due(&stats(5, 0), later + Duration::from_secs(60)));
        schedule.scanned(stats(5, 0), 0, later + Duration::from_secs(60));
        assert!(!schedule.due(&stats(5, 0), later + Duration::from_secs(120)));
    }
}
