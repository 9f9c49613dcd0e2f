//! The storage engine end to end: produce, flush, commit, read back.

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{Backend, at_offset, numbered_record, test_config};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use streamhouse_core::clock::ManualClock;
use streamhouse_core::{Record, TopicConfig};
use streamhouse_metadata::NewTopic;
use streamhouse_storage::segment::batch::read_toc;
use streamhouse_storage::{
    ConsumerConfig, OffsetReset, ProducerRecord, StorageConfig, StorageEngine, StorageError,
};

on_every_backend!(
    produce_and_consume_round_trip,
    one_object_per_flush,
    tailing_reads_come_from_the_cache,
    cold_reads_fetch_only_the_segment,
    read_boundaries,
    data_survives_restart,
    invalid_writes_are_rejected,
    compacted_topics_refuse_records_without_keys,
    topic_configs_are_checked_as_a_whole,
    shutdown_flushes_buffered_appends,
    consumer_group_resumes_from_committed_offsets,
    corrupt_object_gives_typed_error,
    deleted_topic_is_gone,
    offsets_by_timestamp,
    times_come_from_the_engine_clock,
);

fn engine(backend: &Backend, config: StorageConfig) -> StorageEngine {
    StorageEngine::start(backend.metadata.clone(), backend.storage.clone(), config)
}

async fn produce_and_consume_round_trip(backend: Backend) {
    let engine = engine(&backend, test_config());
    engine
        .create_topic(NewTopic::new("events", 4))
        .await
        .expect("create topic");
    let producer = Arc::new(engine.producer());
    let mut tasks = Vec::new();
    for partition in 0..4 {
        let producer = producer.clone();
        tasks.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            for n in 0..250 {
                let record = numbered_record(partition, n);
                let result = producer
                    .send_batch("events", partition, vec![record.clone()])
                    .await
                    .expect("append");
                sent.push(at_offset(&record, result.base_offset));
            }
            (partition, sent)
        }));
    }
    let mut sent: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
    for task in tasks {
        let (partition, records) = task.await.expect("producer task");
        sent.insert(partition, records);
    }

    for (partition, records) in &sent {
        let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
        assert_eq!(
            offsets,
            (0..250).collect::<Vec<_>>(),
            "{}: partition {partition}: one producer's sends get contiguous offsets in order",
            backend.name
        );
    }

    let mut consumer = engine.consumer(ConsumerConfig::default());
    consumer.subscribe("events").await.expect("subscribe");
    let mut received: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
    loop {
        let batch = consumer.poll().await.expect("poll");
        if batch.is_empty() {
            break;
        }
        for consumed in batch {
            received
                .entry(consumed.partition)
                .or_default()
                .push(consumed.record);
        }
    }
    assert_eq!(
        received, sent,
        "{}: every record read back exactly",
        backend.name
    );
    engine.shutdown().await;
}

