//! SQL backends. Both speak the same SQL for everything except the flush
//! commit, whose batching is backend-specific; the shared statements live
//! here and are compiled into each backend by [`impl_shared_queries!`], so
//! there is one copy of each query and of the row mapping.

mod assign;
mod error;
mod postgres;
mod sqlite;

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use streamhouse_core::TopicConfig;

use crate::error::{MetadataError, Result};
use crate::types::{CommittedOffset, FlushCommit, PendingSegment, SegmentInfo, Topic};

pub(crate) use assign::{BatchMeta, KEPT_BATCHES, ProducerKey, ProducerState, assign_offsets};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

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

pub(crate) const SELECT_PARTITIONS: &str = "SELECT partition_id, high_watermark, log_start_offset \
     FROM partitions WHERE topic = $1 ORDER BY partition_id";

pub(crate) const SELECT_PARTITION: &str = "SELECT partition_id, high_watermark, log_start_offset \
     FROM partitions WHERE topic = $1 AND partition_id = $2";

pub(crate) const DELETE_TOPIC: &str = "DELETE FROM topics WHERE name = $1";

pub(crate) const GROW_TOPIC: &str =
    "UPDATE topics SET partition_count = $3 WHERE name = $1 AND partition_count = $2";

pub(crate) const SELECT_SEGMENTS: &str = "SELECT id, topic, partition_id, base_offset, end_offset, \
     record_count, size_bytes, s3_bucket, s3_key, byte_offset, byte_length, min_timestamp, \
     max_timestamp, created_at \
     FROM segments WHERE topic = $1 AND partition_id = $2 AND end_offset >= $3 \
     ORDER BY base_offset LIMIT $4";

pub(crate) const SELECT_SEGMENT_BY_TIMESTAMP: &str = "SELECT id, topic, partition_id, \
     base_offset, end_offset, record_count, size_bytes, s3_bucket, s3_key, byte_offset, \
     byte_length, min_timestamp, max_timestamp, created_at \
     FROM segments WHERE topic = $1 AND partition_id = $2 AND max_timestamp >= $3 \
     ORDER BY base_offset LIMIT 1";

pub(crate) const SELECT_OBJECT_SEGMENTS: &str = "SELECT topic, partition_id, base_offset, end_offset, byte_offset \
     FROM segments WHERE s3_bucket = $1 AND s3_key = $2";

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

pub(crate) const UPSERT_OFFSET: &str = "INSERT INTO consumer_offsets \
     (group_id, topic, partition_id, committed_offset, metadata, committed_at) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (group_id, topic, partition_id) DO UPDATE SET \
     committed_offset = excluded.committed_offset, metadata = excluded.metadata, \
     committed_at = excluded.committed_at";

pub(crate) const PARTITION_EXISTS: &str =
    "SELECT COUNT(*) FROM partitions WHERE topic = $1 AND partition_id = $2";

pub(crate) const SELECT_GROUP_OFFSETS: &str = "SELECT group_id, topic, partition_id, committed_offset, \
     metadata, committed_at FROM consumer_offsets WHERE group_id = $1 \
     ORDER BY topic, partition_id";

pub(crate) const INSERT_PRODUCER_ID: &str =
    "INSERT INTO producer_ids (created_at) VALUES ($1) RETURNING producer_id";

pub(crate) const BUMP_PRODUCER_EPOCH: &str = "UPDATE producer_ids SET producer_epoch = \
     producer_epoch + 1 WHERE producer_id = $1 AND producer_epoch = $2 AND producer_epoch < 32767 \
     RETURNING producer_epoch";

pub(crate) const UPSERT_AGENT: &str = "INSERT INTO agents (agent_id, node_id, host, port, zone, \
     started_at, last_heartbeat) VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (agent_id) DO UPDATE SET node_id = excluded.node_id, host = excluded.host, \
     port = excluded.port, zone = excluded.zone, started_at = excluded.started_at, \
     last_heartbeat = excluded.last_heartbeat";

