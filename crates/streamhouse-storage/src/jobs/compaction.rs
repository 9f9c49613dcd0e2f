//! Compaction: runs of consecutive flushed segments of one partition become
//! one object of its own, `{prefix}/{topic}/{partition}/
//! seg_{base_offset:020}-{ulid}.bin` (up to the target size, 64 MiB by
//! default), holding the run as consecutive segments of about
//! [`CompactionConfig::segment_bytes`] (4 MiB) each. A reader fetches and
//! caches one such segment with one ranged GET, so a consumer catching up
//! on many partitions needs a few MiB of cache per partition, not the whole
//! object.
//!
//! A run is read with ranged GETs (a few at a time, in order), its records
//! are re-encoded unchanged (same offsets, timestamps, keys, values and
//! headers) and streamed to the object store as each segment closes (one
//! PUT for a small object, a multipart upload otherwise), so a pass holds
//! its input batch and a few MiB of output, never the whole object. Then
//! ONE metadata transaction swaps the run's rows for a row per new segment
//! ([`MetadataStore::replace_segments`]). If the run changed in between
//! (retention, or another runner), the swap is refused and the unreferenced
//! upload is deleted; if the process dies, the upload is an orphan that
//! garbage collection removes after its grace period (an unfinished
//! multipart upload is aborted, or, after a crash, left to the bucket's
//! lifecycle rule for incomplete uploads). The replaced objects stay until
//! garbage collection, so readers that looked up the old rows keep working.
//!
//! Topics whose `cleanup.policy` compacts are also compacted by key first
//! ([`keyed`]): the same output and swap, keeping only each key's latest
//! records.
//!
//! Object keys end in a ULID so that a key is never written twice: garbage
//! collection can then never delete a newer object under an older name.
//!
//! Only flushed segments are compacted; a compacted segment is never
//! rewritten, so each record is rewritten at most once. A run closes at the
//! target size; the newest run of a partition is compacted once its oldest
//! segment is older than the span, so that idle partitions are compacted
//! too.

mod key_map;
mod keyed;
mod output;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use streamhouse_metadata::{ReplacementSegment, SegmentInfo, SegmentReplacement};
use tokio_util::sync::CancellationToken;

use output::{Kept, SegmentedOutput, StreamedUpload};

use super::{
    DEFAULT_COMPACTION_SEGMENT, DEFAULT_COMPACTION_SPAN, DEFAULT_COMPACTION_TARGET,
    DEFAULT_COMPRESSION, DEFAULT_KEY_MAP_BYTES, JobContext, is_compacted_key,
};
use crate::error::{Result, StorageError};
use crate::segment::{Compression, SegmentError, SegmentReader};

/// Settings of compaction.
#[derive(Debug, Clone)]
pub struct CompactionConfig {
    /// Bytes of segment data a compacted object aims for.
    pub target_bytes: u64,
    /// Bytes at which a segment inside a compacted object closes: the unit
    /// a reader fetches and caches.
    pub segment_bytes: u64,
    /// A partition's newest run is compacted once its oldest segment is
    /// this old, even below the target size.
    pub span: Duration,
    /// Most segment rows merged into one.
    pub max_rows_per_run: usize,
    /// Ranged GETs in flight while runs are read.
    pub read_concurrency: usize,
    /// Bytes of input fetched at once: runs are rewritten in batches of
    /// about this much (a run larger than this is fetched alone). The
    /// output is streamed, so this is most of what size compaction holds.
    pub read_budget_bytes: u64,
    pub compression: Compression,
    /// Bytes of key compaction's key map (24 per key): a partition with
    /// more keys than fit is compacted in several passes.
    pub key_map_bytes: u64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            target_bytes: DEFAULT_COMPACTION_TARGET,
            segment_bytes: DEFAULT_COMPACTION_SEGMENT,
            span: DEFAULT_COMPACTION_SPAN,
            max_rows_per_run: 20_000,
            read_concurrency: 16,
            read_budget_bytes: DEFAULT_COMPACTION_TARGET,
            compression: DEFAULT_COMPRESSION,
            key_map_bytes: DEFAULT_KEY_MAP_BYTES,
        }
    }
}

