//! Topics and their partitions: the catalog, truncation and the
//! partition rows every commit advances.

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};
use streamhouse_core::TopicConfig;

use super::backend::{Backend, Dialect};
use crate::error::{MetadataError, Result};
use crate::store::TopicCatalog;
use crate::types::Topic;

pub(crate) const INSERT_TOPIC: &str = "INSERT INTO topics (name, topic_id, partition_count, config, created_at) \
     VALUES ($1, $2, $3, $4, $5)";

/// Inserts partitions `$2 .. $3` of topic `$1` in one statement.
pub(crate) const INSERT_PARTITION_RANGE: &str = "INSERT INTO partitions (topic, partition_id) \
     WITH RECURSIVE seq(n) AS ( \
         SELECT CAST($2 AS INTEGER) \
         UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < CAST($3 AS INTEGER) \
     ) SELECT $1, n FROM seq";

pub(crate) const SELECT_TOPICS: &str =
    "SELECT name, topic_id, partition_count, config, created_at FROM topics ORDER BY name";

pub(crate) const SELECT_TOPIC: &str =
    "SELECT name, topic_id, partition_count, config, created_at FROM topics WHERE name = $1";

/// The partition's transactions whose marker is below the log start
/// offset: every record of theirs is gone, so is the marker.
pub(crate) const DELETE_TRANSACTIONS_BELOW: &str = "DELETE FROM partition_transactions \
     WHERE topic = $1 AND partition_id = $2 AND marker_offset < $3";

pub(crate) const SELECT_PARTITIONS: &str = "SELECT partition_id, high_watermark, log_start_offset, \
     first_open_txn, leader_epoch FROM partitions WHERE topic = $1 ORDER BY partition_id";

pub(crate) const SELECT_PARTITION: &str = "SELECT partition_id, high_watermark, log_start_offset, \
     first_open_txn, leader_epoch FROM partitions WHERE topic = $1 AND partition_id = $2";

pub(crate) const DELETE_TOPIC: &str = "DELETE FROM topics WHERE name = $1";

pub(crate) const GROW_TOPIC: &str =
    "UPDATE topics SET partition_count = $3 WHERE name = $1 AND partition_count = $2";

/// Tombstones the objects of segment rows about to be deleted: `$1` is the
/// time, then the row filter's parameters. A newer removal moves the time
/// forward, so the grace period counts from the LAST reference lost.
pub(crate) const TOMBSTONE_TOPIC: &str = "INSERT INTO object_tombstones (s3_bucket, s3_key, unreferenced_at) \
     SELECT DISTINCT s3_bucket, s3_key, $1 FROM segments WHERE topic = $2 \
     ON CONFLICT (s3_bucket, s3_key) DO UPDATE SET unreferenced_at = excluded.unreferenced_at";

pub(crate) const UPDATE_TOPIC_CONFIG: &str = "UPDATE topics SET config = $2 WHERE name = $1";

/// Advances the log start offset, never back and never past the high
/// watermark; the UPDATE also locks the partition row.
pub(crate) const ADVANCE_LOG_START: &str = "UPDATE partitions SET log_start_offset = CASE \
         WHEN $3 > high_watermark THEN high_watermark \
         WHEN $3 > log_start_offset THEN $3 \
         ELSE log_start_offset END \
     WHERE topic = $1 AND partition_id = $2 \
     RETURNING partition_id, high_watermark, log_start_offset, first_open_txn, leader_epoch";

/// Tombstones the objects of the segment rows wholly below offset `$4`.
pub(crate) const TOMBSTONE_BELOW: &str = "INSERT INTO object_tombstones (s3_bucket, s3_key, unreferenced_at) \
     SELECT DISTINCT s3_bucket, s3_key, $1 FROM segments WHERE topic = $2 AND partition_id = $3 AND end_offset < $4 \
     ON CONFLICT (s3_bucket, s3_key) DO UPDATE SET unreferenced_at = excluded.unreferenced_at";

pub(crate) const DELETE_SEGMENTS_BELOW: &str =
    "DELETE FROM segments WHERE topic = $1 AND partition_id = $2 AND end_offset < $3";

#[derive(sqlx::FromRow)]
pub(crate) struct TopicRow {
    name: String,
    topic_id: String,
    partition_count: i32,
    config: String,
    created_at: i64,
}