pub(crate) const HEARTBEAT_AGENT: &str =
    "UPDATE agents SET last_heartbeat = $2 WHERE agent_id = $1";

pub(crate) const DELETE_AGENT: &str = "DELETE FROM agents WHERE agent_id = $1";

pub(crate) const SELECT_AGENTS: &str = "SELECT agent_id, node_id, host, port, zone, started_at, \
     last_heartbeat FROM agents WHERE last_heartbeat >= $1 ORDER BY agent_id";

/// Referenced keys in the (sorted) range of keys asked about.
pub(crate) const SELECT_REFERENCED_KEYS: &str = "SELECT DISTINCT s3_key FROM segments \
     WHERE s3_bucket = $1 AND s3_key >= $2 AND s3_key <= $3";

pub(crate) const SELECT_GROUPS: &str =
    "SELECT DISTINCT group_id FROM consumer_offsets ORDER BY group_id";

pub(crate) const DELETE_GROUP: &str = "DELETE FROM consumer_offsets WHERE group_id = $1";

pub(crate) const EXPIRE_OFFSETS: &str =
    "DELETE FROM consumer_offsets WHERE group_id = $1 AND committed_at < $2";

/// Tombstones the objects of segment rows about to be deleted: `$1` is the
/// time, then the row filter's parameters. A newer removal moves the time
/// forward, so the grace period counts from the LAST reference lost.
macro_rules! tombstone_rows_where {
    ($filter:literal) => {
        concat!(
            "INSERT INTO object_tombstones (s3_bucket, s3_key, unreferenced_at) \
             SELECT DISTINCT s3_bucket, s3_key, $1 FROM segments WHERE ",
            $filter,
            " ON CONFLICT (s3_bucket, s3_key) DO UPDATE SET \
             unreferenced_at = excluded.unreferenced_at"
        )
    };
}

pub(crate) const TOMBSTONE_TOPIC: &str = tombstone_rows_where!("topic = $2");

pub(crate) const UPDATE_TOPIC_CONFIG: &str = "UPDATE topics SET config = $2 WHERE name = $1";

/// Advances the log start offset, never back and never past the high
/// watermark; the UPDATE also locks the partition row.
pub(crate) const ADVANCE_LOG_START: &str = "UPDATE partitions SET log_start_offset = CASE \
         WHEN $3 > high_watermark THEN high_watermark \
         WHEN $3 > log_start_offset THEN $3 \
         ELSE log_start_offset END \
     WHERE topic = $1 AND partition_id = $2 \
     RETURNING partition_id, high_watermark, log_start_offset";

pub(crate) const TOMBSTONE_BELOW: &str =
    tombstone_rows_where!("topic = $2 AND partition_id = $3 AND end_offset < $4");

pub(crate) const DELETE_SEGMENTS_BELOW: &str =
    "DELETE FROM segments WHERE topic = $1 AND partition_id = $2 AND end_offset < $3";

/// Locks the partition row (a no-op update) and reads its log start.
pub(crate) const LOCK_PARTITION: &str = "UPDATE partitions SET log_start_offset = log_start_offset \
     WHERE topic = $1 AND partition_id = $2 RETURNING log_start_offset";

pub(crate) const TOMBSTONE_RUN: &str = tombstone_rows_where!(
    "topic = $2 AND partition_id = $3 AND base_offset >= $4 AND end_offset <= $5"
);

pub(crate) const DELETE_RUN: &str = "DELETE FROM segments WHERE topic = $1 AND partition_id = $2 \
     AND base_offset >= $3 AND end_offset <= $4";

pub(crate) const INSERT_ONE_SEGMENT: &str = "INSERT INTO segments (topic, partition_id, \
     base_offset, end_offset, record_count, size_bytes, s3_bucket, s3_key, byte_offset, \
     byte_length, min_timestamp, max_timestamp, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

