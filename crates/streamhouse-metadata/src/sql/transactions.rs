//! Transaction coordinators' state, for every backend.
//!
//! Each operation reads the id's row, asks the rules in
//! `crate::transactions` what to do, and writes the result back with an
//! UPDATE conditioned on the row it read: an agent that raced another on
//! the same id changes nothing and answers CONCURRENT_TRANSACTIONS, which
//! the client retries.

use async_trait::async_trait;
use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Transaction, Type};

use super::backend::{Backend, Dialect};
use super::offsets::PARTITION_EXISTS;
use super::producers::INSERT_PRODUCER_ID;
use crate::error::{MetadataError, Result};
use crate::store::{TransactionLog, TransactionResult};
use crate::transactions::{
    EndDecision, InitDecision, Stored, TransactionInfo, TransactionRefusal, TransactionState,
    check_producer, completed, decide_add, decide_end, decide_init, prepared,
};
use crate::types::{AbortedTransaction, InitTransaction, OffsetCommit};

const SELECT_TXN: &str = "SELECT transactional_id, producer_id, producer_epoch, state, \
     timeout_ms, started_at, updated_at FROM transactions WHERE transactional_id = $1";

const SELECT_TXNS: &str = "SELECT transactional_id, producer_id, producer_epoch, state, \
     timeout_ms, started_at, updated_at FROM transactions ORDER BY transactional_id";

const INSERT_TXN: &str = "INSERT INTO transactions (transactional_id, producer_id, \
     producer_epoch, state, timeout_ms, started_at, updated_at) VALUES ($1, $2, 0, 0, $3, -1, $4) \
     ON CONFLICT (transactional_id) DO NOTHING";

/// Moves a row on only if it is still as it was read.
const UPDATE_TXN: &str = "UPDATE transactions SET producer_id = $1, producer_epoch = $2, \
     state = $3, timeout_ms = $4, started_at = $5, updated_at = $6 \
     WHERE transactional_id = $7 AND producer_id = $8 AND producer_epoch = $9 AND state = $10";

const SELECT_TXN_PARTITIONS: &str = "SELECT topic, partition_id FROM transaction_partitions \
     WHERE transactional_id = $1 ORDER BY topic, partition_id";

const INSERT_TXN_PARTITION: &str = "INSERT INTO transaction_partitions \
     (transactional_id, topic, partition_id) VALUES ($1, $2, $3) \
     ON CONFLICT (transactional_id, topic, partition_id) DO NOTHING";

const SELECT_TXN_GROUPS: &str =
    "SELECT group_id FROM transaction_groups WHERE transactional_id = $1 ORDER BY group_id";

const INSERT_TXN_GROUP: &str = "INSERT INTO transaction_groups (transactional_id, group_id) \
     VALUES ($1, $2) ON CONFLICT (transactional_id, group_id) DO NOTHING";

const UPSERT_TXN_OFFSET: &str = "INSERT INTO transaction_offsets (transactional_id, group_id, \
     topic, partition_id, committed_offset, metadata, leader_epoch) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (transactional_id, group_id, topic, partition_id) DO UPDATE SET \
     committed_offset = excluded.committed_offset, metadata = excluded.metadata, \
     leader_epoch = excluded.leader_epoch";

/// A committed transaction's offsets become its groups' committed offsets
/// (those of partitions deleted meanwhile are dropped).
const APPLY_TXN_OFFSETS: &str = "INSERT INTO consumer_offsets \
     (group_id, topic, partition_id, committed_offset, metadata, committed_at, leader_epoch) \
     SELECT t.group_id, t.topic, t.partition_id, t.committed_offset, t.metadata, $2, \
         t.leader_epoch \
     FROM transaction_offsets t WHERE t.transactional_id = $1 AND EXISTS ( \
         SELECT 1 FROM partitions p WHERE p.topic = t.topic AND p.partition_id = t.partition_id) \
     ON CONFLICT (group_id, topic, partition_id) DO UPDATE SET \
     committed_offset = excluded.committed_offset, metadata = excluded.metadata, \
     committed_at = excluded.committed_at, leader_epoch = excluded.leader_epoch";

