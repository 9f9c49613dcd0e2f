//! The contract every `MetadataStore` backend passes. Each behaviour is one
//! generic test body, run on SQLite and on PostgreSQL (the latter when
//! `STREAMHOUSE_TEST_POSTGRES_URL` is set; see `streamhouse_metadata::testing`).

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use streamhouse_core::security::{
    AclBinding, AclBindingFilter, AclOperation, AclPermission, PatternType, ResourceType,
    ScramCredential, ScramMechanism,
};
use streamhouse_core::{TopicConfig, ValidationError};
use streamhouse_metadata::testing::{isolated_postgres, temp_sqlite};
use streamhouse_metadata::{
    AbortedTransaction, AgentInfo, AgentListener, AssignedPartitions, ConsumerGroupMemberRecord,
    ConsumerGroupSave, EndDecision, EpochStart, FlushCommit, InitTransaction, LeaderMove,
    MetadataError, MetadataStore, NewTopic, OffsetCommit, PendingSegment, ProducerBatch,
    ReplacementSegment, SegmentOutcome, SegmentReplacement, SubscribedTopic, TransactionBatch,
    TransactionRefusal, TransactionState,
};

/// Runs one contract body against every backend.
macro_rules! contract {
    ($name:ident) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let temp = temp_sqlite().await.expect("open sqlite");
                super::$name(Arc::new(temp.store.clone())).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(store) = isolated_postgres(concat!("contract_", stringify!($name))).await
                else {
                    return;
                };
                super::$name(Arc::new(store)).await;
            }
        }
    };
}

contract!(topic_lifecycle);
contract!(topic_validation);
contract!(topic_config_round_trip);
contract!(flush_assigns_contiguous_offsets);
contract!(flush_rows_carry_every_column);
contract!(flush_skips_unknown_partitions);
contract!(flush_retry_is_idempotent);
contract!(concurrent_flushes_never_share_offsets);
contract!(list_segments_filters_and_limits);
contract!(find_segment_by_timestamp);
contract!(add_partitions_grows_topic);
contract!(consumer_offsets);
contract!(offsets_expire_by_commit_time);
contract!(delete_topic_removes_its_data);
contract!(producer_ids_are_unique);
contract!(idempotent_producer_sequences);
contract!(only_recent_batches_are_recognised_as_retries);
contract!(concurrent_retries_store_a_batch_once);
contract!(agents_register_heartbeat_and_leave);
contract!(node_ids_are_small_stable_and_reused_only_when_gone);
contract!(referenced_objects_are_found);
contract!(commits_are_announced);
contract!(topic_config_can_be_updated);
contract!(truncation_advances_log_start_and_tombstones_objects);
contract!(replacement_swaps_a_run_atomically);
contract!(replacement_with_several_segments);
contract!(key_compacted_rows_may_hold_fewer_records_than_they_span);
contract!(tombstones_age_and_are_removed);
contract!(deleting_a_topic_tombstones_its_objects);
contract!(leases_have_one_holder_until_they_expire);
contract!(scram_credentials_round_trip_per_mechanism);
contract!(scram_credentials_are_replaced_deleted_and_listed);
contract!(acls_are_stored_once_and_listed_by_filter);
contract!(acls_are_deleted_by_filter);
contract!(every_user_and_acl_change_bumps_the_security_version);
contract!(a_transaction_commits_its_records_and_offsets);
contract!(an_aborted_transaction_is_indexed_and_drops_its_offsets);
contract!(transactional_batches_need_their_transaction);
contract!(init_fences_and_aborts_an_open_transaction);
contract!(consumer_groups_save_only_from_the_version_they_read);
contract!(leader_epochs_follow_their_leader);
contract!(leader_epochs_forget_empty_and_truncated_epochs);
contract!(commits_carry_the_leader_epoch_they_wrote_in);
contract!(concurrent_moves_to_one_leader_bump_once);
contract!(offsets_keep_their_leader_epoch);

fn segment(topic: &str, partition: i32, records: i64, byte_offset: i64) -> PendingSegment {
    PendingSegment {
        topic: topic.to_string(),
        partition,
        record_count: records,
        size_bytes: records * 100,
        byte_offset,
        byte_length: records * 10,
        min_timestamp: 1_000 + byte_offset,
        max_timestamp: 2_000 + byte_offset,
        producer: None,
        marker: None,
    }
}

fn flush(key: &str, segments: Vec<PendingSegment>) -> FlushCommit {
    FlushCommit {
        bucket: "bucket".into(),
        key: key.into(),
        created_at: 1_700_000_000_000,
        segments,
    }
}

fn committed(outcome: &SegmentOutcome) -> (i64, i64) {
    match *outcome {
        SegmentOutcome::Committed {
            base_offset,
            end_offset,
            ..
        } => (base_offset, end_offset),
        other => panic!("expected a committed segment, got {other:?}"),
    }
}

async fn topic_lifecycle(store: Arc<dyn MetadataStore>) {
    let created = store
        .create_topic(NewTopic::new("orders", 3))
        .await
        .expect("create");
    assert_eq!(created.name, "orders");
    assert_eq!(created.partition_count, 3);
    assert_eq!(created.topic_id.len(), 36, "a UUID topic id");
    store
        .create_topic(NewTopic::new("audit", 1))
        .await
        .expect("create second");

    let names: Vec<String> = store
        .list_topics()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["audit", "orders"]);

    assert_eq!(store.get_topic("orders").await.expect("get"), created);
    let description = store.describe_topic("orders").await.expect("describe");
    assert_eq!(description.topic, created);
    assert_eq!(description.partitions.len(), 3);
    for (i, p) in description.partitions.iter().enumerate() {
        assert_eq!(p.partition, i as i32);
        assert_eq!(p.high_watermark, 0);
        assert_eq!(p.log_start_offset, 0);
    }

    assert!(matches!(
        store.create_topic(NewTopic::new("orders", 1)).await,
        Err(MetadataError::TopicAlreadyExists { topic }) if topic == "orders"
    ));

    store.delete_topic("orders").await.expect("delete");
    assert!(matches!(
        store.get_topic("orders").await,
        Err(MetadataError::TopicNotFound { .. })
    ));
    assert!(matches!(
        store.describe_topic("orders").await,
        Err(MetadataError::TopicNotFound { .. })
    ));
    assert!(matches!(
        store.delete_topic("orders").await,
        Err(MetadataError::TopicNotFound { .. })
    ));
    assert!(matches!(
        store.get_partition("orders", 0).await,
        Err(MetadataError::PartitionNotFound { .. })
    ));

    let again = store
        .create_topic(NewTopic::new("orders", 2))
        .await
        .expect("recreate");
    assert_ne!(again.topic_id, created.topic_id, "a new incarnation");
    assert_eq!(again.partition_count, 2);
}

async fn topic_validation(store: Arc<dyn MetadataStore>) {
    for name in ["", ".", "..", "bad name", "bad/name", &"x".repeat(250)] {
        assert!(
            matches!(
                store.create_topic(NewTopic::new(name, 1)).await,
                Err(MetadataError::Validation(
                    ValidationError::InvalidTopicName { .. }
                ))
            ),
            "{name:?} must be rejected"
        );
    }
    for count in [0, -1, 10_001] {
        assert!(
            matches!(
                store.create_topic(NewTopic::new("t", count)).await,
                Err(MetadataError::Validation(
                    ValidationError::InvalidPartitionCount { .. }
                ))
            ),
            "{count} partitions must be rejected"
        );
    }
    assert!(store.list_topics().await.expect("list").is_empty());
}

async fn topic_config_round_trip(store: Arc<dyn MetadataStore>) {
    let config = TopicConfig::from_pairs([
        ("retention.ms", "60000"),
        ("retention.bytes", "1048576"),
        ("max.message.bytes", "2048"),
    ])
    .expect("config");
    store
        .create_topic(NewTopic::new("configured", 1).with_config(config.clone()))
        .await
        .expect("create");
    let topic = store.get_topic("configured").await.expect("get");
    assert_eq!(topic.config, config);
    assert_eq!(topic.config.retention_ms(), Some(60_000));
    assert_eq!(topic.config.max_message_bytes(), 2048);
}

async fn flush_assigns_contiguous_offsets(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("t", 2))
        .await
        .expect("create");
    let outcomes = store
        .commit_flush(&flush(
            "batches/1",
            vec![
                segment("t", 0, 5, 0),
                segment("t", 1, 3, 50),
                segment("t", 0, 2, 80),
            ],
        ))
        .await
        .expect("commit");
    assert_eq!(
        outcomes.iter().map(committed).collect::<Vec<_>>(),
        [(0, 4), (0, 2), (5, 6)]
    );
    let outcomes = store
        .commit_flush(&flush("batches/2", vec![segment("t", 0, 10, 0)]))
        .await
        .expect("commit");
    assert_eq!(committed(&outcomes[0]), (7, 16));
    assert_eq!(
        store
            .get_partition("t", 0)
            .await
            .expect("p0")
            .high_watermark,
        17
    );
    assert_eq!(
        store
            .get_partition("t", 1)
            .await
            .expect("p1")
            .high_watermark,
        3
    );
    assert!(
        store
            .commit_flush(&flush("batches/3", vec![]))
            .await
            .expect("empty flush")
            .is_empty()
    );
}

async fn flush_rows_carry_every_column(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("create");
    store
        .commit_flush(&flush(
            "prefix/batches/abc.bin",
            vec![segment("t", 0, 4, 64)],
        ))
        .await
        .expect("commit");
    let rows = store.list_segments("t", 0, 0, 10).await.expect("list");
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert!(row.id > 0);
    assert_eq!((row.topic.as_str(), row.partition), ("t", 0));
    assert_eq!(
        (row.base_offset, row.end_offset, row.record_count),
        (0, 3, 4)
    );
    assert_eq!(row.size_bytes, 400);
    assert_eq!(
        (row.bucket.as_str(), row.key.as_str()),
        ("bucket", "prefix/batches/abc.bin")
    );
    assert_eq!((row.byte_offset, row.byte_length), (64, 40));
    assert_eq!((row.min_timestamp, row.max_timestamp), (1_064, 2_064));
    assert_eq!(row.created_at, 1_700_000_000_000);
    // DescribeLogDirs' sizes: each partition's segment bytes.
    let bytes = store.partition_bytes(&row.topic).await.expect("bytes");
    assert_eq!(bytes, [(row.partition, 40)]);
    assert!(
        store
            .partition_bytes("nothing")
            .await
            .expect("none")
            .is_empty()
    );
}

async fn flush_skips_unknown_partitions(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("create");
    let outcomes = store
        .commit_flush(&flush(
            "batches/1",
            vec![
                segment("t", 0, 2, 0),
                segment("t", 7, 2, 20),
                segment("gone", 0, 2, 40),
            ],
        ))
        .await
        .expect("commit");
    assert_eq!(committed(&outcomes[0]), (0, 1));
    assert_eq!(outcomes[1], SegmentOutcome::PartitionNotFound);
    assert_eq!(outcomes[2], SegmentOutcome::PartitionNotFound);
    assert_eq!(
        store
            .list_segments("t", 0, 0, 10)
            .await
            .expect("list")
            .len(),
        1
    );

    assert!(matches!(
        store
            .commit_flush(&flush("batches/2", vec![segment("t", 0, 0, 0)]))
            .await,
        Err(MetadataError::InvalidArgument { .. })
    ));
}

async fn flush_retry_is_idempotent(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("t", 2))
        .await
        .expect("create");
    let request = flush(
        "batches/retry",
        vec![
            segment("t", 0, 3, 0),
            segment("t", 1, 4, 30),
            segment("t", 9, 1, 70),
        ],
    );
    let first = store.commit_flush(&request).await.expect("first");
    let second = store.commit_flush(&request).await.expect("retry");
    assert_eq!(first, second);
    assert_eq!(
        store
            .get_partition("t", 0)
            .await
            .expect("p0")
            .high_watermark,
        3
    );
    assert_eq!(
        store
            .get_partition("t", 1)
            .await
            .expect("p1")
            .high_watermark,
        4
    );
    assert_eq!(
        store
            .list_segments("t", 0, 0, 10)
            .await
            .expect("list")
            .len(),
        1
    );
}