pub(crate) const SELECT_STORAGE_STATS: &str = "SELECT \
     (SELECT CAST(COUNT(*) AS BIGINT) FROM segments), \
     (SELECT COUNT(*) FROM (SELECT DISTINCT s3_bucket, s3_key FROM segments) AS o), \
     (SELECT CAST(COALESCE(SUM(byte_length), 0) AS BIGINT) FROM segments), \
     (SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) AS n FROM segments \
          GROUP BY topic, partition_id) AS p), \
     (SELECT COUNT(*) FROM object_tombstones)";

pub(crate) const SELECT_EXPIRED_TOMBSTONES: &str = "SELECT s3_key FROM object_tombstones \
     WHERE s3_bucket = $1 AND unreferenced_at < $2 ORDER BY unreferenced_at LIMIT $3";

pub(crate) const SELECT_TOMBSTONED_KEYS: &str = "SELECT s3_key FROM object_tombstones \
     WHERE s3_bucket = $1 AND s3_key >= $2 AND s3_key <= $3";

pub(crate) const DELETE_TOMBSTONE: &str =
    "DELETE FROM object_tombstones WHERE s3_bucket = $1 AND s3_key = $2";

/// Takes a lease that is free, expired, or already ours.
pub(crate) const ACQUIRE_LEASE: &str = "INSERT INTO job_leases (job, holder, expires_at) \
     VALUES ($1, $2, $3) \
     ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
     WHERE job_leases.holder = excluded.holder OR job_leases.expires_at < $4 \
     RETURNING holder";

pub(crate) const RELEASE_LEASE: &str = "DELETE FROM job_leases WHERE job = $1 AND holder = $2";

#[derive(sqlx::FromRow)]
pub(crate) struct AgentRow {
    agent_id: String,
    node_id: i32,
    host: String,
    port: i32,
    zone: Option<String>,
    started_at: i64,
    last_heartbeat: i64,
}

impl From<AgentRow> for crate::types::AgentInfo {
    fn from(row: AgentRow) -> Self {
        Self {
            agent_id: row.agent_id,
            node_id: row.node_id,
            host: row.host,
            port: row.port,
            zone: row.zone,
            started_at: row.started_at,
            last_heartbeat: row.last_heartbeat,
        }
    }
}

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
}

impl From<PartitionRow> for crate::types::PartitionInfo {
    fn from(row: PartitionRow) -> Self {
        Self {
            partition: row.partition_id,
            high_watermark: row.high_watermark,
            log_start_offset: row.log_start_offset,
        }
    }
}

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
        }
    }
}

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

