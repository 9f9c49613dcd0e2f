//! The storage engine: one metadata store, one object store, and the write
//! and read paths between them.
//!
//! Settings ([`StorageConfig`]) are plain values; components (the metadata
//! store, the object storage and the clock) are passed in, so tests can
//! hand in a fault-injecting store, an isolated database or a clock they
//! move by hand.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use streamhouse_core::{Record, TopicConfig, TopicPartition};
use streamhouse_metadata::{
    ClusterRegistry, GroupOffsets, MetadataStore, PartitionInfo, ProducerBatch, StorageStats,
    Topic, TransactionBatch,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod consumer_groups;
mod epochs;
mod offsets;
mod security;
mod topics;
mod transactions;

pub use transactions::TransactionOutcome;

pub use security::{
    DEFAULT_SCRAM_ITERATIONS, MAX_USER_NAME_BYTES, ScramUser, SecurityConfig, validate_user_name,
};

use crate::authorizer::{self, Authorizer};
use crate::cache::{CacheStats, SegmentCache};
use crate::clock::{Clock, SystemClock};
use crate::consumer::{Consumer, ConsumerConfig};
use crate::error::{Result, StorageError};
use crate::flusher::{self, FlushTargets};
use crate::health::{self, OutcomeTracker, WriteHealth};
use crate::jobs::{
    self, CheckReport, CompactionConfig, CompactionReport, GcReport, JobsConfig, RetentionReport,
};
use crate::leader_epochs::LeaderEpochCache;
use crate::object_storage::{ObjectStorage, ObjectStoreStats};
use crate::partitioner::Partitioner;
use crate::producer::Producer;
use crate::reader::{Isolation, PartitionReader, ReadContext, ReadResult};
use crate::segment_index::{SegmentIndex, SegmentIndexConfig};
use crate::topics::TopicCache;
use crate::watermarks::{Lso, Watermarks};
use crate::writer::{AppendResult, FlushConfig, Origin, PendingAppend, WriteShared};

/// How long an append from the library or the HTTP API waits for buffer
/// space before it fails (a Kafka produce waits its own `timeout_ms`).
const DEFAULT_APPEND_WAIT: Duration = Duration::from_secs(30);

/// Settings of the storage engine.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub flush: FlushConfig,
    /// Bytes of segment data kept in memory.
    pub cache_bytes: u64,
    pub index: SegmentIndexConfig,
    /// How long a partition's high watermark read from the metadata store
    /// is trusted; commits made by this engine are seen at once.
    pub watermark_ttl: Duration,
    /// How long topic metadata is trusted on the write path.
    pub topic_ttl: Duration,
    /// Partitions the cluster may hold; creating topics or partitions past
    /// it is refused.
    pub max_partitions: usize,
    /// Authorization (`--authorizer`, `--super-users`) and how often users
    /// and ACLs are re-read.
    pub security: SecurityConfig,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            flush: FlushConfig::default(),
            cache_bytes: 256 << 20,
            index: SegmentIndexConfig::default(),
            watermark_ttl: Duration::from_millis(500),
            topic_ttl: Duration::from_secs(5),
            max_partitions: 100_000,
            security: SecurityConfig::default(),
        }
    }
}

pub(crate) struct EngineInner {
    metadata: Arc<dyn MetadataStore>,
    storage: ObjectStorage,
    cache: SegmentCache,
    index: Arc<SegmentIndex>,
    watermarks: Arc<Watermarks>,
    topics: TopicCache,
    commits: Arc<OutcomeTracker>,
    write: Arc<WriteShared>,
    cancel: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    max_partitions: usize,
    partitioner: Partitioner,
    clock: Arc<dyn Clock>,
    authorizer: Arc<Authorizer>,
    logins: security::LoginCache,
    epochs: LeaderEpochCache,
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        // The flusher flushes what is buffered and stops.
        self.cancel.cancel();
    }
}

/// A handle to the storage engine; clones share one engine.
#[derive(Clone)]
pub struct StorageEngine {
    inner: Arc<EngineInner>,
}

impl std::fmt::Debug for StorageEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageEngine")
            .field("metadata", &self.inner.metadata.backend())
            .field("storage", &self.inner.storage)
            .finish()
    }
}

impl StorageEngine {
    /// Starts the engine's background tasks on the current Tokio runtime,
    /// reading time from the system's clock.
    pub fn start(
        metadata: Arc<dyn MetadataStore>,
        storage: ObjectStorage,
        config: StorageConfig,
    ) -> Self {
        Self::start_with_clock(metadata, storage, config, Arc::new(SystemClock))
    }