async fn concurrent_flushes_never_share_offsets(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("t", 4))
        .await
        .expect("create");
    let writers = 8;
    let flushes_per_writer = 25;
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut assigned = Vec::new();
            for i in 0..flushes_per_writer {
                // Alternate the partition order so that lock ordering matters.
                let segments = if (writer + i) % 2 == 0 {
                    vec![segment("t", 0, 3, 0), segment("t", 3, 2, 30)]
                } else {
                    vec![segment("t", 3, 2, 0), segment("t", 0, 3, 20)]
                };
                let key = format!("batches/{writer}-{i}");
                let outcomes = loop {
                    match store.commit_flush(&flush(&key, segments.clone())).await {
                        Ok(outcomes) => break outcomes,
                        Err(e) if e.is_retriable() => continue,
                        Err(e) => panic!("commit failed: {e}"),
                    }
                };
                for (s, outcome) in segments.iter().zip(&outcomes) {
                    assigned.push((s.partition, committed(outcome)));
                }
            }
            assigned
        }));
    }
    let mut per_partition: std::collections::BTreeMap<i32, Vec<(i64, i64)>> = Default::default();
    for task in tasks {
        for (partition, range) in task.await.expect("writer task") {
            per_partition.entry(partition).or_default().push(range);
        }
    }
    for (partition, per_flush, width) in [(0, 3, 3), (3, 2, 2)] {
        let mut ranges = per_partition.remove(&partition).expect("ranges");
        ranges.sort();
        let total = (writers * flushes_per_writer) as i64;
        assert_eq!(ranges.len() as i64, total);
        let mut next = 0;
        for (base, end) in ranges {
            assert_eq!(base, next, "partition {partition}: gap or overlap");
            assert_eq!(end - base + 1, width);
            next = end + 1;
        }
        assert_eq!(next, total * per_flush);
        let hw = store
            .get_partition("t", partition)
            .await
            .expect("partition")
            .high_watermark;
        assert_eq!(hw, next);
    }
}

async fn list_segments_filters_and_limits(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("create");
    for i in 0..5 {
        store
            .commit_flush(&flush(
                &format!("batches/{i}"),
                vec![segment("t", 0, 10, 0)],
            ))
            .await
            .expect("commit");
    }
    let bases = |rows: Vec<streamhouse_metadata::SegmentInfo>| {
        rows.into_iter().map(|r| r.base_offset).collect::<Vec<_>>()
    };
    assert_eq!(
        bases(store.list_segments("t", 0, 0, 100).await.expect("all")),
        [0, 10, 20, 30, 40]
    );
    // A segment is included when it still holds `from_offset`.
    assert_eq!(
        bases(store.list_segments("t", 0, 25, 100).await.expect("from 25")),
        [20, 30, 40]
    );
    assert_eq!(
        bases(store.list_segments("t", 0, 10, 2).await.expect("limit")),
        [10, 20]
    );
    assert!(
        store
            .list_segments("t", 0, 50, 10)
            .await
            .expect("past")
            .is_empty()
    );
    assert!(
        store
            .list_segments("t", 1, 0, 10)
            .await
            .expect("none")
            .is_empty()
    );
}

async fn add_partitions_grows_topic(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("t", 2))
        .await
        .expect("create");
    let grown = store.add_partitions("t", 5).await.expect("grow");
    assert_eq!(grown.partition_count, 5);
    let description = store.describe_topic("t").await.expect("describe");
    assert_eq!(
        description
            .partitions
            .iter()
            .map(|p| p.partition)
            .collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert!(matches!(
        store.add_partitions("t", 5).await,
        Err(MetadataError::InvalidArgument { .. })
    ));
    assert!(matches!(
        store.add_partitions("missing", 5).await,
        Err(MetadataError::TopicNotFound { .. })
    ));
}

async fn consumer_offsets(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("t", 2))
        .await
        .expect("create");
    let commit = |partition, offset, metadata: Option<&str>| OffsetCommit {
        topic: "t".into(),
        partition,
        offset,
        metadata: metadata.map(str::to_string),
        leader_epoch: -1,
    };
    store
        .commit_offsets("g1", &[commit(0, 5, Some("m")), commit(1, 7, None)])
        .await
        .expect("commit");
    store
        .commit_offsets("g1", &[commit(0, 9, None)])
        .await
        .expect("overwrite");
    store
        .commit_offsets("g2", &[commit(1, 1, None)])
        .await
        .expect("second group");

    let offsets = store.fetch_offsets("g1").await.expect("fetch");
    assert_eq!(
        offsets
            .iter()
            .map(|o| (o.partition, o.offset, o.metadata.clone()))
            .collect::<Vec<_>>(),
        [(0, 9, None), (1, 7, None)]
    );
    assert!(
        offsets
            .iter()
            .all(|o| o.group == "g1" && o.committed_at > 0)
    );
    assert!(
        store
            .fetch_offsets("nobody")
            .await
            .expect("empty")
            .is_empty()
    );
    assert_eq!(store.list_groups().await.expect("groups"), ["g1", "g2"]);

    assert!(matches!(
        store
            .commit_offsets("g1", &[commit(0, 11, None), commit(5, 1, None)])
            .await,
        Err(MetadataError::PartitionNotFound { partition: 5, .. })
    ));
    assert_eq!(
        store.fetch_offsets("g1").await.expect("fetch")[0].offset,
        9,
        "a failed commit changes nothing"
    );
    assert!(matches!(
        store.commit_offsets("", &[commit(0, 1, None)]).await,
        Err(MetadataError::InvalidArgument { .. })
    ));

    // OffsetDelete: only the partitions named; unknown ones are skipped.
    store
        .delete_offsets("g1", &[("t".into(), 1), ("t".into(), 3), ("x".into(), 0)])
        .await
        .expect("delete offsets");
    let left: Vec<i32> = store
        .fetch_offsets("g1")
        .await
        .expect("fetch")
        .iter()
        .map(|o| o.partition)
        .collect();
    assert_eq!(left, [0]);

    assert!(store.delete_group("g1").await.expect("delete"));
    assert!(!store.delete_group("g1").await.expect("delete again"));
    assert_eq!(store.list_groups().await.expect("groups"), ["g2"]);
}

async fn offsets_expire_by_commit_time(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("t", 2))
        .await
        .expect("create");
    let commit = |partition, offset| OffsetCommit {
        topic: "t".into(),
        partition,
        offset,
        metadata: None,
        leader_epoch: -1,
    };
    store
        .commit_offsets("old", &[commit(0, 5)])
        .await
        .expect("commit");
    store
        .commit_offsets("other", &[commit(0, 3)])
        .await
        .expect("commit");
    let first = store.fetch_offsets("old").await.expect("fetch")[0].committed_at;
    // Commit times are the agent's clock in milliseconds: wait for the next
    // one so that the second commit is later than the first.
    let now_ms = || streamhouse_core::clock::Clock::now_ms(&streamhouse_core::clock::SystemClock);
    while now_ms() <= first {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    store
        .commit_offsets("old", &[commit(1, 7)])
        .await
        .expect("commit");
    let offsets = store.fetch_offsets("old").await.expect("fetch");
    let second = offsets[1].committed_at;
    assert!(second > first, "commit times {first} then {second}");

    assert_eq!(
        store.expire_offsets("old", first).await.expect("expire"),
        0,
        "an offset committed exactly at the cutoff stays"
    );
    assert_eq!(
        store
            .expire_offsets("nobody", i64::MAX)
            .await
            .expect("expire"),
        0
    );
    assert_eq!(
        store.expire_offsets("old", second).await.expect("expire"),
        1
    );
    assert_eq!(
        store
            .fetch_offsets("old")
            .await
            .expect("fetch")
            .iter()
            .map(|o| (o.partition, o.offset))
            .collect::<Vec<_>>(),
        [(1, 7)],
        "only the offset committed before the cutoff expired"
    );
    assert_eq!(
        store.expire_offsets("old", i64::MAX).await.expect("expire"),
        1
    );
    assert!(store.fetch_offsets("old").await.expect("fetch").is_empty());
    assert_eq!(
        store.list_groups().await.expect("groups"),
        ["other"],
        "a group whose offsets all expired is not listed; others are untouched"
    );
    assert_eq!(
        store.fetch_offsets("other").await.expect("fetch")[0].offset,
        3
    );
}

async fn delete_topic_removes_its_data(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("create");
    store
        .create_topic(NewTopic::new("keep", 1))
        .await
        .expect("create");
    store
        .commit_flush(&flush(
            "batches/1",
            vec![segment("t", 0, 3, 0), segment("keep", 0, 3, 30)],
        ))
        .await
        .expect("commit");
    store
        .commit_offsets(
            "g",
            &[
                OffsetCommit {
                    topic: "t".into(),
                    partition: 0,
                    offset: 2,
                    metadata: None,
                    leader_epoch: -1,
                },
                OffsetCommit {
                    topic: "keep".into(),
                    partition: 0,
                    offset: 1,
                    metadata: None,
                    leader_epoch: -1,
                },
            ],
        )
        .await
        .expect("offsets");
    store.delete_topic("t").await.expect("delete");
    store
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("recreate");
    assert!(
        store
            .list_segments("t", 0, 0, 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        store
            .get_partition("t", 0)
            .await
            .expect("partition")
            .high_watermark,
        0
    );
    let remaining: BTreeSet<String> = store
        .fetch_offsets("g")
        .await
        .expect("offsets")
        .into_iter()
        .map(|o| o.topic)
        .collect();
    assert_eq!(remaining, BTreeSet::from(["keep".to_string()]));
    assert_eq!(
        store
            .list_segments("keep", 0, 0, 10)
            .await
            .expect("list")
            .len(),
        1
    );
}

async fn find_segment_by_timestamp(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("create");
    // Segment i covers timestamps 1_000 + 100*i ..= 1_050 + 100*i.
    for i in 0..4 {
        let mut pending = segment("t", 0, 10, 0);
        pending.min_timestamp = 1_000 + 100 * i;
        pending.max_timestamp = 1_050 + 100 * i;
        store
            .commit_flush(&flush(&format!("batches/{i}"), vec![pending]))
            .await
            .expect("commit");
    }
    let base = |found: Option<streamhouse_metadata::SegmentInfo>| found.map(|s| s.base_offset);
    assert_eq!(
        base(
            store
                .find_segment_by_timestamp("t", 0, 0)
                .await
                .expect("find")
        ),
        Some(0)
    );
    assert_eq!(
        base(
            store
                .find_segment_by_timestamp("t", 0, 1_120)
                .await
                .expect("find")
        ),
        Some(10),
        "the first segment whose newest record is at or after the timestamp"
    );
    assert_eq!(
        base(
            store
                .find_segment_by_timestamp("t", 0, 1_151)
                .await
                .expect("find")
        ),
        Some(20)
    );
    assert_eq!(
        base(
            store
                .find_segment_by_timestamp("t", 0, 1_350)
                .await
                .expect("find")
        ),
        Some(30)
    );
    assert_eq!(
        base(
            store
                .find_segment_by_timestamp("t", 0, 1_351)
                .await
                .expect("find")
        ),
        None
    );
}

async fn producer_ids_are_unique(store: Arc<dyn MetadataStore>) {
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..25 {
                ids.push(store.allocate_producer_id().await.expect("allocate"));
            }
            ids
        }));
    }
    let mut all = BTreeSet::new();
    for task in tasks {
        for id in task.await.expect("task") {
            assert!(id >= 0);
            assert!(all.insert(id), "producer id {id} handed out twice");
        }
    }
    assert_eq!(all.len(), 100);
}

