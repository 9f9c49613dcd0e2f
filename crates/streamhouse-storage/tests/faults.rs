//! Faults on the write path: failing uploads and commits never lose an
//! acknowledged record and never make an unacknowledged one visible.

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::{Backend, numbered_record, test_config};
use object_store::ObjectStore;
use streamhouse_core::TopicConfig;
use streamhouse_metadata::{
    CommitNotice, FlushCommit, LayeredStore, MetadataError, MetadataStore, NewTopic, PartitionInfo,
    SegmentInfo, SegmentLog, SegmentOutcome, SegmentReplacement, StorageStats, Topic, TopicCatalog,
    TopicDescription,
};
use streamhouse_storage::testing::FaultInjectingStore;
use streamhouse_storage::{FlushConfig, StorageConfig, StorageEngine, StorageError};

on_every_backend!(
    upload_that_fails_then_succeeds_loses_nothing,
    upload_that_always_fails_makes_nothing_visible,
    failed_commit_makes_nothing_visible,
    flushes_behind_a_failed_flush_fail_too,
    two_engines_never_assign_an_offset_twice,
    a_waiting_reader_wakes_when_another_engine_commits,
    a_long_poll_over_many_partitions_rereads_a_few_watermarks_per_poll,
);

fn faulty(backend: &Backend) -> (Arc<FaultInjectingStore>, streamhouse_storage::ObjectStorage) {
    let mut injector = None;
    let storage = backend.storage.wrap_backend(|inner| {
        let faulty = Arc::new(FaultInjectingStore::new(inner));
        injector = Some(faulty.clone());
        faulty as Arc<dyn ObjectStore>
    });
    (injector.expect("wrapped"), storage)
}

async fn upload_that_fails_then_succeeds_loses_nothing(backend: Backend) {
    let (faults, storage) = faulty(&backend);
    let engine = StorageEngine::start(backend.metadata.clone(), storage, test_config());
    engine
        .create_topic(NewTopic::new("retry", 1))
        .await
        .expect("create topic");
    faults.fail_next_puts(2);
    let records: Vec<_> = (0..10).map(|n| numbered_record(0, n)).collect();
    let appended = engine
        .append("retry", 0, records.clone())
        .await
        .expect("the third attempt succeeds");
    assert_eq!((appended.base_offset, appended.last_offset), (0, 9));
    assert_eq!(
        faults.put_attempts(),
        3,
        "{}: two failures, one success",
        backend.name
    );
    let read = engine
        .read("retry", 0, 0, 100, 1 << 20)
        .await
        .expect("read");
    assert_eq!(read.records.len(), 10);
    for (i, record) in read.records.iter().enumerate() {
        assert_eq!(record, &records[i].clone().with_offset(i as i64));
    }
    let rows = backend
        .metadata
        .list_segments("retry", 0, 0, 10)
        .await
        .expect("segments");
    assert_eq!(rows.len(), 1, "stored once");
    engine.shutdown().await;
}

async fn upload_that_always_fails_makes_nothing_visible(backend: Backend) {
    let (faults, storage) = faulty(&backend);
    let engine = StorageEngine::start(backend.metadata.clone(), storage, test_config());
    engine
        .create_topic(NewTopic::new("broken", 2))
        .await
        .expect("create topic");
    faults.fail_all_puts(true);
    let error = engine
        .append("broken", 1, vec![numbered_record(1, 0)])
        .await
        .expect_err("the upload never succeeds");
    assert!(
        matches!(error, StorageError::UploadFailed { attempts: 3, .. }),
        "{}: {error:?}",
        backend.name
    );
    assert!(error.is_retriable());
    let partition = backend
        .metadata
        .get_partition("broken", 1)
        .await
        .expect("partition");
    assert_eq!(partition.high_watermark, 0, "no offsets consumed");
    assert!(
        backend
            .metadata
            .list_segments("broken", 1, 0, 10)
            .await
            .expect("segments")
            .is_empty()
    );
    let read = engine.read("broken", 1, 0, 10, 1024).await.expect("read");
    assert!(read.records.is_empty());

    faults.fail_all_puts(false);
    let appended = engine
        .append("broken", 1, vec![numbered_record(1, 1)])
        .await
        .expect("the store is back");
    assert_eq!(appended.base_offset, 0, "the failed append took no offset");
    engine.shutdown().await;
}