/// States 0 Empty, 4 CompleteCommit, 5 CompleteAbort: nothing in progress.
const DELETE_IDLE_TXN: &str = "DELETE FROM transactions WHERE transactional_id = $1 \
     AND state IN (0, 4, 5) AND updated_at <= $2";
const CLEAR_TXN_PARTITIONS: &str = "DELETE FROM transaction_partitions WHERE transactional_id = $1";
const CLEAR_TXN_GROUPS: &str = "DELETE FROM transaction_groups WHERE transactional_id = $1";
const CLEAR_TXN_OFFSETS: &str = "DELETE FROM transaction_offsets WHERE transactional_id = $1";

const SELECT_OPEN_PARTITIONS: &str = "SELECT topic, partition_id FROM partition_transactions \
     WHERE producer_id = $1 AND marker_offset IS NULL ORDER BY topic, partition_id";

const SELECT_ABORTED: &str = "SELECT producer_id, first_offset, marker_offset \
     FROM partition_transactions WHERE topic = $1 AND partition_id = $2 AND aborted = $3 \
     AND marker_offset IS NOT NULL AND first_offset <= $4 AND marker_offset >= $5 \
     ORDER BY first_offset";

#[derive(sqlx::FromRow)]
pub(crate) struct TxnRow {
    transactional_id: String,
    producer_id: i64,
    producer_epoch: i16,
    state: i16,
    timeout_ms: i32,
    started_at: i64,
    updated_at: i64,
}

impl TxnRow {
    fn stored(&self) -> Result<Stored> {
        Ok(Stored {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            state: self.state()?,
        })
    }

    fn state(&self) -> Result<TransactionState> {
        stored_state(&self.transactional_id, self.state)
    }
}

/// A `transactions.state` code read back.
pub(crate) fn stored_state(transactional_id: &str, code: i16) -> Result<TransactionState> {
    TransactionState::from_code(code).ok_or_else(|| MetadataError::CorruptRow {
        what: "transaction state",
        detail: format!("{transactional_id:?} has state {code}"),
    })
}

#[derive(sqlx::FromRow)]
pub(crate) struct AbortedRow {
    producer_id: i64,
    first_offset: i64,
    marker_offset: i64,
}

/// A row's new values, written only over the row as it was read.
struct Update {
    producer_id: i64,
    producer_epoch: i16,
    state: TransactionState,
    timeout_ms: i32,
    started_at: i64,
}