#[derive(sqlx::FromRow)]
pub(crate) struct OffsetRow {
    group_id: String,
    topic: String,
    partition_id: i32,
    committed_offset: i64,
    metadata: Option<String>,
    committed_at: i64,
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
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
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

pub(crate) fn limit_to_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Implements the queries both backends share. The backend provides
/// `self.pool`, `begin_write()` and `commit_flush_tx()`.
macro_rules! impl_shared_queries {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Which of `keys` the key-range `query` (`$1` bucket, `$2`
            /// lowest key, `$3` highest key) returns.
            async fn keys_among(
                &self,
                query: &'static str,
                operation: &'static str,
                bucket: &str,
                keys: &[String],
            ) -> $crate::Result<Vec<String>> {
                let (Some(first), Some(last)) = (keys.iter().min(), keys.iter().max()) else {
                    return Ok(Vec::new());
                };
                let wanted: std::collections::HashSet<&String> = keys.iter().collect();
                Ok(sqlx::query_scalar::<$db, String>(query)
                    .bind(bucket)
                    .bind(first)
                    .bind(last)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| MetadataError::from_sqlx(operation, e))?
                    .into_iter()
                    .filter(|key| wanted.contains(key))
                    .collect())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::StoreHealth for $store {
            fn backend(&self) -> &'static str {
                Self::BACKEND
            }

            async fn ping(&self) -> $crate::Result<()> {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map_err(|e| MetadataError::from_sqlx("ping", e))?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::TopicCatalog for $store {
            async fn create_topic(&self, topic: $crate::NewTopic) -> $crate::Result<$crate::Topic> {
                const OP: &str = "create topic";
                streamhouse_core::validate_topic_name(&topic.name)?;
                let partition_count = streamhouse_core::validate_partition_count(topic.partitions)?;
                let config = serde_json::to_string(&topic.config).map_err(|e| {
                    MetadataError::InvalidArgument {
                        what: "topic config",
                        reason: e.to_string(),
                    }
                })?;
                let created = $crate::Topic {
                    name: topic.name,
                    topic_id: uuid::Uuid::new_v4().to_string(),
                    partition_count,
                    config: topic.config,
                    created_at: $crate::sql::now_ms(),
                };
                let mut tx = self.begin_write(OP).await?;
                let inserted = sqlx::query($crate::sql::INSERT_TOPIC)
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
                        return Err(MetadataError::TopicAlreadyExists {
                            topic: created.name,
                        });
                    }
                    Err(e) => return Err(MetadataError::from_sqlx(OP, e)),
                }
                sqlx::query($crate::sql::INSERT_PARTITION_RANGE)
                    .bind(&created.name)
                    .bind(0_i32)
                    .bind(partition_count)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                tx.commit()
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                Ok(created)
            }

            async fn list_topics(&self) -> $crate::Result<Vec<$crate::Topic>> {
                sqlx::query_as::<$db, $crate::sql::TopicRow>($crate::sql::SELECT_TOPICS)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| MetadataError::from_sqlx("list topics", e))?
                    .into_iter()
                    .map($crate::sql::TopicRow::into_topic)
                    .collect()
            }

            async fn get_topic(&self, name: &str) -> $crate::Result<$crate::Topic> {
                sqlx::query_as::<$db, $crate::sql::TopicRow>($crate::sql::SELECT_TOPIC)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| MetadataError::from_sqlx("get topic", e))?
                    .ok_or_else(|| MetadataError::TopicNotFound {
                        topic: name.to_string(),
                    })?
                    .into_topic()
            }

            async fn describe_topic(&self, name: &str) -> $crate::Result<$crate::TopicDescription> {
                const OP: &str = "describe topic";
                let mut tx = self
                    .pool
                    .begin()
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                let topic = sqlx::query_as::<$db, $crate::sql::TopicRow>($crate::sql::SELECT_TOPIC)
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?
                    .ok_or_else(|| MetadataError::TopicNotFound {
                        topic: name.to_string(),
                    })?
                    .into_topic()?;
                let partitions = sqlx::query_as::<$db, $crate::sql::PartitionRow>(
                    $crate::sql::SELECT_PARTITIONS,
                )
                .bind(name)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?
                .into_iter()
                .map(Into::into)
                .collect();
                tx.commit()
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                Ok($crate::TopicDescription { topic, partitions })
            }

            async fn delete_topic(&self, name: &str) -> $crate::Result<()> {
                const OP: &str = "delete topic";
                let mut tx = self.begin_write(OP).await?;
                sqlx::query($crate::sql::TOMBSTONE_TOPIC)
                    .bind($crate::sql::now_ms())
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                let deleted = sqlx::query($crate::sql::DELETE_TOPIC)
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                if deleted.rows_affected() == 0 {
                    return Err(MetadataError::TopicNotFound {
                        topic: name.to_string(),
                    });
                }
                tx.commit()
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                Ok(())
            }

