//! Leader epochs through the engine, on the embedded default and on
//! PostgreSQL + the S3 server: a read's epoch comes with its high
//! watermark, so an agent that has not heard of a newer epoch never serves
//! a record of it; histories and epochs are read again only when they
//! moved; topics are found by id.

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{Backend, numbered_record, test_config};
use streamhouse_metadata::{
    CommitNotice, FlushCommit, LayeredStore, LeaderMove, MetadataError, MetadataStore, NewTopic,
    SegmentInfo, SegmentLog, SegmentOutcome, SegmentReplacement, StorageStats,
};
use streamhouse_storage::{EpochEnd, StorageConfig, StorageEngine};

on_every_backend!(
    an_agent_serves_records_only_with_the_epoch_they_were_written_in,
    topics_are_found_by_id,
);

/// The segment log of a real store whose commit notices never arrive: an
/// agent that learns of other agents' commits only by reading the store.
#[derive(Debug)]
struct Deaf {
    inner: Arc<dyn MetadataStore>,
    silence: tokio::sync::broadcast::Sender<CommitNotice>,
}

#[async_trait]
impl SegmentLog for Deaf {
    async fn commit_flush(
        &self,
        flush: &FlushCommit,
    ) -> Result<Vec<SegmentOutcome>, MetadataError> {
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
        self.silence.subscribe()
    }
}

/// A second agent on the same stores that trusts what it read for a
/// minute and hears no commit notices.
fn stale_agent(backend: &Backend) -> StorageEngine {
    let deaf = Arc::new(Deaf {
        inner: backend.metadata.clone(),
        silence: tokio::sync::broadcast::Sender::new(1),
    });
    let metadata = Arc::new(LayeredStore::new(backend.metadata.clone()).with_segments(deaf));
    StorageEngine::start(
        metadata,
        backend.storage.clone(),
        StorageConfig {
            watermark_ttl: Duration::from_secs(60),
            ..test_config()
        },
    )
}

async fn an_agent_serves_records_only_with_the_epoch_they_were_written_in(backend: Backend) {
    let a = StorageEngine::start(
        backend.metadata.clone(),
        backend.storage.clone(),
        test_config(),
    );
    let b = stale_agent(&backend);
    a.create_topic(NewTopic::new("t", 1)).await.expect("create");
    let records = |from: u64, count: u64| (from..from + count).map(|n| numbered_record(0, n));
    a.append("t", 0, records(0, 3).collect())
        .await
        .expect("append");
    let read = b.read("t", 0, 0, 100, 1 << 20).await.expect("read");
    assert_eq!((read.records.len(), read.leader_epoch), (3, 0));

    // The leader moves: epoch 1 starts at offset 3.
    let bumped = a
        .move_leaders(&[LeaderMove {
            topic: "t".into(),
            partition: 0,
            leader: "agent-a".into(),
        }])
        .await
        .expect("move");
    assert_eq!(bumped.len(), 1);
    assert_eq!(
        (bumped[0].epoch.epoch, bumped[0].epoch.start_offset),
        (1, 3)
    );
    assert_eq!(a.leader_epoch("t", 0), 1, "the agent that bumped knows");
    a.append("t", 0, records(3, 2).collect())
        .await
        .expect("append");
    let read = a.read("t", 0, 0, 100, 1 << 20).await.expect("read");
    assert_eq!((read.records.len(), read.leader_epoch), (5, 1));
    let history = a
        .epoch_history("t", 0, read.leader_epoch)
        .await
        .expect("history");
    assert_eq!(
        read.records
            .iter()
            .map(|r| history.epoch_at(r.offset))
            .collect::<Vec<_>>(),
        [0, 0, 0, 1, 1]
    );

    // The stale agent has heard of neither the bump nor the new records:
    // it serves what it knows, all of it written in epoch 0.
    assert_eq!(b.leader_epoch("t", 0), 0);
    let read = b.read("t", 0, 0, 100, 1 << 20).await.expect("read");
    assert_eq!((read.records.len(), read.leader_epoch), (3, 0));
    let history = b
        .epoch_history("t", 0, read.leader_epoch)
        .await
        .expect("history");
    assert!(read.records.iter().all(|r| history.epoch_at(r.offset) == 0));

    // One small query tells it the epochs moved; the next reads are new.
    assert!(b.refresh_leader_epochs().await.expect("refresh"));
    assert!(
        !b.refresh_leader_epochs().await.expect("refresh"),
        "nothing moved since"
    );
    assert_eq!(b.leader_epoch("t", 0), 1);
    let fresh = b.fresh_partition_info("t", 0).await.expect("fresh");
    assert_eq!((fresh.high_watermark, fresh.leader_epoch), (5, 1));
    let read = b.read("t", 0, 0, 100, 1 << 20).await.expect("read");
    assert_eq!((read.records.len(), read.leader_epoch), (5, 1));
    let history = b
        .epoch_history("t", 0, read.leader_epoch)
        .await
        .expect("history");
    assert_eq!(history.epoch_at(3), 1);
    assert_eq!(
        history.end_offset_for(0, 1, fresh.high_watermark),
        EpochEnd::Found {
            epoch: 0,
            end_offset: 3
        }
    );
    assert_eq!(
        history.end_offset_for(1, 1, fresh.high_watermark),
        EpochEnd::Found {
            epoch: 1,
            end_offset: 5
        }
    );
    a.shutdown().await;
    b.shutdown().await;
}

async fn topics_are_found_by_id(backend: Backend) {
    let engine = StorageEngine::start(
        backend.metadata.clone(),
        backend.storage.clone(),
        test_config(),
    );
    let first = engine
        .create_topic(NewTopic::new("first", 1))
        .await
        .expect("create");
    // Created by another agent: not known here until listed.
    let second = backend
        .metadata
        .create_topic(NewTopic::new("second", 2))
        .await
        .expect("create");
    let unknown = "00000000-0000-4000-8000-000000000000".to_string();
    let ids = [
        first.topic_id.clone(),
        second.topic_id.clone(),
        unknown.clone(),
    ];
    let found = engine.topics_by_id(&ids).await.expect("by id");
    assert_eq!(found.len(), 2);
    assert_eq!(found[&first.topic_id].name, "first");
    assert_eq!(found[&second.topic_id].partition_count, 2);
    assert!(!found.contains_key(&unknown));
    engine.shutdown().await;
}