/// The segment log of a real store, except that `commit_flush` fails while
/// switched on.
#[derive(Debug)]
struct FailingCommits {
    inner: Arc<dyn MetadataStore>,
    failing: AtomicU64,
}

#[async_trait]
impl SegmentLog for FailingCommits {
    async fn commit_flush(
        &self,
        flush: &FlushCommit,
    ) -> Result<Vec<SegmentOutcome>, MetadataError> {
        if self.failing.load(Ordering::SeqCst) > 0 {
            self.failing.fetch_sub(1, Ordering::SeqCst);
            return Err(MetadataError::unavailable("commit flush", "pool timed out"));
        }
        self.inner.commit_flush(flush).await
    }
    async fn list_segments(
        &self,
        topic: &str,
        partition: i32,
        from_offset: i64,
        limit: usize,
    ) -> Result<Vec<SegmentInfo>, MetadataError> {
        self.inner
            .list_segments(topic, partition, from_offset, limit)
            .await
    }
    async fn find_segment_by_timestamp(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<Option<SegmentInfo>, MetadataError> {
        self.inner
            .find_segment_by_timestamp(topic, partition, timestamp)
            .await
    }
    async fn replace_segments(
        &self,
        replacement: &SegmentReplacement,
    ) -> Result<bool, MetadataError> {
        self.inner.replace_segments(replacement).await
    }
    async fn storage_stats(&self) -> Result<StorageStats, MetadataError> {
        self.inner.storage_stats().await
    }
    async fn partition_bytes(&self, topic: &str) -> Result<Vec<(i32, i64)>, MetadataError> {
        self.inner.partition_bytes(topic).await
    }
    fn commit_notices(&self) -> tokio::sync::broadcast::Receiver<CommitNotice> {
        self.inner.commit_notices()
    }
}

async fn failed_commit_makes_nothing_visible(backend: Backend) {
    let commits = Arc::new(FailingCommits {
        inner: backend.metadata.clone(),
        failing: AtomicU64::new(0),
    });
    let metadata =
        Arc::new(LayeredStore::new(backend.metadata.clone()).with_segments(commits.clone()));
    let engine = StorageEngine::start(metadata, backend.storage.clone(), test_config());
    engine
        .create_topic(NewTopic::new("uncommitted", 1))
        .await
        .expect("create topic");

    // Two transient failures are retried within the commit's three attempts.
    commits.failing.store(2, Ordering::SeqCst);
    let appended = engine
        .append("uncommitted", 0, vec![numbered_record(0, 0)])
        .await
        .expect("retried commit succeeds");
    assert_eq!(appended.base_offset, 0);

    // Three failures exhaust the attempts: the append fails, retriably.
    commits.failing.store(3, Ordering::SeqCst);
    let error = engine
        .append("uncommitted", 0, vec![numbered_record(0, 1)])
        .await
        .expect_err("commit keeps failing");
    assert!(
        matches!(error, StorageError::CommitFailed { attempts: 3, .. }),
        "{}: {error:?}",
        backend.name
    );
    assert!(error.is_retriable());
    let partition = backend
        .metadata
        .get_partition("uncommitted", 0)
        .await
        .expect("partition");
    assert_eq!(
        partition.high_watermark, 1,
        "the failed flush is not visible"
    );
    let read = engine
        .read("uncommitted", 0, 0, 10, 1 << 20)
        .await
        .expect("read");
    assert_eq!(read.records.len(), 1);
    engine.shutdown().await;
}

async fn flushes_behind_a_failed_flush_fail_too(backend: Backend) {
    let (faults, storage) = faulty(&backend);
    let config = StorageConfig {
        flush: FlushConfig {
            flush_interval: Duration::from_millis(10),
            upload_attempts: 1,
            max_inflight_flushes: 4,
            ..test_config().flush
        },
        ..test_config()
    };
    let engine = StorageEngine::start(backend.metadata.clone(), storage, config);
    engine
        .create_topic(NewTopic::new("ordered", 1))
        .await
        .expect("create topic");
    faults.delay_puts(Some(Duration::from_millis(400)));
    faults.fail_next_puts(1);
    let first = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .append("ordered", 0, vec![numbered_record(0, 0)])
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .append("ordered", 0, vec![numbered_record(0, 1)])
                .await
        })
    };
    let first = first.await.expect("task");
    let second = second.await.expect("task");
    assert!(
        matches!(first, Err(StorageError::UploadFailed { .. })),
        "{first:?}"
    );
    assert!(
        matches!(second, Err(StorageError::EarlierFlushFailed { .. })),
        "{}: the flush behind the failed one must not commit ahead of it: {second:?}",
        backend.name
    );
    faults.delay_puts(None);
    let third = engine
        .append("ordered", 0, vec![numbered_record(0, 2)])
        .await
        .expect("later flushes succeed");
    assert_eq!(third.base_offset, 0);
    engine.shutdown().await;
}