/// What one compaction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Runs swapped in.
    pub runs: u64,
    /// Segment rows replaced, and the rows that replaced them.
    pub rows_replaced: u64,
    pub rows_written: u64,
    /// Bytes of segment data read and written.
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Runs that changed while they were rewritten and were left alone.
    pub conflicts: u64,
    /// Age in milliseconds of the oldest flushed segment left uncompacted.
    pub lag_ms: i64,
    /// Key compaction passes completed, and the records they removed
    /// (superseded values, expired tombstones, records without a key).
    pub key_passes: u64,
    pub records_removed: u64,
}

/// One compaction pass over every partition of every topic.
///
/// Runs are planned for all partitions of a topic first and then rewritten
/// in batches (bounded by `read_budget_bytes`) whose inputs are fetched
/// together: a flush object shared by many partitions is read with ONE
/// ranged GET spanning the segments the batch needs, not one GET per
/// partition.
pub(crate) async fn compact_all(
    ctx: &JobContext,
    config: &CompactionConfig,
    cancel: &CancellationToken,
) -> Result<CompactionReport> {
    let mut report = CompactionReport::default();
    for topic in ctx.metadata.list_topics().await? {
        if topic.config.cleanup_policy().compacts() {
            keyed::compact_topic(ctx, config, &topic, cancel, &mut report).await?;
        }
        let now = ctx.clock.now_ms();
        let mut planned: Vec<(i32, Vec<SegmentInfo>)> = Vec::new();
        for partition in 0..topic.partition_count {
            if cancel.is_cancelled() {
                return Ok(report);
            }
            // None: deleted while the pass ran.
            let Some(rows) = super::live_rows(ctx, &topic.name, partition).await? else {
                break;
            };
            let runs = plan_runs(&rows, config, now);
            let planned_until = runs.last().and_then(|run| run.last()).map(|r| r.end_offset);
            // Lag: the oldest flushed segment this pass leaves alone.
            if let Some(oldest) = rows.iter().find(|row| {
                !is_compacted_key(&row.key) && planned_until.is_none_or(|end| row.base_offset > end)
            }) {
                report.lag_ms = report.lag_ms.max(now - oldest.created_at);
            }
            planned.extend(runs.into_iter().map(|run| (partition, run.to_vec())));
        }
        let mut batch: Vec<(i32, Vec<SegmentInfo>)> = Vec::new();
        let mut batch_bytes: u64 = 0;
        let mut planned = planned.into_iter().peekable();
        while let Some((partition, run)) = planned.next() {
            batch_bytes += run_bytes(&run);
            batch.push((partition, run));
            let next_fits = planned
                .peek()
                .is_some_and(|(_, next)| batch_bytes + run_bytes(next) <= config.read_budget_bytes);
            if next_fits {
                continue;
            }
            if cancel.is_cancelled() {
                return Ok(report);
            }
            compact_batch(ctx, config, &topic.name, &batch, &mut report).await?;
            batch.clear();
            batch_bytes = 0;
        }
    }
    Ok(report)
}

fn run_bytes(run: &[SegmentInfo]) -> u64 {
    run.iter()
        .map(|r| u64::try_from(r.byte_length).unwrap_or(0))
        .sum()
}

