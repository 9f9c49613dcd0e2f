//! The transactional part of a flush commit, for every backend, inside the
//! commit's own database transaction:
//!
//! - before offsets are assigned, each transactional batch is checked
//!   against its producer's transaction (the id's current epoch, state
//!   Ongoing, the partition added), with the transaction's row locked for
//!   the rest of the commit so that EndTxn cannot slip in between;
//! - after, a partition's transaction opens at the first batch it commits
//!   there and closes at its marker, and the partition's first open
//!   transaction (its last stable offset) follows.
//!
//! Both run only for flushes holding transactional batches or markers.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Transaction, Type};

use super::LockedRow;
use super::backend::{Backend, Dialect};
use super::segments::{CONTROL_ABORT, CONTROL_COMMIT};
use super::transactions::stored_state;
use crate::error::{MetadataError, Result};
use crate::transactions::{TransactionRefusal, TransactionState};
use crate::types::{PendingSegment, SegmentOutcome, WatermarkNotice};

const OP: &str = "commit flush";

const SELECT_PRODUCER_TXN: &str =
    "SELECT transactional_id, producer_epoch, state FROM transactions WHERE producer_id = $1";

const SELECT_TXN_PARTITIONS: &str = "SELECT topic, partition_id FROM transaction_partitions \
     WHERE transactional_id = $1";

const OPEN_PARTITION_TXN: &str = "INSERT INTO partition_transactions \
     (topic, partition_id, producer_id, first_offset) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (topic, partition_id, producer_id) WHERE marker_offset IS NULL DO NOTHING";

const CLOSE_PARTITION_TXN: &str = "UPDATE partition_transactions SET marker_offset = $4, \
     aborted = $5 WHERE topic = $1 AND partition_id = $2 AND producer_id = $3 \
     AND marker_offset IS NULL";

const NOTE_OPENED: &str = "UPDATE partitions SET first_open_txn = COALESCE(first_open_txn, $3) \
     WHERE topic = $1 AND partition_id = $2";

const NOTE_CLOSED: &str = "UPDATE partitions SET first_open_txn = ( \
         SELECT MIN(first_offset) FROM partition_transactions \
         WHERE topic = $1 AND partition_id = $2 AND marker_offset IS NULL) \
     WHERE topic = $1 AND partition_id = $2";

const MARK_SEGMENT: &str = "UPDATE segments SET producer_id = $4, producer_epoch = $5, \
     control = $6 WHERE topic = $1 AND partition_id = $2 AND base_offset = $3";

#[derive(sqlx::FromRow)]
pub(crate) struct ProducerTxnRow {
    transactional_id: String,
    producer_epoch: i16,
    state: i16,
}

/// What a producer's transactional batches are checked against.
struct ProducerTransaction {
    epoch: i16,
    state: TransactionState,
    partitions: Vec<(String, i32)>,
}

/// What a commit announces: each partition's new high watermark and, unless
/// a transactional batch or marker of this commit changed its open
/// transactions, its last stable offset (`first_open` holds each
/// partition's first open transaction as the commit found it, locked).
pub(crate) fn commit_notice(
    watermarks: &[(String, i32, i64)],
    first_open: &BTreeMap<(String, i32), Option<i64>>,
    locked: &BTreeMap<(String, i32), LockedRow>,
    segments: &[PendingSegment],
    outcomes: &[SegmentOutcome],
) -> Vec<WatermarkNotice> {
    // Partitions whose transactions this commit changed; usually none.
    let changed: HashSet<(&str, i32)> = segments
        .iter()
        .zip(outcomes)
        .filter(|(segment, outcome)| {
            segment.transaction().is_some() && matches!(outcome, SegmentOutcome::Committed { .. })
        })
        .map(|(segment, _)| (segment.topic.as_str(), segment.partition))
        .collect();
    watermarks
        .iter()
        .map(|(topic, partition, high_watermark)| {
            let changed = changed.contains(&(topic.as_str(), *partition));
            let last_stable_offset = (!changed).then(|| {
                first_open
                    .get(&(topic.clone(), *partition))
                    .copied()
                    .flatten()
                    .map_or(*high_watermark, |first| first.min(*high_watermark))
            });
            WatermarkNotice {
                topic: topic.clone(),
                partition: *partition,
                high_watermark: *high_watermark,
                last_stable_offset,
                leader_epoch: locked
                    .get(&(topic.clone(), *partition))
                    .map(|row| row.leader_epoch),
            }
        })
        .collect()
}

/// Whether the flush holds anything transactional.
pub(crate) fn has_transactional(segments: &[PendingSegment]) -> bool {
    segments
        .iter()
        .any(|s| s.marker.is_some() || s.producer.is_some_and(|p| p.transactional))
}

