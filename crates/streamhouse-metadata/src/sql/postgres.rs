//! The production backend: PostgreSQL, shared by every agent of a cluster.
//!
//! A flush commit costs a constant number of statements whatever the number
//! of partitions: the partition rows are locked in one ordered
//! `SELECT … FOR UPDATE` (a fixed lock order, so concurrent flushes over
//! overlapping partitions cannot deadlock), then all high watermarks are
//! updated and all segment rows inserted with one `unnest` statement each.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Pool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use streamhouse_core::clock::{Clock, SystemClock};
use tokio::sync::broadcast;

use super::backend::Backend;

use super::flush_transactions::commit_notice;
use super::producers::pg::{INSERT_PRODUCER_BATCHES, SELECT_PRODUCER_STATE, TRIM_PRODUCER_STATE};
use super::producers::{ProducerBatchRow, producer_keys, producer_state};
use super::segments::flush_partitions;
use super::segments::pg::{
    CURRENT_SCHEMA, INSERT_SEGMENTS, LOCK_PARTITIONS, NOTIFY_COMMIT, UPDATE_WATERMARKS,
};
use super::{KEPT_BATCHES, LockedRow, assign_offsets};
use crate::error::{MetadataError, Result};
use crate::types::{CommitNotice, FlushCommit, SegmentOutcome, WatermarkNotice};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Commit notices, from this process's commits and, through LISTEN,
    /// from every agent's.
    notices: broadcast::Sender<CommitNotice>,
    /// Where stored times come from.
    clock: Arc<dyn Clock>,
    /// The NOTIFY channel, one per schema so that stores in different
    /// schemas of one database do not hear each other.
    channel: Arc<str>,
    listening: Arc<AtomicBool>,
}

#[derive(sqlx::FromRow)]
struct LockedPartition {
    topic: String,
    partition_id: i32,
    high_watermark: i64,
    first_open_txn: Option<i64>,
    leader_epoch: i32,
}