async fn two_engines_never_assign_an_offset_twice(backend: Backend) {
    let first = StorageEngine::start(
        backend.metadata.clone(),
        backend.storage.clone(),
        test_config(),
    );
    let second = StorageEngine::start(
        backend.metadata.clone(),
        backend.storage.clone(),
        test_config(),
    );
    first
        .create_topic(NewTopic::new("shared", 1))
        .await
        .expect("create topic");
    let per_writer = 300;
    let mut tasks = Vec::new();
    for (writer, engine) in [first.clone(), second.clone()].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut offsets = Vec::new();
            for n in 0..per_writer {
                let record = numbered_record(writer as i32, n);
                let appended = engine
                    .append("shared", 0, vec![record])
                    .await
                    .expect("append");
                offsets.push(appended.base_offset);
            }
            offsets
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let offsets = task.await.expect("writer");
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "{}: each writer's records keep their order",
            backend.name
        );
        all.extend(offsets);
    }
    all.sort();
    assert_eq!(
        all,
        (0..2 * per_writer as i64).collect::<Vec<_>>(),
        "{}: offsets never collide and leave no gaps",
        backend.name
    );
    let read = first
        .read("shared", 0, 0, 10_000, 64 << 20)
        .await
        .expect("read");
    assert_eq!(read.records.len(), 2 * per_writer as usize);
    let mut seen: Vec<(i32, u64)> = Vec::new();
    for record in &read.records {
        let text = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).to_string();
        let mut parts = text.split('-').skip(1);
        let writer: i32 = parts.next().and_then(|p| p.parse().ok()).expect("writer");
        let n: u64 = parts.next().and_then(|p| p.parse().ok()).expect("n");
        seen.push((writer, n));
    }
    for writer in 0..2 {
        let ns: Vec<u64> = seen
            .iter()
            .filter(|(w, _)| *w == writer)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(ns, (0..per_writer).collect::<Vec<_>>());
    }
    first.shutdown().await;
    second.shutdown().await;
}

async fn a_waiting_reader_wakes_when_another_engine_commits(backend: Backend) {
    let config = StorageConfig {
        // Long enough that only a commit notice can explain a quick wake.
        watermark_ttl: Duration::from_secs(60),
        ..test_config()
    };
    let reader = StorageEngine::start(
        backend.metadata.clone(),
        backend.storage.clone(),
        config.clone(),
    );
    let writer = StorageEngine::start(backend.metadata.clone(), backend.storage.clone(), config);
    reader
        .create_topic(NewTopic::new("wake", 1))
        .await
        .expect("create topic");
    let mut watch = reader.watch_partition("wake", 0).await.expect("watch");
    assert_eq!(watch.borrow().high_watermark, 0);
    let started = std::time::Instant::now();
    writer
        .append("wake", 0, vec![numbered_record(0, 1)])
        .await
        .expect("append");
    tokio::time::timeout(Duration::from_secs(5), watch.changed())
        .await
        .expect("woken in time")
        .expect("watch open");
    assert_eq!(watch.borrow().high_watermark, 1);
    assert!(started.elapsed() < Duration::from_secs(5));
    let read = reader.read("wake", 0, 0, 10, 1 << 20).await.expect("read");
    assert_eq!(
        read.records.len(),
        1,
        "{}: the other engine's segment is found",
        backend.name
    );
    reader.shutdown().await;
    writer.shutdown().await;
}

