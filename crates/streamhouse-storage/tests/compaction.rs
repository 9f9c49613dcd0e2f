//! Key compaction (`cleanup.policy=compact`) end to end: what a reader sees
//! after compaction, against a model of Kafka's semantics, on the embedded
//! default and on PostgreSQL + the S3 server; checked after every pass by
//! the consistency checker.

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{Backend, test_config};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use streamhouse_core::clock::{Clock, ManualClock, SystemClock};
use streamhouse_core::{Record, TopicConfig};
use streamhouse_metadata::NewTopic;
use streamhouse_storage::jobs::CompactionConfig;
use streamhouse_storage::{Isolation, StorageEngine};

on_every_backend!(
    the_latest_value_of_every_key_stays,
    tombstones_go_once_delete_retention_has_passed,
    keys_beyond_the_key_map_take_several_passes,
    young_records_and_low_dirty_ratios_wait,
    switching_between_delete_and_compact,
    a_damaged_segment_stops_only_its_own_partition,
);

fn compaction(key_map_bytes: u64) -> CompactionConfig {
    CompactionConfig {
        span: Duration::ZERO,
        key_map_bytes,
        ..CompactionConfig::default()
    }
}

fn start(backend: &Backend) -> (StorageEngine, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::starting_at(SystemClock.now_ms()));
    let engine = StorageEngine::start_with_clock(
        backend.metadata.clone(),
        backend.storage.clone(),
        test_config(),
        clock.clone(),
    );
    (engine, clock)
}

async fn create(engine: &StorageEngine, topic: &str, pairs: &[(&str, &str)]) {
    let config = TopicConfig::from_pairs(pairs.iter().copied()).expect("config");
    engine
        .create_topic(NewTopic::new(topic, 1).with_config(config))
        .await
        .expect("create topic");
}

fn keyed(key: &str, value: Option<&str>, timestamp: i64) -> Record {
    let record = match value {
        Some(value) => Record::new(timestamp, Bytes::from(value.to_string())),
        None => Record::tombstone(timestamp),
    };
    record.with_key(Bytes::from(key.to_string()))
}

/// Appends records one append each; returns their offsets.
async fn append(engine: &StorageEngine, topic: &str, records: Vec<Record>) -> Vec<i64> {
    let mut offsets = Vec::with_capacity(records.len());
    for chunk in records.chunks(50) {
        let result = engine
            .append(topic, 0, chunk.to_vec())
            .await
            .expect("append");
        offsets.extend(result.base_offset..=result.last_offset);
    }
    offsets
}

/// Every record from `from` to the high watermark, read in small steps so
/// that reads start inside gaps.
async fn read_all(engine: &StorageEngine, topic: &str, from: i64) -> Vec<Record> {
    let mut records: Vec<Record> = Vec::new();
    let mut next = from;
    loop {
        let result = engine
            .read(topic, 0, next, 7, 1 << 20)
            .await
            .unwrap_or_else(|e| panic!("read {topic} at {next}: {e}"));
        if let Some(last) = records.last()
            && let Some(first) = result.records.first()
        {
            assert!(first.offset > last.offset, "{topic}: offsets went back");
        }
        match result.records.last() {
            Some(last) => next = last.offset + 1,
            None => break,
        }
        records.extend(result.records);
        if next >= result.high_watermark {
            break;
        }
    }
    records
}

/// (offset, key, value) of what a reader sees.
fn seen(records: &[Record]) -> Vec<(i64, String, Option<String>)> {
    records
        .iter()
        .map(|r| {
            (
                r.offset,
                String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned(),
                r.value
                    .as_ref()
                    .map(|v| String::from_utf8_lossy(v).into_owned()),
            )
        })
        .collect()
}

async fn assert_consistent(engine: &StorageEngine, after: &str) {
    let report = engine.check_consistency().await.expect("check");
    assert!(
        report.is_ok(),
        "consistency check after {after} failed:\n{}",
        report.problems.join("\n")
    );
}