            async fn add_partitions(
                &self,
                topic: &str,
                total: i64,
            ) -> $crate::Result<$crate::Topic> {
                const OP: &str = "add partitions";
                let total = streamhouse_core::validate_partition_count(total)?;
                let mut tx = self.begin_write(OP).await?;
                let mut current =
                    sqlx::query_as::<$db, $crate::sql::TopicRow>($crate::sql::SELECT_TOPIC)
                        .bind(topic)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(|e| MetadataError::from_sqlx(OP, e))?
                        .ok_or_else(|| MetadataError::TopicNotFound {
                            topic: topic.to_string(),
                        })?
                        .into_topic()?;
                if total <= current.partition_count {
                    return Err(MetadataError::InvalidArgument {
                        what: "partition count",
                        reason: format!(
                            "topic {topic} has {} partitions; the new count {total} must be larger",
                            current.partition_count
                        ),
                    });
                }
                let grown = sqlx::query($crate::sql::GROW_TOPIC)
                    .bind(topic)
                    .bind(current.partition_count)
                    .bind(total)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                if grown.rows_affected() != 1 {
                    return Err(MetadataError::unavailable(
                        OP,
                        "the partition count changed concurrently",
                    ));
                }
                sqlx::query($crate::sql::INSERT_PARTITION_RANGE)
                    .bind(topic)
                    .bind(current.partition_count)
                    .bind(total)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                tx.commit()
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                current.partition_count = total;
                Ok(current)
            }

