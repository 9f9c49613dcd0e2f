//! Retention and record deletion: whole segments past a topic's
//! `retention.ms` (by their newest timestamp) or beyond its
//! `retention.bytes` (per partition, oldest first, as Kafka does: a segment
//! goes only when what stays still holds at least `retention.bytes`, so a
//! partition never keeps less than its limit because segments are large)
//! are dropped, and the
//! partition's log start offset advances past them in the same metadata
//! transaction ([`MetadataStore::truncate_partition`]). DeleteRecords moves
//! the log start offset to any offset; segments wholly below it go.
//!
//! Retention applies only to topics whose `cleanup.policy` deletes
//! (`delete`, `compact,delete`); DeleteRecords applies to every topic.

use streamhouse_metadata::{PartitionInfo, SegmentInfo, Topic};
use tokio_util::sync::CancellationToken;

use super::JobContext;
use crate::error::{Result, StorageError};

/// What one retention pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Partitions whose log start offset advanced.
    pub partitions_truncated: u64,
    /// Segment rows dropped, and their bytes.
    pub segments_deleted: u64,
    pub bytes_deleted: u64,
}

pub(crate) async fn enforce_all(
    ctx: &JobContext,
    cancel: &CancellationToken,
) -> Result<RetentionReport> {
    let mut report = RetentionReport::default();
    let now = ctx.clock.now_ms();
    for topic in ctx.metadata.list_topics().await? {
        // A `compact`-only topic keeps every key's latest record however
        // old or large the partition is, as Kafka does; only compaction
        // (and DeleteRecords) removes its data.
        if !topic.config.cleanup_policy().deletes()
            || (topic.config.retention_ms().is_none() && topic.config.retention_bytes().is_none())
        {
            continue;
        }
        for partition in 0..topic.partition_count {
            if cancel.is_cancelled() {
                return Ok(report);
            }
            enforce_partition(ctx, &topic, partition, now, &mut report).await?;
        }
    }
    Ok(report)
}

async fn enforce_partition(
    ctx: &JobContext,
    topic: &Topic,
    partition: i32,
    now: i64,
    report: &mut RetentionReport,
) -> Result<()> {
    let Some(rows) = super::live_rows(ctx, &topic.name, partition).await? else {
        return Ok(());
    };
    let drop = expired_prefix(
        &rows,
        topic.config.retention_ms(),
        topic.config.retention_bytes(),
        now,
    );
    let Some(last) = drop.checked_sub(1).and_then(|i| rows.get(i)) else {
        return Ok(());
    };
    let new_start = last.end_offset + 1;
    truncate(ctx, &topic.name, partition, new_start).await?;
    report.partitions_truncated += 1;
    report.segments_deleted += drop as u64;
    let bytes: i64 = rows[..drop].iter().map(|r| r.byte_length).sum();
    report.bytes_deleted += u64::try_from(bytes).unwrap_or(0);
    metrics::counter!("streamhouse_retention_segments_deleted_total").increment(drop as u64);
    metrics::counter!("streamhouse_retention_bytes_deleted_total")
        .increment(u64::try_from(bytes).unwrap_or(0));
    tracing::info!(topic = %topic.name, partition, log_start_offset = new_start,
        segments = drop, "retention advanced the log start offset");
    Ok(())
}

/// How many of the oldest rows retention drops: those whose newest record
/// is older than `retention_ms`, and then each next oldest row whose
/// removal still leaves at least `retention_bytes` (Kafka's rule: the limit
/// is what a partition may grow to before old segments go, never less than
/// what it keeps).
pub(crate) fn expired_prefix(
    rows: &[SegmentInfo],
    retention_ms: Option<i64>,
    retention_bytes: Option<i64>,
    now: i64,
) -> usize {
    let mut drop = 0;
    if let Some(ms) = retention_ms {
        let cutoff = now.saturating_sub(ms);
        drop = rows.iter().take_while(|r| r.max_timestamp < cutoff).count();
    }
    if let Some(limit) = retention_bytes {
        let mut total: i64 = rows[drop..].iter().map(|r| r.byte_length).sum();
        while drop < rows.len() && total - rows[drop].byte_length >= limit {
            total -= rows[drop].byte_length;
            drop += 1;
        }
    }
    drop
}

/// Advances the log start offset and makes this agent see it at once.
pub(crate) async fn truncate(
    ctx: &JobContext,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<PartitionInfo> {
    let info = ctx
        .metadata
        .truncate_partition(topic, partition, offset)
        .await?;
    ctx.index.invalidate(topic, partition);
    ctx.watermarks.refresh(topic, partition).await?;
    Ok(info)
}

/// Kafka's DeleteRecords for one partition: `offset` -1 means the high
/// watermark. Returns the new log start offset.
pub(crate) async fn delete_records(
    ctx: &JobContext,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<i64> {
    let current = ctx.metadata.get_partition(topic, partition).await?;
    let target = if offset == -1 {
        current.high_watermark
    } else {
        offset
    };
    if target < 0 || target > current.high_watermark {
        return Err(StorageError::OffsetOutOfRange {
            topic: topic.to_string(),
            partition,
            offset,
            log_start_offset: current.log_start_offset,
            high_watermark: current.high_watermark,
        });
    }
    let info = truncate(ctx, topic, partition, target).await?;
    metrics::counter!("streamhouse_delete_records_total").increment(1);
    Ok(info.log_start_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(base: i64, bytes: i64, max_timestamp: i64) -> SegmentInfo {
        SegmentInfo {
            id: base,
            topic: "t".into(),
            partition: 0,
            base_offset: base,
            end_offset: base + 9,
            record_count: 10,
            size_bytes: bytes,
            bucket: "b".into(),
            key: "k".into(),
            byte_offset: 0,
            byte_length: bytes,
            min_timestamp: max_timestamp - 10,
            max_timestamp,
            created_at: 0,
            cleaned_at: None,
            tombstones: 0,
            transaction: None,
        }
    }

    #[test]
    fn time_retention_drops_only_a_prefix_of_old_segments() {
        let rows = vec![
            row(0, 10, 100),
            row(10, 10, 200),
            row(20, 10, 50),
            row(30, 10, 900),
        ];
        // Cutoff 1000 - 750 = 250: the first three are older, the last is not.
        assert_eq!(expired_prefix(&rows, Some(750), None, 1_000), 3);
        // Cutoff 150: the second segment is newer, so it and everything after stay.
        assert_eq!(expired_prefix(&rows, Some(850), None, 1_000), 1);
        assert_eq!(expired_prefix(&rows, None, None, 1_000), 0);
    }

    #[test]
    fn size_retention_keeps_at_least_the_limit() {
        let rows = vec![row(0, 10, 1), row(10, 20, 2), row(20, 30, 3)];
        assert_eq!(expired_prefix(&rows, None, Some(61), 0), 0);
        assert_eq!(expired_prefix(&rows, None, Some(60), 0), 0);
        // Dropping the 10-byte row would leave 50 < 59: it stays.
        assert_eq!(expired_prefix(&rows, None, Some(59), 0), 0);
        assert_eq!(expired_prefix(&rows, None, Some(50), 0), 1);
        assert_eq!(expired_prefix(&rows, None, Some(31), 0), 1);
        assert_eq!(expired_prefix(&rows, None, Some(30), 0), 2);
        assert_eq!(expired_prefix(&rows, None, Some(1), 0), 2);
        assert_eq!(expired_prefix(&rows, None, Some(0), 0), 3);
    }
}