impl TopicRow {
    pub(crate) fn into_topic(self) -> Result<Topic> {
        let config: TopicConfig =
            serde_json::from_str(&self.config).map_err(|e| MetadataError::CorruptRow {
                what: "topic config",
                detail: format!("topic {}: {e}", self.name),
            })?;
        Ok(Topic {
            name: self.name,
            topic_id: self.topic_id,
            partition_count: self.partition_count,
            config,
            created_at: self.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PartitionRow {
    partition_id: i32,
    high_watermark: i64,
    log_start_offset: i64,
    first_open_txn: Option<i64>,
    leader_epoch: i32,
}

impl From<PartitionRow> for crate::types::PartitionInfo {
    fn from(row: PartitionRow) -> Self {
        Self {
            partition: row.partition_id,
            high_watermark: row.high_watermark,
            log_start_offset: row.log_start_offset,
            // As Kafka's: never below the log start offset, which
            // DeleteRecords or retention may move past an open
            // transaction's first records.
            last_stable_offset: row.first_open_txn.map_or(row.high_watermark, |first| {
                first.max(row.log_start_offset).min(row.high_watermark)
            }),
            leader_epoch: row.leader_epoch,
        }
    }
}

#[async_trait]
impl<S> TopicCatalog for S
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> &'q String: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i32: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Type<S::Db>,
    for<'r> TopicRow: FromRow<'r, <S::Db as Database>::Row>,
    for<'r> PartitionRow: FromRow<'r, <S::Db as Database>::Row>,
{
    async fn create_topic(&self, topic: crate::NewTopic) -> crate::Result<crate::Topic> {
        const OP: &str = "create topic";
        streamhouse_core::validate_topic_name(&topic.name)?;
        let partition_count = streamhouse_core::validate_partition_count(topic.partitions)?;
        let config = serde_json::to_string(&topic.config).map_err(|e| {
            crate::MetadataError::InvalidArgument {
                what: "topic config",
                reason: e.to_string(),
            }
        })?;
        let created = crate::Topic {
            name: topic.name,
            topic_id: uuid::Uuid::new_v4().to_string(),
            partition_count,
            config: topic.config,
            created_at: self.clock().now_ms(),
        };
        let mut tx = self.begin_write(OP).await?;
        let inserted = sqlx::query(INSERT_TOPIC)
            .bind(&created.name)
            .bind(&created.topic_id)
            .bind(partition_count)
            .bind(&config)
            .bind(created.created_at)
            .execute(&mut *tx)
            .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(crate::MetadataError::TopicAlreadyExists {
                    topic: created.name,
                });
            }
            Err(e) => return Err(crate::MetadataError::from_sqlx(OP, e)),
        }
        sqlx::query(INSERT_PARTITION_RANGE)
            .bind(&created.name)
            .bind(0_i32)
            .bind(partition_count)
            .execute(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        tx.commit()
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        Ok(created)
    }

    async fn list_topics(&self) -> crate::Result<Vec<crate::Topic>> {
        sqlx::query_as::<S::Db, TopicRow>(SELECT_TOPICS)
            .fetch_all(self.pool())
            .await
            .map_err(|e| crate::MetadataError::from_sqlx("list topics", e))?
            .into_iter()
            .map(TopicRow::into_topic)
            .collect()
    }

    async fn get_topic(&self, name: &str) -> crate::Result<crate::Topic> {
        sqlx::query_as::<S::Db, TopicRow>(SELECT_TOPIC)
            .bind(name)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| crate::MetadataError::from_sqlx("get topic", e))?
            .ok_or_else(|| crate::MetadataError::TopicNotFound {
                topic: name.to_string(),
            })?
            .into_topic()
    }

    async fn describe_topic(&self, name: &str) -> crate::Result<crate::TopicDescription> {
        const OP: &str = "describe topic";
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        let topic = sqlx::query_as::<S::Db, TopicRow>(SELECT_TOPIC)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?
            .ok_or_else(|| crate::MetadataError::TopicNotFound {
                topic: name.to_string(),
            })?
            .into_topic()?;
        let partitions = sqlx::query_as::<S::Db, PartitionRow>(SELECT_PARTITIONS)
            .bind(name)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?
            .into_iter()
            .map(Into::into)
            .collect();
        tx.commit()
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        Ok(crate::TopicDescription { topic, partitions })
    }

    async fn delete_topic(&self, name: &str) -> crate::Result<()> {
        const OP: &str = "delete topic";
        let mut tx = self.begin_write(OP).await?;
        sqlx::query(TOMBSTONE_TOPIC)
            .bind(self.clock().now_ms())
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        let deleted = sqlx::query(DELETE_TOPIC)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        if S::Db::rows_affected(&deleted) == 0 {
            return Err(crate::MetadataError::TopicNotFound {
                topic: name.to_string(),
            });
        }
        // Agents drop the epochs they hold for the topic's partitions.
        sqlx::query(super::epochs::BUMP_EPOCHS_VERSION)
            .execute(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        tx.commit()
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        Ok(())
    }

    async fn add_partitions(&self, topic: &str, total: i64) -> crate::Result<crate::Topic> {
        const OP: &str = "add partitions";
        let total = streamhouse_core::validate_partition_count(total)?;
        let mut tx = self.begin_write(OP).await?;
        let mut current = sqlx::query_as::<S::Db, TopicRow>(SELECT_TOPIC)
            .bind(topic)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?
            .ok_or_else(|| crate::MetadataError::TopicNotFound {
                topic: topic.to_string(),
            })?
            .into_topic()?;
        if total <= current.partition_count {
            return Err(crate::MetadataError::InvalidArgument {
                what: "partition count",
                reason: format!(
                    "topic {topic} has {} partitions; the new count {total} must be larger",
                    current.partition_count
                ),
            });
        }
        let grown = sqlx::query(GROW_TOPIC)
            .bind(topic)
            .bind(current.partition_count)
            .bind(total)
            .execute(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        if S::Db::rows_affected(&grown) != 1 {
            return Err(crate::MetadataError::unavailable(
                OP,
                "the partition count changed concurrently",
            ));
        }
        sqlx::query(INSERT_PARTITION_RANGE)
            .bind(topic)
            .bind(current.partition_count)
            .bind(total)
            .execute(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        tx.commit()
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        current.partition_count = total;
        Ok(current)
    }

    async fn get_partition(
        &self,
        topic: &str,
        partition: i32,
    ) -> crate::Result<crate::PartitionInfo> {
        sqlx::query_as::<S::Db, PartitionRow>(SELECT_PARTITION)
            .bind(topic)
            .bind(partition)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| crate::MetadataError::from_sqlx("get partition", e))?
            .map(Into::into)
            .ok_or_else(|| crate::MetadataError::PartitionNotFound {
                topic: topic.to_string(),
                partition,
            })
    }

    async fn update_topic_config(
        &self,
        name: &str,
        config: streamhouse_core::TopicConfig,
    ) -> crate::Result<crate::Topic> {
        const OP: &str = "update topic config";
        let encoded =
            serde_json::to_string(&config).map_err(|e| crate::MetadataError::InvalidArgument {
                what: "topic config",
                reason: e.to_string(),
            })?;
        let mut tx = self.begin_write(OP).await?;
        let updated = sqlx::query(UPDATE_TOPIC_CONFIG)
            .bind(name)
            .bind(&encoded)
            .execute(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        if S::Db::rows_affected(&updated) == 0 {
            return Err(crate::MetadataError::TopicNotFound {
                topic: name.to_string(),
            });
        }
        let topic = sqlx::query_as::<S::Db, TopicRow>(SELECT_TOPIC)
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?
            .into_topic()?;
        tx.commit()
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        Ok(topic)
    }

    async fn truncate_partition(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> crate::Result<crate::PartitionInfo> {
        const OP: &str = "truncate partition";
        let mut tx = self.begin_write(OP).await?;
        let info: crate::PartitionInfo = sqlx::query_as::<S::Db, PartitionRow>(ADVANCE_LOG_START)
            .bind(topic)
            .bind(partition)
            .bind(offset)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?
            .ok_or_else(|| crate::MetadataError::PartitionNotFound {
                topic: topic.to_string(),
                partition,
            })?
            .into();
        sqlx::query(TOMBSTONE_BELOW)
            .bind(self.clock().now_ms())
            .bind(topic)
            .bind(partition)
            .bind(info.log_start_offset)
            .execute(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        sqlx::query(DELETE_SEGMENTS_BELOW)
            .bind(topic)
            .bind(partition)
            .bind(info.log_start_offset)
            .execute(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        sqlx::query(DELETE_TRANSACTIONS_BELOW)
            .bind(topic)
            .bind(partition)
            .bind(info.log_start_offset)
            .execute(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        tx.commit()
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        Ok(info)
    }
}