/// Fetches the inputs of a batch of runs, then rewrites and swaps each.
async fn compact_batch(
    ctx: &JobContext,
    config: &CompactionConfig,
    topic: &str,
    batch: &[(i32, Vec<SegmentInfo>)],
    report: &mut CompactionReport,
) -> Result<()> {
    let inputs = fetch_inputs(ctx, config, batch.iter().flat_map(|(_, run)| run)).await?;
    report.bytes_read += inputs
        .values()
        .map(|(_, bytes)| bytes.len() as u64)
        .sum::<u64>();
    let mut swapped = std::collections::BTreeSet::new();
    for (partition, run) in batch {
        match compact_run(ctx, config, topic, *partition, run, &inputs, report).await {
            Ok(true) => {
                swapped.insert(*partition);
            }
            Ok(false) => {}
            // A damaged segment leaves its run as it is, not every other
            // run: it is logged, counted and left for an operator
            // (`streamhouse check` names it).
            Err(StorageError::Segment(error)) => skipped_damaged(topic, *partition, &error),
            Err(error) => return Err(error),
        }
    }
    // New lookups find the compacted rows; readers holding old rows still
    // read the old objects, which outlive the swap.
    for partition in swapped {
        ctx.index.invalidate(topic, partition);
    }
    Ok(())
}

/// Per object, the bytes spanning every segment of `rows` it holds, and
/// where that span starts: one ranged GET per object.
async fn fetch_inputs<'a>(
    ctx: &JobContext,
    config: &CompactionConfig,
    rows: impl Iterator<Item = &'a SegmentInfo>,
) -> Result<HashMap<String, (u64, Bytes)>> {
    let mut spans: HashMap<String, (u64, u64)> = HashMap::new();
    for row in rows {
        let start = u64::try_from(row.byte_offset).unwrap_or(0);
        let end = start + u64::try_from(row.byte_length).unwrap_or(0);
        let span = spans.entry(row.key.clone()).or_insert((start, end));
        span.0 = span.0.min(start);
        span.1 = span.1.max(end);
    }
    let store = ctx.storage.store();
    futures::stream::iter(spans.into_iter().map(|(key, (start, end))| {
        let store = store.clone();
        async move {
            let path = Path::parse(&key).map_err(|e| {
                StorageError::object_store("get", &key, object_store::Error::from(e))
            })?;
            let bytes = store
                .get_range(&path, start..end)
                .await
                .map_err(|e| StorageError::object_store("get", &key, e))?;
            Ok::<_, StorageError>((key, (start, bytes)))
        }
    }))
    .buffer_unordered(config.read_concurrency.max(1))
    .try_collect()
    .await
}

/// Splits a partition's rows into runs of consecutive flushed segments:
/// each closes at the target size or row count; the last one is kept only
/// if it is full or its oldest segment is older than the span.
pub(crate) fn plan_runs<'a>(
    rows: &'a [SegmentInfo],
    config: &CompactionConfig,
    now: i64,
) -> Vec<&'a [SegmentInfo]> {
    let span = i64::try_from(config.span.as_millis()).unwrap_or(i64::MAX);
    let max_rows = config.max_rows_per_run.max(1);
    let mut runs: Vec<&[SegmentInfo]> = Vec::new();
    let mut start: Option<usize> = None;
    let mut bytes: u64 = 0;
    for (i, row) in rows.iter().enumerate() {
        // A transactional batch or marker keeps its row: the producer a
        // reader's batch must carry is recorded there (merging it would
        // make an aborted transaction's records look committed).
        let eligible = !is_compacted_key(&row.key) && row.transaction.is_none();
        let contiguous = i > 0 && rows[i - 1].end_offset + 1 == row.base_offset;
        if let Some(s) = start
            && (!eligible || !contiguous)
        {
            runs.push(&rows[s..i]);
            start = None;
        }
        if !eligible {
            continue;
        }
        let length = u64::try_from(row.byte_length).unwrap_or(0);
        if start.is_none() {
            start = Some(i);
            bytes = 0;
        }
        bytes += length;
        let count = start.map_or(0, |s| i + 1 - s);
        if bytes >= config.target_bytes || count >= max_rows {
            if let Some(s) = start {
                runs.push(&rows[s..=i]);
            }
            start = None;
        }
    }
    if let Some(s) = start {
        runs.push(&rows[s..]);
    }
    runs.into_iter()
        .filter(|run| {
            let Some(first) = run.first() else {
                return false;
            };
            let bytes: u64 = run
                .iter()
                .map(|r| u64::try_from(r.byte_length).unwrap_or(0))
                .sum();
            let full = bytes >= config.target_bytes || run.len() >= max_rows;
            full || now.saturating_sub(first.created_at) >= span
        })
        .collect()
}

