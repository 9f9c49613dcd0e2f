//! Background jobs end to end: compaction, retention, garbage collection
//! and record deletion, checked after every job by the consistency checker,
//! on the embedded default and on PostgreSQL + the S3 server.

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Backend, at_offset, numbered_record, test_config};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use streamhouse_core::clock::{Clock, ManualClock, SystemClock};
use streamhouse_core::{Record, TopicConfig};
use streamhouse_metadata::NewTopic;
use streamhouse_storage::jobs::{CompactionConfig, is_compacted_key};
use streamhouse_storage::{
    FlushConfig, ProducerRecord, StorageConfig, StorageEngine, StorageError,
};

on_every_backend!(
    compaction_shrinks_ten_thousand_flushes,
    compacted_objects_hold_segments_read_one_at_a_time,
    retention_by_size_and_time,
    retention_follows_the_cleanup_policy,
    garbage_collection_waits_for_the_grace_period,
    retention_by_time_follows_the_engine_clock,
    garbage_collection_grace_follows_the_engine_clock,
    delete_records_and_delete_topic_free_storage,
);

const PARTITIONS: i32 = 16;

/// Flushes as soon as something is buffered, so each round of appends is
/// its own flush.
fn eager_config() -> StorageConfig {
    StorageConfig {
        flush: FlushConfig {
            flush_interval: Duration::from_millis(1),
            upload_backoff: Duration::from_millis(10),
            ..FlushConfig::default()
        },
        ..test_config()
    }
}

fn compact_everything() -> CompactionConfig {
    CompactionConfig {
        span: Duration::ZERO,
        ..CompactionConfig::default()
    }
}

fn start(backend: &Backend, config: StorageConfig) -> StorageEngine {
    StorageEngine::start(backend.metadata.clone(), backend.storage.clone(), config)
}

/// Rounds of appends, one record to every partition each, with a few
/// rounds in flight so that uploads overlap, until the engine has written
/// `flushes` objects. Returns the records as they must read back, per
/// partition.
async fn small_flushes(engine: &StorageEngine, topic: &str, flushes: u64) -> Vec<Vec<Record>> {
    const IN_FLIGHT: usize = 4;
    let mut written: Vec<Vec<Record>> = vec![Vec::new(); PARTITIONS as usize];
    let mut rounds = std::collections::VecDeque::new();
    let mut n = 0;
    while engine.object_store_stats().puts < flushes || !rounds.is_empty() {
        if rounds.len() >= IN_FLIGHT || engine.object_store_stats().puts >= flushes {
            let round: Vec<(i32, Record, streamhouse_storage::PendingAppend)> =
                rounds.pop_front().expect("a round in flight");
            for (partition, record, append) in round {
                let result = append.await.expect("commit");
                written[partition as usize].push(at_offset(&record, result.base_offset));
            }
            continue;
        }
        let mut round = Vec::with_capacity(PARTITIONS as usize);
        for partition in 0..PARTITIONS {
            let record = numbered_record(partition, n);
            let append = engine
                .start_append(topic, partition, vec![record.clone()])
                .await
                .expect("append");
            round.push((partition, record, append));
        }
        rounds.push_back(round);
        n += 1;
    }
    written
}

async fn read_partition(
    engine: &StorageEngine,
    topic: &str,
    partition: i32,
    from: i64,
) -> Vec<Record> {
    let mut records = Vec::new();
    let mut next = from;
    loop {
        let result = engine
            .read(topic, partition, next, 5_000, 8 << 20)
            .await
            .unwrap_or_else(|e| panic!("read {topic}-{partition} at {next}: {e}"));
        let Some(last) = result.records.last() else {
            break;
        };
        next = last.offset + 1;
        records.extend(result.records);
        if next >= result.high_watermark {
            break;
        }
    }
    records
}

async fn assert_consistent(engine: &StorageEngine, after: &str) {
    let report = engine.check_consistency().await.expect("check");
    assert!(
        report.is_ok(),
        "consistency check after {after} failed:\n{}",
        report.problems.join("\n")
    );
}