    /// Like [`start`](Self::start), reading every time the engine needs
    /// from `clock`: record and segment timestamps, retention cutoffs,
    /// tombstone and orphan ages, job leases and index TTLs.
    pub fn start_with_clock(
        metadata: Arc<dyn MetadataStore>,
        storage: ObjectStorage,
        config: StorageConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let cache = SegmentCache::new(config.cache_bytes);
        let index =
            Arc::new(SegmentIndex::new(metadata.clone(), config.index).with_clock(clock.clone()));
        let watermarks = Arc::new(Watermarks::new(metadata.clone(), config.watermark_ttl));
        let epochs = LeaderEpochCache::new(metadata.clone());
        let write = Arc::new(WriteShared::new(config.flush.clone()));
        let cancel = CancellationToken::new();
        let commits = Arc::new(OutcomeTracker::default());
        let (flush_loop, committer) = flusher::spawn(
            write.clone(),
            FlushTargets {
                storage: storage.clone(),
                metadata: metadata.clone(),
                cache: cache.clone(),
                index: index.clone(),
                watermarks: watermarks.clone(),
                commits: commits.clone(),
                clock: clock.clone(),
            },
            cancel.clone(),
        );
        let notices = tokio::spawn(follow_commits(
            metadata.commit_notices(),
            watermarks.clone(),
            cancel.clone(),
        ));
        let authorizer = Arc::new(Authorizer::new(
            config.security.authorizer,
            &config.security.super_users,
            metadata.clone(),
        ));
        let security = tokio::spawn(authorizer::follow_changes(
            authorizer.clone(),
            config.security.refresh_interval,
            cancel.clone(),
        ));
        Self {
            inner: Arc::new(EngineInner {
                topics: TopicCache::new(metadata.clone(), config.topic_ttl),
                commits,
                metadata,
                storage,
                cache,
                index,
                watermarks,
                write,
                cancel,
                tasks: Mutex::new(vec![flush_loop, committer, notices, security]),
                max_partitions: config.max_partitions,
                partitioner: Partitioner::new(),
                clock,
                authorizer,
                logins: security::LoginCache::new(),
                epochs,
            }),
        }
    }

    /// Opens the metadata store and object storage named by URLs
    /// (`sqlite://…` or `postgres://…`; `file://…` or `s3://…`) and starts.
    pub async fn open(
        metadata_url: &str,
        object_store_url: &str,
        config: StorageConfig,
    ) -> Result<Self> {
        let storage = ObjectStorage::from_url(object_store_url)?;
        let metadata = streamhouse_metadata::open(metadata_url).await?;
        Ok(Self::start(metadata, storage, config))
    }

    pub(crate) fn metadata(&self) -> &Arc<dyn MetadataStore> {
        &self.inner.metadata
    }

    /// The clock the engine reads time from; front-ends stamp records and
    /// heartbeats with it too.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The registry of live agents, for cluster membership.
    pub fn cluster_registry(&self) -> Arc<dyn ClusterRegistry> {
        self.inner.metadata.clone()
    }

    /// Consumer group offsets, for the group coordinator.
    pub fn group_offsets(&self) -> Arc<dyn GroupOffsets> {
        self.inner.metadata.clone()
    }

    /// Succeeds when the metadata store answers a trivial query.
    pub async fn ping_metadata(&self) -> Result<()> {
        Ok(self.inner.metadata.ping().await?)
    }