/// Rewrites one run from its fetched inputs and swaps it in. Returns
/// whether the swap happened.
async fn compact_run(
    ctx: &JobContext,
    config: &CompactionConfig,
    topic: &str,
    partition: i32,
    run: &[SegmentInfo],
    inputs: &HashMap<String, (u64, Bytes)>,
    report: &mut CompactionReport,
) -> Result<bool> {
    let Some(first) = run.first() else {
        return Ok(false);
    };
    let mut bytes = Vec::with_capacity(run.len());
    for row in run {
        bytes.push(slice_input(inputs, row));
    }
    let output = SegmentedOutput::new(config, first.base_offset);
    let swapped = rewrite_and_swap(
        ctx,
        topic,
        partition,
        run,
        futures::stream::iter(bytes),
        output,
        Arc::new(copy_row),
        report,
    )
    .await?;
    Ok(swapped.is_some())
}

/// Logs and counts a run or partition compaction left alone because a
/// segment of it does not decode.
pub(super) fn skipped_damaged(topic: &str, partition: i32, error: &SegmentError) {
    metrics::counter!("streamhouse_compaction_damaged_segments_total").increment(1);
    tracing::error!(%topic, partition, %error,
        "compaction left segments alone: one of them is damaged");
}

/// Size compaction's rewrite of one row: every record, unchanged.
fn copy_row(output: &mut SegmentedOutput, row: &SegmentInfo, bytes: Bytes) -> Result<u64> {
    let reader = SegmentReader::new(bytes)?.placed_at(row.base_offset);
    let mut count: i64 = 0;
    for record in reader.iter_from(row.base_offset) {
        output.append(&record?, Kept::Whole)?;
        count += 1;
    }
    check_count(row, count)?;
    Ok(0)
}

/// A row's records are as many as its metadata row says.
pub(super) fn check_count(row: &SegmentInfo, count: i64) -> Result<()> {
    if count != row.record_count {
        return Err(StorageError::Segment(SegmentError::Corrupt {
            what: "segment record count differs from its metadata row",
            position: 0,
        }));
    }
    Ok(())
}

