//! The segment index: committing flushes, listing and replacing segment
//! rows. The part of a flush commit that differs between backends lives
//! in the backend; the statements it runs are here.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

use super::backend::{Backend, Dialect};
use super::flush_transactions::{
    ProducerTxnRow, has_transactional, record_transactions, refused_batches,
};
use crate::error::{MetadataError, Result};
use crate::store::SegmentLog;
use crate::types::{FlushCommit, PendingSegment, SegmentInfo};

pub(crate) const SELECT_SEGMENTS: &str = "SELECT id, topic, partition_id, base_offset, end_offset, \
     record_count, size_bytes, s3_bucket, s3_key, byte_offset, byte_length, min_timestamp, \
     max_timestamp, created_at, cleaned_at, tombstones, producer_id, producer_epoch, control \
     FROM segments WHERE topic = $1 AND partition_id = $2 AND end_offset >= $3 \
     ORDER BY base_offset LIMIT $4";

pub(crate) const SELECT_SEGMENT_BY_TIMESTAMP: &str = "SELECT id, topic, partition_id, \
     base_offset, end_offset, record_count, size_bytes, s3_bucket, s3_key, byte_offset, \
     byte_length, min_timestamp, max_timestamp, created_at, cleaned_at, tombstones, producer_id, \
     producer_epoch, control \
     FROM segments WHERE topic = $1 AND partition_id = $2 AND max_timestamp >= $3 \
     ORDER BY base_offset LIMIT 1";

pub(crate) const SELECT_PARTITION_BYTES: &str = "SELECT partition_id, \
     CAST(COALESCE(SUM(byte_length), 0) AS BIGINT) FROM segments WHERE topic = $1 \
     GROUP BY partition_id ORDER BY partition_id";

pub(crate) const SELECT_OBJECT_SEGMENTS: &str = "SELECT topic, partition_id, base_offset, end_offset, byte_offset \
     FROM segments WHERE s3_bucket = $1 AND s3_key = $2";

/// Locks the partition row (a no-op update) and reads its log start.
pub(crate) const LOCK_PARTITION: &str = "UPDATE partitions SET log_start_offset = log_start_offset \
     WHERE topic = $1 AND partition_id = $2 RETURNING log_start_offset";

/// Tombstones the objects of the run of segment rows a replacement deletes: `$1` is the
/// time, then the row filter's parameters. A newer removal moves the time
/// forward, so the grace period counts from the LAST reference lost.
pub(crate) const TOMBSTONE_RUN: &str = "INSERT INTO object_tombstones (s3_bucket, s3_key, unreferenced_at) \
     SELECT DISTINCT s3_bucket, s3_key, $1 FROM segments WHERE topic = $2 AND partition_id = $3 AND base_offset >= $4 AND end_offset <= $5 \
     ON CONFLICT (s3_bucket, s3_key) DO UPDATE SET unreferenced_at = excluded.unreferenced_at";

pub(crate) const DELETE_RUN: &str = "DELETE FROM segments WHERE topic = $1 AND partition_id = $2 \
     AND base_offset >= $3 AND end_offset <= $4";

/// The transactions whose marker a replacement removes (key compaction
/// drops markers once `delete.retention.ms` has passed): with the marker
/// goes its entry in the aborted-transaction index, in the same metadata
/// transaction, so no read finds one without the other.
pub(crate) const DELETE_RUN_TRANSACTIONS: &str = "DELETE FROM partition_transactions \
     WHERE topic = $1 AND partition_id = $2 AND marker_offset >= $3 AND marker_offset <= $4";

pub(crate) const INSERT_ONE_SEGMENT: &str = "INSERT INTO segments (topic, partition_id, \
     base_offset, end_offset, record_count, size_bytes, s3_bucket, s3_key, byte_offset, \
     byte_length, min_timestamp, max_timestamp, created_at, cleaned_at, tombstones) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

pub(crate) const SELECT_STORAGE_STATS: &str = "SELECT \
     (SELECT CAST(COUNT(*) AS BIGINT) FROM segments), \
     (SELECT COUNT(*) FROM (SELECT DISTINCT s3_bucket, s3_key FROM segments) AS o), \
     (SELECT CAST(COALESCE(SUM(byte_length), 0) AS BIGINT) FROM segments), \
     (SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) AS n FROM segments \
          GROUP BY topic, partition_id) AS p), \
     (SELECT COUNT(*) FROM object_tombstones)";