    /// The metadata backend's short name: `sqlite` or `postgres`.
    pub fn metadata_backend(&self) -> &'static str {
        self.inner.metadata.backend()
    }

    /// Where a record goes: `requested` when it is one of the topic's
    /// partitions, else the partition of its key (Kafka's murmur2), else
    /// the next partition in turn. Every front-end places records here.
    pub fn choose_partition(
        &self,
        topic: &Topic,
        requested: Option<i32>,
        key: Option<&[u8]>,
    ) -> Result<i32> {
        self.inner.partitioner.choose(topic, requested, key)
    }

    pub fn storage(&self) -> &ObjectStorage {
        &self.inner.storage
    }

    /// Appends records to one partition and waits until they are durable
    /// and visible. Record offsets are assigned by the commit; the records'
    /// `offset` fields are ignored.
    pub async fn append(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<Record>,
    ) -> Result<AppendResult> {
        self.start_append(topic, partition, records).await?.await
    }

    /// Validates and buffers an append, returning once it is queued for the
    /// next flush; the returned future resolves when it is committed.
    /// Appends started one after another keep that order in the partition,
    /// so a connection can start several before awaiting any. Each record
    /// must fit the topic's `max.message.bytes` and, when the topic
    /// compacts, have a key.
    pub async fn start_append(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<Record>,
    ) -> Result<PendingAppend> {
        let config = self.inner.topics.get_partition(topic, partition).await?;
        let max = usize::try_from(config.config.max_message_bytes()).unwrap_or(usize::MAX);
        if let Some(size) = records
            .iter()
            .map(Record::payload_size)
            .find(|&size| size > max)
        {
            return Err(StorageError::RecordTooLarge {
                topic: topic.to_string(),
                size,
                max,
            });
        }
        check_keys(topic, partition, &config.config, &records)?;
        self.enqueue(
            topic,
            partition,
            records,
            None,
            DEFAULT_APPEND_WAIT,
            config.config.log_append_time(),
        )
        .await
    }

    /// Like [`start_append`](Self::start_append) for one record batch as a
    /// Kafka producer sent it, whose size the caller has checked against
    /// `max.message.bytes` as Kafka does (the batch as received, not each
    /// record). With `producer` set (an idempotent producer), the commit
    /// checks its sequence, answers a retry of a stored batch with the
    /// original offsets, and refuses gaps and fenced epochs. The append
    /// waits at most `wait` for buffer space (the request's own timeout).
    /// A compacted topic refuses the batch if a record has no key.
    pub async fn start_producer_append(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<Record>,
        producer: Option<ProducerBatch>,
        wait: Duration,
    ) -> Result<PendingAppend> {
        let config = self.inner.topics.get_partition(topic, partition).await?;
        check_keys(topic, partition, &config.config, &records)?;
        self.enqueue(
            topic,
            partition,
            records,
            producer.map(Origin::Producer),
            wait,
            config.config.log_append_time(),
        )
        .await
    }

    /// Writes a transaction's COMMIT or ABORT marker (`marker.commit`) to
    /// a partition through the normal flush commit, which closes the
    /// producer's open transaction there at the marker's offset. Returns
    /// that offset once it is durable. The marker is Kafka's control
    /// record: key = version 0 and type (0 ABORT, 1 COMMIT), value =
    /// version 0 and the coordinator epoch.
    pub async fn append_marker(
        &self,
        topic: &str,
        partition: i32,
        marker: TransactionBatch,
    ) -> Result<i64> {
        let commit = marker.commit.unwrap_or(false);
        let key = [0, 0, 0, u8::from(commit)];
        let value = [0, 0, 0, 0, 0, 0];
        let record = Record::new(self.inner.clock.now_ms(), value.to_vec()).with_key(key.to_vec());
        let pending = self
            .enqueue(
                topic,
                partition,
                vec![record],
                Some(Origin::Marker(marker)),
                DEFAULT_APPEND_WAIT,
                false,
            )
            .await?;
        Ok(pending.await?.base_offset)
    }

    /// Buffers an append; a topic that stamps records on append
    /// (`message.timestamp.type=LogAppendTime`) gets the time here, for
    /// every front-end alike.
    async fn enqueue(
        &self,
        topic: &str,
        partition: i32,
        mut records: Vec<Record>,
        origin: Option<Origin>,
        wait: Duration,
        stamp: bool,
    ) -> Result<PendingAppend> {
        let append_time = stamp.then(|| self.inner.clock.now_ms());
        if let Some(time) = append_time {
            for record in &mut records {
                record.timestamp = time;
            }
        }
        let count = records.len() as u64;
        let mut pending = self
            .inner
            .write
            .enqueue(TopicPartition::new(topic, partition), records, origin, wait)
            .await?;
        metrics::counter!("streamhouse_append_records_total").increment(count);
        pending.append_time = append_time;
        Ok(pending)
    }

    pub fn reader(&self, topic: &str, partition: i32) -> PartitionReader {
        PartitionReader::new(topic, partition, self.read_context())
    }

    pub async fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<ReadResult> {
        self.reader(topic, partition)
            .read(offset, max_records, max_bytes)
            .await
    }

    /// [`read`](Self::read) with an isolation level: read_committed stops
    /// at the last stable offset.
    pub async fn read_isolated(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<ReadResult> {
        self.reader(topic, partition)
            .read_isolated(offset, usize::MAX, max_bytes, isolation)
            .await
    }

    /// A read as an application sees it ([`VisibleRead`]): markers left
    /// out, and for read_committed the records of aborted transactions too.
    pub async fn read_visible(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_records: usize,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<crate::reader::VisibleRead> {
        let result = self
            .reader(topic, partition)
            .read_isolated(offset, max_records, max_bytes, isolation)
            .await?;
        let holds_transactional_records = result
            .transactions
            .iter()
            .any(|run| run.batch.commit.is_none());
        let aborted = match (isolation, result.records.first(), result.records.last()) {
            (Isolation::Committed, Some(first), Some(last)) if holds_transactional_records => {
                self.aborted_transactions(topic, partition, first.offset, last.offset)
                    .await?
            }
            _ => Vec::new(),
        };
        Ok(crate::reader::VisibleRead::new(result, offset, &aborted))
    }

    /// The partition's readable range.
    pub async fn partition_info(&self, topic: &str, partition: i32) -> Result<PartitionInfo> {
        Ok(self.inner.watermarks.get(topic, partition).await?)
    }

    /// A receiver that changes when the partition's high watermark moves.
    pub async fn watch_partition(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<watch::Receiver<PartitionInfo>> {
        Ok(self.inner.watermarks.subscribe(topic, partition).await?)
    }

    pub fn producer(&self) -> Producer {
        Producer::new(self.clone())
    }

    pub fn consumer(&self, config: ConsumerConfig) -> Consumer {
        Consumer::new(self.clone(), config)
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    /// Counts over the segment rows and the objects awaiting deletion.
    pub async fn storage_stats(&self) -> Result<StorageStats> {
        Ok(self.inner.metadata.storage_stats().await?)
    }

    /// Object-storage bytes per partition of `topic` (DescribeLogDirs).
    pub async fn partition_bytes(&self, topic: &str) -> Result<Vec<(i32, i64)>> {
        Ok(self.inner.metadata.partition_bytes(topic).await?)
    }

    /// Where the engine's objects live, for operators: the bucket and
    /// prefix, no credentials.
    pub fn storage_location(&self) -> String {
        let storage = &self.inner.storage;
        match storage.prefix() {
            "" => storage.bucket().to_string(),
            prefix => format!("{}/{}", storage.bucket(), prefix.trim_matches('/')),
        }
    }

    pub fn object_store_stats(&self) -> ObjectStoreStats {
        self.inner.storage.stats()
    }

    /// The streaks of failed uploads and metadata commits, for readiness.
    pub fn write_health(&self) -> WriteHealth {
        WriteHealth {
            uploads: self.inner.storage.upload_outcomes().status(),
            commits: self.inner.commits.status(),
        }
    }

    /// Uploads a tiny object, recorded like a flush's upload, so that a
    /// streak of failed uploads can end while nothing is produced.
    pub async fn probe_upload(&self) -> Result<()> {
        health::probe_upload(&self.inner.storage).await
    }

    /// A small metadata write transaction, recorded like a flush's commit,
    /// so that a streak of failed commits can end while nothing is produced.
    pub async fn probe_commit(&self) -> Result<()> {
        health::probe_commit(
            self.inner.metadata.as_ref(),
            &self.inner.commits,
            self.inner.clock.as_ref(),
        )
        .await
    }

    /// Records buffered and not yet handed to a flush.
    pub fn buffered_records(&self) -> u64 {
        self.inner
            .write
            .buffered_records
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops accepting appends, flushes and commits what is buffered,
    /// answers every waiting append, and stops the background tasks.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        let tasks: Vec<_> = std::mem::take(&mut *self.inner.tasks.lock());
        for task in tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "storage task failed during shutdown");
            }
        }
    }

    /// Objects under `batches/` that no segment row references and that
    /// are older than `grace`: flushes whose commit failed or never
    /// happened (an agent died between upload and commit). They are never
    /// read as data; garbage collection may delete them.
    pub async fn orphan_objects(&self, grace: Duration) -> Result<Vec<object_store::ObjectMeta>> {
        crate::orphans::find(
            &self.inner.storage,
            self.inner.metadata.as_ref(),
            grace,
            self.inner.clock.as_ref(),
        )
        .await
    }

    /// One compaction pass over every partition (the background job runs
    /// this on one agent at a time; see [`Self::start_jobs`]).
    pub async fn compact(&self, config: &CompactionConfig) -> Result<CompactionReport> {
        jobs::compaction_pass(&self.job_context(), config).await
    }

    /// One retention pass: drops segments past each topic's
    /// `retention.ms` / `retention.bytes` and advances log start offsets.
    pub async fn enforce_retention(&self) -> Result<RetentionReport> {
        jobs::retention_pass(&self.job_context()).await
    }

    /// One garbage collection pass: deletes objects that lost their last
    /// reference more than `grace` ago, and uncommitted uploads older than
    /// `orphan_age`. The background job uses at least
    /// [`jobs::MIN_ORPHAN_AGE`] for the latter; anything shorter is safe only
    /// while no flush or compaction is in flight.
    pub async fn collect_garbage(&self, grace: Duration, orphan_age: Duration) -> Result<GcReport> {
        jobs::gc_pass(&self.job_context(), grace, orphan_age).await
    }

    /// Checks that every segment row's bytes exist and decode, and that the
    /// rows cover every readable offset exactly once.
    pub async fn check_consistency(&self) -> Result<CheckReport> {
        jobs::check_consistency(self.inner.metadata.as_ref(), &self.inner.storage).await
    }

    /// Kafka's DeleteRecords: makes offsets below `offset` unreadable (-1:
    /// everything up to the high watermark). Returns the new log start
    /// offset.
    pub async fn delete_records(&self, topic: &str, partition: i32, offset: i64) -> Result<i64> {
        jobs::delete_records(&self.job_context(), topic, partition, offset).await
    }

    /// Runs compaction, retention and garbage collection in the background,
    /// each while this agent holds the job's lease, until shutdown.
    pub fn start_jobs(&self, config: JobsConfig) {
        let tasks = jobs::runner::spawn(self.job_context(), config, self.inner.cancel.clone());
        self.inner.tasks.lock().extend(tasks);
    }

    fn job_context(&self) -> jobs::JobContext {
        jobs::JobContext {
            metadata: self.inner.metadata.clone(),
            storage: self.inner.storage.clone(),
            index: self.inner.index.clone(),
            watermarks: self.inner.watermarks.clone(),
            clock: self.inner.clock.clone(),
        }
    }

    fn read_context(&self) -> ReadContext {
        ReadContext {
            metadata: self.inner.metadata.clone(),
            storage: self.inner.storage.clone(),
            cache: self.inner.cache.clone(),
            index: self.inner.index.clone(),
            watermarks: self.inner.watermarks.clone(),
        }
    }
}

