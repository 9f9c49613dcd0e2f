//! The embedded backend: one SQLite file in WAL mode.
//!
//! Write transactions start with `BEGIN IMMEDIATE`, taking SQLite's write
//! lock up front: a deferred transaction that reads and then writes can fail
//! with SQLITE_BUSY when another connection wrote in between. Commits use
//! `synchronous = FULL` so an acknowledged flush survives power loss.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Pool;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use streamhouse_core::clock::{Clock, SystemClock};
use tokio::sync::broadcast;

use super::backend::Backend;

use super::flush_transactions::commit_notice;
use super::producers::{
    INSERT_PRODUCER_BATCH, ProducerBatchRow, SELECT_PRODUCER_BATCHES, TRIM_PRODUCER_BATCHES,
    producer_keys, producer_state,
};
use super::segments::{
    INSERT_ONE_SEGMENT, SELECT_HIGH_WATERMARK, SET_HIGH_WATERMARK, flush_partitions,
};
use super::{KEPT_BATCHES, LockedRow, ProducerKey, assign_offsets};
use crate::error::{MetadataError, Result};
use crate::types::{CommitNotice, FlushCommit, SegmentOutcome, WatermarkNotice};

/// Commit notices buffered per subscriber before the oldest are dropped.
const NOTICE_CAPACITY: usize = 1024;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Commit notices; one process owns an SQLite file, so in-process
    /// delivery reaches every reader.
    notices: broadcast::Sender<CommitNotice>,
    /// Where stored times come from.
    clock: Arc<dyn Clock>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies
    /// the migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| MetadataError::InvalidUrl {
                url: path.display().to_string(),
                reason: format!("cannot create directory {}: {e}", parent.display()),
            })?;
        }
        let options = SqliteConnectOptions::new().filename(path);
        Self::connect_with(options).await
    }

    /// Opens a `sqlite://PATH` URL.
    pub async fn connect(url: &str) -> Result<Self> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| MetadataError::InvalidUrl {
                url: url.to_string(),
                reason: "expected sqlite://PATH".into(),
            })?;
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() {
            return Err(MetadataError::InvalidUrl {
                url: url.to_string(),
                reason: "the path is empty".into(),
            });
        }
        Self::open(path).await
    }

    async fn connect_with(options: SqliteConnectOptions) -> Result<Self> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| MetadataError::from_sqlx("open sqlite", e))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(MetadataError::from_migrate)?;
        Ok(Self {
            pool,
            notices: broadcast::Sender::new(NOTICE_CAPACITY),
            clock: Arc::new(SystemClock),
        })
    }

    /// Reads stored times (creation, commit and tombstone times) from
    /// `clock` instead of the system's wall clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Parses a URL into options without connecting; used to validate
    /// configuration early.
    pub fn validate_url(url: &str) -> Result<()> {
        SqliteConnectOptions::from_str(url)
            .map(|_| ())
            .map_err(|e| MetadataError::InvalidUrl {
                url: url.to_string(),
                reason: e.to_string(),
            })
    }
}

#[async_trait]
impl Backend for SqliteStore {
    type Db = Sqlite;

    const BACKEND: &'static str = "sqlite";

    const SHARE_LOCK: &'static str = "";

    fn pool(&self) -> &Pool<Sqlite> {
        &self.pool
    }

    fn notices(&self) -> &broadcast::Sender<CommitNotice> {
        &self.notices
    }

    fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    async fn begin_write(&self, operation: &'static str) -> Result<Transaction<'static, Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| MetadataError::from_sqlx(operation, e))
    }

    fn subscribe_notices(&self) -> broadcast::Receiver<CommitNotice> {
        self.notices.subscribe()
    }

    async fn lock_partitions_tx(
        &self,
        _tx: &mut Transaction<'_, Sqlite>,
        _partitions: &[(String, i32)],
    ) -> Result<()> {
        // BEGIN IMMEDIATE already excludes every other writer.
        Ok(())
    }

    async fn commit_flush_tx(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        flush: &FlushCommit,
        before: &HashMap<usize, (i64, i64)>,
        refused: &HashMap<usize, SegmentOutcome>,
    ) -> Result<(Vec<SegmentOutcome>, Vec<WatermarkNotice>)> {
        const OP: &str = "commit flush";
        let mut current = BTreeMap::new();
        let mut first_open = BTreeMap::new();
        // Every partition of the flush, those an earlier attempt committed
        // too: their outcomes carry the partition's leader epoch.
        for (topic, partition) in flush_partitions(&flush.segments, &HashMap::new()) {
            let row: Option<(i64, Option<i64>, i32)> = sqlx::query_as(SELECT_HIGH_WATERMARK)
                .bind(&topic)
                .bind(partition)
                .fetch_optional(&mut **tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?;
            if let Some((high_watermark, first_open_txn, leader_epoch)) = row {
                first_open.insert((topic.clone(), partition), first_open_txn);
                current.insert(
                    (topic, partition),
                    LockedRow {
                        high_watermark,
                        leader_epoch,
                    },
                );
            }
        }
        let mut rows = Vec::new();
        for (producer_id, topic, partition) in producer_keys(&flush.segments, before) {
            rows.extend(
                sqlx::query_as::<Sqlite, ProducerBatchRow>(SELECT_PRODUCER_BATCHES)
                    .bind(producer_id)
                    .bind(&topic)
                    .bind(partition)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?,
            );
        }
        let assignment = assign_offsets(
            &flush.segments,
            &current,
            before,
            refused,
            producer_state(rows),
        );
        for (topic, partition, high_watermark) in &assignment.watermarks {
            sqlx::query(SET_HIGH_WATERMARK)
                .bind(topic)
                .bind(partition)
                .bind(high_watermark)
                .execute(&mut **tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        }
        for &index in &assignment.inserted {
            let (
                Some(segment),
                Some(SegmentOutcome::Committed {
                    base_offset,
                    end_offset,
                    ..
                }),
            ) = (flush.segments.get(index), assignment.outcomes.get(index))
            else {
                continue;
            };
            sqlx::query(INSERT_ONE_SEGMENT)
                .bind(&segment.topic)
                .bind(segment.partition)
                .bind(base_offset)
                .bind(end_offset)
                .bind(segment.record_count)
                .bind(segment.size_bytes)
                .bind(&flush.bucket)
                .bind(&flush.key)
                .bind(segment.byte_offset)
                .bind(segment.byte_length)
                .bind(segment.min_timestamp)
                .bind(segment.max_timestamp)
                .bind(flush.created_at)
                // Flushed rows are not key-compacted.
                .bind(None::<i64>)
                .bind(0_i64)
                .execute(&mut **tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        }
        for ((producer_id, topic, partition), batch) in &assignment.batches {
            sqlx::query(INSERT_PRODUCER_BATCH)
                .bind(producer_id)
                .bind(topic)
                .bind(partition)
                .bind(batch.producer_epoch)
                .bind(batch.first_sequence)
                .bind(batch.last_sequence)
                .bind(batch.base_offset)
                .bind(batch.end_offset)
                .execute(&mut **tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        }
        let mut trimmed: Vec<&ProducerKey> = assignment.batches.iter().map(|(k, _)| k).collect();
        trimmed.dedup();
        for (producer_id, topic, partition) in trimmed {
            sqlx::query(TRIM_PRODUCER_BATCHES)
                .bind(producer_id)
                .bind(topic)
                .bind(partition)
                .bind(KEPT_BATCHES as i64 - 1)
                .execute(&mut **tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        }
        let notice = commit_notice(
            &assignment.watermarks,
            &first_open,
            &current,
            &flush.segments,
            &assignment.outcomes,
        );
        Ok((assignment.outcomes, notice))
    }
}