fn batch(
    partition: i32,
    records: i64,
    producer_id: i64,
    epoch: i16,
    sequence: i32,
) -> PendingSegment {
    PendingSegment {
        producer: Some(ProducerBatch {
            producer_id,
            producer_epoch: epoch,
            base_sequence: sequence,
            transactional: false,
        }),
        ..segment("t", partition, records, 0)
    }
}

async fn idempotent_producer_sequences(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("t", 2))
        .await
        .expect("create");
    let pid = store.allocate_producer_id().await.expect("producer id");
    let commit = |key: &'static str, segments: Vec<PendingSegment>| {
        let store = store.clone();
        async move {
            store
                .commit_flush(&flush(key, segments))
                .await
                .expect("commit")
        }
    };
    // Another writer's records first, so offsets are not trivially zero.
    commit("b/0", vec![segment("t", 0, 3, 0)]).await;

    let first = commit("b/1", vec![batch(0, 5, pid, 0, 0)]).await;
    assert_eq!(
        first,
        [SegmentOutcome::Committed {
            base_offset: 3,
            end_offset: 7,
            leader_epoch: 0
        }]
    );

    // The same batch again, in another flush (a retry through another
    // agent): its original offsets, and nothing stored.
    let retry = commit("b/2", vec![batch(0, 5, pid, 0, 0), batch(0, 2, pid, 0, 5)]).await;
    assert_eq!(
        retry,
        [
            SegmentOutcome::Duplicate {
                base_offset: 3,
                end_offset: 7
            },
            SegmentOutcome::Committed {
                base_offset: 8,
                end_offset: 9,
                leader_epoch: 0
            },
        ]
    );
    assert_eq!(
        store
            .get_partition("t", 0)
            .await
            .expect("p0")
            .high_watermark,
        10
    );

    let gap = commit("b/3", vec![batch(0, 1, pid, 0, 9)]).await;
    assert_eq!(gap, [SegmentOutcome::OutOfOrderSequence]);
    let new_producer_late = commit("b/4", vec![batch(0, 1, pid + 1000, 0, 3)]).await;
    assert_eq!(new_producer_late, [SegmentOutcome::OutOfOrderSequence]);
    assert_eq!(
        store
            .get_partition("t", 0)
            .await
            .expect("p0")
            .high_watermark,
        10,
        "rejected batches take no offsets"
    );

    // Partitions keep separate sequences.
    let other = commit("b/5", vec![batch(1, 4, pid, 0, 0)]).await;
    assert_eq!(
        other,
        [SegmentOutcome::Committed {
            base_offset: 0,
            end_offset: 3,
            leader_epoch: 0
        }]
    );

    // A bumped epoch fences the old one and starts again at zero.
    assert_eq!(
        store.bump_producer_epoch(pid, 0).await.expect("bump"),
        Some(1)
    );
    assert_eq!(
        store.bump_producer_epoch(pid, 0).await.expect("stale bump"),
        None
    );
    assert_eq!(
        store.bump_producer_epoch(-5, 0).await.expect("unknown"),
        None
    );
    let restarted = commit("b/6", vec![batch(0, 1, pid, 1, 0)]).await;
    assert_eq!(
        restarted,
        [SegmentOutcome::Committed {
            base_offset: 10,
            end_offset: 10,
            leader_epoch: 0
        }]
    );
    let zombie = commit("b/7", vec![batch(0, 1, pid, 0, 7)]).await;
    assert_eq!(zombie, [SegmentOutcome::ProducerFenced]);

    // Retrying a whole commit returns the same outcomes.
    let again = commit("b/2", vec![batch(0, 5, pid, 0, 0), batch(0, 2, pid, 0, 5)]).await;
    assert_eq!(
        again[1],
        SegmentOutcome::Committed {
            base_offset: 8,
            end_offset: 9,
            leader_epoch: 0
        }
    );
    assert_eq!(
        store
            .get_partition("t", 0)
            .await
            .expect("p0")
            .high_watermark,
        11
    );
}

async fn only_recent_batches_are_recognised_as_retries(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("create");
    let pid = store.allocate_producer_id().await.expect("producer id");
    for i in 0..7 {
        let outcome = store
            .commit_flush(&flush(&format!("b/{i}"), vec![batch(0, 1, pid, 0, i)]))
            .await
            .expect("commit");
        assert_eq!(
            outcome,
            [SegmentOutcome::Committed {
                base_offset: i as i64,
                end_offset: i as i64,
                leader_epoch: 0
            }]
        );
    }
    let recent = store
        .commit_flush(&flush("retry/recent", vec![batch(0, 1, pid, 0, 2)]))
        .await
        .expect("commit");
    assert_eq!(
        recent,
        [SegmentOutcome::Duplicate {
            base_offset: 2,
            end_offset: 2
        }]
    );
    let old = store
        .commit_flush(&flush("retry/old", vec![batch(0, 1, pid, 0, 1)]))
        .await
        .expect("commit");
    assert_eq!(
        old,
        [SegmentOutcome::OutOfOrderSequence],
        "only the last five are kept"
    );
}

async fn concurrent_retries_store_a_batch_once(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("create");
    let pid = store.allocate_producer_id().await.expect("producer id");
    let mut tasks = Vec::new();
    for agent in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                match store
                    .commit_flush(&flush(
                        &format!("agent-{agent}"),
                        vec![batch(0, 3, pid, 0, 0)],
                    ))
                    .await
                {
                    Ok(outcome) => break outcome,
                    Err(e) if e.is_retriable() => continue,
                    Err(e) => panic!("commit failed: {e}"),
                }
            }
        }));
    }
    let mut committed = 0;
    for task in tasks {
        match task.await.expect("task")[0] {
            SegmentOutcome::Committed {
                base_offset: 0,
                end_offset: 2,
                ..
            } => committed += 1,
            SegmentOutcome::Duplicate {
                base_offset: 0,
                end_offset: 2,
            } => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(committed, 1, "exactly one agent stores the batch");
    assert_eq!(
        store
            .get_partition("t", 0)
            .await
            .expect("p0")
            .high_watermark,
        3
    );
}

fn agent(id: &str, port: i32, heartbeat: i64) -> AgentInfo {
    AgentInfo {
        agent_id: id.to_string(),
        node_id: port,
        host: "127.0.0.1".into(),
        port,
        zone: (port % 2 == 0).then(|| "zone-a".to_string()),
        started_at: heartbeat,
        last_heartbeat: heartbeat,
        listeners: vec![
            AgentListener {
                protocol: "PLAINTEXT".into(),
                port,
            },
            AgentListener {
                protocol: "SASL_SSL".into(),
                port: port + 1,
            },
        ],
    }
}

async fn node_ids_are_small_stable_and_reused_only_when_gone(store: Arc<dyn MetadataStore>) {
    const DAY: i64 = 86_400_000;
    let now = 10 * DAY;
    let id = |agent: &'static str, now: i64| {
        let store = store.clone();
        async move { store.node_id(agent, now, now - 7 * DAY).await.unwrap() }
    };
    assert_eq!(id("a", now).await, 0);
    assert_eq!(id("b", now).await, 1);
    assert_eq!(id("a", now + 1).await, 0, "kept across restarts");
    // A week later: "a" is registered, so its id is never taken, however
    // long ago it asked; "b" shut down (no row) and has not started for a
    // week, so "c" takes its id, and "b" coming back gets another.
    store.register_agent(&agent("a", 9092, now)).await.unwrap();
    let later = now + 8 * DAY;
    assert_eq!(id("c", later).await, 1);
    assert_eq!(id("b", later).await, 2);
    assert_eq!(id("a", later).await, 0);
    // Agents starting at once get different ids.
    let ids = futures::future::join_all(["e", "f", "g", "h"].map(|agent| id(agent, later))).await;
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, [3, 4, 5, 6], "{ids:?}");
}

async fn agents_register_heartbeat_and_leave(store: Arc<dyn MetadataStore>) {
    store
        .register_agent(&agent("a", 9092, 1_000))
        .await
        .expect("a");
    store
        .register_agent(&agent("b", 9093, 1_000))
        .await
        .expect("b");
    store
        .register_agent(&agent("c", 9094, 500))
        .await
        .expect("c");
    let ids = |agents: Vec<AgentInfo>| agents.into_iter().map(|a| a.agent_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_agents(0).await.expect("all")),
        ["a", "b", "c"]
    );
    assert_eq!(
        ids(store.list_agents(900).await.expect("live")),
        ["a", "b"],
        "c stopped heart-beating"
    );
    assert!(store.heartbeat_agent("c", 2_000).await.expect("heartbeat"));
    assert_eq!(ids(store.list_agents(1_500).await.expect("live")), ["c"]);
    assert!(
        !store
            .heartbeat_agent("nobody", 2_000)
            .await
            .expect("unknown")
    );
    store.deregister_agent("c").await.expect("leave");
    assert_eq!(ids(store.list_agents(0).await.expect("all")), ["a", "b"]);
    // Re-registering replaces the address (an agent restarted elsewhere).
    let mut moved = agent("a", 9999, 3_000);
    moved.host = "10.0.0.9".into();
    store.register_agent(&moved).await.expect("again");
    let listed = store.list_agents(2_500).await.expect("live");
    assert_eq!(listed, vec![moved]);
}

async fn referenced_objects_are_found(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("create");
    for key in ["batches/01", "batches/03"] {
        store
            .commit_flush(&flush(key, vec![segment("t", 0, 1, 0)]))
            .await
            .expect("commit");
    }
    let asked: Vec<String> = ["batches/01", "batches/02", "batches/03", "batches/04"]
        .iter()
        .map(|k| k.to_string())
        .collect();
    let mut referenced = store
        .referenced_objects("bucket", &asked)
        .await
        .expect("referenced");
    referenced.sort();
    assert_eq!(referenced, ["batches/01", "batches/03"]);
    assert!(
        store
            .referenced_objects("other-bucket", &asked)
            .await
            .expect("none")
            .is_empty()
    );
    assert!(
        store
            .referenced_objects("bucket", &[])
            .await
            .expect("empty")
            .is_empty()
    );
}

async fn commits_are_announced(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("t", 2))
        .await
        .expect("create");
    let mut notices = store.commit_notices();
    store
        .commit_flush(&flush(
            "b/1",
            vec![segment("t", 0, 3, 0), segment("t", 1, 2, 30)],
        ))
        .await
        .expect("commit");
    let notice = tokio::time::timeout(std::time::Duration::from_secs(5), notices.recv())
        .await
        .expect("a notice in time")
        .expect("notice");
    let mut got: Vec<(String, i32, i64, Option<i64>)> = notice
        .iter()
        .map(|n| {
            (
                n.topic.clone(),
                n.partition,
                n.high_watermark,
                n.last_stable_offset,
            )
        })
        .collect();
    got.sort();
    // No transaction is open: the last stable offset is the high
    // watermark.
    assert_eq!(
        got,
        [
            ("t".to_string(), 0, 3, Some(3)),
            ("t".to_string(), 1, 2, Some(2))
        ]
    );
}

/// Two stores on one PostgreSQL database, as two agents: a commit by one
/// wakes a subscriber of the other (LISTEN/NOTIFY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_commit_notices_reach_other_agents() {
    use streamhouse_metadata::testing::{
        POSTGRES_URL_ENV, create_schema, server_url, unique_schema,
    };
    use streamhouse_metadata::{PostgresStore, SegmentLog, TopicCatalog};
    let Some(url) = server_url(
        POSTGRES_URL_ENV,
        "postgres_commit_notices_reach_other_agents",
    ) else {
        return;
    };
    let schema = unique_schema("notices");
    let options = create_schema(&url, &schema).await.expect("schema");
    let listener = PostgresStore::connect_with(options.clone())
        .await
        .expect("agent a");
    let writer = PostgresStore::connect_with(options).await.expect("agent b");
    writer
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("create");
    let mut notices = listener.commit_notices();
    // Give LISTEN a moment to be registered before the commit.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut key = 0;
    loop {
        key += 1;
        writer
            .commit_flush(&flush(&format!("b/{key}"), vec![segment("t", 0, 1, 0)]))
            .await
            .expect("commit");
        match tokio::time::timeout(std::time::Duration::from_millis(500), notices.recv()).await {
            Ok(Ok(notice)) => {
                assert_eq!(notice[0].topic, "t");
                assert_eq!(notice[0].high_watermark, key, "the new high watermark");
                assert_eq!(notice[0].last_stable_offset, Some(key));
                break;
            }
            _ => assert!(
                std::time::Instant::now() < deadline,
                "no notice from the other agent"
            ),
        }
    }
}