/// Rewrites `run` into one new object and swaps it in with one metadata
/// transaction. `inputs` yields each row's segment bytes in order;
/// `rewrite_row` writes a row's records to the output (on a blocking
/// thread: decoding and encoding is CPU work that request handling must
/// never wait behind) and returns how many it removed. Segments are
/// uploaded as they close, so the object is never held whole in memory.
///
/// Returns the new segments when the swap happened; `None` when the run
/// changed meanwhile (retention, DeleteRecords), in which case the upload
/// is deleted.
#[allow(clippy::too_many_arguments)]
pub(super) async fn rewrite_and_swap<F>(
    ctx: &JobContext,
    topic: &str,
    partition: i32,
    run: &[SegmentInfo],
    inputs: impl futures::Stream<Item = Result<Bytes>>,
    mut output: SegmentedOutput,
    rewrite_row: Arc<F>,
    report: &mut CompactionReport,
) -> Result<Option<Vec<ReplacementSegment>>>
where
    F: Fn(&mut SegmentedOutput, &SegmentInfo, Bytes) -> Result<u64> + Send + Sync + 'static,
{
    let (Some(first), Some(last)) = (run.first(), run.last()) else {
        return Ok(None);
    };
    // The commit deadline counts from before the upload starts (an S3
    // multipart object is dated by when its upload began).
    let started = Instant::now();
    let store = ctx.storage.store();
    let key = ctx.storage.key(&format!(
        "{topic}/{partition}/seg_{:020}-{}.bin",
        first.base_offset,
        ulid::Ulid::generate()
    ));
    let mut upload = StreamedUpload::new(store.clone(), key.clone())?;
    let mut removed = 0;
    let mut inputs = std::pin::pin!(inputs);
    let mut rows = run.iter();
    let written: Result<(Vec<ReplacementSegment>, u64)> = async {
        while let Some(bytes) = inputs.next().await {
            let (Some(row), bytes) = (rows.next(), bytes?) else {
                break;
            };
            let (row, rewrite_row) = (row.clone(), rewrite_row.clone());
            let (back, count) = blocking(move || {
                let count = rewrite_row(&mut output, &row, bytes)?;
                Ok((output, count))
            })
            .await?;
            output = back;
            removed += count;
            for bytes in output.take_ready() {
                upload.write(bytes).await?;
            }
        }
        let segments = output.finish(last.end_offset)?;
        for bytes in output.take_ready() {
            upload.write(bytes).await?;
        }
        Ok((segments, output.written()))
    }
    .await;
    let (segments, object_bytes) = match written {
        Ok(written) => written,
        Err(error) => {
            upload.abort().await;
            return Err(error);
        }
    };
    upload.finish().await?;
    let path = Path::parse(&key)
        .map_err(|e| StorageError::object_store("put", &key, object_store::Error::from(e)))?;
    let replacement = SegmentReplacement {
        topic: topic.to_string(),
        partition,
        base_offset: first.base_offset,
        end_offset: last.end_offset,
        replaced_rows: i64::try_from(run.len()).unwrap_or(i64::MAX),
        bucket: ctx.storage.bucket().to_string(),
        key: key.clone(),
        segments,
        created_at: ctx.clock.now_ms(),
    };
    // Past the deadline, garbage collection may count the upload as an
    // orphan; never point a row at it then.
    if started.elapsed() > crate::orphans::COMMIT_DEADLINE {
        report.conflicts += 1;
        if let Err(error) = store.delete(&path).await {
            tracing::warn!(%key, %error, "could not delete a late compaction output");
        }
        return Ok(None);
    }
    // An error leaves the outcome unknown: the object is left to garbage
    // collection, which deletes it only if nothing references it.
    if !ctx.metadata.replace_segments(&replacement).await? {
        report.conflicts += 1;
        tracing::info!(%topic, partition, base_offset = first.base_offset,
            "segments changed during compaction; run left alone");
        if let Err(error) = store.delete(&path).await {
            tracing::warn!(%key, %error, "could not delete an unused compaction output");
        }
        return Ok(None);
    }
    let input_bytes = run_bytes(run);
    report.runs += 1;
    report.rows_replaced += run.len() as u64;
    report.rows_written += replacement.segments.len() as u64;
    report.bytes_written += object_bytes;
    report.records_removed += removed;
    metrics::counter!("streamhouse_compaction_runs_total").increment(1);
    metrics::counter!("streamhouse_compaction_rows_replaced_total").increment(run.len() as u64);
    metrics::counter!("streamhouse_compaction_bytes_written_total").increment(object_bytes);
    metrics::histogram!("streamhouse_compaction_run_seconds")
        .record(started.elapsed().as_secs_f64());
    tracing::debug!(%topic, partition, rows = run.len(), base_offset = first.base_offset,
        end_offset = last.end_offset, input_bytes, bytes = object_bytes, removed, "compacted");
    Ok(Some(replacement.segments))
}

/// Runs CPU work (decoding and encoding segments) on a blocking thread,
/// so that the agent's request handling never waits behind it.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // The runtime is shutting down.
            Err(_) => Err(StorageError::ShuttingDown),
        })
}

