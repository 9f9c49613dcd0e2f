//! Background jobs that keep storage bounded while reads stay correct:
//!
//! - **compaction** merges the small segments that flushes leave in shared
//!   multi-partition objects into large per-partition segments, swapped in
//!   with ONE metadata transaction per run;
//! - **retention** drops whole segments past a topic's `retention.ms` or
//!   `retention.bytes` and advances the log start offset;
//! - **garbage collection** deletes objects no segment row references once
//!   a grace period has passed since they lost their last reference (or,
//!   for uploads that were never committed, since they were written).
//!
//! The invariants that matter: a record's offset, key, value, headers and
//! timestamp never change; an object is deleted only when no row
//! references it and the grace period has passed, so a reader that looked
//! a segment up just before a swap still finds its bytes; every job is safe
//! to kill at any point and to run twice. With several agents each job runs
//! on one agent at a time, holding a lease in the metadata store
//! ([`runner`]).

mod check;
mod compaction;
mod gc;
mod retention;
pub(crate) mod runner;

use std::sync::Arc;
use std::time::Duration;

use streamhouse_metadata::MetadataStore;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::object_storage::ObjectStorage;
use crate::segment::Compression;
use crate::segment_index::SegmentIndex;
use crate::watermarks::Watermarks;

pub use check::{CheckReport, check_consistency};
pub use compaction::{CompactionConfig, CompactionReport};
pub use gc::GcReport;
pub use retention::RetentionReport;
pub use runner::JobsConfig;

/// What the jobs work on: the engine's components.
#[derive(Clone)]
pub(crate) struct JobContext {
    pub metadata: Arc<dyn MetadataStore>,
    pub storage: ObjectStorage,
    pub index: Arc<SegmentIndex>,
    pub watermarks: Arc<Watermarks>,
    /// Retention cutoffs, tombstone and orphan ages, lease times.
    pub clock: Arc<dyn Clock>,
}

/// Whether `key` (a full object key) holds one compacted segment rather
/// than a flush's segments of many partitions.
pub fn is_compacted_key(key: &str) -> bool {
    key.rsplit('/')
        .next()
        .is_some_and(|name| name.starts_with("seg_") && name.ends_with(".bin"))
}

/// Rows of a partition a job reads per pass.
const ROWS_PER_PASS: usize = 200_000;

/// A partition's segment rows from its log start offset (up to
/// [`ROWS_PER_PASS`]), oldest first; `None` when the partition was deleted
/// while the job ran.
async fn live_rows(
    ctx: &JobContext,
    topic: &str,
    partition: i32,
) -> crate::Result<Option<Vec<streamhouse_metadata::SegmentInfo>>> {
    let info = match ctx.metadata.get_partition(topic, partition).await {
        Ok(info) => info,
        Err(streamhouse_metadata::MetadataError::PartitionNotFound { .. }) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let rows = ctx
        .metadata
        .list_segments(topic, partition, info.log_start_offset, ROWS_PER_PASS)
        .await?;
    Ok(Some(rows))
}

pub(crate) async fn compaction_pass(
    ctx: &JobContext,
    config: &CompactionConfig,
) -> crate::Result<CompactionReport> {
    compaction::compact_all(ctx, config, &CancellationToken::new()).await
}

pub(crate) async fn retention_pass(ctx: &JobContext) -> crate::Result<RetentionReport> {
    retention::enforce_all(ctx, &CancellationToken::new()).await
}

pub(crate) async fn gc_pass(
    ctx: &JobContext,
    grace: Duration,
    orphan_age: Duration,
) -> crate::Result<GcReport> {
    gc::collect(ctx, grace, orphan_age, &CancellationToken::new(), None).await
}

pub(crate) use retention::delete_records;

pub use crate::orphans::{COMMIT_DEADLINE, MIN_ORPHAN_AGE};

/// Defaults shared by the configuration types.
pub(crate) const DEFAULT_COMPACTION_TARGET: u64 = 64 << 20;
/// Segments inside a compacted object close at 4 MiB: a reader catching up
/// on many partitions fetches and caches 4 MiB per partition, not 64.
pub(crate) const DEFAULT_COMPACTION_SEGMENT: u64 = 4 << 20;
/// Key compaction's key map: 64 MiB, about 2.5 million keys per pass.
pub(crate) const DEFAULT_KEY_MAP_BYTES: u64 = 64 << 20;
pub(crate) const DEFAULT_COMPACTION_SPAN: Duration = Duration::from_secs(60);
pub(crate) const DEFAULT_GC_GRACE: Duration = Duration::from_secs(600);
/// How often each job runs on the agent holding its lease.
pub(crate) const DEFAULT_JOB_INTERVAL: Duration = Duration::from_secs(30);
pub(crate) const DEFAULT_COMPRESSION: Compression = Compression::Lz4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacted_keys_are_recognised() {
        assert!(is_compacted_key(
            "prefix/orders/3/seg_00000000000000000042-01J.bin"
        ));
        assert!(is_compacted_key(
            "orders/0/seg_00000000000000000000-01J.bin"
        ));
        assert!(!is_compacted_key("prefix/batches/01J.bin"));
        assert!(!is_compacted_key("seg_/x/batches/01J.bin"));
    }
}