/// Commits `count` one-record flushes to partition 0 of `topic`, each in its
/// own object `obj-{first + i}`.
async fn one_record_flushes(store: &dyn MetadataStore, topic: &str, first: usize, count: usize) {
    for i in first..first + count {
        store
            .commit_flush(&flush(
                &format!("obj-{i:04}"),
                vec![segment(topic, 0, 1, 0)],
            ))
            .await
            .expect("commit");
    }
}

async fn topic_config_can_be_updated(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("configured", 1))
        .await
        .expect("create");
    let config = TopicConfig::from_pairs([("retention.ms", "60000"), ("retention.bytes", "1000")])
        .expect("valid config");
    let updated = store
        .update_topic_config("configured", config.clone())
        .await
        .expect("update");
    assert_eq!(updated.config, config);
    assert_eq!(
        store.get_topic("configured").await.expect("get").config,
        config
    );
    assert!(matches!(
        store.update_topic_config("missing", config).await,
        Err(MetadataError::TopicNotFound { .. })
    ));
}

async fn truncation_advances_log_start_and_tombstones_objects(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("trunc", 1))
        .await
        .expect("create");
    one_record_flushes(store.as_ref(), "trunc", 0, 5).await;
    // Offsets 0..=4, one per object. Truncating to 3 drops the rows of 0, 1, 2.
    let info = store
        .truncate_partition("trunc", 0, 3)
        .await
        .expect("truncate");
    assert_eq!((info.log_start_offset, info.high_watermark), (3, 5));
    let left = store.list_segments("trunc", 0, 0, 100).await.expect("list");
    assert_eq!(
        left.iter().map(|s| s.base_offset).collect::<Vec<_>>(),
        vec![3, 4]
    );
    let far_future = i64::MAX;
    let mut dead = store
        .expired_tombstones("bucket", far_future, 100)
        .await
        .expect("tombstones");
    dead.sort();
    assert_eq!(dead, vec!["obj-0000", "obj-0001", "obj-0002"]);
    // Never backwards, never past the high watermark.
    let info = store
        .truncate_partition("trunc", 0, 1)
        .await
        .expect("truncate");
    assert_eq!(info.log_start_offset, 3);
    let info = store
        .truncate_partition("trunc", 0, 99)
        .await
        .expect("truncate");
    assert_eq!((info.log_start_offset, info.high_watermark), (5, 5));
    assert!(
        store
            .list_segments("trunc", 0, 0, 100)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        store
            .get_partition("trunc", 0)
            .await
            .expect("partition")
            .log_start_offset,
        5
    );
    assert!(matches!(
        store.truncate_partition("trunc", 7, 1).await,
        Err(MetadataError::PartitionNotFound { .. })
    ));
}

fn replacement(topic: &str, base: i64, end: i64, rows: i64, key: &str) -> SegmentReplacement {
    SegmentReplacement {
        topic: topic.into(),
        partition: 0,
        base_offset: base,
        end_offset: end,
        replaced_rows: rows,
        bucket: "bucket".into(),
        key: key.into(),
        segments: vec![ReplacementSegment {
            base_offset: base,
            end_offset: end,
            record_count: end - base + 1,
            size_bytes: 100,
            byte_offset: 0,
            byte_length: 50,
            min_timestamp: 1_000,
            max_timestamp: 2_000,
            cleaned_at: None,
            tombstones: 0,
        }],
        created_at: 1_800_000_000_000,
    }
}

/// A replacement whose object holds one segment per `(base, end)` piece,
/// 50 bytes each, back to back.
fn pieced_replacement(
    topic: &str,
    pieces: &[(i64, i64)],
    rows: i64,
    key: &str,
) -> SegmentReplacement {
    let (base, end) = (pieces[0].0, pieces[pieces.len() - 1].1);
    let mut replacement = replacement(topic, base, end, rows, key);
    replacement.segments = pieces
        .iter()
        .enumerate()
        .map(|(i, &(base, end))| ReplacementSegment {
            base_offset: base,
            end_offset: end,
            record_count: end - base + 1,
            size_bytes: 100,
            byte_offset: 50 * i as i64,
            byte_length: 50,
            min_timestamp: 1_000 + base,
            max_timestamp: 1_000 + end,
            cleaned_at: None,
            tombstones: 0,
        })
        .collect();
    replacement
}

async fn replacement_with_several_segments(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("pieces", 1))
        .await
        .expect("create");
    one_record_flushes(store.as_ref(), "pieces", 0, 6).await;
    // Pieces that leave a gap, overlap, or miss the run's ends are refused
    // and change nothing.
    for bad in [
        vec![(0, 1), (3, 5)],
        vec![(0, 2), (2, 5)],
        vec![(0, 2), (3, 4)],
        vec![(1, 2), (3, 5)],
    ] {
        let mut broken = pieced_replacement("pieces", &bad, 6, "pieces-bad");
        broken.base_offset = 0;
        broken.end_offset = 5;
        assert!(
            matches!(
                store.replace_segments(&broken).await,
                Err(MetadataError::InvalidArgument { .. })
            ),
            "{bad:?}"
        );
    }
    let mut empty = replacement("pieces", 0, 5, 6, "pieces-empty");
    empty.segments.clear();
    assert!(matches!(
        store.replace_segments(&empty).await,
        Err(MetadataError::InvalidArgument { .. })
    ));
    assert_eq!(
        store
            .list_segments("pieces", 0, 0, 100)
            .await
            .expect("list")
            .len(),
        6
    );

    assert!(
        store
            .replace_segments(&pieced_replacement(
                "pieces",
                &[(0, 2), (3, 4), (5, 5)],
                6,
                "pieces-obj"
            ))
            .await
            .expect("replace")
    );
    let rows = store
        .list_segments("pieces", 0, 0, 100)
        .await
        .expect("list");
    let ranges: Vec<(i64, i64, &str, i64, i64)> = rows
        .iter()
        .map(|s| {
            (
                s.base_offset,
                s.end_offset,
                s.key.as_str(),
                s.byte_offset,
                s.byte_length,
            )
        })
        .collect();
    assert_eq!(
        ranges,
        vec![
            (0, 2, "pieces-obj", 0, 50),
            (3, 4, "pieces-obj", 50, 50),
            (5, 5, "pieces-obj", 100, 50),
        ]
    );
    assert_eq!(rows[1].record_count, 2);
    assert_eq!(
        (rows[1].min_timestamp, rows[1].max_timestamp),
        (1_003, 1_004)
    );
    let stats = store.storage_stats().await.expect("stats");
    assert_eq!((stats.segment_rows, stats.objects), (3, 1));
    // A read by offset finds the piece holding it.
    let found = store.list_segments("pieces", 0, 4, 1).await.expect("list");
    assert_eq!(found[0].base_offset, 3);
}

async fn key_compacted_rows_may_hold_fewer_records_than_they_span(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("keyed", 1))
        .await
        .expect("create");
    one_record_flushes(store.as_ref(), "keyed", 0, 6).await;
    // A gapped row that does not say it was key-compacted is refused.
    let mut gapped = pieced_replacement("keyed", &[(0, 2), (3, 5)], 6, "keyed-bad");
    gapped.segments[0].record_count = 1;
    assert!(matches!(
        store.replace_segments(&gapped).await,
        Err(MetadataError::InvalidArgument { .. })
    ));
    // Nor may a row hold more records than it spans.
    let mut over = pieced_replacement("keyed", &[(0, 2), (3, 5)], 6, "keyed-over");
    over.segments[0].record_count = 4;
    over.segments[0].cleaned_at = Some(7);
    assert!(matches!(
        store.replace_segments(&over).await,
        Err(MetadataError::InvalidArgument { .. })
    ));
    // Key-compacted rows keep their offset ranges (offsets never move) and
    // may hold fewer records, down to none.
    let mut keyed = pieced_replacement("keyed", &[(0, 2), (3, 5)], 6, "keyed-obj");
    keyed.segments[0].record_count = 1;
    keyed.segments[0].cleaned_at = Some(1_700_000_000_000);
    keyed.segments[1].record_count = 0;
    keyed.segments[1].cleaned_at = Some(1_700_000_000_001);
    assert!(store.replace_segments(&keyed).await.expect("replace"));
    let rows = store.list_segments("keyed", 0, 0, 100).await.expect("list");
    let shape: Vec<(i64, i64, i64, Option<i64>)> = rows
        .iter()
        .map(|r| (r.base_offset, r.end_offset, r.record_count, r.cleaned_at))
        .collect();
    assert_eq!(
        shape,
        vec![
            (0, 2, 1, Some(1_700_000_000_000)),
            (3, 5, 0, Some(1_700_000_000_001)),
        ]
    );
    // Rows written by a flush are not key-compacted.
    one_record_flushes(store.as_ref(), "keyed", 0, 1).await;
    let rows = store.list_segments("keyed", 0, 6, 100).await.expect("list");
    assert_eq!(rows[0].cleaned_at, None);
}

async fn replacement_swaps_a_run_atomically(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("compact", 1))
        .await
        .expect("create");
    one_record_flushes(store.as_ref(), "compact", 0, 6).await;
    // A stale run (wrong row count) changes nothing.
    assert!(
        !store
            .replace_segments(&replacement("compact", 0, 3, 3, "compacted-a"))
            .await
            .expect("replace")
    );
    assert_eq!(
        store
            .list_segments("compact", 0, 0, 100)
            .await
            .expect("list")
            .len(),
        6
    );
    assert!(
        store
            .replace_segments(&replacement("compact", 0, 3, 4, "compacted-a"))
            .await
            .expect("replace")
    );
    let rows = store
        .list_segments("compact", 0, 0, 100)
        .await
        .expect("list");
    let ranges: Vec<(i64, i64, &str)> = rows
        .iter()
        .map(|s| (s.base_offset, s.end_offset, s.key.as_str()))
        .collect();
    assert_eq!(
        ranges,
        vec![
            (0, 3, "compacted-a"),
            (4, 4, "obj-0004"),
            (5, 5, "obj-0005")
        ]
    );
    assert_eq!(rows[0].record_count, 4);
    assert_eq!(rows[0].created_at, 1_800_000_000_000);
    let mut dead = store
        .expired_tombstones("bucket", i64::MAX, 100)
        .await
        .expect("tombstones");
    dead.sort();
    assert_eq!(dead, vec!["obj-0000", "obj-0001", "obj-0002", "obj-0003"]);
    // Below the log start offset: refused.
    store
        .truncate_partition("compact", 0, 5)
        .await
        .expect("truncate");
    assert!(
        !store
            .replace_segments(&replacement("compact", 4, 5, 2, "compacted-b"))
            .await
            .expect("replace")
    );
    let stats = store.storage_stats().await.expect("stats");
    assert_eq!(stats.segment_rows, 1);
    assert_eq!(stats.objects, 1);
    assert_eq!(stats.max_rows_per_partition, 1);
    // obj-0000..=0004 and the compacted object, dropped by the truncation.
    assert_eq!(stats.tombstones, 6);
}