#[derive(sqlx::FromRow)]
pub(crate) struct SegmentRow {
    id: i64,
    topic: String,
    partition_id: i32,
    base_offset: i64,
    end_offset: i64,
    record_count: i64,
    size_bytes: i64,
    s3_bucket: String,
    s3_key: String,
    byte_offset: i64,
    byte_length: i64,
    min_timestamp: i64,
    max_timestamp: i64,
    created_at: i64,
    cleaned_at: Option<i64>,
    tombstones: i64,
    producer_id: Option<i64>,
    producer_epoch: Option<i16>,
    control: Option<i16>,
}

impl From<SegmentRow> for SegmentInfo {
    fn from(row: SegmentRow) -> Self {
        Self {
            id: row.id,
            topic: row.topic,
            partition: row.partition_id,
            base_offset: row.base_offset,
            end_offset: row.end_offset,
            record_count: row.record_count,
            size_bytes: row.size_bytes,
            bucket: row.s3_bucket,
            key: row.s3_key,
            byte_offset: row.byte_offset,
            byte_length: row.byte_length,
            min_timestamp: row.min_timestamp,
            max_timestamp: row.max_timestamp,
            created_at: row.created_at,
            cleaned_at: row.cleaned_at,
            tombstones: row.tombstones,
            transaction: match (row.producer_id, row.producer_epoch) {
                (Some(producer_id), Some(producer_epoch)) => Some(crate::TransactionBatch {
                    producer_id,
                    producer_epoch,
                    commit: row.control.map(|control| control == CONTROL_COMMIT),
                }),
                _ => None,
            },
        }
    }
}

/// Kafka's control record types, as `segments.control` stores them.
pub(crate) const CONTROL_ABORT: i16 = 0;
pub(crate) const CONTROL_COMMIT: i16 = 1;

/// A segment row of an object that was committed before, found when a
/// commit is retried.
#[derive(sqlx::FromRow)]
pub(crate) struct CommittedRow {
    topic: String,
    partition_id: i32,
    base_offset: i64,
    end_offset: i64,
    byte_offset: i64,
}

pub(crate) fn validate_flush(flush: &FlushCommit) -> Result<()> {
    let invalid = |reason: String| {
        Err(MetadataError::InvalidArgument {
            what: "flush commit",
            reason,
        })
    };
    if flush.key.is_empty() {
        return invalid("object key is empty".into());
    }
    for segment in &flush.segments {
        if segment.record_count < 1 {
            return invalid(format!(
                "segment of {}-{} has {} records",
                segment.topic, segment.partition, segment.record_count
            ));
        }
        if segment.byte_offset < 0 || segment.byte_length < 0 {
            return invalid(format!(
                "segment of {}-{} has a negative byte range",
                segment.topic, segment.partition
            ));
        }
    }
    Ok(())
}

/// Segments of this flush that an earlier attempt of the same commit
/// already stored, by index, with their offsets.
pub(crate) fn committed_before(
    segments: &[PendingSegment],
    rows: &[CommittedRow],
) -> HashMap<usize, (i64, i64)> {
    let stored: BTreeMap<(&str, i32, i64), (i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                (r.topic.as_str(), r.partition_id, r.byte_offset),
                (r.base_offset, r.end_offset),
            )
        })
        .collect();
    segments
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            stored
                .get(&(s.topic.as_str(), s.partition, s.byte_offset))
                .map(|&offsets| (i, offsets))
        })
        .collect()
}

/// The distinct partitions a flush still has to commit, sorted, so that
/// locks are always taken in the same order.
pub(crate) fn flush_partitions(
    segments: &[PendingSegment],
    skip: &HashMap<usize, (i64, i64)>,
) -> Vec<(String, i32)> {
    let mut partitions: Vec<(String, i32)> = segments
        .iter()
        .enumerate()
        .filter(|(i, _)| !skip.contains_key(i))
        .map(|(_, s)| (s.topic.clone(), s.partition))
        .collect();
    partitions.sort();
    partitions.dedup();
    partitions
}

/// A partition's high watermark, read one partition at a time (SQLite).
pub(crate) const SELECT_HIGH_WATERMARK: &str = "SELECT high_watermark, first_open_txn, \
     leader_epoch FROM partitions WHERE topic = $1 AND partition_id = $2";

