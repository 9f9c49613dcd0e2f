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

use std::collections::HashSet;
use std::time::Duration;

use object_store::ObjectStoreExt;
use object_store::path::Path;
use tokio_util::sync::CancellationToken;

use super::JobContext;
use crate::error::{Result, StorageError};
use crate::flusher::now_ms;

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

pub(crate) async fn collect(
    ctx: &JobContext,
    grace: Duration,
    orphan_age: Duration,
    cancel: &CancellationToken,
) -> Result<GcReport> {
    let mut report = GcReport::default();
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    let cutoff = now_ms().saturating_sub(grace_ms);
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
    for orphan in crate::orphans::find(&ctx.storage, ctx.metadata.as_ref(), orphan_age).await? {
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
