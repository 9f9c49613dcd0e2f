//! Key compaction, for topics whose `cleanup.policy` includes `compact`:
//! each partition keeps, for every key, at least its latest record, as
//! Kafka's log cleaner does.
//!
//! A partition's rows are a *clean* prefix (written by key compaction,
//! `cleaned_at` set: no key appears twice in it) followed by *dirty* rows
//! (flushes and size compaction). The dirty rows older than
//! `min.compaction.lag.ms` are *cleanable*. A partition is compacted when
//! the cleanable bytes reach `min.cleanable.dirty.ratio` of clean plus
//! cleanable bytes, when its oldest cleanable record is older than
//! `max.compaction.lag.ms`, or when a clean row holds tombstones past their
//! `delete.retention.ms`.
//!
//! A pass reads the cleanable rows once to build the [`KeyMap`] (each key's
//! latest offset), up to the offset where the map fills (`dirty_end`), and
//! then rewrites the clean rows and the rows up to `dirty_end`, keeping a
//! record unless a later record of its key is in the map, it has no key,
//! or it is a tombstone (null value) whose `delete.retention.ms` has passed
//! since it was first compacted. Offsets never change: the rewritten
//! segments keep each record's offset and tile the same offset ranges, with
//! gaps. Records past `dirty_end` in the last row are copied unchanged into
//! segments of their own, which stay dirty. The rewrite is cut into
//! objects of about the compaction target, each swapped in with one
//! metadata transaction; a partition whose cleanable keys do not fit the
//! map gets further passes at once, until what was cleanable at the start
//! is compacted.
//!
//! Why it is safe to stop anywhere: a record is dropped only when a record
//! of the same key with a higher offset exists, and that record is only
//! ever dropped for a still later one; a reader therefore never misses a
//! key's latest value and, offsets being unchanged, never sees a key's
//! values out of offset order.
//!
//! Transactions, as Kafka's cleaner treats them: compaction stops at the
//! first record of a transaction still open (the last stable offset). The
//! records of an aborted transaction are removed and never count as a
//! key's latest value; those of a committed one are compacted like any
//! other. A transaction's markers stay where they are, rows of their own
//! that readers get as control batches, until they are older than
//! `delete.retention.ms` and everything before them is compacted; then the
//! pass removes them, and with each one its entry in the aborted
//! transaction index (the same metadata transaction, see
//! `SegmentReplacement`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use streamhouse_core::TopicConfig;
use streamhouse_metadata::{SegmentInfo, Topic};
use tokio_util::sync::CancellationToken;

use super::key_map::KeyMap;
use super::output::{Kept, SegmentedOutput};
use super::{
    CompactionConfig, CompactionReport, blocking, check_count, rewrite_and_swap, run_bytes,
    skipped_damaged,
};
use crate::error::{Result, StorageError};
use crate::jobs::{JobContext, live_rows};
use crate::segment::SegmentReader;

/// Passes over one partition in one job run, at most.
const MAX_PASSES: usize = 1_000;
/// Row bytes fetched ahead while a pass reads.
const ROWS_AHEAD: usize = 1;