impl PostgresStore {
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
        MIGRATOR
            .run(&pool)
            .await
            .map_err(MetadataError::from_migrate)?;
        let schema: String = sqlx::query_scalar(CURRENT_SCHEMA)
            .fetch_one(&pool)
            .await
            .map_err(|e| MetadataError::from_sqlx("read schema", e))?;
        Ok(Self {
            pool,
            notices: broadcast::Sender::new(NOTICE_CAPACITY),
            clock: Arc::new(SystemClock),
            channel: Arc::from(channel_for(&schema)),
            listening: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Reads stored times (creation, commit and tombstone times) from
    /// `clock` instead of the system's wall clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The connection pool, for components that need PostgreSQL-specific
    /// features of the same database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl Backend for PostgresStore {
    type Db = Postgres;

    const BACKEND: &'static str = "postgres";

    const SHARE_LOCK: &'static str = " FOR SHARE";

    fn pool(&self) -> &Pool<Postgres> {
        &self.pool
    }

    fn notices(&self) -> &broadcast::Sender<CommitNotice> {
        &self.notices
    }

    fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    async fn begin_write(&self, operation: &'static str) -> Result<Transaction<'static, Postgres>> {
        self.pool
            .begin()
            .await
            .map_err(|e| MetadataError::from_sqlx(operation, e))
    }

    /// Subscribes to commit notices, starting the LISTEN task on first use.
    fn subscribe_notices(&self) -> broadcast::Receiver<CommitNotice> {
        let receiver = self.notices.subscribe();
        if !self.listening.swap(true, Ordering::SeqCst) {
            tokio::spawn(listen(
                self.pool.clone(),
                self.channel.clone(),
                self.notices.clone(),
            ));
        }
        receiver
    }

    async fn lock_partitions_tx(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        partitions: &[(String, i32)],
    ) -> Result<()> {
        let (topics, partitions): (Vec<&str>, Vec<i32>) =
            partitions.iter().map(|(t, p)| (t.as_str(), *p)).unzip();
        sqlx::query(LOCK_PARTITIONS)
            .bind(&topics)
            .bind(&partitions)
            .execute(&mut **tx)
            .await
            .map_err(|e| MetadataError::from_sqlx("lock partitions", e))?;
        Ok(())
    }

    async fn commit_flush_tx(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        flush: &FlushCommit,
        before: &HashMap<usize, (i64, i64)>,
        refused: &HashMap<usize, SegmentOutcome>,
    ) -> Result<(Vec<SegmentOutcome>, Vec<WatermarkNotice>)> {
        const OP: &str = "commit flush";
        // Every partition of the flush, those an earlier attempt committed
        // too: their outcomes carry the partition's leader epoch.
        let (topics, partitions): (Vec<String>, Vec<i32>) =
            flush_partitions(&flush.segments, &HashMap::new())
                .into_iter()
                .unzip();
        let locked = sqlx::query_as::<Postgres, LockedPartition>(LOCK_PARTITIONS)
            .bind(&topics)
            .bind(&partitions)
            .fetch_all(&mut **tx)
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        let first_open: BTreeMap<(String, i32), Option<i64>> = locked
            .iter()
            .map(|row| ((row.topic.clone(), row.partition_id), row.first_open_txn))
            .collect();
        let current: BTreeMap<(String, i32), LockedRow> = locked
            .into_iter()
            .map(|row| {
                (
                    (row.topic, row.partition_id),
                    LockedRow {
                        high_watermark: row.high_watermark,
                        leader_epoch: row.leader_epoch,
                    },
                )
            })
            .collect();
        let keys = producer_keys(&flush.segments, before);
        let state = if keys.is_empty() {
            Default::default()
        } else {
            let (mut ids, mut key_topics, mut key_partitions) =
                (Vec::new(), Vec::new(), Vec::new());
            for (id, topic, partition) in &keys {
                ids.push(*id);
                key_topics.push(topic.as_str());
                key_partitions.push(*partition);
            }
            let rows = sqlx::query_as::<Postgres, ProducerBatchRow>(SELECT_PRODUCER_STATE)
                .bind(&ids)
                .bind(&key_topics)
                .bind(&key_partitions)
                .fetch_all(&mut **tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?;
            producer_state(rows)
        };
        let assignment = assign_offsets(&flush.segments, &current, before, refused, state);
        if !assignment.watermarks.is_empty() {
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
        }
        let mut rows = SegmentColumns::default();
        for &index in &assignment.inserted {
            if let (
                Some(segment),
                Some(SegmentOutcome::Committed {
                    base_offset,
                    end_offset,
                    ..
                }),
            ) = (flush.segments.get(index), assignment.outcomes.get(index))
            {
                rows.push(segment, *base_offset, *end_offset);
            }
        }
        if !rows.topic.is_empty() {
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
        }
        if !assignment.batches.is_empty() {
            let mut b = BatchColumns::default();
            for ((producer_id, topic, partition), meta) in &assignment.batches {
                b.producer_id.push(*producer_id);
                b.topic.push(topic.as_str());
                b.partition.push(*partition);
                b.epoch.push(meta.producer_epoch);
                b.first.push(meta.first_sequence);
                b.last.push(meta.last_sequence);
                b.base.push(meta.base_offset);
                b.end.push(meta.end_offset);
            }
            sqlx::query(INSERT_PRODUCER_BATCHES)
                .bind(&b.producer_id)
                .bind(&b.topic)
                .bind(&b.partition)
                .bind(&b.epoch)
                .bind(&b.first)
                .bind(&b.last)
                .bind(&b.base)
                .bind(&b.end)
                .execute(&mut **tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?;
            sqlx::query(TRIM_PRODUCER_STATE)
                .bind(&b.producer_id)
                .bind(&b.topic)
                .bind(&b.partition)
                .bind(KEPT_BATCHES as i64)
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
        for payload in notice_payloads(&notice) {
            sqlx::query(NOTIFY_COMMIT)
                .bind(&*self.channel)
                .bind(payload)
                .execute(&mut **tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        }
        Ok((assignment.outcomes, notice))
    }
}

/// Commit notices buffered per subscriber before the oldest are dropped.
const NOTICE_CAPACITY: usize = 1024;
/// NOTIFY payloads must stay under 8000 bytes.
const MAX_PAYLOAD: usize = 7_000;

/// `streamhouse_commits_<hash of the schema>`: a valid channel name of
/// bounded length for any schema.
fn channel_for(schema: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in schema.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("streamhouse_commits_{hash:016x}")
}

/// A commit's notice as NOTIFY payloads: `topic partition high_watermark
/// last_stable_offset` lines, the last `?` when it must be read again
/// (topic names never contain spaces or newlines), split to fit.
fn notice_payloads(notice: &[WatermarkNotice]) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = String::new();
    for entry in notice {
        let lso = entry
            .last_stable_offset
            .map_or_else(|| "?".to_string(), |lso| lso.to_string());
        let epoch = entry
            .leader_epoch
            .map_or_else(|| "?".to_string(), |epoch| epoch.to_string());
        let line = format!(
            "{} {} {} {lso} {epoch}\n",
            entry.topic, entry.partition, entry.high_watermark
        );
        if !current.is_empty() && current.len() + line.len() > MAX_PAYLOAD {
            payloads.push(std::mem::take(&mut current));
        }
        current.push_str(&line);
    }
    if !current.is_empty() {
        payloads.push(current);
    }
    payloads
}

/// Reads [`notice_payloads`]' lines; a line without a last stable offset
/// or a leader epoch (an agent of an earlier version) says to read the
/// partition again.
fn parse_notice(payload: &str) -> Vec<WatermarkNotice> {
    payload
        .lines()
        .filter_map(|line| {
            let mut parts = line.split(' ');
            let topic = parts.next()?.to_string();
            let partition = parts.next()?.parse().ok()?;
            let high_watermark = parts.next()?.parse().ok()?;
            let last_stable_offset = parts.next().and_then(|lso| lso.parse().ok());
            let leader_epoch = parts.next().and_then(|epoch| epoch.parse().ok());
            Some(WatermarkNotice {
                topic,
                partition,
                high_watermark,
                last_stable_offset,
                leader_epoch,
            })
        })
        .collect()
}

/// Forwards other agents' commit notices; reconnects after failures.
/// Notices sent while disconnected are lost, which readers tolerate by
/// re-reading watermarks periodically.
async fn listen(pool: PgPool, channel: Arc<str>, notices: broadcast::Sender<CommitNotice>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot LISTEN for commit notices; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(error) = listener.listen(&channel).await {
            tracing::warn!(%error, "LISTEN failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    let watermarks = parse_notice(notification.payload());
                    if !watermarks.is_empty() {
                        let _ = notices.send(watermarks.into());
                    }
                }
                // The connection was lost: reconnect and listen again.
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, "commit notice stream failed; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
            if notices.receiver_count() == 0 && pool.is_closed() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_and_split() {
        let watermarks: Vec<WatermarkNotice> = (0..2000)
            .map(|p| WatermarkNotice {
                topic: format!("topic-{}", p % 7),
                partition: p,
                high_watermark: i64::from(p) * 1000,
                last_stable_offset: (p % 3 != 0).then(|| i64::from(p) * 900),
                leader_epoch: (p % 5 != 0).then_some(p % 11),
            })
            .collect();
        let payloads = notice_payloads(&watermarks);
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let parsed: Vec<_> = payloads.iter().flat_map(|p| parse_notice(p)).collect();
        assert_eq!(parsed, watermarks);
        assert!(parse_notice("garbage\nt 1\nt x 2").is_empty());
    }

    #[test]
    fn channels_differ_per_schema_and_stay_short() {
        let a = channel_for("t_contract_concurrent_flushes_never_share_offsets_0123456789ab");
        let b = channel_for("public");
        assert_ne!(a, b);
        assert!(a.len() < 64);
    }
}

/// Producer batches as column arrays, for one `unnest` insert.
#[derive(Default)]
struct BatchColumns<'a> {
    producer_id: Vec<i64>,
    topic: Vec<&'a str>,
    partition: Vec<i32>,
    epoch: Vec<i16>,
    first: Vec<i32>,
    last: Vec<i32>,
    base: Vec<i64>,
    end: Vec<i64>,
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
