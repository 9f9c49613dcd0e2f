//! The production backend: PostgreSQL, shared by every agent of a cluster.
//!
//! A flush commit costs a constant number of statements whatever the number
//! of partitions: the partition rows are locked in one ordered
//! `SELECT … FOR UPDATE` (a fixed lock order, so concurrent flushes over
//! overlapping partitions cannot deadlock), then all high watermarks are
//! updated and all segment rows inserted with one `unnest` statement each.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use super::{assign_offsets, flush_partitions, impl_shared_queries};
use crate::error::{MetadataError, Result};
use crate::types::{FlushCommit, SegmentOutcome};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

const LOCK_PARTITIONS: &str = "SELECT p.topic, p.partition_id, p.high_watermark \
     FROM partitions p \
     JOIN unnest($1::text[], $2::int[]) AS u(topic, partition_id) \
       ON p.topic = u.topic AND p.partition_id = u.partition_id \
     ORDER BY p.topic, p.partition_id \
     FOR UPDATE OF p";

const UPDATE_WATERMARKS: &str = "UPDATE partitions AS p SET high_watermark = u.high_watermark \
     FROM unnest($1::text[], $2::int[], $3::bigint[]) AS u(topic, partition_id, high_watermark) \
     WHERE p.topic = u.topic AND p.partition_id = u.partition_id";

const INSERT_SEGMENTS: &str = "INSERT INTO segments (topic, partition_id, base_offset, end_offset, \
     record_count, size_bytes, s3_bucket, s3_key, byte_offset, byte_length, min_timestamp, \
     max_timestamp, created_at) \
     SELECT u.topic, u.partition_id, u.base_offset, u.end_offset, u.record_count, u.size_bytes, \
            $1, $2, u.byte_offset, u.byte_length, u.min_timestamp, u.max_timestamp, $3 \
     FROM unnest($4::text[], $5::int[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], \
                 $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[]) \
          AS u(topic, partition_id, base_offset, end_offset, record_count, size_bytes, \
               byte_offset, byte_length, min_timestamp, max_timestamp)";

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

#[derive(sqlx::FromRow)]
struct LockedPartition {
    topic: String,
    partition_id: i32,
    high_watermark: i64,
}

impl PostgresStore {
    const BACKEND: &'static str = "postgres";

    /// Connects to a `postgres://` URL and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url).map_err(|e| MetadataError::InvalidUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        Self::connect_with(options).await
    }

    /// Connects with explicit options (for example a `search_path` that
    /// isolates one test's tables) and applies the migrations.
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| MetadataError::from_sqlx("connect to postgres", e))?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// The connection pool, for components that need PostgreSQL-specific
    /// features of the same database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin_write(&self, operation: &'static str) -> Result<Transaction<'static, Postgres>> {
        self.pool
            .begin()
            .await
            .map_err(|e| MetadataError::from_sqlx(operation, e))
    }

    async fn commit_flush_tx(
        tx: &mut Transaction<'_, Postgres>,
        flush: &FlushCommit,
    ) -> Result<Vec<SegmentOutcome>> {
        const OP: &str = "commit flush";
        let (topics, partitions): (Vec<String>, Vec<i32>) =
            flush_partitions(&flush.segments).into_iter().unzip();
        let locked = sqlx::query_as::<Postgres, LockedPartition>(LOCK_PARTITIONS)
            .bind(&topics)
            .bind(&partitions)
            .fetch_all(&mut **tx)
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        let current: BTreeMap<(String, i32), i64> = locked
            .into_iter()
            .map(|row| ((row.topic, row.partition_id), row.high_watermark))
            .collect();
        let assignment = assign_offsets(&flush.segments, &current);
        if assignment.watermarks.is_empty() {
            return Ok(assignment.outcomes);
        }

        let mut wm_topics = Vec::with_capacity(assignment.watermarks.len());
        let mut wm_partitions = Vec::with_capacity(assignment.watermarks.len());
        let mut wm_values = Vec::with_capacity(assignment.watermarks.len());
        for (topic, partition, high_watermark) in &assignment.watermarks {
            wm_topics.push(topic.as_str());
            wm_partitions.push(*partition);
            wm_values.push(*high_watermark);
        }
        sqlx::query(UPDATE_WATERMARKS)
            .bind(&wm_topics)
            .bind(&wm_partitions)
            .bind(&wm_values)
            .execute(&mut **tx)
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;

        let mut rows = SegmentColumns::default();
        for (segment, outcome) in flush.segments.iter().zip(&assignment.outcomes) {
            if let SegmentOutcome::Committed {
                base_offset,
                end_offset,
            } = *outcome
            {
                rows.push(segment, base_offset, end_offset);
            }
        }
        sqlx::query(INSERT_SEGMENTS)
            .bind(&flush.bucket)
            .bind(&flush.key)
            .bind(flush.created_at)
            .bind(&rows.topic)
            .bind(&rows.partition)
            .bind(&rows.base_offset)
            .bind(&rows.end_offset)
            .bind(&rows.record_count)
            .bind(&rows.size_bytes)
            .bind(&rows.byte_offset)
            .bind(&rows.byte_length)
            .bind(&rows.min_timestamp)
            .bind(&rows.max_timestamp)
            .execute(&mut **tx)
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        Ok(assignment.outcomes)
    }
}

/// Segment rows as column arrays, for one `unnest` insert.
#[derive(Default)]
struct SegmentColumns<'a> {
    topic: Vec<&'a str>,
    partition: Vec<i32>,
    base_offset: Vec<i64>,
    end_offset: Vec<i64>,
    record_count: Vec<i64>,
    size_bytes: Vec<i64>,
    byte_offset: Vec<i64>,
    byte_length: Vec<i64>,
    min_timestamp: Vec<i64>,
    max_timestamp: Vec<i64>,
}

impl<'a> SegmentColumns<'a> {
    fn push(&mut self, segment: &'a crate::PendingSegment, base_offset: i64, end_offset: i64) {
        self.topic.push(&segment.topic);
        self.partition.push(segment.partition);
        self.base_offset.push(base_offset);
        self.end_offset.push(end_offset);
        self.record_count.push(segment.record_count);
        self.size_bytes.push(segment.size_bytes);
        self.byte_offset.push(segment.byte_offset);
        self.byte_length.push(segment.byte_length);
        self.min_timestamp.push(segment.min_timestamp);
        self.max_timestamp.push(segment.max_timestamp);
    }
}

impl_shared_queries!(PostgresStore, Postgres);