async fn object_keys(backend: &Backend) -> Vec<String> {
    let prefix = Path::from(backend.storage.prefix());
    let prefix = (!backend.storage.prefix().is_empty()).then_some(&prefix);
    backend
        .storage
        .store()
        .list(prefix)
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .expect("list objects")
}

async fn compaction_shrinks_ten_thousand_flushes(backend: Backend) {
    const FLUSHES: u64 = 10_000;
    let engine = start(&backend, eager_config());
    engine
        .create_topic(NewTopic::new("small", i64::from(PARTITIONS)))
        .await
        .expect("create topic");
    let started = Instant::now();
    let written = small_flushes(&engine, "small", FLUSHES).await;
    let before = backend.metadata.storage_stats().await.expect("stats");
    let objects_before = object_keys(&backend).await.len();
    eprintln!(
        "[{}] {FLUSHES} flushes in {:?}: {} segment rows in {} objects",
        backend.name,
        started.elapsed(),
        before.segment_rows,
        objects_before
    );
    assert!(objects_before as u64 >= FLUSHES, "{objects_before} objects");
    // Flushes hold a segment of most partitions (rounds in flight may
    // split across two flushes).
    assert!(before.segment_rows >= i64::try_from(FLUSHES).unwrap() * i64::from(PARTITIONS) / 2);

    let started = Instant::now();
    let report = engine
        .compact(&compact_everything())
        .await
        .expect("compact");
    eprintln!(
        "[{}] compaction {:?}: {report:?}",
        backend.name,
        started.elapsed()
    );
    assert_eq!(report.conflicts, 0);
    assert_eq!(report.rows_replaced, before.segment_rows as u64);
    assert_consistent(&engine, "compaction").await;

    // Reads through the engine that read nothing yet, and through a new
    // engine with cold caches, give exactly what was written.
    for partition in 0..PARTITIONS {
        assert_eq!(
            read_partition(&engine, "small", partition, 0).await,
            written[partition as usize],
            "partition {partition} after compaction"
        );
    }
    let collected = engine
        .collect_garbage(Duration::ZERO, Duration::ZERO)
        .await
        .expect("gc");
    assert_consistent(&engine, "garbage collection").await;
    let after = backend.metadata.storage_stats().await.expect("stats");
    let objects_after = object_keys(&backend).await;
    eprintln!(
        "[{}] after: {} rows, {} objects ({collected:?})",
        backend.name,
        after.segment_rows,
        objects_after.len()
    );
    assert!(after.segment_rows * 10 <= before.segment_rows);
    assert!(objects_after.len() * 10 <= objects_before);
    assert!(objects_after.iter().all(|key| is_compacted_key(key)));
    assert_eq!(after.tombstones, 0);

    // The engine that cached the old rows still reads correctly after the
    // old objects were deleted; so does a fresh one.
    let fresh = start(&backend, eager_config());
    for partition in 0..PARTITIONS {
        let expected = &written[partition as usize];
        assert_eq!(
            &read_partition(&engine, "small", partition, 0).await,
            expected
        );
        assert_eq!(
            &read_partition(&fresh, "small", partition, 0).await,
            expected
        );
    }
    // Another pass finds nothing left to do.
    let again = engine
        .compact(&compact_everything())
        .await
        .expect("compact");
    assert_eq!(again.runs, 0);
    fresh.shutdown().await;
    engine.shutdown().await;
}