/// Key-compacts every partition of `topic` that is due.
pub(super) async fn compact_topic(
    ctx: &JobContext,
    config: &CompactionConfig,
    topic: &Topic,
    cancel: &CancellationToken,
    report: &mut CompactionReport,
) -> Result<()> {
    for partition in 0..topic.partition_count {
        if cancel.is_cancelled() {
            return Ok(());
        }
        match compact_partition(ctx, config, topic, partition, cancel, report).await {
            Ok(()) => {}
            // A damaged segment stops this partition's compaction, not
            // every other partition's.
            Err(StorageError::Segment(error)) => skipped_damaged(&topic.name, partition, &error),
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// What a row is to key compaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowKind {
    /// Records outside any transaction.
    Plain,
    /// A transactional batch whose transaction committed.
    Committed,
    /// A transactional batch whose transaction aborted: its records go.
    Aborted,
    /// A transactional batch whose transaction is still open.
    Open,
    /// A COMMIT or ABORT marker.
    Marker,
}

/// Each row's kind: a transactional batch takes the outcome of the next
/// marker of its producer (a producer has one transaction at a time).
pub(crate) fn row_kinds(rows: &[SegmentInfo]) -> Vec<RowKind> {
    let mut next_marker: HashMap<i64, bool> = HashMap::new();
    let mut kinds = vec![RowKind::Plain; rows.len()];
    for (kind, row) in kinds.iter_mut().zip(rows).rev() {
        let Some(batch) = row.transaction else {
            continue;
        };
        *kind = match batch.commit {
            Some(commit) => {
                next_marker.insert(batch.producer_id, commit);
                RowKind::Marker
            }
            None => match next_marker.get(&batch.producer_id) {
                Some(true) => RowKind::Committed,
                Some(false) => RowKind::Aborted,
                None => RowKind::Open,
            },
        };
    }
    kinds
}

/// Where a partition stands.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// Each row's [`RowKind`].
    pub kinds: Vec<RowKind>,
    /// `rows[..clean]` were written by key compaction, or are markers.
    pub clean: usize,
    /// `rows[clean..cleanable]` are dirty and old enough to compact.
    pub cleanable: usize,
    /// Cleanable bytes over clean plus cleanable bytes.
    pub dirty_ratio: f64,
    /// The oldest cleanable record is older than `max.compaction.lag.ms`.
    pub overdue: bool,
    /// A clean row holds tombstones past `delete.retention.ms`.
    pub expired_tombstones: bool,
    /// A marker among the clean rows is older than `delete.retention.ms`.
    pub expired_markers: bool,
}

impl Plan {
    pub(crate) fn new(rows: &[SegmentInfo], config: &TopicConfig, now: i64) -> Self {
        let kinds = row_kinds(rows);
        let clean = rows
            .iter()
            .zip(&kinds)
            .take_while(|(r, kind)| r.cleaned_at.is_some() || **kind == RowKind::Marker)
            .count();
        // Kafka applies the lag only when it is set.
        let min_lag = config.min_compaction_lag_ms();
        let cleanable = clean
            + rows[clean..]
                .iter()
                .zip(&kinds[clean..])
                .take_while(|(r, kind)| {
                    // Nothing from the first record of an open transaction
                    // on: the last stable offset.
                    r.cleaned_at.is_none()
                        && **kind != RowKind::Open
                        && (min_lag == 0 || r.max_timestamp <= now.saturating_sub(min_lag))
                })
                .count();
        let bytes = |rows: &[SegmentInfo]| run_bytes(rows) as f64;
        let (clean_bytes, dirty_bytes) = (bytes(&rows[..clean]), bytes(&rows[clean..cleanable]));
        let dirty_ratio = if clean_bytes + dirty_bytes > 0.0 {
            dirty_bytes / (clean_bytes + dirty_bytes)
        } else {
            0.0
        };
        let max_lag = config.max_compaction_lag_ms();
        let overdue = max_lag < i64::MAX
            && rows[clean..cleanable]
                .first()
                .is_some_and(|r| r.min_timestamp <= now.saturating_sub(max_lag));
        let expired_tombstones = rows[..clean]
            .iter()
            .any(|r| tombstones_expired(r, config, now));
        let expired_markers = rows[..clean]
            .iter()
            .zip(&kinds)
            .any(|(r, kind)| *kind == RowKind::Marker && marker_expired(r, config, now));
        Self {
            kinds,
            clean,
            cleanable,
            dirty_ratio,
            overdue,
            expired_tombstones,
            expired_markers,
        }
    }

    fn has_dirty(&self) -> bool {
        self.cleanable > self.clean
    }

    /// Whether the partition should be compacted now.
    pub(crate) fn due(&self, config: &TopicConfig) -> bool {
        (self.has_dirty()
            && (self.dirty_ratio >= config.min_cleanable_dirty_ratio() || self.overdue))
            || self.expired_tombstones
            || self.expired_markers
    }
}

/// A marker goes once it is older than `delete.retention.ms` (by the time
/// it was written), as Kafka's cleaner removes markers.
fn marker_expired(row: &SegmentInfo, config: &TopicConfig, now: i64) -> bool {
    row.max_timestamp
        .saturating_add(config.delete_retention_ms())
        <= now
}

fn tombstones_expired(row: &SegmentInfo, config: &TopicConfig, now: i64) -> bool {
    row.tombstones > 0
        && row
            .cleaned_at
            .is_some_and(|at| at.saturating_add(config.delete_retention_ms()) <= now)
}

async fn compact_partition(
    ctx: &JobContext,
    config: &CompactionConfig,
    topic: &Topic,
    partition: i32,
    cancel: &CancellationToken,
    report: &mut CompactionReport,
) -> Result<()> {
    let labels = [
        ("topic", topic.name.clone()),
        ("partition", partition.to_string()),
    ];
    // The offset up to which this run compacts: what was cleanable when it
    // started.
    let mut target: Option<i64> = None;
    for _ in 0..MAX_PASSES {
        if cancel.is_cancelled() {
            return Ok(());
        }
        let Some(rows) = live_rows(ctx, &topic.name, partition).await? else {
            return Ok(());
        };
        let now = ctx.clock.now_ms();
        let plan = Plan::new(&rows, &topic.config, now);
        metrics::gauge!("streamhouse_compaction_dirty_ratio", &labels).set(plan.dirty_ratio);
        let target_end = match target {
            None if !plan.due(&topic.config) => return Ok(()),
            None => {
                let end = rows[..plan.cleanable].last().map_or(-1, |r| r.end_offset);
                target = Some(end);
                end
            }
            Some(end) => end,
        };
        let dirty = &rows[plan.clean..plan.cleanable];
        let dirty = match dirty.iter().position(|r| r.base_offset > target_end) {
            Some(stop) => &dirty[..stop],
            None => dirty,
        };
        let removed_before = report.records_removed;
        let delete_retention_ms = topic.config.delete_retention_ms();
        let marker_expired = |i: usize| marker_expired(&rows[i], &topic.config, now);
        // The rows the pass may rewrite, which of them it does (markers stay
        // in place until they expire: the rewrite goes around them, a
        // stretch of rows at a time), how, and whether another pass follows.
        let (upto, rewritten, rewrite, more): (usize, Box<dyn Fn(usize) -> bool>, _, _) =
            if let Some(first_dirty) = dirty.first() {
                let dirty_kinds = &plan.kinds[plan.clean..plan.clean + dirty.len()];
                let (map, dirty_end) = build_key_map(ctx, config, dirty, dirty_kinds).await?;
                tracing::debug!(topic = %topic.name, partition, keys = map.len(), dirty_end,
                    "key map built");
                // The clean rows and the dirty ones up to the one holding
                // `dirty_end`.
                let last = plan.clean
                    + dirty
                        .iter()
                        .take_while(|r| r.base_offset <= dirty_end)
                        .count();
                let rewrite = Rewrite {
                    map: Some(map),
                    dirty_from: first_dirty.base_offset,
                    dirty_end,
                    now,
                    delete_retention_ms,
                    dropped_rows: dropped_rows(&rows[..last], &plan.kinds),
                };
                let rewritten =
                    Box::new(|i: usize| plan.kinds[i] != RowKind::Marker || marker_expired(i));
                (last, rewritten, rewrite, dirty_end < target_end)
            } else {
                // Only tombstones and markers to drop: the clean rows that
                // hold expired ones.
                let rewrite = Rewrite {
                    map: None,
                    dirty_from: i64::MAX,
                    dirty_end: i64::MIN,
                    now,
                    delete_retention_ms,
                    dropped_rows: dropped_rows(&rows[..plan.clean], &plan.kinds),
                };
                let expired = Box::new(|i: usize| match plan.kinds[i] {
                    RowKind::Marker => marker_expired(i),
                    _ => tombstones_expired(&rows[i], &topic.config, now),
                });
                (plan.clean, expired, rewrite, false)
            };
        let (mut input_bytes, mut output_bytes) = (0, 0);
        for stretch in stretches(upto, rewritten) {
            let stretch = &rows[stretch];
            let done = rewrite_rows(
                ctx,
                config,
                topic,
                partition,
                stretch,
                rewrite.clone(),
                report,
            )
            .await?;
            let Some(written) = done else {
                return Ok(());
            };
            input_bytes += run_bytes(stretch);
            output_bytes += written;
        }
        ctx.index.invalidate(&topic.name, partition);
        report.key_passes += 1;
        let removed = report.records_removed - removed_before;
        metrics::counter!("streamhouse_compaction_records_removed_total", &labels)
            .increment(removed);
        metrics::counter!("streamhouse_compaction_bytes_removed_total", &labels)
            .increment(input_bytes.saturating_sub(output_bytes));
        metrics::gauge!(
            "streamhouse_compaction_last_compacted_timestamp_seconds",
            &labels
        )
        .set(now as f64 / 1000.0);
        tracing::info!(topic = %topic.name, partition, removed, input_bytes, output_bytes,
            "key compaction pass");
        if !more {
            return Ok(());
        }
    }
    Ok(())
}

/// Reads `dirty` in offset order into a key map; returns it with the last
/// offset it covers: the end of `dirty`, or the offset before the first
/// record whose key no longer fit. Markers and aborted transactions' rows
/// are not read: no record of theirs is a key's latest value.
async fn build_key_map(
    ctx: &JobContext,
    config: &CompactionConfig,
    dirty: &[SegmentInfo],
    kinds: &[RowKind],
) -> Result<(Arc<KeyMap>, i64)> {
    let read: Vec<SegmentInfo> = dirty
        .iter()
        .zip(kinds)
        .filter(|(_, kind)| matches!(kind, RowKind::Plain | RowKind::Committed))
        .map(|(row, _)| row.clone())
        .collect();
    let expected: i64 = read.iter().map(|r| r.record_count).sum();
    let mut map = KeyMap::new(config.key_map_bytes, u64::try_from(expected).unwrap_or(0));
    let mut dirty_end = dirty.last().map_or(-1, |r| r.end_offset);
    let mut inputs = std::pin::pin!(fetch_rows(ctx, &read));
    for row in &read {
        let Some(bytes) = inputs.try_next().await? else {
            break;
        };
        let owned = row.clone();
        let (back, full_at) = blocking(move || {
            let reader = SegmentReader::new(bytes)?.placed_at(owned.base_offset);
            let mut count = 0;
            for record in reader.iter_from(owned.base_offset) {
                let record = record?;
                count += 1;
                if let Some(key) = &record.key
                    && !map.put(map.hash(key), record.offset)
                {
                    return Ok((map, Some(record.offset)));
                }
            }
            check_count(&owned, count)?;
            Ok((map, None))
        })
        .await?;
        map = back;
        if let Some(offset) = full_at {
            dirty_end = offset - 1;
            break;
        }
    }
    metrics::gauge!("streamhouse_compaction_key_map_bytes").set(map.allocated_bytes() as f64);
    Ok((Arc::new(map), dirty_end))
}

/// How one pass decides which records stay.
#[derive(Clone)]
struct Rewrite {
    map: Option<Arc<KeyMap>>,
    /// Records from `dirty_from` to `dirty_end` are compacted for the first
    /// time by this pass; records past `dirty_end` are copied unchanged.
    dirty_from: i64,
    dirty_end: i64,
    now: i64,
    delete_retention_ms: i64,
    /// Base offsets of the rows none of whose records stay: aborted
    /// transactions' batches and markers.
    dropped_rows: Arc<HashSet<i64>>,
}

/// The rows of `rows` whose records all go when rewritten.
fn dropped_rows(rows: &[SegmentInfo], kinds: &[RowKind]) -> Arc<HashSet<i64>> {
    Arc::new(
        rows.iter()
            .zip(kinds)
            .filter(|(_, kind)| matches!(kind, RowKind::Aborted | RowKind::Marker))
            .map(|(row, _)| row.base_offset)
            .collect(),
    )
}

/// The contiguous ranges of indexes below `len` for which `rewritten`
/// holds.
fn stretches(len: usize, rewritten: impl Fn(usize) -> bool) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = None;
    for i in 0..=len {
        match (start, i < len && rewritten(i)) {
            (None, true) => start = Some(i),
            (Some(from), false) => {
                ranges.push(from..i);
                start = None;
            }
            _ => {}
        }
    }
    ranges
}

