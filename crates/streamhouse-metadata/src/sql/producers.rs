//! Idempotent producers: ids, epochs and the recent batches a flush
//! commit checks sequences against.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

use super::backend::Backend;
use super::{BatchMeta, ProducerKey, ProducerState};
use crate::store::ProducerRegistry;
use crate::types::{ActiveProducer, PendingSegment};

pub(crate) const SELECT_PRODUCER_BATCHES: &str = "SELECT producer_id, topic, partition_id, \
     producer_epoch, first_sequence, last_sequence, base_offset, end_offset \
     FROM producer_batches WHERE producer_id = $1 AND topic = $2 AND partition_id = $3";

pub(crate) const INSERT_PRODUCER_BATCH: &str = "INSERT INTO producer_batches (producer_id, topic, \
     partition_id, producer_epoch, first_sequence, last_sequence, base_offset, end_offset) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Keeps the newest `$4 + 1` batches of a producer on a partition.
pub(crate) const TRIM_PRODUCER_BATCHES: &str = "DELETE FROM producer_batches \
     WHERE producer_id = $1 AND topic = $2 AND partition_id = $3 AND base_offset < ( \
         SELECT base_offset FROM producer_batches \
         WHERE producer_id = $1 AND topic = $2 AND partition_id = $3 \
         ORDER BY base_offset DESC LIMIT 1 OFFSET $4)";

pub(crate) const INSERT_PRODUCER_ID: &str =
    "INSERT INTO producer_ids (created_at) VALUES ($1) RETURNING producer_id";

pub(crate) const BUMP_PRODUCER_EPOCH: &str = "UPDATE producer_ids SET producer_epoch = \
     producer_epoch + 1 WHERE producer_id = $1 AND producer_epoch = $2 AND producer_epoch < 32767 \
     RETURNING producer_epoch";

/// Each producer's newest batch on a partition, the largest timestamp of
/// the segment holding it, and its open transaction's first offset.
pub(crate) const SELECT_ACTIVE_PRODUCERS: &str = "SELECT b.producer_id, b.producer_epoch, \
     b.last_sequence, \
     COALESCE((SELECT s.max_timestamp FROM segments s \
               WHERE s.topic = b.topic AND s.partition_id = b.partition_id \
                 AND s.base_offset <= b.end_offset AND s.end_offset >= b.end_offset \
               ORDER BY s.base_offset DESC LIMIT 1), -1) AS last_timestamp, \
     (SELECT t.first_offset FROM partition_transactions t \
      WHERE t.topic = b.topic AND t.partition_id = b.partition_id \
        AND t.producer_id = b.producer_id AND t.marker_offset IS NULL) AS txn_start \
     FROM producer_batches b \
     WHERE b.topic = $1 AND b.partition_id = $2 AND b.base_offset = ( \
         SELECT MAX(n.base_offset) FROM producer_batches n \
         WHERE n.producer_id = b.producer_id AND n.topic = b.topic \
           AND n.partition_id = b.partition_id) \
     ORDER BY b.producer_id";