async fn one_object_per_flush(backend: Backend) {
    // No timed flush during the test: the sixteen appends are all buffered
    // when shutdown flushes them, however slowly the tasks run.
    let config = StorageConfig {
        flush: streamhouse_storage::FlushConfig {
            flush_interval: Duration::from_secs(3600),
            ..test_config().flush
        },
        ..test_config()
    };
    let engine = engine(&backend, config);
    engine
        .create_topic(NewTopic::new("wide", 16))
        .await
        .expect("create topic");
    let puts_before = engine.object_store_stats().puts;
    let mut tasks = Vec::new();
    for partition in 0..16 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            engine
                .append("wide", partition, vec![numbered_record(partition, 1)])
                .await
                .expect("append")
        }));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while engine.buffered_records() < 16 {
        assert!(
            std::time::Instant::now() < deadline,
            "appends never buffered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    engine.shutdown().await;
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(
        engine.object_store_stats().puts - puts_before,
        1,
        "{}: sixteen partitions, one flush, one PUT",
        backend.name
    );
    let mut keys = Vec::new();
    for partition in 0..16 {
        let rows = backend
            .metadata
            .list_segments("wide", partition, 0, 10)
            .await
            .expect("segments");
        assert_eq!(rows.len(), 1);
        keys.push(rows[0].key.clone());
    }
    keys.dedup();
    assert_eq!(keys.len(), 1, "all partitions' segments share one object");
    assert!(keys[0].contains("batches/"), "{}", keys[0]);

    // The object's table of contents lists every partition's byte range.
    let object = backend
        .storage
        .store()
        .get(&Path::parse(&keys[0]).expect("path"))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    let toc = read_toc(&object).expect("table of contents");
    assert_eq!(toc.len(), 16);
    for entry in &toc {
        let row = &backend
            .metadata
            .list_segments("wide", entry.partition, 0, 1)
            .await
            .expect("segments")[0];
        assert_eq!(row.byte_offset as u64, entry.byte_offset);
        assert_eq!(row.byte_length as u64, entry.byte_length);
    }
    engine.shutdown().await;
}

async fn tailing_reads_come_from_the_cache(backend: Backend) {
    let engine = engine(&backend, test_config());
    engine
        .create_topic(NewTopic::new("tail", 2))
        .await
        .expect("create topic");
    let mut position = 0;
    for n in 0..20 {
        engine
            .append("tail", 0, vec![numbered_record(0, n)])
            .await
            .expect("append");
        let gets_before = engine.object_store_stats().gets;
        let read = engine
            .read("tail", 0, position, 100, 1 << 20)
            .await
            .expect("read");
        assert_eq!(read.records.len(), 1);
        assert_eq!(read.high_watermark, n as i64 + 1);
        position = read.high_watermark;
        assert_eq!(
            engine.object_store_stats().gets,
            gets_before,
            "{}: a tailing read never touches object storage",
            backend.name
        );
    }
    assert!(engine.cache_stats().hits >= 20);
    engine.shutdown().await;
}

async fn cold_reads_fetch_only_the_segment(backend: Backend) {
    let writer = engine(&backend, test_config());
    writer
        .create_topic(NewTopic::new("cold", 3))
        .await
        .expect("create topic");
    let mut tasks = Vec::new();
    for partition in 0..3 {
        let writer = writer.clone();
        tasks.push(tokio::spawn(async move {
            let records = (0..100).map(|n| numbered_record(partition, n)).collect();
            writer
                .append("cold", partition, records)
                .await
                .expect("append")
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    writer.shutdown().await;

    // A fresh engine has an empty cache, like another agent or a restart.
    let reader = engine(&backend, test_config());
    let rows = backend
        .metadata
        .list_segments("cold", 1, 0, 10)
        .await
        .expect("segments");
    let expected_bytes: i64 = rows.iter().map(|r| r.byte_length).sum();
    let before = reader.object_store_stats();
    let read = reader
        .read("cold", 1, 0, 1000, 64 << 20)
        .await
        .expect("read");
    assert_eq!(read.records.len(), 100);
    let after = reader.object_store_stats();
    assert_eq!(after.gets - before.gets, rows.len() as u64);
    assert_eq!(
        (after.bytes_read - before.bytes_read) as i64,
        expected_bytes,
        "{}: a ranged GET of just the partition's segment, not the whole object",
        backend.name
    );
    for (n, record) in read.records.iter().enumerate() {
        assert_eq!(record, &at_offset(&numbered_record(1, n as u64), n as i64));
    }
    reader.shutdown().await;
}

async fn read_boundaries(backend: Backend) {
    let engine = engine(&backend, test_config());
    engine
        .create_topic(NewTopic::new("bounds", 1))
        .await
        .expect("create topic");
    let empty = engine.read("bounds", 0, 0, 10, 1024).await.expect("empty");
    assert!(empty.records.is_empty());
    assert_eq!(empty.high_watermark, 0);

    let records: Vec<Record> = (0..10)
        .map(|n| Record::new(n, Bytes::from(vec![b'v'; 100])))
        .collect();
    engine.append("bounds", 0, records).await.expect("append");
    engine
        .append(
            "bounds",
            0,
            vec![Record::new(10, Bytes::from(vec![b'b'; 5000]))],
        )
        .await
        .expect("append big");

    let at_hw = engine.read("bounds", 0, 11, 10, 1024).await.expect("at hw");
    assert!(
        at_hw.records.is_empty(),
        "reading at the high watermark is empty"
    );
    assert_eq!(at_hw.high_watermark, 11);
    for offset in [12, 1000, -1] {
        assert!(
            matches!(
                engine.read("bounds", 0, offset, 10, 1024).await,
                Err(StorageError::OffsetOutOfRange {
                    log_start_offset: 0,
                    high_watermark: 11,
                    ..
                })
            ),
            "{}: offset {offset} is out of range",
            backend.name
        );
    }
    let limited = engine.read("bounds", 0, 2, 3, 1 << 20).await.expect("read");
    assert_eq!(
        limited.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    let by_bytes = engine.read("bounds", 0, 0, 100, 300).await.expect("read");
    assert_eq!(by_bytes.records.len(), 2, "two 116-byte records fit in 300");
    let across = engine
        .read("bounds", 0, 8, 100, 1 << 20)
        .await
        .expect("read");
    assert_eq!(
        across.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [8, 9, 10],
        "a read continues into the next segment"
    );
    let oversized = engine.read("bounds", 0, 10, 100, 10).await.expect("read");
    assert_eq!(
        oversized.records.len(),
        1,
        "a record over max_bytes is still returned when it is the first"
    );
    assert!(matches!(
        engine.read("bounds", 3, 0, 10, 1024).await,
        Err(StorageError::UnknownPartition { partition: 3, .. })
    ));
    engine.shutdown().await;
}

async fn data_survives_restart(backend: Backend) {
    let first = engine(&backend, test_config());
    first
        .create_topic(NewTopic::new("durable", 1))
        .await
        .expect("create topic");
    let records: Vec<Record> = (0..50).map(|n| numbered_record(0, n)).collect();
    first
        .append("durable", 0, records.clone())
        .await
        .expect("append");
    first.shutdown().await;
    drop(first);

    let second = engine(&backend, test_config());
    let read = second
        .read("durable", 0, 0, 100, 1 << 20)
        .await
        .expect("read");
    let expected: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| at_offset(r, i as i64))
        .collect();
    assert_eq!(read.records, expected);
    let more = second
        .append("durable", 0, vec![numbered_record(0, 99)])
        .await
        .expect("append after restart");
    assert_eq!(more.base_offset, 50, "offsets continue after a restart");
    second.shutdown().await;
}

async fn invalid_writes_are_rejected(backend: Backend) {
    let engine = engine(&backend, test_config());
    let config = TopicConfig::from_pairs([("max.message.bytes", "1000")]).expect("config");
    engine
        .create_topic(NewTopic::new("small", 2).with_config(config))
        .await
        .expect("create topic");
    let producer = engine.producer();
    assert!(matches!(
        producer.send(ProducerRecord::new("missing", "v")).await,
        Err(StorageError::UnknownTopic { .. })
    ));
    assert!(matches!(
        producer
            .send(ProducerRecord::new("small", "v").partition(2))
            .await,
        Err(StorageError::UnknownPartition { partition: 2, .. })
    ));
    assert!(matches!(
        producer
            .send(ProducerRecord::new("small", vec![0u8; 1001]))
            .await,
        Err(StorageError::RecordTooLarge {
            size: 1001,
            max: 1000,
            ..
        })
    ));
    assert!(matches!(
        engine.append("small", 0, Vec::new()).await,
        Err(StorageError::InvalidAppend { .. })
    ));
    let ok = producer
        .send(ProducerRecord::new("small", vec![0u8; 999]).key("k"))
        .await
        .expect("a record at the limit is accepted");
    assert_eq!(ok.offset, 0);
    let description = backend
        .metadata
        .describe_topic("small")
        .await
        .expect("describe");
    let total: i64 = description
        .partitions
        .iter()
        .map(|p| p.high_watermark)
        .sum();
    assert_eq!(total, 1, "rejected records consumed no offsets");
    engine.shutdown().await;
}

/// A topic whose cleanup.policy compacts refuses an append holding a
/// record without a key, whole, through every door (the in-process
/// producer, a plain append, a Kafka producer's batch); an empty key is a
/// key, and a topic switched to `delete` takes keyless records again.
async fn compacted_topics_refuse_records_without_keys(backend: Backend) {
    let engine = engine(&backend, test_config());
    let config = TopicConfig::from_pairs([("cleanup.policy", "compact")]).expect("config");
    engine
        .create_topic(NewTopic::new("latest", 1).with_config(config))
        .await
        .expect("create topic");
    let producer = engine.producer();
    match producer
        .send(ProducerRecord::new("latest", "v").partition(0))
        .await
    {
        Err(error @ StorageError::KeylessRecord { .. }) => assert_eq!(
            error.to_string(),
            "Compacted topic cannot accept message without key in topic partition latest-0."
        ),
        other => panic!("expected KeylessRecord, got {other:?}"),
    }
    let keyed = |n: u8| Record::new(1, Bytes::from(vec![n])).with_key(Bytes::from(vec![n]));
    let keyless = |n: u8| Record::new(1, Bytes::from(vec![n]));
    match engine
        .append(
            "latest",
            0,
            vec![keyed(0), keyless(1), keyed(2), keyless(3)],
        )
        .await
    {
        Err(StorageError::KeylessRecord {
            topic,
            partition,
            indexes,
        }) => assert_eq!(
            (topic.as_str(), partition, indexes),
            ("latest", 0, vec![1, 3])
        ),
        other => panic!("expected KeylessRecord, got {other:?}"),
    }
    assert!(matches!(
        engine
            .start_producer_append("latest", 0, vec![keyless(4)], None, Duration::from_secs(1))
            .await,
        Err(StorageError::KeylessRecord { .. })
    ));
    let info = engine.partition_info("latest", 0).await.expect("info");
    assert_eq!(
        info.high_watermark, 0,
        "nothing of a refused append is stored"
    );

    let empty_key = Record::new(1, Bytes::from_static(b"e")).with_key(Bytes::new());
    let stored = engine
        .append("latest", 0, vec![keyed(5), empty_key])
        .await
        .expect("keyed records are taken");
    assert_eq!(stored.base_offset, 0);

    let topic = engine.load_topic("latest").await.expect("topic");
    let mut config = topic.config.clone();
    config
        .set("cleanup.policy".into(), "delete".into())
        .expect("policy");
    engine
        .update_topic_config("latest", config)
        .await
        .expect("update");
    let sent = producer
        .send(ProducerRecord::new("latest", "v").partition(0))
        .await
        .expect("a delete topic takes keyless records");
    assert_eq!(sent.offset, 2);
    let read = engine
        .read("latest", 0, 0, 10, 1 << 20)
        .await
        .expect("read");
    assert_eq!(
        read.records
            .iter()
            .map(|r| r.key.clone())
            .collect::<Vec<_>>(),
        [Some(Bytes::from(vec![5])), Some(Bytes::new()), None]
    );
    engine.shutdown().await;
}

/// Configs set one at a time are checked together when a topic is
/// created or its config replaced: min.compaction.lag.ms above
/// max.compaction.lag.ms is refused and changes nothing.
async fn topic_configs_are_checked_as_a_whole(backend: Backend) {
    let engine = engine(&backend, test_config());
    let mut inverted = TopicConfig::default();
    inverted
        .set("min.compaction.lag.ms".into(), "10".into())
        .expect("min");
    inverted
        .set("max.compaction.lag.ms".into(), "5".into())
        .expect("max");
    match engine
        .create_topic(NewTopic::new("lagged", 1).with_config(inverted.clone()))
        .await
    {
        Err(StorageError::Validation(error)) => {
            assert!(
                error.to_string().contains("min.compaction.lag.ms"),
                "{error}"
            )
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert!(matches!(
        engine.load_topic("lagged").await,
        Err(StorageError::UnknownTopic { .. })
    ));
    engine
        .create_topic(NewTopic::new("lagged", 1))
        .await
        .expect("create topic");
    assert!(matches!(
        engine.update_topic_config("lagged", inverted).await,
        Err(StorageError::Validation(_))
    ));
    let topic = engine.load_topic("lagged").await.expect("topic");
    assert!(topic.config.overrides().is_empty(), "{:?}", topic.config);
    engine.shutdown().await;
}

async fn shutdown_flushes_buffered_appends(backend: Backend) {
    let config = StorageConfig {
        flush: streamhouse_storage::FlushConfig {
            flush_interval: Duration::from_secs(3600),
            ..test_config().flush
        },
        ..test_config()
    };
    let engine = engine(&backend, config);
    engine
        .create_topic(NewTopic::new("closing", 1))
        .await
        .expect("create topic");
    let mut pending = Vec::new();
    for n in 0..10 {
        let engine = engine.clone();
        pending.push(tokio::spawn(async move {
            engine
                .append("closing", 0, vec![numbered_record(0, n)])
                .await
        }));
    }
    while engine.buffered_records() < 10 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    engine.shutdown().await;
    let mut offsets = Vec::new();
    for task in pending {
        offsets.push(
            task.await
                .expect("task")
                .expect("acknowledged at shutdown")
                .base_offset,
        );
    }
    offsets.sort();
    assert_eq!(offsets, (0..10).collect::<Vec<_>>());
    assert!(matches!(
        engine
            .append("closing", 0, vec![numbered_record(0, 11)])
            .await,
        Err(StorageError::ShuttingDown)
    ));
    let partition = backend
        .metadata
        .get_partition("closing", 0)
        .await
        .expect("partition");
    assert_eq!(partition.high_watermark, 10);
}

async fn consumer_group_resumes_from_committed_offsets(backend: Backend) {
    let engine = engine(&backend, test_config());
    engine
        .create_topic(NewTopic::new("grouped", 2))
        .await
        .expect("create topic");
    for partition in 0..2 {
        let records = (0..30).map(|n| numbered_record(partition, n)).collect();
        engine
            .append("grouped", partition, records)
            .await
            .expect("append");
    }
    let config = ConsumerConfig {
        max_poll_records: 25,
        ..ConsumerConfig::default().group("readers")
    };
    let mut first = engine.consumer(config.clone());
    first.subscribe("grouped").await.expect("subscribe");
    let batch = first.poll().await.expect("poll");
    assert_eq!(batch.len(), 25);
    first.commit().await.expect("commit");
    let consumed_first = batch.len();
    drop(first);

    let mut second = engine.consumer(config.clone());
    second.subscribe("grouped").await.expect("subscribe");
    let mut rest = 0;
    loop {
        let batch = second.poll().await.expect("poll");
        if batch.is_empty() {
            break;
        }
        rest += batch.len();
    }
    assert_eq!(
        consumed_first + rest,
        60,
        "{}: the second consumer resumes exactly where the first committed",
        backend.name
    );

    let mut latest = engine.consumer(ConsumerConfig::default().reset(OffsetReset::Latest));
    latest.subscribe("grouped").await.expect("subscribe");
    assert!(latest.poll().await.expect("poll").is_empty());
    assert_eq!(latest.position("grouped", 0), Some(30));
    assert!(matches!(
        latest.commit().await,
        Err(StorageError::NoConsumerGroup)
    ));
    engine.shutdown().await;
}

async fn corrupt_object_gives_typed_error(backend: Backend) {
    let writer = engine(&backend, test_config());
    writer
        .create_topic(NewTopic::new("damaged", 1))
        .await
        .expect("create topic");
    writer
        .append(
            "damaged",
            0,
            (0..20).map(|n| numbered_record(0, n)).collect(),
        )
        .await
        .expect("append");
    writer.shutdown().await;
    let row = &backend
        .metadata
        .list_segments("damaged", 0, 0, 1)
        .await
        .expect("segments")[0];
    let path = Path::parse(&row.key).expect("path");
    let store = backend.storage.store();
    let mut object = store
        .get(&path)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes")
        .to_vec();
    let middle = row.byte_offset as usize + row.byte_length as usize / 2;
    object[middle] ^= 0xff;
    store
        .put(&path, PutPayload::from(object))
        .await
        .expect("overwrite");

    let reader = engine(&backend, test_config());
    let error = reader
        .read("damaged", 0, 0, 100, 1 << 20)
        .await
        .expect_err("a damaged segment must not be read");
    assert!(
        matches!(error, StorageError::Segment(_)),
        "{}: typed segment error, got {error:?}",
        backend.name
    );
    reader.shutdown().await;
}

async fn deleted_topic_is_gone(backend: Backend) {
    let engine = engine(&backend, test_config());
    engine
        .create_topic(NewTopic::new("temp", 1))
        .await
        .expect("create topic");
    engine
        .append("temp", 0, vec![numbered_record(0, 0)])
        .await
        .expect("append");
    engine.delete_topic("temp").await.expect("delete");
    assert!(matches!(
        engine.read("temp", 0, 0, 10, 1024).await,
        Err(StorageError::UnknownPartition { .. })
    ));
    assert!(matches!(
        engine.append("temp", 0, vec![numbered_record(0, 1)]).await,
        Err(StorageError::UnknownTopic { .. })
    ));
    engine
        .create_topic(NewTopic::new("temp", 1))
        .await
        .expect("recreate");
    let appended = engine
        .append("temp", 0, vec![numbered_record(0, 2)])
        .await
        .expect("append to the new topic");
    assert_eq!(appended.base_offset, 0);
    let read = engine.read("temp", 0, 0, 10, 1024).await.expect("read");
    assert_eq!(read.records, vec![at_offset(&numbered_record(0, 2), 0)]);
    engine.shutdown().await;
}

async fn offsets_by_timestamp(backend: Backend) {
    let engine = engine(&backend, test_config());
    engine
        .create_topic(NewTopic::new("timed", 1))
        .await
        .expect("create topic");
    // Two flushes; timestamps are not monotonic within the first.
    let first = [5_000, 3_000, 7_000, 6_000];
    let second = [9_000, 8_000];
    for batch in [&first[..], &second[..]] {
        let records = batch
            .iter()
            .map(|&ts| Record::new(ts, Bytes::from_static(b"v")))
            .collect();
        engine.append("timed", 0, records).await.expect("append");
    }
    let reader = engine.reader("timed", 0);
    let lookup = |ts| {
        let reader = reader.clone();
        async move { reader.offset_for_timestamp(ts).await.expect("lookup") }
    };
    assert_eq!(lookup(0).await, Some((0, 5_000)));
    assert_eq!(lookup(5_500).await, Some((2, 7_000)), "{}", backend.name);
    assert_eq!(lookup(7_000).await, Some((2, 7_000)));
    assert_eq!(lookup(7_001).await, Some((4, 9_000)));
    assert_eq!(lookup(8_500).await, Some((4, 9_000)));
    assert_eq!(lookup(9_001).await, None);
    engine.shutdown().await;
}

/// Default producer timestamps, LogAppendTime stamps and segment creation
/// times are all the engine clock's time.
async fn times_come_from_the_engine_clock(backend: Backend) {
    const START: i64 = 1_700_000_000_000;
    let clock = Arc::new(ManualClock::starting_at(START));
    let engine = StorageEngine::start_with_clock(
        backend.metadata.clone(),
        backend.storage.clone(),
        test_config(),
        clock.clone(),
    );
    assert_eq!(engine.clock().now_ms(), START);
    engine
        .create_topic(NewTopic::new("created", 1))
        .await
        .expect("create topic");
    let stamped =
        TopicConfig::from_pairs([("message.timestamp.type", "LogAppendTime")]).expect("config");
    engine
        .create_topic(NewTopic::new("appended", 1).with_config(stamped))
        .await
        .expect("create topic");

    let sent = engine
        .producer()
        .send(ProducerRecord::new("created", "no timestamp"))
        .await
        .expect("send");
    assert_eq!(sent.timestamp, START);
    let kept = engine
        .producer()
        .send(ProducerRecord::new("created", "own timestamp").timestamp(42))
        .await
        .expect("send");
    assert_eq!(kept.timestamp, 42);

    clock.advance(Duration::from_secs(90));
    engine
        .append(
            "appended",
            0,
            vec![Record::new(42, Bytes::from_static(b"v"))],
        )
        .await
        .expect("append");

    let created = engine
        .read("created", 0, 0, 10, 1 << 20)
        .await
        .expect("read");
    assert_eq!(
        created
            .records
            .iter()
            .map(|r| r.timestamp)
            .collect::<Vec<_>>(),
        [START, 42]
    );
    let appended = engine
        .read("appended", 0, 0, 10, 1 << 20)
        .await
        .expect("read");
    assert_eq!(
        appended
            .records
            .iter()
            .map(|r| r.timestamp)
            .collect::<Vec<_>>(),
        [START + 90_000],
        "LogAppendTime stamps the clock's time"
    );
    let segments = backend
        .metadata
        .list_segments("appended", 0, 0, 10)
        .await
        .expect("list");
    assert_eq!(
        segments.iter().map(|s| s.created_at).collect::<Vec<_>>(),
        [START + 90_000]
    );
    engine.shutdown().await;
}