/// Refuses an append to a topic whose `cleanup.policy` compacts when one
/// of its records has no key, as Kafka does: compaction keeps each key's
/// latest record, and a record without one could never be kept or
/// replaced. An empty key is a key.
fn check_keys(topic: &str, partition: i32, config: &TopicConfig, records: &[Record]) -> Result<()> {
    if !config.cleanup_policy().compacts() {
        return Ok(());
    }
    let indexes: Vec<usize> = records
        .iter()
        .enumerate()
        .filter(|(_, record)| record.key.is_none())
        .map(|(index, _)| index)
        .collect();
    if indexes.is_empty() {
        return Ok(());
    }
    metrics::counter!("streamhouse_keyless_records_rejected_total").increment(indexes.len() as u64);
    Err(StorageError::KeylessRecord {
        topic: topic.to_string(),
        partition,
        indexes,
    })
}

/// Advances high watermarks and last stable offsets from commit notices
/// (this agent's, and other agents' on PostgreSQL), so that long polls wake
/// without waiting for a TTL.
async fn follow_commits(
    mut notices: tokio::sync::broadcast::Receiver<streamhouse_metadata::CommitNotice>,
    watermarks: Arc<Watermarks>,
    cancel: CancellationToken,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let notice = tokio::select! {
            _ = cancel.cancelled() => return,
            notice = notices.recv() => notice,
        };
        match notice {
            Ok(notice) => {
                for entry in notice.iter() {
                    let lso = match entry.last_stable_offset {
                        Some(lso) => Lso::Exact(lso),
                        None => Lso::Unknown,
                    };
                    watermarks.advance(
                        &entry.topic,
                        entry.partition,
                        entry.high_watermark,
                        lso,
                        entry.leader_epoch,
                    );
                }
            }
            // Missed notices only delay readers until their next refresh.
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "commit notices dropped");
            }
            Err(RecvError::Closed) => return,
        }
    }
}