/// The (producer, topic, partition) keys whose state a flush needs.
pub(crate) fn producer_keys(
    segments: &[PendingSegment],
    skip: &HashMap<usize, (i64, i64)>,
) -> Vec<ProducerKey> {
    let mut keys: Vec<ProducerKey> = segments
        .iter()
        .enumerate()
        .filter(|(i, _)| !skip.contains_key(i))
        .filter_map(|(_, s)| {
            s.producer
                .map(|p| (p.producer_id, s.topic.clone(), s.partition))
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// A stored producer batch as read back.
#[derive(sqlx::FromRow)]
pub(crate) struct ProducerBatchRow {
    producer_id: i64,
    topic: String,
    partition_id: i32,
    producer_epoch: i16,
    first_sequence: i32,
    last_sequence: i32,
    base_offset: i64,
    end_offset: i64,
}

/// Groups stored batches by producer and partition, oldest first.
pub(crate) fn producer_state(rows: Vec<ProducerBatchRow>) -> ProducerState {
    let mut state = ProducerState::new();
    for row in rows {
        state
            .entry((row.producer_id, row.topic, row.partition_id))
            .or_default()
            .push(BatchMeta {
                producer_epoch: row.producer_epoch,
                first_sequence: row.first_sequence,
                last_sequence: row.last_sequence,
                base_offset: row.base_offset,
                end_offset: row.end_offset,
            });
    }
    for batches in state.values_mut() {
        batches.sort_by_key(|b| b.base_offset);
    }
    state
}

/// PostgreSQL's producer state in a flush commit, one statement for all rows through `unnest`.
pub(crate) mod pg {
    pub(crate) const SELECT_PRODUCER_STATE: &str = "SELECT b.producer_id, b.topic, b.partition_id, \
         b.producer_epoch, b.first_sequence, b.last_sequence, b.base_offset, b.end_offset \
         FROM producer_batches b \
         JOIN unnest($1::bigint[], $2::text[], $3::int[]) AS u(producer_id, topic, partition_id) \
           ON b.producer_id = u.producer_id AND b.topic = u.topic AND b.partition_id = u.partition_id";

    pub(crate) const INSERT_PRODUCER_BATCHES: &str = "INSERT INTO producer_batches (producer_id, topic, \
         partition_id, producer_epoch, first_sequence, last_sequence, base_offset, end_offset) \
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::smallint[], $5::int[], \
                              $6::int[], $7::bigint[], $8::bigint[])";

    /// Keeps the newest `$4` batches of each producer and partition touched.
    pub(crate) const TRIM_PRODUCER_STATE: &str = "DELETE FROM producer_batches b USING ( \
             SELECT producer_id, topic, partition_id, base_offset, \
                    row_number() OVER (PARTITION BY producer_id, topic, partition_id \
                                       ORDER BY base_offset DESC) AS newest \
             FROM producer_batches \
             WHERE (producer_id, topic, partition_id) IN \
                   (SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[]))) old \
         WHERE old.newest > $4 AND b.producer_id = old.producer_id AND b.topic = old.topic \
           AND b.partition_id = old.partition_id AND b.base_offset = old.base_offset";
}

#[async_trait]
impl<S> ProducerRegistry for S
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> i16: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Type<S::Db>,
    for<'r> (i16,): FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (i64,): FromRow<'r, <S::Db as Database>::Row>,
    for<'q> i32: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'r> (i64, i16, i32, i64, Option<i64>): FromRow<'r, <S::Db as Database>::Row>,
{
    async fn allocate_producer_id(&self) -> crate::Result<i64> {
        sqlx::query_scalar::<S::Db, i64>(INSERT_PRODUCER_ID)
            .bind(self.clock().now_ms())
            .fetch_one(self.pool())
            .await
            .map_err(|e| crate::MetadataError::from_sqlx("allocate producer id", e))
    }

    async fn bump_producer_epoch(
        &self,
        producer_id: i64,
        epoch: i16,
    ) -> crate::Result<Option<i16>> {
        sqlx::query_scalar::<S::Db, i16>(BUMP_PRODUCER_EPOCH)
            .bind(producer_id)
            .bind(epoch)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| crate::MetadataError::from_sqlx("bump producer epoch", e))
    }

    async fn describe_producers(
        &self,
        topic: &str,
        partition: i32,
    ) -> crate::Result<Vec<ActiveProducer>> {
        let rows =
            sqlx::query_as::<S::Db, (i64, i16, i32, i64, Option<i64>)>(SELECT_ACTIVE_PRODUCERS)
                .bind(topic)
                .bind(partition)
                .fetch_all(self.pool())
                .await
                .map_err(|e| crate::MetadataError::from_sqlx("describe producers", e))?;
        Ok(rows
            .into_iter()
            .map(
                |(producer_id, producer_epoch, last_sequence, last_timestamp, txn_start)| {
                    ActiveProducer {
                        producer_id,
                        producer_epoch,
                        last_sequence,
                        last_timestamp,
                        current_txn_start_offset: txn_start,
                    }
                },
            )
            .collect())
    }
}
