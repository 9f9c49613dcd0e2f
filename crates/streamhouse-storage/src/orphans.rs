//! Finding objects that no segment row references and that are not
//! waiting out a tombstone: uploads whose commit failed or never happened.
//! They are never read (readers only follow segment rows); garbage
//! collection deletes them after a grace period, which covers flushes that
//! are uploaded but not yet committed.

use std::time::Duration;

use futures::TryStreamExt;
use object_store::ObjectMeta;
use object_store::path::Path;
use streamhouse_metadata::MetadataStore;

use crate::clock::Clock;
use crate::error::{Result, StorageError};
use crate::object_storage::ObjectStorage;

/// An uploaded object is committed within this time after its flush (or
/// compaction run) started, or never: writers give up past it.
pub const COMMIT_DEADLINE: Duration = Duration::from_secs(60);

/// Garbage collection deletes an uncommitted object only once it is older
/// than this, whatever the grace period: twice the commit deadline, so an
/// object still being committed is never taken for an orphan.
pub const MIN_ORPHAN_AGE: Duration = Duration::from_secs(120);

/// Keys asked about per metadata query.
const CHUNK: usize = 1000;

/// What one scan of the object prefix found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Unreferenced objects past the grace period.
    pub(crate) orphans: Vec<ObjectMeta>,
    /// Unreferenced objects still inside the grace period: uploads that
    /// may yet be committed, or orphans a later scan must come back for.
    pub(crate) young_unreferenced: usize,
}

pub(crate) async fn find(
    storage: &ObjectStorage,
    metadata: &dyn MetadataStore,
    grace: Duration,
    clock: &dyn Clock,
) -> Result<Vec<ObjectMeta>> {
    Ok(scan(storage, metadata, grace, clock).await?.orphans)
}

pub(crate) async fn scan(
    storage: &ObjectStorage,
    metadata: &dyn MetadataStore,
    grace: Duration,
    clock: &dyn Clock,
) -> Result<Scan> {
    // Everything StreamHouse writes under its prefix: flushes under
    // `batches/` and compacted segments under `{topic}/{partition}/`.
    let prefix = (!storage.prefix().is_empty()).then(|| Path::from(storage.prefix()));
    let listed: Vec<ObjectMeta> = storage
        .store()
        .list(prefix.as_ref())
        .try_collect()
        .await
        .map_err(|e| {
            StorageError::object_store("list", prefix.as_ref().map_or("", |p| p.as_ref()), e)
        })?;
    let cutoff = cutoff(grace, clock);
    let mut candidates: Vec<ObjectMeta> = listed
        .into_iter()
        .filter(|meta| meta.location.as_ref().ends_with(".bin"))
        .collect();
    candidates.sort_by(|a, b| a.location.cmp(&b.location));
    let mut found = Scan::default();
    for chunk in candidates.chunks(CHUNK) {
        let keys: Vec<String> = chunk.iter().map(|m| m.location.to_string()).collect();
        let mut kept: std::collections::HashSet<String> = metadata
            .referenced_objects(storage.bucket(), &keys)
            .await?
            .into_iter()
            .collect();
        // Objects that lost their last reference recently wait for their
        // tombstone's grace period instead.
        kept.extend(metadata.tombstoned_objects(storage.bucket(), &keys).await?);
        for meta in chunk {
            if kept.contains(meta.location.as_ref()) {
                continue;
            }
            if meta.last_modified.timestamp_millis() <= cutoff {
                found.orphans.push(meta.clone());
            } else {
                found.young_unreferenced += 1;
            }
        }
    }
    Ok(found)
}

/// The newest last-modified time (ms since the epoch) an object may have
/// to be past its grace period.
fn cutoff(grace: Duration, clock: &dyn Clock) -> i64 {
    clock
        .now_ms()
        .saturating_sub(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX))
}