async fn tombstones_age_and_are_removed(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("aging", 1))
        .await
        .expect("create");
    one_record_flushes(store.as_ref(), "aging", 0, 3).await;
    store
        .truncate_partition("aging", 0, 2)
        .await
        .expect("truncate");
    // Tombstoned just now: not expired for a cutoff in the past.
    assert!(
        store
            .expired_tombstones("bucket", 1_000, 100)
            .await
            .expect("tombstones")
            .is_empty()
    );
    assert!(
        store
            .expired_tombstones("other-bucket", i64::MAX, 100)
            .await
            .expect("tombstones")
            .is_empty()
    );
    let limited = store
        .expired_tombstones("bucket", i64::MAX, 1)
        .await
        .expect("tombstones");
    assert_eq!(limited.len(), 1);
    let asked: Vec<String> = vec!["obj-0000".into(), "obj-0002".into(), "zzz".into()];
    assert_eq!(
        store
            .tombstoned_objects("bucket", &asked)
            .await
            .expect("tombstoned"),
        vec!["obj-0000".to_string()]
    );
    store
        .remove_tombstones("bucket", &["obj-0000".to_string(), "obj-0001".to_string()])
        .await
        .expect("remove");
    assert!(
        store
            .expired_tombstones("bucket", i64::MAX, 100)
            .await
            .expect("tombstones")
            .is_empty()
    );
}

async fn deleting_a_topic_tombstones_its_objects(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("doomed", 1))
        .await
        .expect("create");
    store
        .create_topic(NewTopic::new("kept", 1))
        .await
        .expect("create");
    store
        .commit_flush(&flush(
            "shared-object",
            vec![segment("doomed", 0, 2, 0), segment("kept", 0, 2, 20)],
        ))
        .await
        .expect("commit");
    one_record_flushes(store.as_ref(), "doomed", 0, 1).await;
    store.delete_topic("doomed").await.expect("delete");
    let mut dead = store
        .expired_tombstones("bucket", i64::MAX, 100)
        .await
        .expect("tombstones");
    dead.sort();
    assert_eq!(dead, vec!["obj-0000", "shared-object"]);
    // The shared object is still referenced by the other topic: garbage
    // collection must check references before it deletes anything.
    assert_eq!(
        store
            .referenced_objects("bucket", &dead)
            .await
            .expect("referenced"),
        vec!["shared-object".to_string()]
    );
}

async fn leases_have_one_holder_until_they_expire(store: Arc<dyn MetadataStore>) {
    let t = 1_000_000;
    assert!(
        store
            .acquire_lease("compaction", "a", t, t + 100)
            .await
            .expect("lease")
    );
    assert!(
        !store
            .acquire_lease("compaction", "b", t + 50, t + 150)
            .await
            .expect("lease")
    );
    // Another job is independent.
    assert!(
        store
            .acquire_lease("gc", "b", t + 50, t + 150)
            .await
            .expect("lease")
    );
    // The holder renews.
    assert!(
        store
            .acquire_lease("compaction", "a", t + 90, t + 190)
            .await
            .expect("lease")
    );
    assert!(
        !store
            .acquire_lease("compaction", "b", t + 150, t + 250)
            .await
            .expect("lease")
    );
    // Expired: another agent takes over, and the old holder is out.
    assert!(
        store
            .acquire_lease("compaction", "b", t + 191, t + 291)
            .await
            .expect("lease")
    );
    assert!(
        !store
            .acquire_lease("compaction", "a", t + 200, t + 300)
            .await
            .expect("lease")
    );
    // Releasing someone else's lease does nothing; releasing one's own frees it.
    store
        .release_lease("compaction", "a")
        .await
        .expect("release");
    assert!(
        !store
            .acquire_lease("compaction", "c", t + 210, t + 310)
            .await
            .expect("lease")
    );
    store
        .release_lease("compaction", "b")
        .await
        .expect("release");
    assert!(
        store
            .acquire_lease("compaction", "c", t + 210, t + 310)
            .await
            .expect("lease")
    );
}

fn credential(mechanism: ScramMechanism, password: &str, salt: &[u8]) -> ScramCredential {
    ScramCredential::from_password(mechanism, password.as_bytes(), salt, 4096)
}

fn acl(
    resource_type: ResourceType,
    name: &str,
    pattern_type: PatternType,
    principal: &str,
    operation: AclOperation,
    permission: AclPermission,
) -> AclBinding {
    AclBinding {
        resource_type,
        resource_name: name.into(),
        pattern_type,
        principal: principal.into(),
        host: "*".into(),
        operation,
        permission,
    }
}

async fn scram_credentials_round_trip_per_mechanism(store: Arc<dyn MetadataStore>) {
    assert!(store.scram_credentials("alice").await.unwrap().is_empty());
    let sha256 = credential(ScramMechanism::Sha256, "secret", b"salt-256");
    let sha512 = credential(ScramMechanism::Sha512, "secret", b"salt-512");
    store
        .upsert_scram_credential("alice", &sha512)
        .await
        .unwrap();
    store
        .upsert_scram_credential("alice", &sha256)
        .await
        .unwrap();
    let stored = store.scram_credentials("alice").await.unwrap();
    assert_eq!(stored, [sha256.clone(), sha512.clone()]);
    assert!(stored[0].verify_password(b"secret"));
    assert!(stored[1].verify_password(b"secret"));
    assert!(!stored[1].verify_password(b"Secret"));
    assert!(store.scram_credentials("bob").await.unwrap().is_empty());
    assert!(store.scram_credentials("ALICE").await.unwrap().is_empty());
    assert!(matches!(
        store.upsert_scram_credential("", &sha256).await,
        Err(MetadataError::InvalidArgument { .. })
    ));
}

async fn scram_credentials_are_replaced_deleted_and_listed(store: Arc<dyn MetadataStore>) {
    let old = credential(ScramMechanism::Sha256, "old", b"salt-a");
    let new = ScramCredential::from_password(ScramMechanism::Sha256, b"new", b"salt-b", 8192);
    store.upsert_scram_credential("alice", &old).await.unwrap();
    store.upsert_scram_credential("alice", &new).await.unwrap();
    let stored = store.scram_credentials("alice").await.unwrap();
    assert_eq!(
        stored,
        std::slice::from_ref(&new),
        "the second set replaced the first"
    );
    assert!(stored[0].verify_password(b"new"));
    assert!(!stored[0].verify_password(b"old"));

    store
        .upsert_scram_credential("bob", &credential(ScramMechanism::Sha512, "b", b"s"))
        .await
        .unwrap();
    store
        .upsert_scram_credential("alice", &credential(ScramMechanism::Sha512, "a", b"s"))
        .await
        .unwrap();
    let listed: Vec<(String, ScramMechanism, u32)> = store
        .list_scram_credentials()
        .await
        .unwrap()
        .into_iter()
        .map(|info| (info.user, info.mechanism, info.iterations))
        .collect();
    assert_eq!(
        listed,
        [
            ("alice".to_string(), ScramMechanism::Sha256, 8192),
            ("alice".to_string(), ScramMechanism::Sha512, 4096),
            ("bob".to_string(), ScramMechanism::Sha512, 4096),
        ]
    );

    assert!(
        store
            .delete_scram_credential("alice", ScramMechanism::Sha256)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_scram_credential("alice", ScramMechanism::Sha256)
            .await
            .unwrap(),
        "nothing left to delete"
    );
    assert!(
        !store
            .delete_scram_credential("carol", ScramMechanism::Sha512)
            .await
            .unwrap()
    );
    let left = store.scram_credentials("alice").await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].mechanism, ScramMechanism::Sha512);
}

async fn acls_are_stored_once_and_listed_by_filter(store: Arc<dyn MetadataStore>) {
    use AclOperation::{Read, Write};
    use AclPermission::{Allow, Deny};
    let read_orders = acl(
        ResourceType::Topic,
        "orders",
        PatternType::Literal,
        "User:alice",
        Read,
        Allow,
    );
    let write_prefix = acl(
        ResourceType::Topic,
        "ord",
        PatternType::Prefixed,
        "User:bob",
        Write,
        Allow,
    );
    let deny_all = acl(
        ResourceType::Topic,
        "*",
        PatternType::Literal,
        "User:mallory",
        AclOperation::All,
        Deny,
    );
    let group = acl(
        ResourceType::Group,
        "orders",
        PatternType::Literal,
        "User:alice",
        Read,
        Allow,
    );
    let created = store
        .create_acls(&[
            read_orders.clone(),
            write_prefix.clone(),
            read_orders.clone(),
            deny_all.clone(),
            group.clone(),
        ])
        .await
        .unwrap();
    assert_eq!(created, 4, "the duplicate in one call is stored once");
    assert_eq!(
        store
            .create_acls(std::slice::from_ref(&read_orders))
            .await
            .unwrap(),
        0,
        "an existing binding is kept once"
    );
    let mut all = vec![
        read_orders.clone(),
        write_prefix.clone(),
        deny_all.clone(),
        group.clone(),
    ];
    all.sort();
    assert_eq!(
        store.list_acls(&AclBindingFilter::any()).await.unwrap(),
        all
    );

    let topics = AclBindingFilter {
        resource_type: ResourceType::Topic,
        ..AclBindingFilter::any()
    };
    assert_eq!(store.list_acls(&topics).await.unwrap().len(), 3);
    let matching_orders = AclBindingFilter {
        resource_type: ResourceType::Topic,
        resource_name: Some("orders".into()),
        pattern_type: PatternType::Match,
        ..AclBindingFilter::any()
    };
    let mut expected = vec![read_orders.clone(), write_prefix.clone(), deny_all.clone()];
    expected.sort();
    assert_eq!(store.list_acls(&matching_orders).await.unwrap(), expected);
    let alice = AclBindingFilter {
        principal: Some("User:alice".into()),
        ..AclBindingFilter::any()
    };
    let mut expected = vec![read_orders.clone(), group.clone()];
    expected.sort();
    assert_eq!(store.list_acls(&alice).await.unwrap(), expected);

    let mut invalid = read_orders.clone();
    invalid.pattern_type = PatternType::Match;
    assert!(matches!(
        store.create_acls(&[group.clone(), invalid]).await,
        Err(MetadataError::Validation(
            ValidationError::InvalidAcl { .. }
        ))
    ));
    assert_eq!(
        store
            .list_acls(&AclBindingFilter::any())
            .await
            .unwrap()
            .len(),
        4,
        "a call with an invalid binding stores nothing"
    );
}

async fn acls_are_deleted_by_filter(store: Arc<dyn MetadataStore>) {
    use AclOperation::{Describe, Read, Write};
    use AclPermission::Allow;
    let a = acl(
        ResourceType::Topic,
        "orders",
        PatternType::Literal,
        "User:alice",
        Read,
        Allow,
    );
    let b = acl(
        ResourceType::Topic,
        "orders",
        PatternType::Literal,
        "User:bob",
        Write,
        Allow,
    );
    let c = acl(
        ResourceType::Topic,
        "ord",
        PatternType::Prefixed,
        "User:alice",
        Describe,
        Allow,
    );
    let d = acl(
        ResourceType::Group,
        "g",
        PatternType::Literal,
        "User:alice",
        Read,
        Allow,
    );
    store
        .create_acls(&[a.clone(), b.clone(), c.clone(), d.clone()])
        .await
        .unwrap();
    let alice_topics = AclBindingFilter {
        resource_type: ResourceType::Topic,
        principal: Some("User:alice".into()),
        ..AclBindingFilter::any()
    };
    let literal_orders = AclBindingFilter {
        resource_name: Some("orders".into()),
        pattern_type: PatternType::Literal,
        ..AclBindingFilter::any()
    };
    let nothing = AclBindingFilter {
        principal: Some("User:nobody".into()),
        ..AclBindingFilter::any()
    };
    let deleted = store
        .delete_acls(&[alice_topics.clone(), literal_orders, nothing])
        .await
        .unwrap();
    let mut alice_expected = vec![a.clone(), c.clone()];
    alice_expected.sort();
    let mut orders_expected = vec![a.clone(), b.clone()];
    orders_expected.sort();
    assert_eq!(deleted[0], alice_expected);
    assert_eq!(
        deleted[1], orders_expected,
        "a binding two filters select is listed under both"
    );
    assert!(deleted[2].is_empty());
    assert_eq!(
        store.list_acls(&AclBindingFilter::any()).await.unwrap(),
        std::slice::from_ref(&d)
    );
    let again = store.delete_acls(&[alice_topics]).await.unwrap();
    assert_eq!(
        again,
        [Vec::<AclBinding>::new()],
        "deleted bindings are gone"
    );
    assert_eq!(
        store.delete_acls(&[AclBindingFilter::any()]).await.unwrap(),
        [vec![d]]
    );
    assert!(store.delete_acls(&[]).await.unwrap().is_empty());
}