/// A topic catalog that counts watermark reads (`get_partition`).
#[derive(Debug)]
struct CountingPartitionReads {
    inner: Arc<dyn MetadataStore>,
    reads: AtomicU64,
}

#[async_trait]
impl TopicCatalog for CountingPartitionReads {
    async fn create_topic(&self, topic: NewTopic) -> streamhouse_metadata::Result<Topic> {
        self.inner.create_topic(topic).await
    }
    async fn list_topics(&self) -> streamhouse_metadata::Result<Vec<Topic>> {
        self.inner.list_topics().await
    }
    async fn get_topic(&self, name: &str) -> streamhouse_metadata::Result<Topic> {
        self.inner.get_topic(name).await
    }
    async fn describe_topic(&self, name: &str) -> streamhouse_metadata::Result<TopicDescription> {
        self.inner.describe_topic(name).await
    }
    async fn delete_topic(&self, name: &str) -> streamhouse_metadata::Result<()> {
        self.inner.delete_topic(name).await
    }
    async fn add_partitions(&self, topic: &str, total: i64) -> streamhouse_metadata::Result<Topic> {
        self.inner.add_partitions(topic, total).await
    }
    async fn get_partition(
        &self,
        topic: &str,
        partition: i32,
    ) -> streamhouse_metadata::Result<PartitionInfo> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_partition(topic, partition).await
    }
    async fn update_topic_config(
        &self,
        name: &str,
        config: TopicConfig,
    ) -> streamhouse_metadata::Result<Topic> {
        self.inner.update_topic_config(name, config).await
    }
    async fn truncate_partition(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> streamhouse_metadata::Result<PartitionInfo> {
        self.inner
            .truncate_partition(topic, partition, offset)
            .await
    }
}

/// A long poll re-reads stale watermarks to notice other agents' commits
/// whose notices were lost; a fetch naming many partitions re-reads only a
/// few of them per poll, in turn, so one client cannot make an agent query
/// the metadata store for every partition of the cluster twice a second.
async fn a_long_poll_over_many_partitions_rereads_a_few_watermarks_per_poll(backend: Backend) {
    const PARTITIONS: i32 = 200;
    let counting = Arc::new(CountingPartitionReads {
        inner: backend.metadata.clone(),
        reads: AtomicU64::new(0),
    });
    let metadata =
        Arc::new(LayeredStore::new(backend.metadata.clone()).with_topics(counting.clone()));
    let config = StorageConfig {
        // Every cached watermark is stale at every poll.
        watermark_ttl: Duration::ZERO,
        ..test_config()
    };
    let engine = StorageEngine::start(metadata, backend.storage.clone(), config);
    engine
        .create_topic(NewTopic::new("wide", i64::from(PARTITIONS)))
        .await
        .expect("create topic");
    let partitions: Vec<(&str, i32)> = (0..PARTITIONS).map(|p| ("wide", p)).collect();
    let mut wait = engine.commit_wait(&partitions).await;
    let before = counting.reads.load(Ordering::SeqCst);
    let polls = 4;
    let deadline = tokio::time::Instant::now()
        + streamhouse_storage::REMOTE_COMMIT_POLL * polls
        + Duration::from_millis(100);
    assert!(
        !wait.changed(deadline).await,
        "{}: nothing was committed",
        backend.name
    );
    let reads = counting.reads.load(Ordering::SeqCst) - before;
    let bound = u64::from(polls) * streamhouse_storage::REFRESHES_PER_POLL as u64;
    assert!(
        reads <= bound,
        "{}: {reads} watermark reads in {polls} polls over {PARTITIONS} partitions (at most {bound})",
        backend.name
    );
    assert!(
        reads > 0,
        "{}: the poll re-reads watermarks at all",
        backend.name
    );
    engine.shutdown().await;
}