/// One row's segment bytes out of the fetched spans.
fn slice_input(inputs: &HashMap<String, (u64, Bytes)>, row: &SegmentInfo) -> Result<Bytes> {
    let missing = || {
        StorageError::Segment(SegmentError::Corrupt {
            what: "segment range outside the bytes fetched for it",
            position: usize::try_from(row.byte_offset).unwrap_or(0),
        })
    };
    let (span_start, bytes) = inputs.get(&row.key).ok_or_else(missing)?;
    let offset = u64::try_from(row.byte_offset).map_err(|_| missing())?;
    let start = usize::try_from(offset.checked_sub(*span_start).ok_or_else(missing)?)
        .map_err(|_| missing())?;
    let end = start + usize::try_from(row.byte_length).map_err(|_| missing())?;
    if end > bytes.len() {
        return Err(missing());
    }
    Ok(bytes.slice(start..end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(base: i64, end: i64, key: &str, bytes: i64, created_at: i64) -> SegmentInfo {
        SegmentInfo {
            id: base,
            topic: "t".into(),
            partition: 0,
            base_offset: base,
            end_offset: end,
            record_count: end - base + 1,
            size_bytes: bytes,
            bucket: "b".into(),
            key: key.into(),
            byte_offset: 0,
            byte_length: bytes,
            min_timestamp: 0,
            max_timestamp: 0,
            created_at,
            cleaned_at: None,
            tombstones: 0,
            transaction: None,
        }
    }

    fn config(target: u64, span_ms: u64) -> CompactionConfig {
        CompactionConfig {
            target_bytes: target,
            span: Duration::from_millis(span_ms),
            ..CompactionConfig::default()
        }
    }

    fn bounds(runs: &[&[SegmentInfo]]) -> Vec<(i64, i64)> {
        runs.iter()
            .map(|r| (r[0].base_offset, r[r.len() - 1].end_offset))
            .collect()
    }

    #[test]
    fn runs_close_at_the_target_and_skip_compacted_segments() {
        let rows = vec![
            row(0, 9, "t/0/seg_00000000000000000000-A.bin", 1000, 0),
            row(10, 19, "batches/a.bin", 40, 0),
            row(20, 29, "batches/b.bin", 40, 0),
            row(30, 39, "batches/c.bin", 40, 0),
            row(40, 49, "batches/d.bin", 40, 0),
            row(50, 59, "batches/e.bin", 40, 1_000),
        ];
        // Target 80 bytes, span 10 s, now = 5 s: two full runs; the tail
        // (one young segment) waits.
        let runs = plan_runs(&rows, &config(80, 10_000), 5_000);
        assert_eq!(bounds(&runs), vec![(10, 29), (30, 49)]);
        // Once the span has passed, the tail is compacted too.
        let runs = plan_runs(&rows, &config(80, 10_000), 11_000);
        assert_eq!(bounds(&runs), vec![(10, 29), (30, 49), (50, 59)]);
    }

    #[test]
    fn young_partial_runs_wait() {
        let rows = vec![
            row(0, 0, "batches/a.bin", 10, 9_000),
            row(1, 1, "batches/b.bin", 10, 9_500),
        ];
        assert!(plan_runs(&rows, &config(1 << 20, 5_000), 10_000).is_empty());
        assert_eq!(
            bounds(&plan_runs(&rows, &config(1 << 20, 1_000), 10_000)),
            vec![(0, 1)]
        );
    }

    #[test]
    fn runs_are_bounded_by_row_count() {
        let rows: Vec<SegmentInfo> = (0..10)
            .map(|i| row(i, i, &format!("batches/{i}.bin"), 1, 0))
            .collect();
        let config = CompactionConfig {
            max_rows_per_run: 4,
            ..config(1 << 20, 0)
        };
        assert_eq!(
            bounds(&plan_runs(&rows, &config, 0)),
            vec![(0, 3), (4, 7), (8, 9)]
        );
    }
}