/// Sets one partition's high watermark (SQLite).
pub(crate) const SET_HIGH_WATERMARK: &str =
    "UPDATE partitions SET high_watermark = $3 WHERE topic = $1 AND partition_id = $2";

/// PostgreSQL's flush commit, one statement for all rows through `unnest`.
pub(crate) mod pg {
    pub(crate) const LOCK_PARTITIONS: &str = "SELECT p.topic, p.partition_id, p.high_watermark, \
         p.first_open_txn, p.leader_epoch \
         FROM partitions p \
         JOIN unnest($1::text[], $2::int[]) AS u(topic, partition_id) \
           ON p.topic = u.topic AND p.partition_id = u.partition_id \
         ORDER BY p.topic, p.partition_id \
         FOR UPDATE OF p";

    pub(crate) const UPDATE_WATERMARKS: &str = "UPDATE partitions AS p SET high_watermark = u.high_watermark \
         FROM unnest($1::text[], $2::int[], $3::bigint[]) AS u(topic, partition_id, high_watermark) \
         WHERE p.topic = u.topic AND p.partition_id = u.partition_id";

    pub(crate) const INSERT_SEGMENTS: &str = "INSERT INTO segments (topic, partition_id, base_offset, end_offset, \
         record_count, size_bytes, s3_bucket, s3_key, byte_offset, byte_length, min_timestamp, \
         max_timestamp, created_at) \
         SELECT u.topic, u.partition_id, u.base_offset, u.end_offset, u.record_count, u.size_bytes, \
                $1, $2, u.byte_offset, u.byte_length, u.min_timestamp, u.max_timestamp, $3 \
         FROM unnest($4::text[], $5::int[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], \
                     $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[]) \
              AS u(topic, partition_id, base_offset, end_offset, record_count, size_bytes, \
                   byte_offset, byte_length, min_timestamp, max_timestamp)";

    /// The schema the connection's tables live in; it names the commit
    /// notice channel.
    pub(crate) const CURRENT_SCHEMA: &str = "SELECT current_schema()::text";

    /// Announces a commit's high watermarks to every LISTENing agent.
    pub(crate) const NOTIFY_COMMIT: &str = "SELECT pg_notify($1, $2)";
}