impl Rewrite {
    /// What becomes of one record of a row compacted at `cleaned_at`
    /// (`None` for a dirty row): `None` to drop it.
    fn keep(
        &self,
        key: Option<&Bytes>,
        tombstone: bool,
        offset: i64,
        cleaned_at: Option<i64>,
    ) -> Option<Kept> {
        if offset > self.dirty_end && cleaned_at.is_none() {
            return Some(Kept::Whole);
        }
        // A compacted topic refuses records without a key; any written
        // before it compacted are removed, as Kafka's cleaner does.
        let key = key?;
        if let Some(map) = &self.map
            && map.get(map.hash(key)).is_some_and(|latest| latest > offset)
        {
            return None;
        }
        let cleaned_at = match cleaned_at {
            Some(at) => {
                if tombstone && at.saturating_add(self.delete_retention_ms) <= self.now {
                    return None;
                }
                at
            }
            // First compacted now: its tombstone, if it is one, lives on
            // for `delete.retention.ms` from now.
            None => {
                debug_assert!(offset >= self.dirty_from);
                self.now
            }
        };
        Some(Kept::Cleaned { cleaned_at })
    }

    fn rewrite_row(
        &self,
        output: &mut SegmentedOutput,
        row: &SegmentInfo,
        bytes: Bytes,
    ) -> Result<u64> {
        let reader = SegmentReader::new(bytes)?.placed_at(row.base_offset);
        let (mut count, mut removed) = (0, 0);
        let dropped = self.dropped_rows.contains(&row.base_offset);
        for record in reader.iter_from(row.base_offset) {
            let record = record?;
            count += 1;
            if dropped {
                removed += 1;
                continue;
            }
            match self.keep(
                record.key.as_ref(),
                record.value.is_none(),
                record.offset,
                row.cleaned_at,
            ) {
                Some(kept) => output.append(&record, kept)?,
                None => removed += 1,
            }
        }
        check_count(row, count)?;
        Ok(removed)
    }
}

