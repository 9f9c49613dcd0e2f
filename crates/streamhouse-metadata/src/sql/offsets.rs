//! Consumer groups' committed offsets.

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

use super::backend::{Backend, Dialect};
use crate::store::GroupOffsets;
use crate::types::CommittedOffset;

pub(crate) const UPSERT_OFFSET: &str = "INSERT INTO consumer_offsets \
     (group_id, topic, partition_id, committed_offset, metadata, committed_at, leader_epoch) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (group_id, topic, partition_id) DO UPDATE SET \
     committed_offset = excluded.committed_offset, metadata = excluded.metadata, \
     committed_at = excluded.committed_at, leader_epoch = excluded.leader_epoch";

pub(crate) const PARTITION_EXISTS: &str =
    "SELECT COUNT(*) FROM partitions WHERE topic = $1 AND partition_id = $2";

pub(crate) const SELECT_GROUP_OFFSETS: &str = "SELECT group_id, topic, partition_id, committed_offset, \
     metadata, committed_at, leader_epoch FROM consumer_offsets WHERE group_id = $1 \
     ORDER BY topic, partition_id";

pub(crate) const SELECT_GROUPS: &str =
    "SELECT DISTINCT group_id FROM consumer_offsets ORDER BY group_id";

pub(crate) const DELETE_GROUP: &str = "DELETE FROM consumer_offsets WHERE group_id = $1";

pub(crate) const DELETE_OFFSET: &str = "DELETE FROM consumer_offsets \
     WHERE group_id = $1 AND topic = $2 AND partition_id = $3";

pub(crate) const EXPIRE_OFFSETS: &str =
    "DELETE FROM consumer_offsets WHERE group_id = $1 AND committed_at < $2";

#[derive(sqlx::FromRow)]
pub(crate) struct OffsetRow {
    group_id: String,
    topic: String,
    partition_id: i32,
    committed_offset: i64,
    metadata: Option<String>,
    committed_at: i64,
    leader_epoch: i32,
}

impl From<OffsetRow> for CommittedOffset {
    fn from(row: OffsetRow) -> Self {
        Self {
            group: row.group_id,
            topic: row.topic,
            partition: row.partition_id,
            offset: row.committed_offset,
            metadata: row.metadata,
            committed_at: row.committed_at,
            leader_epoch: row.leader_epoch,
        }
    }
}

#[async_trait]
impl<S> GroupOffsets for S
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> &'q String: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q str>: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i32: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Type<S::Db>,
    for<'r> OffsetRow: FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (i64,): FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (String,): FromRow<'r, <S::Db as Database>::Row>,
{
    async fn commit_offsets(
        &self,
        group: &str,
        offsets: &[crate::OffsetCommit],
    ) -> crate::Result<()> {
        const OP: &str = "commit offsets";
        if group.is_empty() {
            return Err(crate::MetadataError::InvalidArgument {
                what: "group id",
                reason: "must not be empty".into(),
            });
        }
        let now = self.clock().now_ms();
        let mut tx = self.begin_write(OP).await?;
        for commit in offsets {
            let exists: i64 = sqlx::query_scalar(PARTITION_EXISTS)
                .bind(&commit.topic)
                .bind(commit.partition)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
            if exists == 0 {
                return Err(crate::MetadataError::PartitionNotFound {
                    topic: commit.topic.clone(),
                    partition: commit.partition,
                });
            }
            sqlx::query(UPSERT_OFFSET)
                .bind(group)
                .bind(&commit.topic)
                .bind(commit.partition)
                .bind(commit.offset)
                .bind(commit.metadata.as_deref())
                .bind(now)
                .bind(commit.leader_epoch)
                .execute(&mut *tx)
                .await
                .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        }
        tx.commit()
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        Ok(())
    }

    async fn fetch_offsets(&self, group: &str) -> crate::Result<Vec<crate::CommittedOffset>> {
        Ok(sqlx::query_as::<S::Db, OffsetRow>(SELECT_GROUP_OFFSETS)
            .bind(group)
            .fetch_all(self.pool())
            .await
            .map_err(|e| crate::MetadataError::from_sqlx("fetch offsets", e))?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    async fn list_groups(&self) -> crate::Result<Vec<String>> {
        sqlx::query_scalar::<S::Db, String>(SELECT_GROUPS)
            .fetch_all(self.pool())
            .await
            .map_err(|e| crate::MetadataError::from_sqlx("list groups", e))
    }

    async fn delete_group(&self, group: &str) -> crate::Result<bool> {
        let deleted = sqlx::query(DELETE_GROUP)
            .bind(group)
            .execute(self.pool())
            .await
            .map_err(|e| crate::MetadataError::from_sqlx("delete group", e))?;
        Ok(S::Db::rows_affected(&deleted) > 0)
    }

    async fn delete_offsets(&self, group: &str, partitions: &[(String, i32)]) -> crate::Result<()> {
        const OP: &str = "delete offsets";
        let mut tx = self.begin_write(OP).await?;
        for (topic, partition) in partitions {
            sqlx::query(DELETE_OFFSET)
                .bind(group)
                .bind(topic.as_str())
                .bind(*partition)
                .execute(&mut *tx)
                .await
                .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        }
        tx.commit()
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))
    }

    async fn expire_offsets(&self, group: &str, committed_before: i64) -> crate::Result<u64> {
        let deleted = sqlx::query(EXPIRE_OFFSETS)
            .bind(group)
            .bind(committed_before)
            .execute(self.pool())
            .await
            .map_err(|e| crate::MetadataError::from_sqlx("expire offsets", e))?;
        Ok(S::Db::rows_affected(&deleted))
    }
}