async fn every_user_and_acl_change_bumps_the_security_version(store: Arc<dyn MetadataStore>) {
    let binding = acl(
        ResourceType::Topic,
        "t",
        PatternType::Literal,
        "User:a",
        AclOperation::Read,
        AclPermission::Allow,
    );
    let mut last = store.security_version().await.unwrap();
    let mut changed = |now: i64, what: &str| {
        assert!(now > last, "{what}: version {now} after {last}");
        last = now;
    };
    store
        .upsert_scram_credential("a", &credential(ScramMechanism::Sha256, "p", b"s"))
        .await
        .unwrap();
    changed(store.security_version().await.unwrap(), "set credential");
    store
        .upsert_scram_credential("a", &credential(ScramMechanism::Sha256, "q", b"s"))
        .await
        .unwrap();
    changed(
        store.security_version().await.unwrap(),
        "replace credential",
    );
    store
        .delete_scram_credential("a", ScramMechanism::Sha256)
        .await
        .unwrap();
    changed(store.security_version().await.unwrap(), "delete credential");
    store
        .create_acls(std::slice::from_ref(&binding))
        .await
        .unwrap();
    changed(store.security_version().await.unwrap(), "create ACL");
    store.delete_acls(&[AclBindingFilter::any()]).await.unwrap();
    changed(store.security_version().await.unwrap(), "delete ACL");
    let unchanged = store.security_version().await.unwrap();
    store.delete_acls(&[AclBindingFilter::any()]).await.unwrap();
    assert!(
        !store
            .delete_scram_credential("a", ScramMechanism::Sha256)
            .await
            .unwrap()
    );
    assert_eq!(
        store.security_version().await.unwrap(),
        unchanged,
        "calls that change nothing leave the version alone"
    );
}

/// Two stores on one PostgreSQL database, as two agents: users and ACLs
/// written through one are read, and counted in the version, by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_security_changes_are_shared_between_agents() {
    use streamhouse_metadata::PostgresStore;
    use streamhouse_metadata::testing::{
        POSTGRES_URL_ENV, create_schema, server_url, unique_schema,
    };
    let Some(url) = server_url(
        POSTGRES_URL_ENV,
        "postgres_security_changes_are_shared_between_agents",
    ) else {
        return;
    };
    let schema = unique_schema("security_shared");
    let options = create_schema(&url, &schema).await.expect("schema");
    let a = PostgresStore::connect_with(options.clone())
        .await
        .expect("agent a");
    let b = PostgresStore::connect_with(options).await.expect("agent b");
    shared_security_changes(&a, &b).await;
}

/// The same with two handles on one SQLite file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_security_changes_are_shared_between_handles() {
    let temp = temp_sqlite().await.expect("open sqlite");
    let other = streamhouse_metadata::SqliteStore::open(temp.dir.path().join("metadata.db"))
        .await
        .expect("second handle");
    shared_security_changes(&temp.store, &other).await;
}

async fn shared_security_changes(a: &dyn MetadataStore, b: &dyn MetadataStore) {
    let before = b.security_version().await.unwrap();
    let sha512 = credential(ScramMechanism::Sha512, "pw", b"salt");
    a.upsert_scram_credential("alice", &sha512).await.unwrap();
    assert_eq!(b.scram_credentials("alice").await.unwrap(), [sha512]);
    let after_user = b.security_version().await.unwrap();
    assert!(after_user > before);

    let binding = acl(
        ResourceType::Topic,
        "orders",
        PatternType::Literal,
        "User:alice",
        AclOperation::Read,
        AclPermission::Allow,
    );
    a.create_acls(std::slice::from_ref(&binding)).await.unwrap();
    assert!(b.security_version().await.unwrap() > after_user);
    assert_eq!(
        b.list_acls(&AclBindingFilter::any()).await.unwrap(),
        std::slice::from_ref(&binding)
    );
    assert_eq!(
        b.create_acls(std::slice::from_ref(&binding)).await.unwrap(),
        0
    );
    assert_eq!(
        b.delete_acls(&[AclBindingFilter::any()]).await.unwrap(),
        [vec![binding]]
    );
    assert!(
        a.list_acls(&AclBindingFilter::any())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        b.delete_scram_credential("alice", ScramMechanism::Sha512)
            .await
            .unwrap()
    );
    assert!(a.scram_credentials("alice").await.unwrap().is_empty());
    assert_eq!(
        a.security_version().await.unwrap(),
        b.security_version().await.unwrap()
    );
}

// --- Transactions ----------------------------------------------------------

/// InitProducerId for `id`: its producer id and epoch.
async fn init_txn(store: &dyn MetadataStore, id: &str) -> (i64, i16) {
    match store.init_transaction(id, 60_000, None).await.unwrap() {
        Ok(InitTransaction::Ready {
            producer_id,
            producer_epoch,
        }) => (producer_id, producer_epoch),
        other => panic!("init {id}: {other:?}"),
    }
}

/// One transactional batch of `records` records.
fn txn_batch(partition: i32, records: i64, producer: (i64, i16), sequence: i32) -> PendingSegment {
    PendingSegment {
        producer: Some(ProducerBatch {
            producer_id: producer.0,
            producer_epoch: producer.1,
            base_sequence: sequence,
            transactional: true,
        }),
        ..segment("t", partition, records, 0)
    }
}

fn txn_marker(partition: i32, producer: (i64, i16), commit: bool) -> PendingSegment {
    PendingSegment {
        marker: Some(TransactionBatch {
            producer_id: producer.0,
            producer_epoch: producer.1,
            commit: Some(commit),
        }),
        ..segment("t", partition, 1, 0)
    }
}

async fn commit_one(store: &dyn MetadataStore, segment: PendingSegment) -> SegmentOutcome {
    let key = format!("obj-{}", uuid_like());
    store
        .commit_flush(&flush(&key, vec![segment]))
        .await
        .unwrap()[0]
}