/// The transactional batches of the flush (those not committed by an
/// earlier attempt) that their transactions refuse, by index.
pub(crate) async fn refused_batches<S>(
    tx: &mut Transaction<'static, S::Db>,
    segments: &[PendingSegment],
    before: &HashMap<usize, (i64, i64)>,
) -> Result<HashMap<usize, SegmentOutcome>>
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Type<S::Db>,
    for<'r> ProducerTxnRow: FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (String, i32): FromRow<'r, <S::Db as Database>::Row>,
{
    // Per producer id: its transaction, or None for an id never issued
    // to a transactional id.
    let mut transactions: BTreeMap<i64, Option<ProducerTransaction>> = BTreeMap::new();
    // Only constants: nothing from a client is interpolated.
    let lock = format!("{SELECT_PRODUCER_TXN}{}", S::SHARE_LOCK);
    let mut refused = HashMap::new();
    for (index, segment) in segments.iter().enumerate() {
        let Some(batch) = segment.producer.filter(|p| p.transactional) else {
            continue;
        };
        if before.contains_key(&index) {
            continue;
        }
        if let Entry::Vacant(slot) = transactions.entry(batch.producer_id) {
            let row = sqlx::query_as::<S::Db, ProducerTxnRow>(sqlx::AssertSqlSafe(lock.clone()))
                .bind(batch.producer_id)
                .fetch_optional(&mut **tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?;
            let found = match row {
                None => None,
                Some(row) => {
                    let state = stored_state(&row.transactional_id, row.state)?;
                    let partitions = sqlx::query_as::<S::Db, (String, i32)>(SELECT_TXN_PARTITIONS)
                        .bind(row.transactional_id.as_str())
                        .fetch_all(&mut **tx)
                        .await
                        .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                    Some(ProducerTransaction {
                        epoch: row.producer_epoch,
                        state,
                        partitions,
                    })
                }
            };
            slot.insert(found);
        }
        let refusal = match transactions.get(&batch.producer_id) {
            Some(Some(txn)) => {
                if batch.producer_epoch != txn.epoch {
                    Some(TransactionRefusal::Fenced)
                } else if txn.state != TransactionState::Ongoing
                    || !txn
                        .partitions
                        .iter()
                        .any(|(t, p)| *t == segment.topic && *p == segment.partition)
                {
                    Some(TransactionRefusal::InvalidState)
                } else {
                    None
                }
            }
            _ => Some(TransactionRefusal::ProducerIdMismatch),
        };
        if let Some(refusal) = refusal {
            refused.insert(index, SegmentOutcome::TransactionRefused(refusal));
        }
    }
    Ok(refused)
}

/// Opens and closes the partitions' transactions for the transactional
/// batches and markers this commit stored, and labels their segment rows.
pub(crate) async fn record_transactions<S>(
    tx: &mut Transaction<'static, S::Db>,
    segments: &[PendingSegment],
    outcomes: &[SegmentOutcome],
    before: &HashMap<usize, (i64, i64)>,
) -> Result<()>
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> bool: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i16: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<i16>: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i32: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Type<S::Db>,
{
    for (index, (segment, outcome)) in segments.iter().zip(outcomes).enumerate() {
        let SegmentOutcome::Committed { base_offset, .. } = *outcome else {
            continue;
        };
        if before.contains_key(&index) {
            continue;
        }
        let (topic, partition) = (segment.topic.as_str(), segment.partition);
        let (producer_id, producer_epoch, control) = if let Some(marker) = segment.marker {
            let commit = marker.commit.unwrap_or(false);
            sqlx::query(CLOSE_PARTITION_TXN)
                .bind(topic)
                .bind(partition)
                .bind(marker.producer_id)
                .bind(base_offset)
                .bind(!commit)
                .execute(&mut **tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?;
            sqlx::query(NOTE_CLOSED)
                .bind(topic)
                .bind(partition)
                .execute(&mut **tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?;
            let control = if commit {
                CONTROL_COMMIT
            } else {
                CONTROL_ABORT
            };
            (marker.producer_id, marker.producer_epoch, Some(control))
        } else if let Some(batch) = segment.producer.filter(|p| p.transactional) {
            let opened = sqlx::query(OPEN_PARTITION_TXN)
                .bind(topic)
                .bind(partition)
                .bind(batch.producer_id)
                .bind(base_offset)
                .execute(&mut **tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?;
            if S::Db::rows_affected(&opened) > 0 {
                sqlx::query(NOTE_OPENED)
                    .bind(topic)
                    .bind(partition)
                    .bind(base_offset)
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
            }
            (batch.producer_id, batch.producer_epoch, None)
        } else {
            continue;
        };
        sqlx::query(MARK_SEGMENT)
            .bind(topic)
            .bind(partition)
            .bind(base_offset)
            .bind(producer_id)
            .bind(producer_epoch)
            .bind(control)
            .execute(&mut **tx)
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
    }
    Ok(())
}
