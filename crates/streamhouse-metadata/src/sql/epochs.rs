//! Leader epochs: bumping a partition's when its leader moves, and the
//! history of where each epoch started (Kafka's leader epoch cache).

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

use super::backend::Backend;
use crate::store::LeaderEpochs;
use crate::types::{BumpedEpoch, EpochStart, LeaderEpochTable, LeaderMove, PartitionEpoch};

/// Bumps the epoch of partition `$1`-`$2` unless `$3` already leads it,
/// returning what the new epoch starts at and the log start offset.
/// The caller holds the row's lock (taken in the flush commit's order).
pub(crate) const BUMP_EPOCH: &str = "UPDATE partitions \
     SET leader_epoch = leader_epoch + 1, leader = $3 \
     WHERE topic = $1 AND partition_id = $2 AND (leader IS NULL OR leader <> $3) \
     RETURNING leader_epoch, high_watermark, log_start_offset";

/// Drops the epochs a bump leaves useless: one starting at the new epoch's
/// start offset `$3` (nothing was written in it), and those wholly below
/// the log start offset `$4` (all but the last one starting at or below
/// it).
pub(crate) const TRIM_EPOCHS: &str = "DELETE FROM partition_epochs \
     WHERE topic = $1 AND partition_id = $2 AND (start_offset >= $3 OR epoch < COALESCE( \
         (SELECT MAX(epoch) FROM partition_epochs \
          WHERE topic = $1 AND partition_id = $2 AND start_offset <= $4), 0))";

pub(crate) const INSERT_EPOCH: &str = "INSERT INTO partition_epochs \
     (topic, partition_id, epoch, start_offset) VALUES ($1, $2, $3, $4)";

pub(crate) const BUMP_EPOCHS_VERSION: &str =
    "UPDATE leader_epochs_version SET version = version + 1 WHERE id = 1";

pub(crate) const SELECT_EPOCHS_VERSION: &str =
    "SELECT version FROM leader_epochs_version WHERE id = 1";

pub(crate) const SELECT_LEADER_EPOCHS: &str = "SELECT topic, partition_id, leader_epoch, leader \
     FROM partitions WHERE leader_epoch > 0 OR leader IS NOT NULL ORDER BY topic, partition_id";

pub(crate) const SELECT_EPOCH_HISTORY: &str = "SELECT epoch, start_offset FROM partition_epochs \
     WHERE topic = $1 AND partition_id = $2 ORDER BY epoch";

#[async_trait]
impl<S> LeaderEpochs for S
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i32: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Type<S::Db>,
    for<'r> (i32, i64, i64): FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (i32, i64): FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (String, i32, i32, Option<String>): FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (i64,): FromRow<'r, <S::Db as Database>::Row>,
{
    async fn move_leaders(&self, moves: &[LeaderMove]) -> crate::Result<Vec<BumpedEpoch>> {
        const OP: &str = "move leaders";
        if moves.is_empty() {
            return Ok(Vec::new());
        }
        // One move per partition (the last one named wins), in lock order.
        let mut moves: Vec<&LeaderMove> = moves.iter().collect();
        moves.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        moves.dedup_by(|later, earlier| {
            let same = later.topic == earlier.topic && later.partition == earlier.partition;
            if same {
                *earlier = *later;
            }
            same
        });
        let mut tx = self.begin_write(OP).await?;
        let partitions: Vec<(String, i32)> = moves
            .iter()
            .map(|m| (m.topic.clone(), m.partition))
            .collect();
        self.lock_partitions_tx(&mut tx, &partitions).await?;
        let mut bumped = Vec::new();
        for change in moves {
            let row: Option<(i32, i64, i64)> = sqlx::query_as(BUMP_EPOCH)
                .bind(change.topic.as_str())
                .bind(change.partition)
                .bind(change.leader.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
            let Some((epoch, start_offset, log_start_offset)) = row else {
                continue;
            };
            sqlx::query(TRIM_EPOCHS)
                .bind(change.topic.as_str())
                .bind(change.partition)
                .bind(start_offset)
                .bind(log_start_offset)
                .execute(&mut *tx)
                .await
                .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
            sqlx::query(INSERT_EPOCH)
                .bind(change.topic.as_str())
                .bind(change.partition)
                .bind(epoch)
                .bind(start_offset)
                .execute(&mut *tx)
                .await
                .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
            bumped.push(BumpedEpoch {
                topic: change.topic.clone(),
                partition: change.partition,
                leader: change.leader.clone(),
                epoch: EpochStart {
                    epoch,
                    start_offset,
                },
            });
        }
        if !bumped.is_empty() {
            sqlx::query(BUMP_EPOCHS_VERSION)
                .execute(&mut *tx)
                .await
                .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        }
        tx.commit()
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        Ok(bumped)
    }

    async fn leader_epochs_version(&self) -> crate::Result<i64> {
        sqlx::query_scalar::<S::Db, i64>(SELECT_EPOCHS_VERSION)
            .fetch_one(self.pool())
            .await
            .map_err(|e| crate::MetadataError::from_sqlx("read leader epochs version", e))
    }

    async fn leader_epochs(&self) -> crate::Result<LeaderEpochTable> {
        const OP: &str = "read leader epochs";
        // The version first: epochs read after it are at least as new.
        let version = self.leader_epochs_version().await?;
        let epochs =
            sqlx::query_as::<S::Db, (String, i32, i32, Option<String>)>(SELECT_LEADER_EPOCHS)
                .fetch_all(self.pool())
                .await
                .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?
                .into_iter()
                .map(|(topic, partition, leader_epoch, leader)| PartitionEpoch {
                    topic,
                    partition,
                    leader_epoch,
                    leader,
                })
                .collect();
        Ok(LeaderEpochTable { version, epochs })
    }

    async fn epoch_history(&self, topic: &str, partition: i32) -> crate::Result<Vec<EpochStart>> {
        Ok(sqlx::query_as::<S::Db, (i32, i64)>(SELECT_EPOCH_HISTORY)
            .bind(topic)
            .bind(partition)
            .fetch_all(self.pool())
            .await
            .map_err(|e| crate::MetadataError::from_sqlx("read epoch history", e))?
            .into_iter()
            .map(|(epoch, start_offset)| EpochStart {
                epoch,
                start_offset,
            })
            .collect())
    }
}