/// The first notice for partition t-0 at `high_watermark` (on PostgreSQL
/// a commit is announced twice: in process, and back through LISTEN).
async fn next_notice(
    notices: &mut tokio::sync::broadcast::Receiver<streamhouse_metadata::CommitNotice>,
    high_watermark: i64,
) -> streamhouse_metadata::WatermarkNotice {
    loop {
        let notice = tokio::time::timeout(std::time::Duration::from_secs(5), notices.recv())
            .await
            .expect("a notice in time")
            .expect("notice");
        if let Some(entry) = notice
            .iter()
            .find(|n| n.topic == "t" && n.partition == 0 && n.high_watermark == high_watermark)
        {
            return entry.clone();
        }
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

async fn a_transaction_commits_its_records_and_offsets(store: Arc<dyn MetadataStore>) {
    store.create_topic(NewTopic::new("t", 2)).await.unwrap();
    let first = init_txn(&*store, "tx").await;
    assert_eq!(first.1, 0);
    // A second InitProducerId keeps the producer id and fences epoch 0.
    let producer = init_txn(&*store, "tx").await;
    assert_eq!(producer, (first.0, 1));
    let partitions = [("t".to_string(), 0), ("t".to_string(), 1)];
    assert_eq!(
        store
            .add_transaction_partitions("tx", first.0, 0, &partitions)
            .await
            .unwrap(),
        Err(TransactionRefusal::Fenced)
    );
    store
        .add_transaction_partitions("tx", producer.0, producer.1, &partitions)
        .await
        .unwrap()
        .unwrap();
    let info = store.describe_transaction("tx").await.unwrap().unwrap();
    assert_eq!(info.state, TransactionState::Ongoing);
    assert_eq!(info.partitions, partitions);
    assert!(info.started_at > 0);

    // Records of the transaction and others' records interleave. A commit
    // that opens a transaction announces that the last stable offset must
    // be read again; one that does not announces it.
    let mut notices = store.commit_notices();
    assert_eq!(
        committed(&commit_one(&*store, txn_batch(0, 3, producer, 0)).await),
        (0, 2)
    );
    assert_eq!(next_notice(&mut notices, 3).await.last_stable_offset, None);
    assert_eq!(
        committed(&commit_one(&*store, segment("t", 0, 2, 0)).await),
        (3, 4)
    );
    let notice = next_notice(&mut notices, 5).await;
    assert_eq!(
        (notice.high_watermark, notice.last_stable_offset),
        (5, Some(0))
    );
    let info = store.get_partition("t", 0).await.unwrap();
    assert_eq!((info.last_stable_offset, info.high_watermark), (0, 5));
    assert_eq!(
        store.open_transaction_partitions(producer.0).await.unwrap(),
        [("t".to_string(), 0)]
    );
    // DescribeProducers: the producer's newest batch and open transaction.
    let [active] = store.describe_producers("t", 0).await.unwrap()[..] else {
        panic!("one active producer");
    };
    assert_eq!(
        (
            active.producer_id,
            active.producer_epoch,
            active.last_sequence,
            active.current_txn_start_offset
        ),
        (producer.0, producer.1, 2, Some(0))
    );
    assert!(store.describe_producers("t", 1).await.unwrap().is_empty());

    store
        .add_transaction_group("tx", producer.0, producer.1, "g")
        .await
        .unwrap()
        .unwrap();
    let offsets = [OffsetCommit {
        topic: "t".into(),
        partition: 1,
        offset: 42,
        metadata: Some("m".into()),
        leader_epoch: -1,
    }];
    store
        .stage_transaction_offsets("tx", producer.0, producer.1, "g", &offsets)
        .await
        .unwrap()
        .unwrap();
    // Not visible before the transaction commits.
    assert!(store.fetch_offsets("g").await.unwrap().is_empty());

    let (decision, info) = store
        .end_transaction("tx", producer.0, producer.1, true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decision, EndDecision::Prepared);
    assert_eq!(info.state, TransactionState::PrepareCommit);
    assert_eq!(info.groups, ["g"]);
    // A retried EndTxn while the markers are written, and a new
    // transaction too soon.
    assert_eq!(
        store
            .end_transaction("tx", producer.0, producer.1, true)
            .await
            .unwrap()
            .unwrap()
            .0,
        EndDecision::StillPrepared
    );
    assert_eq!(
        store
            .add_transaction_partitions("tx", producer.0, producer.1, &partitions)
            .await
            .unwrap(),
        Err(TransactionRefusal::Concurrent)
    );
    assert_eq!(
        committed(&commit_one(&*store, txn_marker(0, producer, true)).await),
        (5, 5)
    );
    let info = store.get_partition("t", 0).await.unwrap();
    assert_eq!((info.last_stable_offset, info.high_watermark), (6, 6));
    assert!(
        store
            .open_transaction_partitions(producer.0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .complete_transaction("tx", producer.0, producer.1)
            .await
            .unwrap()
    );
    // Completing twice does nothing.
    assert!(
        !store
            .complete_transaction("tx", producer.0, producer.1)
            .await
            .unwrap()
    );
    let committed_offsets = store.fetch_offsets("g").await.unwrap();
    assert_eq!(committed_offsets.len(), 1);
    assert_eq!(
        (committed_offsets[0].partition, committed_offsets[0].offset),
        (1, 42)
    );
    let info = store.describe_transaction("tx").await.unwrap().unwrap();
    assert_eq!(info.state, TransactionState::CompleteCommit);
    assert!(info.partitions.is_empty() && info.groups.is_empty());
    assert_eq!(info.started_at, -1);
    assert_eq!(
        store
            .end_transaction("tx", producer.0, producer.1, true)
            .await
            .unwrap()
            .unwrap()
            .0,
        EndDecision::Completed
    );
    // Nothing was aborted; the rows say who wrote them.
    assert!(
        store
            .aborted_transactions("t", 0, 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let rows = store.list_segments("t", 0, 0, 10).await.unwrap();
    let attribution: Vec<_> = rows.iter().map(|r| r.transaction).collect();
    assert_eq!(
        attribution,
        [
            Some(TransactionBatch {
                producer_id: producer.0,
                producer_epoch: producer.1,
                commit: None
            }),
            None,
            Some(TransactionBatch {
                producer_id: producer.0,
                producer_epoch: producer.1,
                commit: Some(true)
            }),
        ]
    );
    let listed = store.list_transactions().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].transactional_id, "tx");
}

async fn an_aborted_transaction_is_indexed_and_drops_its_offsets(store: Arc<dyn MetadataStore>) {
    store.create_topic(NewTopic::new("t", 1)).await.unwrap();
    let producer = init_txn(&*store, "tx").await;
    let t0 = [("t".to_string(), 0)];
    store
        .add_transaction_partitions("tx", producer.0, producer.1, &t0)
        .await
        .unwrap()
        .unwrap();
    store
        .add_transaction_group("tx", producer.0, producer.1, "g")
        .await
        .unwrap()
        .unwrap();
    let offsets = [OffsetCommit {
        topic: "t".into(),
        partition: 0,
        offset: 7,
        metadata: None,
        leader_epoch: -1,
    }];
    store
        .stage_transaction_offsets("tx", producer.0, producer.1, "g", &offsets)
        .await
        .unwrap()
        .unwrap();
    commit_one(&*store, segment("t", 0, 2, 0)).await;
    assert_eq!(
        committed(&commit_one(&*store, txn_batch(0, 3, producer, 0)).await),
        (2, 4)
    );
    assert_eq!(
        committed(&commit_one(&*store, txn_batch(0, 1, producer, 3)).await),
        (5, 5)
    );
    let (decision, _) = store
        .end_transaction("tx", producer.0, producer.1, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decision, EndDecision::Prepared);
    assert_eq!(
        committed(&commit_one(&*store, txn_marker(0, producer, false)).await),
        (6, 6)
    );
    assert!(
        store
            .complete_transaction("tx", producer.0, producer.1)
            .await
            .unwrap()
    );
    let aborted = AbortedTransaction {
        producer_id: producer.0,
        first_offset: 2,
        marker_offset: 6,
    };
    assert_eq!(
        store.aborted_transactions("t", 0, 0, 100).await.unwrap(),
        [aborted]
    );
    assert_eq!(
        store.aborted_transactions("t", 0, 6, 6).await.unwrap(),
        [aborted]
    );
    assert!(
        store
            .aborted_transactions("t", 0, 0, 1)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .aborted_transactions("t", 0, 7, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.fetch_offsets("g").await.unwrap().is_empty());
    assert_eq!(
        store
            .describe_transaction("tx")
            .await
            .unwrap()
            .unwrap()
            .state,
        TransactionState::CompleteAbort
    );
}

async fn transactional_batches_need_their_transaction(store: Arc<dyn MetadataStore>) {
    store.create_topic(NewTopic::new("t", 2)).await.unwrap();
    let producer = init_txn(&*store, "tx").await;
    // No transaction open yet.
    assert_eq!(
        commit_one(&*store, txn_batch(0, 1, producer, 0)).await,
        SegmentOutcome::TransactionRefused(TransactionRefusal::InvalidState)
    );
    store
        .add_transaction_partitions("tx", producer.0, producer.1, &[("t".to_string(), 0)])
        .await
        .unwrap()
        .unwrap();
    // A partition not added, a producer id never issued, a stale epoch.
    assert_eq!(
        commit_one(&*store, txn_batch(1, 1, producer, 0)).await,
        SegmentOutcome::TransactionRefused(TransactionRefusal::InvalidState)
    );
    assert_eq!(
        commit_one(&*store, txn_batch(0, 1, (producer.0 + 1_000, 0), 0)).await,
        SegmentOutcome::TransactionRefused(TransactionRefusal::ProducerIdMismatch)
    );
    // A new instance of the producer fences this one (and aborts its
    // transaction, which stored nothing).
    let Ok(InitTransaction::Aborting(aborting)) =
        store.init_transaction("tx", 60_000, None).await.unwrap()
    else {
        panic!("expected the open transaction to be aborted");
    };
    assert_eq!(aborting.producer_epoch, producer.1 + 1);
    assert_eq!(
        commit_one(&*store, txn_batch(0, 1, producer, 0)).await,
        SegmentOutcome::TransactionRefused(TransactionRefusal::Fenced)
    );
    assert!(
        store
            .complete_transaction("tx", producer.0, aborting.producer_epoch)
            .await
            .unwrap()
    );
    let fenced = init_txn(&*store, "tx").await;
    // Nothing was stored, nothing is open.
    assert_eq!(store.get_partition("t", 0).await.unwrap().high_watermark, 0);
    assert!(
        store
            .open_transaction_partitions(producer.0)
            .await
            .unwrap()
            .is_empty()
    );
    // A retry of a batch that committed is its duplicate, even once the
    // transaction moved on.
    store
        .add_transaction_partitions("tx", fenced.0, fenced.1, &[("t".to_string(), 0)])
        .await
        .unwrap()
        .unwrap();
    let batch = txn_batch(0, 2, fenced, 0);
    assert_eq!(committed(&commit_one(&*store, batch.clone()).await), (0, 1));
    store
        .end_transaction("tx", fenced.0, fenced.1, true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        commit_one(&*store, batch).await,
        SegmentOutcome::Duplicate {
            base_offset: 0,
            end_offset: 1
        }
    );
}

async fn init_fences_and_aborts_an_open_transaction(store: Arc<dyn MetadataStore>) {
    store.create_topic(NewTopic::new("t", 1)).await.unwrap();
    let producer = init_txn(&*store, "tx").await;
    let t0 = [("t".to_string(), 0)];
    store
        .add_transaction_partitions("tx", producer.0, producer.1, &t0)
        .await
        .unwrap()
        .unwrap();
    commit_one(&*store, txn_batch(0, 1, producer, 0)).await;
    // A new instance of the producer: the open transaction is fenced and
    // must be aborted first.
    let InitTransaction::Aborting(info) = store
        .init_transaction("tx", 60_000, None)
        .await
        .unwrap()
        .unwrap()
    else {
        panic!("expected the open transaction to be aborted");
    };
    assert_eq!(info.state, TransactionState::PrepareAbort);
    assert_eq!((info.producer_id, info.producer_epoch), (producer.0, 1));
    assert_eq!(
        store.init_transaction("tx", 60_000, None).await.unwrap(),
        Err(TransactionRefusal::Concurrent)
    );
    commit_one(&*store, txn_marker(0, (producer.0, 1), false)).await;
    assert!(
        store
            .complete_transaction("tx", producer.0, 1)
            .await
            .unwrap()
    );
    assert_eq!(init_txn(&*store, "tx").await, (producer.0, 2));
    // KIP-360: a client naming its producer id and epoch.
    assert_eq!(
        store
            .init_transaction("tx", 60_000, Some((producer.0, 0)))
            .await
            .unwrap(),
        Err(TransactionRefusal::Fenced)
    );
    assert_eq!(
        store
            .init_transaction("tx", 60_000, Some((producer.0 + 1, 2)))
            .await
            .unwrap(),
        Err(TransactionRefusal::ProducerIdMismatch)
    );
    // A timed-out transaction is fenced and prepared to abort once.
    store
        .add_transaction_partitions("tx", producer.0, 2, &t0)
        .await
        .unwrap()
        .unwrap();
    let aborted = store
        .abort_open_transaction("tx", producer.0, 2)
        .await
        .unwrap()
        .expect("aborting");
    assert_eq!(
        (aborted.state, aborted.producer_epoch),
        (TransactionState::PrepareAbort, 3)
    );
    assert_eq!(
        store
            .abort_open_transaction("tx", producer.0, 2)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .add_transaction_partitions("tx", producer.0, 2, &t0)
            .await
            .unwrap(),
        Err(TransactionRefusal::Fenced)
    );
}

fn consumer_member(id: &str, epoch: i32, partitions: &[i32]) -> ConsumerGroupMemberRecord {
    let assigned = vec![AssignedPartitions {
        topic_id: "2a1d0c36-7a55-4d3a-9d5c-36f1c4a0e001".into(),
        partitions: partitions.to_vec(),
    }];
    ConsumerGroupMemberRecord {
        member_id: id.into(),
        instance_id: (id == "m-static").then(|| "instance-1".into()),
        rack_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        principal: Some("User:alice".into()),
        rebalance_timeout_ms: 300_000,
        server_assignor: Some("uniform".into()),
        subscribed_topic_names: vec!["orders".into()],
        subscribed_topic_regex: None,
        member_epoch: epoch,
        previous_member_epoch: epoch - 1,
        state: "stable".into(),
        assigned: assigned.clone(),
        pending_revocation: Vec::new(),
        target: assigned,
    }
}

fn consumer_save(
    expected_version: Option<i64>,
    epoch: i32,
    upserted: Vec<ConsumerGroupMemberRecord>,
    removed: &[&str],
) -> ConsumerGroupSave {
    ConsumerGroupSave {
        group_id: "g1".into(),
        expected_version,
        group_epoch: epoch,
        assignment_epoch: epoch,
        state: "Stable".into(),
        subscribed_topics: vec![SubscribedTopic {
            name: "orders".into(),
            topic_id: "2a1d0c36-7a55-4d3a-9d5c-36f1c4a0e001".into(),
            partitions: 4,
        }],
        upserted,
        removed: removed.iter().map(|id| id.to_string()).collect(),
    }
}

async fn consumer_groups_save_only_from_the_version_they_read(store: Arc<dyn MetadataStore>) {
    assert_eq!(store.load_consumer_group("g1").await.unwrap(), None);
    assert!(store.list_consumer_groups().await.unwrap().is_empty());

    // Created once; a second creation finds it there.
    let first = consumer_save(
        None,
        1,
        vec![
            consumer_member("m-b", 1, &[2, 3]),
            consumer_member("m-a", 1, &[0, 1]),
        ],
        &[],
    );
    assert_eq!(store.save_consumer_group(&first).await.unwrap(), Some(1));
    assert_eq!(store.save_consumer_group(&first).await.unwrap(), None);
    let loaded = store.load_consumer_group("g1").await.unwrap().unwrap();
    assert_eq!((loaded.version, loaded.group_epoch), (1, 1));
    assert_eq!(loaded.subscribed_topics, first.subscribed_topics);
    let ids: Vec<&str> = loaded
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert_eq!(ids, ["m-a", "m-b"], "members come back ordered by id");
    assert_eq!(loaded.members[0], consumer_member("m-a", 1, &[0, 1]));

    // A change from version 1 is saved; another from version 1 is stale
    // and saves nothing, members included.
    let second = consumer_save(
        Some(1),
        2,
        vec![
            consumer_member("m-static", 2, &[3]),
            consumer_member("m-a", 2, &[0, 1, 2]),
        ],
        &["m-b"],
    );
    assert_eq!(store.save_consumer_group(&second).await.unwrap(), Some(2));
    let stale = consumer_save(Some(1), 9, vec![consumer_member("m-z", 9, &[0])], &["m-a"]);
    assert_eq!(store.save_consumer_group(&stale).await.unwrap(), None);
    let loaded = store.load_consumer_group("g1").await.unwrap().unwrap();
    assert_eq!((loaded.version, loaded.group_epoch), (2, 2));
    assert_eq!(store.consumer_group_version("g1").await.unwrap(), Some(2));
    assert_eq!(store.consumer_group_version("nobody").await.unwrap(), None);
    let members: Vec<(&str, i32)> = loaded
        .members
        .iter()
        .map(|m| (m.member_id.as_str(), m.member_epoch))
        .collect();
    assert_eq!(members, [("m-a", 2), ("m-static", 2)]);
    assert_eq!(loaded.members[1].instance_id.as_deref(), Some("instance-1"));
    let listed = store.list_consumer_groups().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].group_id.as_str(),
            listed[0].state.as_str(),
            listed[0].members
        ),
        ("g1", "Stable", 2)
    );

    // Of two coordinators saving from the same version, one wins.
    let racers = (0..2).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let member = consumer_member(&format!("m-race-{i}"), 3, &[i]);
            store
                .save_consumer_group(&consumer_save(Some(2), 3, vec![member], &[]))
                .await
                .unwrap()
        })
    });
    let outcomes: Vec<Option<i64>> = futures::future::join_all(racers)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == Some(3)).count(),
        1,
        "exactly one save from version 2 wins: {outcomes:?}"
    );
    let loaded = store.load_consumer_group("g1").await.unwrap().unwrap();
    assert_eq!(loaded.members.len(), 3);

    // Deleted only from the current version.
    assert!(!store.delete_consumer_group("g1", 2).await.unwrap());
    assert!(store.delete_consumer_group("g1", 3).await.unwrap());
    assert_eq!(store.load_consumer_group("g1").await.unwrap(), None);
    assert!(store.list_consumer_groups().await.unwrap().is_empty());
    // A group deleted can be created again from nothing.
    assert_eq!(store.save_consumer_group(&first).await.unwrap(), Some(1));
    assert_eq!(
        store
            .load_consumer_group("g1")
            .await
            .unwrap()
            .unwrap()
            .members
            .len(),
        2
    );
}
fn leader_move(topic: &str, partition: i32, leader: &str) -> LeaderMove {
    LeaderMove {
        topic: topic.to_string(),
        partition,
        leader: leader.to_string(),
    }
}