#[async_trait]
impl<S> SegmentLog for S
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> &'q String: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i32: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<i64>: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<i16>: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i16: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> bool: Encode<'q, S::Db> + Type<S::Db>,
    for<'r> SegmentRow: FromRow<'r, <S::Db as Database>::Row>,
    for<'r> ProducerTxnRow: FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (String, i32): FromRow<'r, <S::Db as Database>::Row>,
    for<'r> CommittedRow: FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (i64, i64, i64, i64, i64): FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (i64,): FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (i32, i64): FromRow<'r, <S::Db as Database>::Row>,
{
    async fn commit_flush(
        &self,
        flush: &crate::FlushCommit,
    ) -> crate::Result<Vec<crate::SegmentOutcome>> {
        const OP: &str = "commit flush";
        validate_flush(flush)?;
        if flush.segments.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write(OP).await?;
        let previous = sqlx::query_as::<S::Db, CommittedRow>(SELECT_OBJECT_SEGMENTS)
            .bind(&flush.bucket)
            .bind(&flush.key)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        let before = committed_before(&flush.segments, &previous);
        let transactional = has_transactional(&flush.segments);
        let refused = if transactional {
            refused_batches::<S>(&mut tx, &flush.segments, &before).await?
        } else {
            HashMap::new()
        };
        let (outcomes, watermarks) = self
            .commit_flush_tx(&mut tx, flush, &before, &refused)
            .await?;
        if transactional {
            record_transactions::<S>(&mut tx, &flush.segments, &outcomes, &before).await?;
        }
        tx.commit()
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        if !watermarks.is_empty() {
            // Nobody listening is not an error.
            let _ = self.notices().send(watermarks.into());
        }
        Ok(outcomes)
    }

    async fn list_segments(
        &self,
        topic: &str,
        partition: i32,
        from_offset: i64,
        limit: usize,
    ) -> crate::Result<Vec<crate::SegmentInfo>> {
        Ok(sqlx::query_as::<S::Db, SegmentRow>(SELECT_SEGMENTS)
            .bind(topic)
            .bind(partition)
            .bind(from_offset)
            .bind(super::limit_to_i64(limit))
            .fetch_all(self.pool())
            .await
            .map_err(|e| crate::MetadataError::from_sqlx("list segments", e))?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    async fn find_segment_by_timestamp(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> crate::Result<Option<crate::SegmentInfo>> {
        Ok(
            sqlx::query_as::<S::Db, SegmentRow>(SELECT_SEGMENT_BY_TIMESTAMP)
                .bind(topic)
                .bind(partition)
                .bind(timestamp)
                .fetch_optional(self.pool())
                .await
                .map_err(|e| crate::MetadataError::from_sqlx("find segment by timestamp", e))?
                .map(Into::into),
        )
    }

    async fn replace_segments(&self, r: &crate::SegmentReplacement) -> crate::Result<bool> {
        const OP: &str = "replace segments";
        if let Some(reason) = r.invalid_reason() {
            return Err(crate::MetadataError::InvalidArgument {
                what: "segment replacement",
                reason,
            });
        }
        let mut tx = self.begin_write(OP).await?;
        let Some(log_start) = sqlx::query_scalar::<S::Db, i64>(LOCK_PARTITION)
            .bind(&r.topic)
            .bind(r.partition)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?
        else {
            return Ok(false);
        };
        if r.base_offset < log_start {
            return Ok(false);
        }
        sqlx::query(TOMBSTONE_RUN)
            .bind(r.created_at)
            .bind(&r.topic)
            .bind(r.partition)
            .bind(r.base_offset)
            .bind(r.end_offset)
            .execute(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        let deleted = sqlx::query(DELETE_RUN)
            .bind(&r.topic)
            .bind(r.partition)
            .bind(r.base_offset)
            .bind(r.end_offset)
            .execute(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        if i64::try_from(S::Db::rows_affected(&deleted)).ok() != Some(r.replaced_rows) {
            // Dropping the transaction rolls it back.
            return Ok(false);
        }
        sqlx::query(DELETE_RUN_TRANSACTIONS)
            .bind(&r.topic)
            .bind(r.partition)
            .bind(r.base_offset)
            .bind(r.end_offset)
            .execute(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        for segment in &r.segments {
            sqlx::query(INSERT_ONE_SEGMENT)
                .bind(&r.topic)
                .bind(r.partition)
                .bind(segment.base_offset)
                .bind(segment.end_offset)
                .bind(segment.record_count)
                .bind(segment.size_bytes)
                .bind(&r.bucket)
                .bind(&r.key)
                .bind(segment.byte_offset)
                .bind(segment.byte_length)
                .bind(segment.min_timestamp)
                .bind(segment.max_timestamp)
                .bind(r.created_at)
                .bind(segment.cleaned_at)
                .bind(segment.tombstones)
                .execute(&mut *tx)
                .await
                .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        }
        // The new object is referenced from now on.
        sqlx::query(super::objects::DELETE_TOMBSTONE)
            .bind(&r.bucket)
            .bind(&r.key)
            .execute(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        tx.commit()
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        Ok(true)
    }

    async fn partition_bytes(&self, topic: &str) -> crate::Result<Vec<(i32, i64)>> {
        sqlx::query_as::<S::Db, (i32, i64)>(SELECT_PARTITION_BYTES)
            .bind(topic)
            .fetch_all(self.pool())
            .await
            .map_err(|e| crate::MetadataError::from_sqlx("partition bytes", e))
    }

    async fn storage_stats(&self) -> crate::Result<crate::StorageStats> {
        let (segment_rows, objects, bytes, max_rows_per_partition, tombstones) =
            sqlx::query_as::<S::Db, (i64, i64, i64, i64, i64)>(SELECT_STORAGE_STATS)
                .fetch_one(self.pool())
                .await
                .map_err(|e| crate::MetadataError::from_sqlx("storage stats", e))?;
        Ok(crate::StorageStats {
            segment_rows,
            objects,
            bytes,
            max_rows_per_partition,
            tombstones,
        })
    }

    fn commit_notices(&self) -> tokio::sync::broadcast::Receiver<crate::CommitNotice> {
        self.subscribe_notices()
    }
}