/// Rewrites `rows` in objects of about the compaction target, each swapped
/// in on its own. Returns the bytes written, or `None` when a swap found
/// the rows changed (the partition is left for the next run).
async fn rewrite_rows(
    ctx: &JobContext,
    config: &CompactionConfig,
    topic: &Topic,
    partition: i32,
    rows: &[SegmentInfo],
    rewrite: Rewrite,
    report: &mut CompactionReport,
) -> Result<Option<u64>> {
    let rewrite = Arc::new(rewrite);
    let mut written = 0;
    let mut start = 0;
    while start < rows.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < rows.len()
            && (end == start
                || (bytes + run_bytes(&rows[end..=end]) <= config.target_bytes
                    && end - start < config.max_rows_per_run.max(1)))
        {
            bytes += run_bytes(&rows[end..=end]);
            end += 1;
        }
        let run = &rows[start..end];
        let output =
            SegmentedOutput::new(config, run[0].base_offset).with_empty_cleaned_at(rewrite.now);
        let before = report.bytes_written;
        let rewrite_row = {
            let rewrite = rewrite.clone();
            Arc::new(
                move |output: &mut SegmentedOutput, row: &SegmentInfo, bytes: Bytes| {
                    rewrite.rewrite_row(output, row, bytes)
                },
            )
        };
        let swapped = rewrite_and_swap(
            ctx,
            &topic.name,
            partition,
            run,
            fetch_rows(ctx, run),
            output,
            rewrite_row,
            report,
        )
        .await?;
        if swapped.is_none() {
            return Ok(None);
        }
        written += report.bytes_written - before;
        start = end;
    }
    Ok(Some(written))
}

/// Each row's segment bytes, in order, a few GETs ahead.
fn fetch_rows<'a>(
    ctx: &JobContext,
    rows: &'a [SegmentInfo],
) -> impl futures::Stream<Item = Result<Bytes>> + 'a {
    let store = ctx.storage.store();
    futures::stream::iter(rows)
        .map(move |row| {
            let store = store.clone();
            async move {
                let path = Path::parse(&row.key).map_err(|e| {
                    StorageError::object_store("get", &row.key, object_store::Error::from(e))
                })?;
                let start = u64::try_from(row.byte_offset).unwrap_or(0);
                let end = start + u64::try_from(row.byte_length).unwrap_or(0);
                store
                    .get_range(&path, start..end)
                    .await
                    .map_err(|e| StorageError::object_store("get", &row.key, e))
            }
        })
        .buffered(ROWS_AHEAD)
}