            async fn get_partition(
                &self,
                topic: &str,
                partition: i32,
            ) -> $crate::Result<$crate::PartitionInfo> {
                sqlx::query_as::<$db, $crate::sql::PartitionRow>($crate::sql::SELECT_PARTITION)
                    .bind(topic)
                    .bind(partition)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| MetadataError::from_sqlx("get partition", e))?
                    .map(Into::into)
                    .ok_or_else(|| MetadataError::PartitionNotFound {
                        topic: topic.to_string(),
                        partition,
                    })
            }

            async fn update_topic_config(
                &self,
                name: &str,
                config: streamhouse_core::TopicConfig,
            ) -> $crate::Result<$crate::Topic> {
                const OP: &str = "update topic config";
                let encoded =
                    serde_json::to_string(&config).map_err(|e| MetadataError::InvalidArgument {
                        what: "topic config",
                        reason: e.to_string(),
                    })?;
                let mut tx = self.begin_write(OP).await?;
                let updated = sqlx::query($crate::sql::UPDATE_TOPIC_CONFIG)
                    .bind(name)
                    .bind(&encoded)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                if updated.rows_affected() == 0 {
                    return Err(MetadataError::TopicNotFound {
                        topic: name.to_string(),
                    });
                }
                let topic = sqlx::query_as::<$db, $crate::sql::TopicRow>($crate::sql::SELECT_TOPIC)
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?
                    .into_topic()?;
                tx.commit()
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                Ok(topic)
            }

            async fn truncate_partition(
                &self,
                topic: &str,
                partition: i32,
                offset: i64,
            ) -> $crate::Result<$crate::PartitionInfo> {
                const OP: &str = "truncate partition";
                let mut tx = self.begin_write(OP).await?;
                let info: $crate::PartitionInfo = sqlx::query_as::<$db, $crate::sql::PartitionRow>(
                    $crate::sql::ADVANCE_LOG_START,
                )
                .bind(topic)
                .bind(partition)
                .bind(offset)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?
                .ok_or_else(|| MetadataError::PartitionNotFound {
                    topic: topic.to_string(),
                    partition,
                })?
                .into();
                sqlx::query($crate::sql::TOMBSTONE_BELOW)
                    .bind($crate::sql::now_ms())
                    .bind(topic)
                    .bind(partition)
                    .bind(info.log_start_offset)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                sqlx::query($crate::sql::DELETE_SEGMENTS_BELOW)
                    .bind(topic)
                    .bind(partition)
                    .bind(info.log_start_offset)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                tx.commit()
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                Ok(info)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::SegmentLog for $store {
            async fn commit_flush(
                &self,
                flush: &$crate::FlushCommit,
            ) -> $crate::Result<Vec<$crate::SegmentOutcome>> {
                const OP: &str = "commit flush";
                $crate::sql::validate_flush(flush)?;
                if flush.segments.is_empty() {
                    return Ok(Vec::new());
                }
                let mut tx = self.begin_write(OP).await?;
                let previous = sqlx::query_as::<$db, $crate::sql::CommittedRow>(
                    $crate::sql::SELECT_OBJECT_SEGMENTS,
                )
                .bind(&flush.bucket)
                .bind(&flush.key)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                let before = $crate::sql::committed_before(&flush.segments, &previous);
                let (outcomes, watermarks) = self.commit_flush_tx(&mut tx, flush, &before).await?;
                tx.commit()
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                if !watermarks.is_empty() {
                    // Nobody listening is not an error.
                    let _ = self.notices.send(watermarks.into());
                }
                Ok(outcomes)
            }

            async fn list_segments(
                &self,
                topic: &str,
                partition: i32,
                from_offset: i64,
                limit: usize,
            ) -> $crate::Result<Vec<$crate::SegmentInfo>> {
                Ok(
                    sqlx::query_as::<$db, $crate::sql::SegmentRow>($crate::sql::SELECT_SEGMENTS)
                        .bind(topic)
                        .bind(partition)
                        .bind(from_offset)
                        .bind($crate::sql::limit_to_i64(limit))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(|e| MetadataError::from_sqlx("list segments", e))?
                        .into_iter()
                        .map(Into::into)
                        .collect(),
                )
            }

            async fn find_segment_by_timestamp(
                &self,
                topic: &str,
                partition: i32,
                timestamp: i64,
            ) -> $crate::Result<Option<$crate::SegmentInfo>> {
                Ok(sqlx::query_as::<$db, $crate::sql::SegmentRow>(
                    $crate::sql::SELECT_SEGMENT_BY_TIMESTAMP,
                )
                .bind(topic)
                .bind(partition)
                .bind(timestamp)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| MetadataError::from_sqlx("find segment by timestamp", e))?
                .map(Into::into))
            }

            async fn replace_segments(
                &self,
                r: &$crate::SegmentReplacement,
            ) -> $crate::Result<bool> {
                const OP: &str = "replace segments";
                if let Some(reason) = r.invalid_reason() {
                    return Err(MetadataError::InvalidArgument {
                        what: "segment replacement",
                        reason,
                    });
                }
                let mut tx = self.begin_write(OP).await?;
                let Some(log_start) = sqlx::query_scalar::<$db, i64>($crate::sql::LOCK_PARTITION)
                    .bind(&r.topic)
                    .bind(r.partition)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?
                else {
                    return Ok(false);
                };
                if r.base_offset < log_start {
                    return Ok(false);
                }
                sqlx::query($crate::sql::TOMBSTONE_RUN)
                    .bind(r.created_at)
                    .bind(&r.topic)
                    .bind(r.partition)
                    .bind(r.base_offset)
                    .bind(r.end_offset)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                let deleted = sqlx::query($crate::sql::DELETE_RUN)
                    .bind(&r.topic)
                    .bind(r.partition)
                    .bind(r.base_offset)
                    .bind(r.end_offset)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                if i64::try_from(deleted.rows_affected()).ok() != Some(r.replaced_rows) {
                    // Dropping the transaction rolls it back.
                    return Ok(false);
                }
                for segment in &r.segments {
                    sqlx::query($crate::sql::INSERT_ONE_SEGMENT)
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
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                }
                // The new object is referenced from now on.
                sqlx::query($crate::sql::DELETE_TOMBSTONE)
                    .bind(&r.bucket)
                    .bind(&r.key)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                tx.commit()
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                Ok(true)
            }

            async fn storage_stats(&self) -> $crate::Result<$crate::StorageStats> {
                let (segment_rows, objects, bytes, max_rows_per_partition, tombstones) =
                    sqlx::query_as::<$db, (i64, i64, i64, i64, i64)>(
                        $crate::sql::SELECT_STORAGE_STATS,
                    )
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| MetadataError::from_sqlx("storage stats", e))?;
                Ok($crate::StorageStats {
                    segment_rows,
                    objects,
                    bytes,
                    max_rows_per_partition,
                    tombstones,
                })
            }

            fn commit_notices(&self) -> tokio::sync::broadcast::Receiver<$crate::CommitNotice> {
                self.subscribe_notices()
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::ProducerRegistry for $store {
            async fn allocate_producer_id(&self) -> $crate::Result<i64> {
                sqlx::query_scalar::<$db, i64>($crate::sql::INSERT_PRODUCER_ID)
                    .bind($crate::sql::now_ms())
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| MetadataError::from_sqlx("allocate producer id", e))
            }

            async fn bump_producer_epoch(
                &self,
                producer_id: i64,
                epoch: i16,
            ) -> $crate::Result<Option<i16>> {
                sqlx::query_scalar::<$db, i16>($crate::sql::BUMP_PRODUCER_EPOCH)
                    .bind(producer_id)
                    .bind(epoch)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| MetadataError::from_sqlx("bump producer epoch", e))
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::ClusterRegistry for $store {
            async fn register_agent(&self, agent: &$crate::AgentInfo) -> $crate::Result<()> {
                sqlx::query($crate::sql::UPSERT_AGENT)
                    .bind(&agent.agent_id)
                    .bind(agent.node_id)
                    .bind(&agent.host)
                    .bind(agent.port)
                    .bind(agent.zone.as_deref())
                    .bind(agent.started_at)
                    .bind(agent.last_heartbeat)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| MetadataError::from_sqlx("register agent", e))?;
                Ok(())
            }

            async fn heartbeat_agent(&self, agent_id: &str, now: i64) -> $crate::Result<bool> {
                let updated = sqlx::query($crate::sql::HEARTBEAT_AGENT)
                    .bind(agent_id)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| MetadataError::from_sqlx("agent heartbeat", e))?;
                Ok(updated.rows_affected() > 0)
            }

            async fn deregister_agent(&self, agent_id: &str) -> $crate::Result<()> {
                sqlx::query($crate::sql::DELETE_AGENT)
                    .bind(agent_id)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| MetadataError::from_sqlx("deregister agent", e))?;
                Ok(())
            }

            async fn list_agents(
                &self,
                alive_since: i64,
            ) -> $crate::Result<Vec<$crate::AgentInfo>> {
                Ok(
                    sqlx::query_as::<$db, $crate::sql::AgentRow>($crate::sql::SELECT_AGENTS)
                        .bind(alive_since)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(|e| MetadataError::from_sqlx("list agents", e))?
                        .into_iter()
                        .map(Into::into)
                        .collect(),
                )
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::JobLeases for $store {
            async fn acquire_lease(
                &self,
                job: &str,
                holder: &str,
                now: i64,
                expires_at: i64,
            ) -> $crate::Result<bool> {
                const OP: &str = "acquire lease";
                let mut tx = self.begin_write(OP).await?;
                let taken = sqlx::query_scalar::<$db, String>($crate::sql::ACQUIRE_LEASE)
                    .bind(job)
                    .bind(holder)
                    .bind(expires_at)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                tx.commit()
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                Ok(taken.as_deref() == Some(holder))
            }

            async fn release_lease(&self, job: &str, holder: &str) -> $crate::Result<()> {
                sqlx::query($crate::sql::RELEASE_LEASE)
                    .bind(job)
                    .bind(holder)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| MetadataError::from_sqlx("release lease", e))?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::ObjectLedger for $store {
            async fn referenced_objects(
                &self,
                bucket: &str,
                keys: &[String],
            ) -> $crate::Result<Vec<String>> {
                self.keys_among(
                    $crate::sql::SELECT_REFERENCED_KEYS,
                    "referenced objects",
                    bucket,
                    keys,
                )
                .await
            }

            async fn expired_tombstones(
                &self,
                bucket: &str,
                before: i64,
                limit: usize,
            ) -> $crate::Result<Vec<String>> {
                sqlx::query_scalar::<$db, String>($crate::sql::SELECT_EXPIRED_TOMBSTONES)
                    .bind(bucket)
                    .bind(before)
                    .bind($crate::sql::limit_to_i64(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| MetadataError::from_sqlx("expired tombstones", e))
            }

            async fn tombstoned_objects(
                &self,
                bucket: &str,
                keys: &[String],
            ) -> $crate::Result<Vec<String>> {
                self.keys_among(
                    $crate::sql::SELECT_TOMBSTONED_KEYS,
                    "tombstoned objects",
                    bucket,
                    keys,
                )
                .await
            }

            async fn remove_tombstones(&self, bucket: &str, keys: &[String]) -> $crate::Result<()> {
                const OP: &str = "remove tombstones";
                if keys.is_empty() {
                    return Ok(());
                }
                let mut tx = self.begin_write(OP).await?;
                for key in keys {
                    sqlx::query($crate::sql::DELETE_TOMBSTONE)
                        .bind(bucket)
                        .bind(key)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                }
                tx.commit()
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::GroupOffsets for $store {
            async fn commit_offsets(
                &self,
                group: &str,
                offsets: &[$crate::OffsetCommit],
            ) -> $crate::Result<()> {
                const OP: &str = "commit offsets";
                if group.is_empty() {
                    return Err(MetadataError::InvalidArgument {
                        what: "group id",
                        reason: "must not be empty".into(),
                    });
                }
                let now = $crate::sql::now_ms();
                let mut tx = self.begin_write(OP).await?;
                for commit in offsets {
                    let exists: i64 = sqlx::query_scalar($crate::sql::PARTITION_EXISTS)
                        .bind(&commit.topic)
                        .bind(commit.partition)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                    if exists == 0 {
                        return Err(MetadataError::PartitionNotFound {
                            topic: commit.topic.clone(),
                            partition: commit.partition,
                        });
                    }
                    sqlx::query($crate::sql::UPSERT_OFFSET)
                        .bind(group)
                        .bind(&commit.topic)
                        .bind(commit.partition)
                        .bind(commit.offset)
                        .bind(commit.metadata.as_deref())
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                }
                tx.commit()
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                Ok(())
            }

            async fn fetch_offsets(
                &self,
                group: &str,
            ) -> $crate::Result<Vec<$crate::CommittedOffset>> {
                Ok(
                    sqlx::query_as::<$db, $crate::sql::OffsetRow>(
                        $crate::sql::SELECT_GROUP_OFFSETS,
                    )
                    .bind(group)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| MetadataError::from_sqlx("fetch offsets", e))?
                    .into_iter()
                    .map(Into::into)
                    .collect(),
                )
            }

            async fn list_groups(&self) -> $crate::Result<Vec<String>> {
                sqlx::query_scalar::<$db, String>($crate::sql::SELECT_GROUPS)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| MetadataError::from_sqlx("list groups", e))
            }

            async fn delete_group(&self, group: &str) -> $crate::Result<bool> {
                let deleted = sqlx::query($crate::sql::DELETE_GROUP)
                    .bind(group)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| MetadataError::from_sqlx("delete group", e))?;
                Ok(deleted.rows_affected() > 0)
            }

            async fn expire_offsets(
                &self,
                group: &str,
                committed_before: i64,
            ) -> $crate::Result<u64> {
                let deleted = sqlx::query($crate::sql::EXPIRE_OFFSETS)
                    .bind(group)
                    .bind(committed_before)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| MetadataError::from_sqlx("expire offsets", e))?;
                Ok(deleted.rows_affected())
            }
        }
    };
}

pub(crate) use impl_shared_queries;