/// 5 keys × 20 versions, then a tombstone for key 0: after compaction a
/// reader from offset 0 gets the 4 latest values and the tombstone, at
/// their original offsets, and reads from any offset (also inside a gap)
/// start at the next record kept.
async fn the_latest_value_of_every_key_stays(backend: Backend) {
    let (engine, clock) = start(&backend);
    create(
        &engine,
        "table",
        &[
            ("cleanup.policy", "compact"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )
    .await;
    let now = clock.now_ms();
    let mut records = Vec::new();
    for version in 0..20 {
        for key in 0..5 {
            records.push(keyed(&format!("k{key}"), Some(&format!("v{version}")), now));
        }
    }
    records.push(keyed("k0", None, now));
    let offsets = append(&engine, "table", records).await;
    assert_eq!(offsets.len(), 101);
    assert_eq!(read_all(&engine, "table", 0).await.len(), 101);

    let report = engine
        .compact(&compaction(64 << 20))
        .await
        .expect("compact");
    assert_eq!(report.key_passes, 1, "{report:?}");
    assert_eq!(report.records_removed, 96, "{report:?}");
    assert_consistent(&engine, "key compaction").await;
    let expected = vec![
        (96, "k1".to_string(), Some("v19".to_string())),
        (97, "k2".to_string(), Some("v19".to_string())),
        (98, "k3".to_string(), Some("v19".to_string())),
        (99, "k4".to_string(), Some("v19".to_string())),
        (100, "k0".to_string(), None),
    ];
    assert_eq!(seen(&read_all(&engine, "table", 0).await), expected);
    // From inside the gap: the next records kept.
    assert_eq!(seen(&read_all(&engine, "table", 42).await), expected);
    assert_eq!(seen(&read_all(&engine, "table", 99).await), expected[3..]);
    // Offsets and the log start do not move.
    let info = engine.partition_info("table", 0).await.expect("info");
    assert_eq!((info.log_start_offset, info.high_watermark), (0, 101));
    // A second pass with nothing new changes nothing.
    let report = engine
        .compact(&compaction(64 << 20))
        .await
        .expect("compact");
    assert_eq!(report.key_passes, 0, "{report:?}");
    // New versions: the older ones go at the next pass.
    append(&engine, "table", vec![keyed("k1", Some("v20"), now)]).await;
    engine
        .compact(&compaction(64 << 20))
        .await
        .expect("compact");
    assert_consistent(&engine, "second key compaction").await;
    let seen_now = seen(&read_all(&engine, "table", 0).await);
    assert_eq!(
        seen_now.iter().map(|(o, _, _)| *o).collect::<Vec<_>>(),
        [97, 98, 99, 100, 101]
    );
    engine.shutdown().await;
}

/// A tombstone stays for `delete.retention.ms` after the compaction that
/// first made it its key's latest record, then goes, even with no new
/// records to trigger compaction.
async fn tombstones_go_once_delete_retention_has_passed(backend: Backend) {
    let (engine, clock) = start(&backend);
    create(
        &engine,
        "deletes",
        &[
            ("cleanup.policy", "compact"),
            ("delete.retention.ms", "60000"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )
    .await;
    let now = clock.now_ms();
    append(
        &engine,
        "deletes",
        vec![
            keyed("a", Some("1"), now),
            keyed("b", Some("1"), now),
            keyed("a", None, now),
        ],
    )
    .await;
    engine
        .compact(&compaction(64 << 20))
        .await
        .expect("compact");
    let expected_with_tombstone = vec![
        (1, "b".to_string(), Some("1".to_string())),
        (2, "a".to_string(), None),
    ];
    assert_eq!(
        seen(&read_all(&engine, "deletes", 0).await),
        expected_with_tombstone
    );
    // A later tombstone, compacted later, lives longer.
    clock.advance(Duration::from_secs(30));
    append(&engine, "deletes", vec![keyed("b", None, clock.now_ms())]).await;
    engine
        .compact(&compaction(64 << 20))
        .await
        .expect("compact");
    assert_eq!(
        seen(&read_all(&engine, "deletes", 0).await),
        vec![(2, "a".to_string(), None), (3, "b".to_string(), None)]
    );
    clock.advance(Duration::from_secs(29));
    engine
        .compact(&compaction(64 << 20))
        .await
        .expect("compact");
    assert_eq!(read_all(&engine, "deletes", 0).await.len(), 2);
    clock.advance(Duration::from_secs(2));
    engine
        .compact(&compaction(64 << 20))
        .await
        .expect("compact");
    assert_eq!(
        seen(&read_all(&engine, "deletes", 0).await),
        vec![(3, "b".to_string(), None)]
    );
    clock.advance(Duration::from_secs(30));
    engine
        .compact(&compaction(64 << 20))
        .await
        .expect("compact");
    assert!(read_all(&engine, "deletes", 0).await.is_empty());
    assert_consistent(&engine, "tombstone removal").await;
    // An empty partition still reads, and still takes new records.
    let info = engine.partition_info("deletes", 0).await.expect("info");
    assert_eq!((info.log_start_offset, info.high_watermark), (0, 4));
    // A long poll from inside the emptied range waits for new records
    // rather than answering at once with nothing.
    let waiting = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let result = engine
                .read_or_wait(
                    "deletes",
                    0,
                    1,
                    10,
                    1 << 20,
                    Duration::from_secs(20),
                    Isolation::Uncommitted,
                )
                .await
                .expect("long poll");
            (started.elapsed(), result.records)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the long poll answered at once");
    append(
        &engine,
        "deletes",
        vec![keyed("c", Some("1"), clock.now_ms())],
    )
    .await;
    let (waited, records) = waiting.await.expect("long poll task");
    assert!(waited < Duration::from_secs(10), "woke after {waited:?}");
    assert_eq!(
        seen(&records),
        vec![(4, "c".to_string(), Some("1".to_string()))]
    );
    assert_eq!(
        seen(&read_all(&engine, "deletes", 0).await),
        vec![(4, "c".to_string(), Some("1".to_string()))]
    );
    engine.shutdown().await;
}

/// 300 keys × 3 versions with a key map that holds fewer than 40: one job
/// run compacts in several passes, to the same result as with a large map.
async fn keys_beyond_the_key_map_take_several_passes(backend: Backend) {
    let (engine, clock) = start(&backend);
    let now = clock.now_ms();
    let mut records = Vec::new();
    for version in 0..3 {
        for key in 0..300 {
            records.push(keyed(
                &format!("key-{key:03}"),
                Some(&format!("v{version}")),
                now,
            ));
        }
    }
    for topic in ["small-map", "large-map"] {
        create(&engine, topic, &[("cleanup.policy", "compact")]).await;
        append(&engine, topic, records.clone()).await;
    }
    let small = CompactionConfig {
        key_map_bytes: 1024,
        ..compaction(0)
    };
    let report = engine.compact(&small).await.expect("compact");
    assert!(report.key_passes >= 10, "{report:?}");
    assert_consistent(&engine, "multi-pass compaction").await;
    let after_small = seen(&read_all(&engine, "small-map", 0).await);
    let after_large = seen(&read_all(&engine, "large-map", 0).await);
    assert_eq!(after_small.len(), 300);
    assert_eq!(after_small, after_large);
    assert!(
        after_small
            .iter()
            .all(|(o, _, v)| *o >= 600 && v.as_deref() == Some("v2"))
    );
    engine.shutdown().await;
}

/// `min.compaction.lag.ms` keeps young records out of compaction;
/// `min.cleanable.dirty.ratio` waits for enough new data, unless
/// `max.compaction.lag.ms` has passed.
async fn young_records_and_low_dirty_ratios_wait(backend: Backend) {
    let (engine, clock) = start(&backend);
    create(
        &engine,
        "lagged",
        &[
            ("cleanup.policy", "compact"),
            ("min.compaction.lag.ms", "60000"),
            ("max.compaction.lag.ms", "600000"),
        ],
    )
    .await;
    let now = clock.now_ms();
    let versions: Vec<Record> = (0..10)
        .map(|v| keyed("k", Some(&format!("v{v}")), now))
        .collect();
    append(&engine, "lagged", versions.clone()).await;
    engine
        .compact(&compaction(64 << 20))
        .await
        .expect("compact");
    assert_eq!(
        read_all(&engine, "lagged", 0).await.len(),
        10,
        "young records stay"
    );
    clock.advance(Duration::from_secs(61));
    engine
        .compact(&compaction(64 << 20))
        .await
        .expect("compact");
    assert_eq!(read_all(&engine, "lagged", 0).await.len(), 1);
    // Ten distinct keys, so the clean part is large; two new versions are a
    // small share of it (below the 0.5 dirty ratio).
    let distinct: Vec<Record> = (0..40)
        .map(|k| {
            keyed(
                &format!("other-{k}"),
                Some(&"x".repeat(200)),
                clock.now_ms(),
            )
        })
        .collect();
    append(&engine, "lagged", distinct).await;
    clock.advance(Duration::from_secs(61));
    engine
        .compact(&compaction(64 << 20))
        .await
        .expect("compact");
    assert_eq!(read_all(&engine, "lagged", 0).await.len(), 41);
    let stamp = clock.now_ms();
    append(
        &engine,
        "lagged",
        vec![
            keyed("k", Some("late"), stamp),
            keyed("k", Some("later"), stamp),
        ],
    )
    .await;
    clock.advance(Duration::from_secs(61));
    let report = engine
        .compact(&compaction(64 << 20))
        .await
        .expect("compact");
    assert_eq!(report.key_passes, 0, "below the dirty ratio: {report:?}");
    assert_eq!(read_all(&engine, "lagged", 0).await.len(), 43);
    // Past max.compaction.lag.ms the partition is compacted anyway.
    clock.advance(Duration::from_secs(600));
    let report = engine
        .compact(&compaction(64 << 20))
        .await
        .expect("compact");
    assert_eq!(report.key_passes, 1, "{report:?}");
    let values = read_all(&engine, "lagged", 0).await;
    assert_eq!(values.len(), 41);
    assert_eq!(
        values.last().and_then(|r| r.value.clone()),
        Some(Bytes::from("later"))
    );
    assert_consistent(&engine, "lagged compaction").await;
    engine.shutdown().await;
}

/// A `delete` topic is not key-compacted; switched to `compact` its
/// records without a key are removed and older versions go; switched back,
/// the compacted segments still read and new records are kept whole.
async fn switching_between_delete_and_compact(backend: Backend) {
    let (engine, clock) = start(&backend);
    create(&engine, "switch", &[("retention.ms", "-1")]).await;
    let now = clock.now_ms();
    append(
        &engine,
        "switch",
        vec![
            keyed("a", Some("1"), now),
            Record::new(now, Bytes::from("no key")),
            keyed("a", Some("2"), now),
        ],
    )
    .await;
    engine
        .compact(&compaction(64 << 20))
        .await
        .expect("compact");
    assert_eq!(read_all(&engine, "switch", 0).await.len(), 3);
    let set =
        |pairs: &[(&str, &str)]| TopicConfig::from_pairs(pairs.iter().copied()).expect("config");
    engine
        .update_topic_config(
            "switch",
            set(&[("retention.ms", "-1"), ("cleanup.policy", "compact")]),
        )
        .await
        .expect("alter");
    engine
        .compact(&compaction(64 << 20))
        .await
        .expect("compact");
    assert_eq!(
        seen(&read_all(&engine, "switch", 0).await),
        vec![(2, "a".to_string(), Some("2".to_string()))]
    );
    engine
        .update_topic_config(
            "switch",
            set(&[("retention.ms", "-1"), ("cleanup.policy", "delete")]),
        )
        .await
        .expect("alter");
    append(
        &engine,
        "switch",
        vec![keyed("a", Some("3"), now), keyed("a", Some("4"), now)],
    )
    .await;
    engine
        .compact(&compaction(64 << 20))
        .await
        .expect("compact");
    assert_eq!(
        seen(&read_all(&engine, "switch", 0).await)
            .iter()
            .map(|(o, _, _)| *o)
            .collect::<Vec<_>>(),
        [2, 3, 4]
    );
    assert_consistent(&engine, "policy switches").await;
    engine.shutdown().await;
}

/// A segment damaged in storage makes key compaction skip its partition,
/// with its records untouched, while the topic's other partitions are
/// compacted.
async fn a_damaged_segment_stops_only_its_own_partition(backend: Backend) {
    use object_store::ObjectStoreExt;
    let (engine, clock) = start(&backend);
    let config = TopicConfig::from_pairs([("cleanup.policy", "compact")]).expect("config");
    engine
        .create_topic(NewTopic::new("damaged", 2).with_config(config))
        .await
        .expect("create");
    let now = clock.now_ms();
    for partition in 0..2 {
        let versions: Vec<Record> = (0..10)
            .map(|v| keyed("k", Some(&format!("v{v}")), now))
            .collect();
        engine
            .append("damaged", partition, versions)
            .await
            .expect("append");
    }
    // Flip a byte inside partition 0's segment.
    let row = engine.segments("damaged", 0, 0, 1).await.expect("rows")[0].clone();
    let path = object_store::path::Path::parse(&row.key).expect("key");
    let store = backend.storage.store();
    let mut bytes = store
        .get(&path)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes")
        .to_vec();
    bytes[usize::try_from(row.byte_offset + row.byte_length / 2).expect("offset")] ^= 0x55;
    store.put(&path, bytes.into()).await.expect("put");
    engine
        .compact(&compaction(64 << 20))
        .await
        .expect("compaction goes on");
    let compacted = engine
        .read("damaged", 1, 0, 100, 1 << 20)
        .await
        .expect("read partition 1");
    assert_eq!(compacted.records.len(), 1, "partition 1 is compacted");
    let left = engine.segments("damaged", 0, 0, 10).await.expect("rows");
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0].key.as_str(), left[0].cleaned_at),
        (row.key.as_str(), None)
    );
    engine.shutdown().await;
}

// ---------------------------------------------------------------------
// The model: random histories of keys, values and tombstones, random
// compaction points and clock steps, and a `delete.retention.ms`.

#[derive(Debug, Clone)]
enum Step {
    /// Records, each a key (of 6) and a value or a tombstone.
    Append(Vec<(u8, Option<u16>)>),
    Compact,
    Advance(u16),
}

/// A history, a `delete.retention.ms` in seconds, and the compaction
/// settings: a key map either large or small enough (1 KiB, under 40 keys)
/// for several passes, and output objects and segments either large or a
/// few hundred bytes (so that segments close and objects split mid-run).
fn history() -> impl Strategy<Value = (Vec<Step>, u16, CompactionConfig)> {
    let step = prop_oneof![
        4 => proptest::collection::vec((0u8..48, proptest::option::weighted(0.75, any::<u16>())), 1..40)
            .prop_map(Step::Append),
        2 => Just(Step::Compact),
        1 => (1u16..40).prop_map(Step::Advance),
    ];
    (
        proptest::collection::vec(step, 1..24),
        1u16..60,
        (
            prop_oneof![Just(1024u64), Just(64u64 << 20)],
            prop_oneof![Just((64u64 << 20, 4u64 << 20)), (300u64..3000, 100u64..600)],
        )
            .prop_map(
                |(key_map_bytes, (target_bytes, segment_bytes))| CompactionConfig {
                    target_bytes,
                    segment_bytes,
                    ..compaction(key_map_bytes)
                },
            ),
    )
}

/// What a reader must see, by Kafka's rules.
#[derive(Default)]
struct Model {
    /// offset → (key, value, when first compacted)
    log: BTreeMap<i64, (u8, Option<u16>, Option<i64>)>,
    next: i64,
}

impl Model {
    fn append(&mut self, records: &[(u8, Option<u16>)]) {
        for &(key, value) in records {
            self.log.insert(self.next, (key, value, None));
            self.next += 1;
        }
    }

    /// A compaction at `now`: with a dirty ratio threshold of 0 every new
    /// record is compactable at once.
    fn compact(&mut self, now: i64, delete_retention_ms: i64) {
        let has_dirty = self.log.values().any(|(_, _, at)| at.is_none());
        let mut latest: BTreeMap<u8, i64> = BTreeMap::new();
        for (&offset, &(key, _, _)) in &self.log {
            latest.insert(key, offset);
        }
        self.log.retain(|&offset, (key, value, at)| {
            if has_dirty && latest[key] != offset {
                return false;
            }
            match at {
                Some(at) => !(value.is_none() && *at + delete_retention_ms <= now),
                None => {
                    *at = Some(now);
                    true
                }
            }
        });
    }

    fn expected(&self) -> Vec<(i64, String, Option<String>)> {
        self.log
            .iter()
            .map(|(&offset, &(key, value, _))| {
                (offset, format!("k{key}"), value.map(|v| v.to_string()))
            })
            .collect()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn run_model(runtime: &tokio::runtime::Runtime, backend: Backend, cases: u32) {
    let (engine, clock) = runtime.block_on(async { start(&backend) });
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let case = std::sync::atomic::AtomicU32::new(0);
    let result = runner.run(&history(), |(steps, retention, settings)| {
        let topic = format!(
            "model-{}",
            case.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        runtime.block_on(async {
            let retention_ms = i64::from(retention) * 1000;
            create(
                &engine,
                &topic,
                &[
                    ("cleanup.policy", "compact"),
                    ("min.cleanable.dirty.ratio", "0"),
                    ("delete.retention.ms", &retention_ms.to_string()),
                ],
            )
            .await;
            let mut model = Model::default();
            for step in &steps {
                match step {
                    Step::Append(records) => {
                        let now = clock.now_ms();
                        let batch = records
                            .iter()
                            .map(|&(key, value)| {
                                let value = value.map(|v| v.to_string());
                                keyed(&format!("k{key}"), value.as_deref(), now)
                            })
                            .collect();
                        append(&engine, &topic, batch).await;
                        model.append(records);
                    }
                    Step::Compact => {
                        engine.compact(&settings).await.expect("compact");
                        model.compact(clock.now_ms(), retention_ms);
                        assert_consistent(&engine, "a model step").await;
                    }
                    Step::Advance(seconds) => {
                        clock.advance(Duration::from_secs(u64::from(*seconds)));
                    }
                }
                assert_eq!(
                    seen(&read_all(&engine, &topic, 0).await),
                    model.expected(),
                    "{topic} after {step:?}"
                );
            }
        });
        Ok(())
    });
    runtime.block_on(engine.shutdown());
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

#[test]
fn a_reader_sees_what_the_model_says_on_sqlite_local() {
    let runtime = runtime();
    let backend = runtime.block_on(common::sqlite_local());
    run_model(&runtime, backend, 24);
}

#[test]
fn a_reader_sees_what_the_model_says_on_postgres_s3() {
    let runtime = runtime();
    let backend = runtime.block_on(common::postgres_s3("storage_key_compaction_model"));
    if let Some(backend) = backend {
        run_model(&runtime, backend, 8);
    }
}