fn epoch(epoch: i32, start_offset: i64) -> EpochStart {
    EpochStart {
        epoch,
        start_offset,
    }
}

/// (partition, epoch, start offset) of what `move_leaders` bumped.
async fn bump(store: &dyn MetadataStore, moves: &[LeaderMove]) -> Vec<(i32, i32, i64)> {
    let mut bumped: Vec<(i32, i32, i64)> = store
        .move_leaders(moves)
        .await
        .expect("move leaders")
        .into_iter()
        .map(|b| (b.partition, b.epoch.epoch, b.epoch.start_offset))
        .collect();
    bumped.sort();
    bumped
}

async fn leader_epochs_follow_their_leader(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("t", 2))
        .await
        .expect("create");
    one_record_flushes(store.as_ref(), "t", 0, 3).await;
    let at_start = store.get_partition("t", 0).await.expect("partition");
    assert_eq!(at_start.leader_epoch, 0, "a new partition is at epoch 0");
    assert!(
        store
            .epoch_history("t", 0)
            .await
            .expect("history")
            .is_empty()
    );
    let v0 = store.leader_epochs_version().await.expect("version");

    // Both partitions get their first recorded leader: each epoch starts at
    // the partition's high watermark.
    assert_eq!(
        bump(
            store.as_ref(),
            &[leader_move("t", 0, "a"), leader_move("t", 1, "a")]
        )
        .await,
        [(0, 1, 3), (1, 1, 0)]
    );
    let v1 = store.leader_epochs_version().await.expect("version");
    assert!(v1 > v0, "a bump moves the version: {v0} -> {v1}");

    // Another agent noticing the same change bumps nothing.
    assert!(
        bump(store.as_ref(), &[leader_move("t", 0, "a")])
            .await
            .is_empty()
    );
    assert_eq!(store.leader_epochs_version().await.expect("version"), v1);
    // Nor does a partition that does not exist.
    assert!(
        bump(
            store.as_ref(),
            &[leader_move("t", 7, "b"), leader_move("gone", 0, "b")]
        )
        .await
        .is_empty()
    );

    one_record_flushes(store.as_ref(), "t", 3, 2).await;
    assert_eq!(
        bump(store.as_ref(), &[leader_move("t", 0, "b")]).await,
        [(0, 2, 5)]
    );
    assert_eq!(
        store.epoch_history("t", 0).await.expect("history"),
        [epoch(1, 3), epoch(2, 5)]
    );
    let partition = store.get_partition("t", 0).await.expect("partition");
    assert_eq!(
        (partition.leader_epoch, partition.high_watermark),
        (2, 5),
        "the epoch is read with the high watermark"
    );
    let described = store.describe_topic("t").await.expect("describe");
    assert_eq!(
        described
            .partitions
            .iter()
            .map(|p| p.leader_epoch)
            .collect::<Vec<_>>(),
        [2, 1]
    );
    let table = store.leader_epochs().await.expect("epochs");
    assert!(table.version > v1);
    assert_eq!(
        table
            .epochs
            .iter()
            .map(|e| (
                e.topic.as_str(),
                e.partition,
                e.leader_epoch,
                e.leader.as_deref()
            ))
            .collect::<Vec<_>>(),
        [("t", 0, 2, Some("b")), ("t", 1, 1, Some("a"))]
    );

    // Deleting a topic moves the version, so agents drop its epochs.
    let before_delete = table.version;
    store.delete_topic("t").await.expect("delete");
    assert!(store.leader_epochs_version().await.expect("version") > before_delete);
    assert!(
        store
            .leader_epochs()
            .await
            .expect("epochs")
            .epochs
            .is_empty()
    );
    store
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("create again");
    assert_eq!(
        store
            .get_partition("t", 0)
            .await
            .expect("partition")
            .leader_epoch,
        0,
        "a topic created again starts over"
    );
    assert!(
        store
            .epoch_history("t", 0)
            .await
            .expect("history")
            .is_empty()
    );
}

async fn leader_epochs_forget_empty_and_truncated_epochs(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("create");
    one_record_flushes(store.as_ref(), "t", 0, 3).await;
    bump(store.as_ref(), &[leader_move("t", 0, "a")]).await;
    one_record_flushes(store.as_ref(), "t", 3, 2).await;
    bump(store.as_ref(), &[leader_move("t", 0, "b")]).await;
    // Epoch 2 holds nothing when epoch 3 starts: it is replaced.
    assert_eq!(
        bump(store.as_ref(), &[leader_move("t", 0, "a")]).await,
        [(0, 3, 5)]
    );
    assert_eq!(
        store.epoch_history("t", 0).await.expect("history"),
        [epoch(1, 3), epoch(3, 5)]
    );
    one_record_flushes(store.as_ref(), "t", 5, 2).await;
    bump(store.as_ref(), &[leader_move("t", 0, "b")]).await;
    assert_eq!(
        store.epoch_history("t", 0).await.expect("history"),
        [epoch(1, 3), epoch(3, 5), epoch(4, 7)]
    );
    // Once the log starts at 6, epoch 1 holds nothing readable while
    // epoch 3 still holds offset 6; epoch 4 never held a record.
    store.truncate_partition("t", 0, 6).await.expect("truncate");
    bump(store.as_ref(), &[leader_move("t", 0, "a")]).await;
    assert_eq!(
        store.epoch_history("t", 0).await.expect("history"),
        [epoch(3, 5), epoch(5, 7)]
    );
}

async fn commits_carry_the_leader_epoch_they_wrote_in(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("t", 1))
        .await
        .expect("create");
    let mut notices = store.commit_notices();
    let first = commit_one(store.as_ref(), segment("t", 0, 2, 0)).await;
    assert!(
        matches!(
            first,
            SegmentOutcome::Committed {
                leader_epoch: 0,
                ..
            }
        ),
        "{first:?}"
    );
    assert_eq!(next_notice(&mut notices, 2).await.leader_epoch, Some(0));
    bump(store.as_ref(), &[leader_move("t", 0, "a")]).await;
    let second = commit_one(store.as_ref(), segment("t", 0, 1, 0)).await;
    assert_eq!(
        second,
        SegmentOutcome::Committed {
            base_offset: 2,
            end_offset: 2,
            leader_epoch: 1
        }
    );
    assert_eq!(next_notice(&mut notices, 3).await.leader_epoch, Some(1));

    // Flushes and bumps racing: every record's commit epoch is the epoch
    // the history places its offset in, so the start offsets divide the
    // log exactly as the commits did.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut committed = Vec::new();
            for _ in 0..40 {
                if let SegmentOutcome::Committed {
                    base_offset,
                    leader_epoch,
                    ..
                } = commit_one(store.as_ref(), segment("t", 0, 1, 0)).await
                {
                    committed.push((base_offset, leader_epoch));
                }
            }
            committed
        })
    };
    for round in 0..20 {
        let leader = if round % 2 == 0 { "b" } else { "a" };
        bump(store.as_ref(), &[leader_move("t", 0, leader)]).await;
        tokio::task::yield_now().await;
    }
    let committed = writer.await.expect("writer");
    assert_eq!(committed.len(), 40);
    let history = store.epoch_history("t", 0).await.expect("history");
    let epoch_at = |offset: i64| {
        history
            .iter()
            .rev()
            .find(|e| e.start_offset <= offset)
            .map_or(0, |e| e.epoch)
    };
    for (offset, epoch) in committed {
        assert_eq!(epoch_at(offset), epoch, "offset {offset} in {history:?}");
    }
    let partition = store.get_partition("t", 0).await.expect("partition");
    assert_eq!(partition.leader_epoch, 21);
    assert_eq!(
        history.last().map(|e| e.epoch),
        Some(21),
        "the current epoch is always in the history"
    );
}

async fn concurrent_moves_to_one_leader_bump_once(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("t", 8))
        .await
        .expect("create");
    let moves: Vec<LeaderMove> = (0..8).map(|p| leader_move("t", p, "a")).collect();
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            // Each agent lists the partitions in its own order.
            let mut moves = moves.clone();
            moves.rotate_left(i * 2);
            tokio::spawn(async move { store.move_leaders(&moves).await.expect("move") })
        })
        .collect();
    let mut bumped = 0;
    for task in tasks {
        bumped += task.await.expect("task").len();
    }
    assert_eq!(bumped, 8, "each partition bumped by one agent only");
    let table = store.leader_epochs().await.expect("epochs");
    assert!(
        table
            .epochs
            .iter()
            .all(|e| e.leader_epoch == 1 && e.leader.as_deref() == Some("a"))
    );
    assert_eq!(table.epochs.len(), 8);
}

async fn offsets_keep_their_leader_epoch(store: Arc<dyn MetadataStore>) {
    store
        .create_topic(NewTopic::new("t", 2))
        .await
        .expect("create");
    let commit = |partition, leader_epoch| OffsetCommit {
        topic: "t".into(),
        partition,
        offset: 10,
        metadata: None,
        leader_epoch,
    };
    store
        .commit_offsets("g", &[commit(0, 4), commit(1, -1)])
        .await
        .expect("commit");
    let epochs: Vec<(i32, i32)> = store
        .fetch_offsets("g")
        .await
        .expect("fetch")
        .iter()
        .map(|o| (o.partition, o.leader_epoch))
        .collect();
    assert_eq!(epochs, [(0, 4), (1, -1)]);

    // Offsets committed in a transaction keep theirs too.
    let producer = init_txn(store.as_ref(), "tx").await;
    store
        .add_transaction_group("tx", producer.0, producer.1, "g")
        .await
        .unwrap()
        .unwrap();
    store
        .stage_transaction_offsets("tx", producer.0, producer.1, "g", &[commit(1, 9)])
        .await
        .unwrap()
        .unwrap();
    let (decision, _) = store
        .end_transaction("tx", producer.0, producer.1, true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decision, EndDecision::Prepared);
    assert!(
        store
            .complete_transaction("tx", producer.0, producer.1)
            .await
            .expect("complete")
    );
    let epochs: Vec<(i32, i32)> = store
        .fetch_offsets("g")
        .await
        .expect("fetch")
        .iter()
        .map(|o| (o.partition, o.leader_epoch))
        .collect();
    assert_eq!(epochs, [(0, 4), (1, 9)]);
}