/// A compacted object holds the run as segments of about
/// `segment_bytes` each, one row per segment; a read fetches only the
/// segment holding its offset.
async fn compacted_objects_hold_segments_read_one_at_a_time(backend: Backend) {
    const RECORDS: i64 = 300;
    const SEGMENT_BYTES: i64 = 32 << 10;
    let engine = start(&backend, eager_config());
    engine
        .create_topic(NewTopic::new("pieces", 1))
        .await
        .expect("create");
    let value = bytes::Bytes::from(noise(1000));
    for i in 0..RECORDS {
        let record = Record::new(1_700_000_000_000 + i, value.clone());
        engine
            .append("pieces", 0, vec![record])
            .await
            .expect("append");
    }
    let written = read_partition(&engine, "pieces", 0, 0).await;
    assert_eq!(written.len() as i64, RECORDS);

    let config = CompactionConfig {
        segment_bytes: SEGMENT_BYTES as u64,
        ..compact_everything()
    };
    let report = engine.compact(&config).await.expect("compact");
    assert_eq!(
        (report.runs, report.rows_replaced),
        (1, RECORDS as u64),
        "{report:?}"
    );
    assert_consistent(&engine, "compaction").await;

    let rows = backend
        .metadata
        .list_segments("pieces", 0, 0, 1_000)
        .await
        .expect("list");
    assert_eq!(report.rows_written, rows.len() as u64);
    // ~300 KB of records in segments of ~32 KiB.
    assert!((8..=12).contains(&rows.len()), "{} segments", rows.len());
    assert!(is_compacted_key(&rows[0].key), "{}", rows[0].key);
    assert_eq!(rows[0].base_offset, 0);
    assert_eq!(rows[0].byte_offset, 0);
    assert_eq!(rows[rows.len() - 1].end_offset, RECORDS - 1);
    for pair in rows.windows(2) {
        assert_eq!(pair[1].key, pair[0].key, "one object");
        assert_eq!(pair[1].base_offset, pair[0].end_offset + 1);
        assert_eq!(
            pair[1].byte_offset,
            pair[0].byte_offset + pair[0].byte_length
        );
    }
    for row in &rows {
        assert!(row.byte_length <= SEGMENT_BYTES + 4096, "{row:?}");
        assert_eq!(row.record_count, row.end_offset - row.base_offset + 1);
        assert!(row.min_timestamp <= row.max_timestamp);
    }

    // A cold reader of one offset makes one ranged GET of the segment
    // holding it (the last one: there is nothing after it to read ahead).
    let fresh = start(&backend, eager_config());
    let holding = rows.last().expect("segments");
    let offset = holding.base_offset + 1;
    let before = fresh.object_store_stats();
    let read = fresh
        .read("pieces", 0, offset, 1, 1 << 20)
        .await
        .expect("read");
    let after = fresh.object_store_stats();
    assert_eq!(
        read.records,
        written[offset as usize..=offset as usize].to_vec()
    );
    assert_eq!(after.gets - before.gets, 1);
    assert_eq!(
        i64::try_from(after.bytes_read - before.bytes_read).expect("bytes"),
        holding.byte_length
    );

    // Reading from the start fetches the first segment and reads the second
    // ahead, so the read that reaches it makes no request of its own.
    let ahead = start(&backend, eager_config());
    let before = ahead.object_store_stats();
    let first = ahead.read("pieces", 0, 0, 1, 1 << 20).await.expect("read");
    assert_eq!(first.records, written[..1].to_vec());
    let deadline = Instant::now() + Duration::from_secs(10);
    let two_segments = u64::try_from(rows[0].byte_length + rows[1].byte_length).expect("bytes");
    while ahead.object_store_stats().bytes_read - before.bytes_read < two_segments {
        assert!(
            Instant::now() < deadline,
            "the second segment was not read ahead"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mid = ahead.object_store_stats();
    assert_eq!(mid.bytes_read - before.bytes_read, two_segments);
    assert_eq!(mid.gets - before.gets, 2);
    let second = rows[1].base_offset;
    let read = ahead
        .read("pieces", 0, second, 1, 1 << 20)
        .await
        .expect("read");
    assert_eq!(
        read.records,
        written[second as usize..=second as usize].to_vec()
    );
    // Nothing fetched for the second segment; only, perhaps already, the
    // third one read ahead.
    let after = ahead.object_store_stats();
    let fetched = i64::try_from(after.bytes_read - mid.bytes_read).expect("bytes");
    assert!(
        fetched == 0 || fetched == rows[2].byte_length,
        "{fetched} bytes fetched reading a segment read ahead"
    );
    ahead.shutdown().await;
    assert_eq!(read_partition(&fresh, "pieces", 0, 0).await, written);
    fresh.shutdown().await;
    engine.shutdown().await;
}

async fn retention_by_size_and_time(backend: Backend) {
    let engine = start(&backend, eager_config());
    let by_size = TopicConfig::from_pairs([("retention.bytes", "4000"), ("retention.ms", "-1")])
        .expect("config");
    engine
        .create_topic(NewTopic::new("sized", 1).with_config(by_size))
        .await
        .expect("create");
    let day = 24 * 3_600_000;
    let now = SystemClock.now_ms();
    let by_time = TopicConfig::from_pairs([("retention.ms", &*day.to_string())]).expect("config");
    engine
        .create_topic(NewTopic::new("timed", 1).with_config(by_time))
        .await
        .expect("create");
    let keep_forever = TopicConfig::from_pairs([("retention.ms", "-1")]).expect("config");
    engine
        .create_topic(NewTopic::new("forever", 1).with_config(keep_forever))
        .await
        .expect("create");

    // 20 flushes of ~1 KiB each (incompressible) to "sized"; 10
    // two-day-old and 10 fresh flushes to "timed" and "forever".
    let value = bytes::Bytes::from(noise(1000));
    for i in 0..20 {
        let record = Record::new(now, value.clone());
        engine
            .append("sized", 0, vec![record])
            .await
            .expect("append");
        let timestamp = if i < 10 { now - 2 * day } else { now };
        for topic in ["timed", "forever"] {
            let record = Record::new(timestamp + i, value.clone());
            engine.append(topic, 0, vec![record]).await.expect("append");
        }
    }
    let report = engine.enforce_retention().await.expect("retention");
    assert_eq!(report.partitions_truncated, 2, "{report:?}");
    assert_consistent(&engine, "retention").await;

    // Size, as Kafka: at least 4000 bytes stay, and no more segments than
    // that takes (without the oldest kept one it would be under 4000).
    let sized = backend
        .metadata
        .list_segments("sized", 0, 0, 100)
        .await
        .expect("list");
    let kept: i64 = sized.iter().map(|s| s.byte_length).sum();
    assert!(
        kept >= 4000 && kept - sized[0].byte_length < 4000,
        "kept {kept} bytes in {} segments",
        sized.len()
    );
    assert_eq!(sized.len(), 4, "four ~1 KiB segments hold 4000 bytes");
    let info = engine.partition_info("sized", 0).await.expect("info");
    assert_eq!(info.log_start_offset, sized[0].base_offset);
    assert_eq!(info.high_watermark, 20);
    // Time: exactly the ten old records are gone.
    let timed = engine.partition_info("timed", 0).await.expect("info");
    assert_eq!((timed.log_start_offset, timed.high_watermark), (10, 20));
    assert_eq!(
        engine
            .partition_info("forever", 0)
            .await
            .expect("info")
            .log_start_offset,
        0
    );

    // Below the log start: out of range; from it: the rest.
    match engine.read("timed", 0, 3, 100, 1 << 20).await {
        Err(StorageError::OffsetOutOfRange {
            log_start_offset, ..
        }) => {
            assert_eq!(log_start_offset, 10);
        }
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    let rest = read_partition(&engine, "timed", 0, 10).await;
    assert_eq!(
        rest.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (10..20).collect::<Vec<_>>()
    );
    assert_eq!(read_partition(&engine, "forever", 0, 0).await.len(), 20);

    // The dropped segments' objects go once garbage is collected.
    let objects_before = object_keys(&backend).await.len();
    let gc = engine
        .collect_garbage(Duration::ZERO, Duration::ZERO)
        .await
        .expect("gc");
    assert_consistent(&engine, "garbage collection").await;
    assert!(gc.tombstoned_deleted > 0, "{gc:?}");
    assert!(object_keys(&backend).await.len() < objects_before);
    // A second pass changes nothing.
    assert_eq!(
        engine
            .enforce_retention()
            .await
            .expect("retention")
            .partitions_truncated,
        0
    );
    engine.shutdown().await;
}

/// `retention.ms` / `retention.bytes` drop segments only of topics whose
/// cleanup.policy deletes: a `compact` topic keeps its old records (as
/// Kafka's does), `compact,delete` loses them, DeleteRecords works on both,
/// and switching a topic to `delete` makes retention apply to it.
async fn retention_follows_the_cleanup_policy(backend: Backend) {
    let engine = start(&backend, eager_config());
    let day = 24 * 3_600_000;
    let now = SystemClock.now_ms();
    let topics = [
        ("compacted", "compact"),
        ("both", "compact,delete"),
        ("deleted", "delete"),
    ];
    for (topic, policy) in topics {
        let config = TopicConfig::from_pairs([
            ("cleanup.policy", policy),
            ("retention.ms", &*day.to_string()),
            ("retention.bytes", "1500"),
        ])
        .expect("config");
        engine
            .create_topic(NewTopic::new(topic, 1).with_config(config))
            .await
            .expect("create");
    }
    // Ten two-day-old ~1 KiB records, each its own flush, to every topic.
    let value = bytes::Bytes::from(noise(1000));
    for i in 0..10 {
        for (topic, _) in topics {
            let record = Record::new(now - 2 * day + i, value.clone())
                .with_key(bytes::Bytes::from(format!("key-{i}")));
            engine.append(topic, 0, vec![record]).await.expect("append");
        }
    }
    let report = engine.enforce_retention().await.expect("retention");
    assert_eq!(report.partitions_truncated, 2, "{report:?}");
    assert_consistent(&engine, "retention by policy").await;
    let start_of = |topic: &'static str| {
        let engine = engine.clone();
        async move {
            let info = engine.partition_info(topic, 0).await.expect("info");
            (info.log_start_offset, info.high_watermark)
        }
    };
    assert_eq!(start_of("compacted").await, (0, 10), "compact keeps all");
    assert_eq!(read_partition(&engine, "compacted", 0, 0).await.len(), 10);
    assert_eq!(start_of("both").await, (10, 10), "compact,delete drops");
    assert_eq!(start_of("deleted").await, (10, 10), "delete drops");
    // Another pass still leaves the compact topic alone.
    assert_eq!(
        engine
            .enforce_retention()
            .await
            .expect("retention")
            .partitions_truncated,
        0
    );

    // DeleteRecords is not retention: it trims a compact topic too.
    assert_eq!(
        engine
            .delete_records("compacted", 0, 3)
            .await
            .expect("delete records"),
        3
    );
    assert_eq!(start_of("compacted").await, (3, 10));

    // Switched to delete, the topic's old segments go.
    let topic = engine.load_topic("compacted").await.expect("topic");
    let mut config = topic.config.clone();
    config
        .set("cleanup.policy".into(), "delete".into())
        .expect("policy");
    engine
        .update_topic_config("compacted", config)
        .await
        .expect("update");
    let report = engine.enforce_retention().await.expect("retention");
    assert_eq!(report.partitions_truncated, 1, "{report:?}");
    assert_eq!(start_of("compacted").await, (10, 10));
    assert_consistent(&engine, "retention after the switch").await;
    engine.shutdown().await;
}

/// Bytes no codec compresses.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

async fn garbage_collection_waits_for_the_grace_period(backend: Backend) {
    let engine = start(&backend, eager_config());
    engine
        .create_topic(NewTopic::new("graced", 2))
        .await
        .expect("create");
    let written = small_flushes_two(&engine).await;
    // An upload nobody committed.
    let orphan = backend.storage.key("batches/orphan.bin");
    backend
        .storage
        .store()
        .put(
            &Path::from(orphan.as_str()),
            PutPayload::from_static(b"never committed"),
        )
        .await
        .expect("put orphan");
    engine
        .compact(&compact_everything())
        .await
        .expect("compact");
    let before = object_keys(&backend).await;

    // Within the grace period nothing goes: neither the replaced flush
    // objects nor the fresh orphan.
    let gc = engine
        .collect_garbage(Duration::from_secs(3600), Duration::from_secs(3600))
        .await
        .expect("gc");
    assert_eq!(
        (gc.tombstoned_deleted, gc.orphans_deleted),
        (0, 0),
        "{gc:?}"
    );
    assert_eq!(object_keys(&backend).await.len(), before.len());
    assert_consistent(&engine, "garbage collection within the grace period").await;

    // Past it, everything unreferenced goes and nothing referenced does.
    let gc = engine
        .collect_garbage(Duration::ZERO, Duration::ZERO)
        .await
        .expect("gc");
    assert!(
        gc.orphans_deleted >= 1 && gc.tombstoned_deleted >= 1,
        "{gc:?}"
    );
    let after = object_keys(&backend).await;
    assert!(!after.contains(&orphan));
    assert!(after.iter().all(|key| is_compacted_key(key)), "{after:?}");
    assert_consistent(&engine, "garbage collection").await;
    for (partition, expected) in written.iter().enumerate() {
        assert_eq!(
            &read_partition(&engine, "graced", partition as i32, 0).await,
            expected
        );
    }
    engine.shutdown().await;
}

/// An engine whose clock moves only when the test moves it, starting at
/// the system's time (tombstones and object last-modified times are the
/// metadata store's and the object store's own clocks).
fn start_with_manual_clock(backend: &Backend) -> (StorageEngine, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::starting_at(SystemClock.now_ms()));
    let engine = StorageEngine::start_with_clock(
        backend.metadata.clone(),
        backend.storage.clone(),
        eager_config(),
        clock.clone(),
    );
    (engine, clock)
}

async fn retention_by_time_follows_the_engine_clock(backend: Backend) {
    let (engine, clock) = start_with_manual_clock(&backend);
    let hour = Duration::from_secs(3600);
    let config = TopicConfig::from_pairs([("retention.ms", &*hour.as_millis().to_string())])
        .expect("config");
    engine
        .create_topic(NewTopic::new("timed", 1).with_config(config))
        .await
        .expect("create");
    let producer = engine.producer();
    // Five records now and five 59 minutes later, each its own flush and
    // each stamped by the producer with the clock's time.
    let start = clock.now_ms();
    for round in 0..2 {
        for i in 0..5 {
            let sent = producer
                .send(ProducerRecord::new("timed", format!("{round}-{i}")).partition(0))
                .await
                .expect("send");
            assert_eq!(sent.timestamp, clock.now_ms());
        }
        if round == 0 {
            let report = engine.enforce_retention().await.expect("retention");
            assert_eq!(report.partitions_truncated, 0, "nothing is old yet");
            clock.advance(Duration::from_secs(59 * 60));
            let report = engine.enforce_retention().await.expect("retention");
            assert_eq!(
                report.partitions_truncated, 0,
                "59 minutes are within an hour"
            );
        }
    }
    let segments = backend
        .metadata
        .list_segments("timed", 0, 0, 100)
        .await
        .expect("list");
    assert!(segments.len() >= 2, "{segments:?}");

    // Two minutes on, the first five are past the hour; the rest are not.
    clock.advance(Duration::from_secs(120));
    let report = engine.enforce_retention().await.expect("retention");
    assert_eq!(report.partitions_truncated, 1, "{report:?}");
    assert!(report.segments_deleted >= 1, "{report:?}");
    assert_consistent(&engine, "retention by the clock").await;
    let info = engine.partition_info("timed", 0).await.expect("info");
    assert_eq!((info.log_start_offset, info.high_watermark), (5, 10));
    let rest = read_partition(&engine, "timed", 0, 5).await;
    assert_eq!(
        rest.iter().map(|r| r.timestamp).collect::<Vec<_>>(),
        [start + 59 * 60_000; 5]
    );
    match engine.read("timed", 0, 0, 100, 1 << 20).await {
        Err(StorageError::OffsetOutOfRange {
            log_start_offset, ..
        }) => assert_eq!(log_start_offset, 5),
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }

    // Another hour, and everything is past it.
    clock.advance(hour);
    let report = engine.enforce_retention().await.expect("retention");
    assert_eq!(report.partitions_truncated, 1, "{report:?}");
    let info = engine.partition_info("timed", 0).await.expect("info");
    assert_eq!((info.log_start_offset, info.high_watermark), (10, 10));
    assert_consistent(&engine, "retention of everything").await;
    engine.shutdown().await;
}

async fn garbage_collection_grace_follows_the_engine_clock(backend: Backend) {
    let (engine, clock) = start_with_manual_clock(&backend);
    engine
        .create_topic(NewTopic::new("graced", 2))
        .await
        .expect("create");
    let written = small_flushes_two(&engine).await;
    let orphan = backend.storage.key("batches/orphan.bin");
    backend
        .storage
        .store()
        .put(
            &Path::from(orphan.as_str()),
            PutPayload::from_static(b"never committed"),
        )
        .await
        .expect("put orphan");
    // Compaction tombstones the replaced flush objects.
    engine
        .compact(&compact_everything())
        .await
        .expect("compact");
    let mut before = object_keys(&backend).await;
    before.sort();
    assert!(
        before
            .iter()
            .any(|key| !is_compacted_key(key) && *key != orphan),
        "{before:?}"
    );

    let grace = Duration::from_secs(600);
    for (step, note) in [
        (Duration::ZERO, "just tombstoned"),
        (Duration::from_secs(540), "nine minutes on"),
    ] {
        clock.advance(step);
        let gc = engine.collect_garbage(grace, grace).await.expect("gc");
        assert_eq!(
            (gc.tombstoned_deleted, gc.orphans_deleted),
            (0, 0),
            "{note}: {gc:?}"
        );
        let mut now = object_keys(&backend).await;
        now.sort();
        assert_eq!(now, before, "{note}");
    }
    assert!(
        engine
            .orphan_objects(grace)
            .await
            .expect("orphans")
            .is_empty(),
        "the orphan is within the grace period"
    );

    // Two more minutes: eleven since, past the ten-minute grace period.
    clock.advance(Duration::from_secs(120));
    let orphans = engine.orphan_objects(grace).await.expect("orphans");
    assert_eq!(
        orphans
            .iter()
            .map(|meta| meta.location.to_string())
            .collect::<Vec<_>>(),
        std::slice::from_ref(&orphan)
    );
    let gc = engine.collect_garbage(grace, grace).await.expect("gc");
    assert!(
        gc.orphans_deleted == 1 && gc.tombstoned_deleted >= 1,
        "{gc:?}"
    );
    let after = object_keys(&backend).await;
    assert!(!after.contains(&orphan));
    assert!(after.iter().all(|key| is_compacted_key(key)), "{after:?}");
    assert_consistent(&engine, "garbage collection past the grace period").await;
    for (partition, expected) in written.iter().enumerate() {
        assert_eq!(
            &read_partition(&engine, "graced", partition as i32, 0).await,
            expected
        );
    }
    engine.shutdown().await;
}

/// Ten flushes over the two partitions of "graced".
async fn small_flushes_two(engine: &StorageEngine) -> Vec<Vec<Record>> {
    let mut written = vec![Vec::new(), Vec::new()];
    for n in 0..10 {
        for partition in 0..2 {
            let record = numbered_record(partition, n);
            let result = engine
                .append("graced", partition, vec![record.clone()])
                .await
                .expect("append");
            written[partition as usize].push(at_offset(&record, result.base_offset));
        }
    }
    written
}

async fn delete_records_and_delete_topic_free_storage(backend: Backend) {
    let engine = start(&backend, eager_config());
    engine
        .create_topic(NewTopic::new("trimmed", 1))
        .await
        .expect("create");
    engine
        .create_topic(NewTopic::new("doomed", 1))
        .await
        .expect("create");
    for n in 0..10 {
        engine
            .append("trimmed", 0, vec![numbered_record(0, n)])
            .await
            .expect("append");
        engine
            .append("doomed", 0, vec![numbered_record(0, n)])
            .await
            .expect("append");
    }
    assert_eq!(
        engine
            .delete_records("trimmed", 0, 4)
            .await
            .expect("delete records"),
        4
    );
    assert!(matches!(
        engine.delete_records("trimmed", 0, 11).await,
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        engine.read("trimmed", 0, 3, 10, 1 << 20).await,
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_partition(&engine, "trimmed", 0, 4).await.len(), 6);
    // -1: everything up to the high watermark.
    assert_eq!(
        engine
            .delete_records("trimmed", 0, -1)
            .await
            .expect("delete records"),
        10
    );
    assert!(read_partition(&engine, "trimmed", 0, 10).await.is_empty());
    assert_consistent(&engine, "delete records").await;

    engine.delete_topic("doomed").await.expect("delete topic");
    engine
        .collect_garbage(Duration::ZERO, Duration::ZERO)
        .await
        .expect("gc");
    assert_consistent(&engine, "garbage collection").await;
    // Nothing references any object any more: the bucket is empty.
    assert_eq!(object_keys(&backend).await, Vec::<String>::new());
    engine.shutdown().await;
}