#[async_trait]
impl<S> TransactionLog for S
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q str>: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> bool: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i16: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i32: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Type<S::Db>,
    for<'r> i64: Decode<'r, S::Db>,
    for<'r> TxnRow: FromRow<'r, <S::Db as Database>::Row>,
    for<'r> AbortedRow: FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (i64,): FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (String,): FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (String, i32): FromRow<'r, <S::Db as Database>::Row>,
{
    async fn init_transaction(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> TransactionResult<InitTransaction> {
        const OP: &str = "init transaction";
        check_id(transactional_id)?;
        if timeout_ms <= 0 {
            return Err(MetadataError::InvalidArgument {
                what: "transaction timeout",
                reason: format!("{timeout_ms} ms is not positive"),
            });
        }
        let now = self.clock().now_ms();
        let mut tx = self.begin_write(OP).await?;
        let row = select_txn::<S>(&mut tx, transactional_id, OP).await?;
        let stored = row.as_ref().map(TxnRow::stored).transpose()?;
        let answer = match decide_init(stored, expected) {
            InitDecision::Refuse(refusal) => return Ok(Err(refusal)),
            InitDecision::Current => {
                let Some(stored) = stored else {
                    return Ok(Err(TransactionRefusal::ProducerIdMismatch));
                };
                InitTransaction::Ready {
                    producer_id: stored.producer_id,
                    producer_epoch: stored.producer_epoch,
                }
            }
            InitDecision::NewProducerId => {
                let producer_id: i64 = sqlx::query_scalar(INSERT_PRODUCER_ID)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                let moved = match stored {
                    None => {
                        let inserted = sqlx::query(INSERT_TXN)
                            .bind(transactional_id)
                            .bind(producer_id)
                            .bind(timeout_ms)
                            .bind(now)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                        S::Db::rows_affected(&inserted) == 1
                    }
                    Some(stored) => {
                        let update = Update {
                            producer_id,
                            producer_epoch: 0,
                            state: TransactionState::Empty,
                            timeout_ms,
                            started_at: -1,
                        };
                        update_txn::<S>(&mut tx, transactional_id, stored, update, now, OP).await?
                    }
                };
                if !moved {
                    return Ok(Err(TransactionRefusal::Concurrent));
                }
                clear_txn::<S>(&mut tx, transactional_id, OP).await?;
                InitTransaction::Ready {
                    producer_id,
                    producer_epoch: 0,
                }
            }
            InitDecision::Epoch(epoch) => {
                let Some(stored) = stored else {
                    return Ok(Err(TransactionRefusal::ProducerIdMismatch));
                };
                let update = Update {
                    producer_id: stored.producer_id,
                    producer_epoch: epoch,
                    state: TransactionState::Empty,
                    timeout_ms,
                    started_at: -1,
                };
                if !update_txn::<S>(&mut tx, transactional_id, stored, update, now, OP).await? {
                    return Ok(Err(TransactionRefusal::Concurrent));
                }
                clear_txn::<S>(&mut tx, transactional_id, OP).await?;
                InitTransaction::Ready {
                    producer_id: stored.producer_id,
                    producer_epoch: epoch,
                }
            }
            InitDecision::AbortOpen(epoch) => {
                let (Some(stored), Some(row)) = (stored, row.as_ref()) else {
                    return Ok(Err(TransactionRefusal::ProducerIdMismatch));
                };
                let update = Update {
                    producer_id: stored.producer_id,
                    producer_epoch: epoch,
                    state: TransactionState::PrepareAbort,
                    timeout_ms: row.timeout_ms,
                    started_at: row.started_at,
                };
                if !update_txn::<S>(&mut tx, transactional_id, stored, update, now, OP).await? {
                    return Ok(Err(TransactionRefusal::Concurrent));
                }
                InitTransaction::Aborting(load_info::<S>(&mut tx, transactional_id, OP).await?)
            }
        };
        tx.commit()
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        Ok(Ok(answer))
    }

    async fn add_transaction_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> TransactionResult<()> {
        const OP: &str = "add partitions to transaction";
        let mut tx = self.begin_write(OP).await?;
        if let Err(refusal) = open_txn::<S>(
            self,
            &mut tx,
            transactional_id,
            producer_id,
            producer_epoch,
            OP,
        )
        .await?
        {
            return Ok(Err(refusal));
        }
        for (topic, partition) in partitions {
            check_partition::<S>(&mut tx, topic, *partition, OP).await?;
            sqlx::query(INSERT_TXN_PARTITION)
                .bind(transactional_id)
                .bind(topic.as_str())
                .bind(*partition)
                .execute(&mut *tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        }
        tx.commit()
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        Ok(Ok(()))
    }

    async fn add_transaction_group(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group: &str,
    ) -> TransactionResult<()> {
        const OP: &str = "add offsets to transaction";
        if group.is_empty() {
            return Err(MetadataError::InvalidArgument {
                what: "group id",
                reason: "must not be empty".into(),
            });
        }
        let mut tx = self.begin_write(OP).await?;
        if let Err(refusal) = open_txn::<S>(
            self,
            &mut tx,
            transactional_id,
            producer_id,
            producer_epoch,
            OP,
        )
        .await?
        {
            return Ok(Err(refusal));
        }
        sqlx::query(INSERT_TXN_GROUP)
            .bind(transactional_id)
            .bind(group)
            .execute(&mut *tx)
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        tx.commit()
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        Ok(Ok(()))
    }

    async fn stage_transaction_offsets(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group: &str,
        offsets: &[OffsetCommit],
    ) -> TransactionResult<()> {
        const OP: &str = "commit offsets in transaction";
        let mut tx = self.begin_write(OP).await?;
        let row = select_txn::<S>(&mut tx, transactional_id, OP).await?;
        let stored = row.as_ref().map(TxnRow::stored).transpose()?;
        let stored = match check_producer(stored, producer_id, producer_epoch) {
            Ok(stored) => stored,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let groups: Vec<String> = sqlx::query_scalar(SELECT_TXN_GROUPS)
            .bind(transactional_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        if stored.state != TransactionState::Ongoing || !groups.iter().any(|g| g == group) {
            return Ok(Err(TransactionRefusal::InvalidState));
        }
        for offset in offsets {
            check_partition::<S>(&mut tx, &offset.topic, offset.partition, OP).await?;
            sqlx::query(UPSERT_TXN_OFFSET)
                .bind(transactional_id)
                .bind(group)
                .bind(offset.topic.as_str())
                .bind(offset.partition)
                .bind(offset.offset)
                .bind(offset.metadata.as_deref())
                .bind(offset.leader_epoch)
                .execute(&mut *tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        }
        tx.commit()
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        Ok(Ok(()))
    }

    async fn end_transaction(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> TransactionResult<(EndDecision, TransactionInfo)> {
        const OP: &str = "end transaction";
        let now = self.clock().now_ms();
        let mut tx = self.begin_write(OP).await?;
        let row = select_txn::<S>(&mut tx, transactional_id, OP).await?;
        let stored = row.as_ref().map(TxnRow::stored).transpose()?;
        let decision = match decide_end(stored, producer_id, producer_epoch, commit) {
            Ok(decision) => decision,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if let (EndDecision::Prepared, Some(stored), Some(row)) = (decision, stored, row.as_ref()) {
            let update = Update {
                producer_id,
                producer_epoch,
                state: prepared(commit),
                timeout_ms: row.timeout_ms,
                started_at: row.started_at,
            };
            if !update_txn::<S>(&mut tx, transactional_id, stored, update, now, OP).await? {
                return Ok(Err(TransactionRefusal::Concurrent));
            }
        }
        let info = load_info::<S>(&mut tx, transactional_id, OP).await?;
        tx.commit()
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        Ok(Ok((decision, info)))
    }

    async fn abort_open_transaction(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<Option<TransactionInfo>> {
        const OP: &str = "abort transaction";
        let now = self.clock().now_ms();
        let mut tx = self.begin_write(OP).await?;
        let Some(row) = select_txn::<S>(&mut tx, transactional_id, OP).await? else {
            return Ok(None);
        };
        let stored = row.stored()?;
        if stored.producer_id != producer_id
            || stored.producer_epoch != producer_epoch
            || stored.state != TransactionState::Ongoing
        {
            return Ok(None);
        }
        let update = Update {
            producer_id,
            // Fenced: the producer's next request fails.
            producer_epoch: producer_epoch
                .saturating_add(1)
                .min(crate::transactions::LAST_EPOCH),
            state: TransactionState::PrepareAbort,
            timeout_ms: row.timeout_ms,
            started_at: row.started_at,
        };
        if !update_txn::<S>(&mut tx, transactional_id, stored, update, now, OP).await? {
            return Ok(None);
        }
        let info = load_info::<S>(&mut tx, transactional_id, OP).await?;
        tx.commit()
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        Ok(Some(info))
    }

    async fn forget_transactional_id(
        &self,
        transactional_id: &str,
        idle_since: i64,
    ) -> Result<bool> {
        const OP: &str = "forget transactional id";
        let mut tx = self.begin_write(OP).await?;
        let deleted = sqlx::query(DELETE_IDLE_TXN)
            .bind(transactional_id)
            .bind(idle_since)
            .execute(&mut *tx)
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        if S::Db::rows_affected(&deleted) == 0 {
            return Ok(false);
        }
        for clear in [CLEAR_TXN_PARTITIONS, CLEAR_TXN_GROUPS, CLEAR_TXN_OFFSETS] {
            sqlx::query(clear)
                .bind(transactional_id)
                .execute(&mut *tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        }
        tx.commit()
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        Ok(true)
    }

    async fn complete_transaction(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<bool> {
        const OP: &str = "complete transaction";
        let now = self.clock().now_ms();
        let mut tx = self.begin_write(OP).await?;
        let Some(row) = select_txn::<S>(&mut tx, transactional_id, OP).await? else {
            return Ok(false);
        };
        let stored = row.stored()?;
        let Some(state) = completed(stored.state) else {
            return Ok(false);
        };
        if stored.producer_id != producer_id || stored.producer_epoch != producer_epoch {
            return Ok(false);
        }
        if state == TransactionState::CompleteCommit {
            sqlx::query(APPLY_TXN_OFFSETS)
                .bind(transactional_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        }
        let update = Update {
            producer_id,
            producer_epoch,
            state,
            timeout_ms: row.timeout_ms,
            started_at: -1,
        };
        if !update_txn::<S>(&mut tx, transactional_id, stored, update, now, OP).await? {
            return Ok(false);
        }
        clear_txn::<S>(&mut tx, transactional_id, OP).await?;
        tx.commit()
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        Ok(true)
    }

    async fn open_transaction_partitions(&self, producer_id: i64) -> Result<Vec<(String, i32)>> {
        sqlx::query_as::<S::Db, (String, i32)>(SELECT_OPEN_PARTITIONS)
            .bind(producer_id)
            .fetch_all(self.pool())
            .await
            .map_err(|e| MetadataError::from_sqlx("list open transaction partitions", e))
    }

    async fn describe_transaction(
        &self,
        transactional_id: &str,
    ) -> Result<Option<TransactionInfo>> {
        const OP: &str = "describe transaction";
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        if select_txn::<S>(&mut tx, transactional_id, OP)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let info = load_info::<S>(&mut tx, transactional_id, OP).await?;
        tx.commit()
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        Ok(Some(info))
    }

    async fn list_transactions(&self) -> Result<Vec<TransactionInfo>> {
        const OP: &str = "list transactions";
        let rows = sqlx::query_as::<S::Db, TxnRow>(SELECT_TXNS)
            .fetch_all(self.pool())
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        rows.into_iter()
            .map(|row| info_of(row, Vec::new(), Vec::new()))
            .collect()
    }

    async fn aborted_transactions(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        to: i64,
    ) -> Result<Vec<AbortedTransaction>> {
        let rows = sqlx::query_as::<S::Db, AbortedRow>(SELECT_ABORTED)
            .bind(topic)
            .bind(partition)
            .bind(true)
            .bind(to)
            .bind(from)
            .fetch_all(self.pool())
            .await
            .map_err(|e| MetadataError::from_sqlx("list aborted transactions", e))?;
        Ok(rows
            .into_iter()
            .map(|row| AbortedTransaction {
                producer_id: row.producer_id,
                first_offset: row.first_offset,
                marker_offset: row.marker_offset,
            })
            .collect())
    }
}

fn check_id(transactional_id: &str) -> Result<()> {
    if transactional_id.is_empty() {
        return Err(MetadataError::InvalidArgument {
            what: "transactional id",
            reason: "must not be empty".into(),
        });
    }
    Ok(())
}

async fn select_txn<S>(
    tx: &mut Transaction<'static, S::Db>,
    transactional_id: &str,
    op: &'static str,
) -> Result<Option<TxnRow>>
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'r> TxnRow: FromRow<'r, <S::Db as Database>::Row>,
{
    sqlx::query_as::<S::Db, TxnRow>(SELECT_TXN)
        .bind(transactional_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| MetadataError::from_sqlx(op, e))
}

/// Writes `update` over the row if it is still `read`; false if another
/// agent changed it first.
async fn update_txn<S>(
    tx: &mut Transaction<'static, S::Db>,
    transactional_id: &str,
    read: Stored,
    update: Update,
    now: i64,
    op: &'static str,
) -> Result<bool>
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i16: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i32: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Type<S::Db>,
{
    let updated = sqlx::query(UPDATE_TXN)
        .bind(update.producer_id)
        .bind(update.producer_epoch)
        .bind(update.state.code())
        .bind(update.timeout_ms)
        .bind(update.started_at)
        .bind(now)
        .bind(transactional_id)
        .bind(read.producer_id)
        .bind(read.producer_epoch)
        .bind(read.state.code())
        .execute(&mut **tx)
        .await
        .map_err(|e| MetadataError::from_sqlx(op, e))?;
    Ok(S::Db::rows_affected(&updated) == 1)
}

/// Forgets the partitions, groups and offsets of the id's last
/// transaction.
async fn clear_txn<S>(
    tx: &mut Transaction<'static, S::Db>,
    transactional_id: &str,
    op: &'static str,
) -> Result<()>
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
{
    for statement in [CLEAR_TXN_PARTITIONS, CLEAR_TXN_GROUPS, CLEAR_TXN_OFFSETS] {
        sqlx::query(statement)
            .bind(transactional_id)
            .execute(&mut **tx)
            .await
            .map_err(|e| MetadataError::from_sqlx(op, e))?;
    }
    Ok(())
}

/// Checks the producer and starts the transaction unless it is open.
async fn open_txn<S>(
    store: &S,
    tx: &mut Transaction<'static, S::Db>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    op: &'static str,
) -> TransactionResult<()>
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i16: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i32: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Type<S::Db>,
    for<'r> TxnRow: FromRow<'r, <S::Db as Database>::Row>,
{
    let row = select_txn::<S>(tx, transactional_id, op).await?;
    let stored = row.as_ref().map(TxnRow::stored).transpose()?;
    let open = match decide_add(stored, producer_id, producer_epoch) {
        Ok(open) => open,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let (Some(stored), Some(row)) = (stored, row) else {
        return Ok(Err(TransactionRefusal::ProducerIdMismatch));
    };
    if !open {
        let now = store.clock().now_ms();
        let update = Update {
            producer_id,
            producer_epoch,
            state: TransactionState::Ongoing,
            timeout_ms: row.timeout_ms,
            started_at: now,
        };
        if !update_txn::<S>(tx, transactional_id, stored, update, now, op).await? {
            return Ok(Err(TransactionRefusal::Concurrent));
        }
        clear_txn::<S>(tx, transactional_id, op).await?;
    }
    Ok(Ok(()))
}

async fn check_partition<S>(
    tx: &mut Transaction<'static, S::Db>,
    topic: &str,
    partition: i32,
    op: &'static str,
) -> Result<()>
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i32: Encode<'q, S::Db> + Type<S::Db>,
    for<'r> (i64,): FromRow<'r, <S::Db as Database>::Row>,
{
    let (exists,): (i64,) = sqlx::query_as(PARTITION_EXISTS)
        .bind(topic)
        .bind(partition)
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| MetadataError::from_sqlx(op, e))?;
    if exists == 0 {
        return Err(MetadataError::PartitionNotFound {
            topic: topic.to_string(),
            partition,
        });
    }
    Ok(())
}

/// The id's state with its partitions and groups.
async fn load_info<S>(
    tx: &mut Transaction<'static, S::Db>,
    transactional_id: &str,
    op: &'static str,
) -> Result<TransactionInfo>
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'r> TxnRow: FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (String,): FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (String, i32): FromRow<'r, <S::Db as Database>::Row>,
{
    let row = select_txn::<S>(tx, transactional_id, op)
        .await?
        .ok_or_else(|| MetadataError::CorruptRow {
            what: "transaction state",
            detail: format!("{transactional_id:?} vanished inside its own transaction"),
        })?;
    let partitions = sqlx::query_as::<S::Db, (String, i32)>(SELECT_TXN_PARTITIONS)
        .bind(transactional_id)
        .fetch_all(&mut **tx)
        .await
        .map_err(|e| MetadataError::from_sqlx(op, e))?;
    let groups = sqlx::query_as::<S::Db, (String,)>(SELECT_TXN_GROUPS)
        .bind(transactional_id)
        .fetch_all(&mut **tx)
        .await
        .map_err(|e| MetadataError::from_sqlx(op, e))?
        .into_iter()
        .map(|(group,)| group)
        .collect();
    info_of(row, partitions, groups)
}

fn info_of(
    row: TxnRow,
    partitions: Vec<(String, i32)>,
    groups: Vec<String>,
) -> Result<TransactionInfo> {
    let state = row.state()?;
    Ok(TransactionInfo {
        transactional_id: row.transactional_id,
        producer_id: row.producer_id,
        producer_epoch: row.producer_epoch,
        state,
        timeout_ms: row.timeout_ms,
        started_at: row.started_at,
        updated_at: row.updated_at,
        partitions,
        groups,
    })
}
