//! Transactions through the engine, on the embedded default and on
//! PostgreSQL + the S3 server: transactional batches, markers written by
//! EndTxn through the flush commit, the last stable offset, what a
//! read_committed reader sees, and the coordinator's recovery (a fenced
//! producer's open transaction, a timeout, a transaction left prepared).

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{Backend, test_config};
use streamhouse_core::Record;
use streamhouse_core::clock::{Clock, ManualClock, SystemClock};
use streamhouse_metadata::NewTopic;
use streamhouse_storage::jobs::CompactionConfig;
use streamhouse_storage::{
    Isolation, ProducerBatch, ReadResult, StorageEngine, StorageError, TransactionBatch,
    TransactionRefusal, TransactionState,
};

on_every_backend!(
    committed_and_aborted_transactions_as_readers_see_them,
    transactional_batches_outside_their_transaction_are_refused,
    a_new_producer_epoch_aborts_the_open_transaction,
    a_transaction_past_its_timeout_is_aborted,
    delete_records_keeps_transactions_correct,
    key_compaction_removes_aborted_records_then_expired_markers,
    idle_transactional_ids_expire,
);

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

fn records(values: &[&str]) -> Vec<Record> {
    values
        .iter()
        .map(|v| Record::new(1_000, Bytes::from(v.to_string())))
        .collect()
}

/// Appends one producer batch; its first offset.
async fn send(
    engine: &StorageEngine,
    producer: (i64, i16),
    sequence: i32,
    values: &[&str],
) -> Result<i64, StorageError> {
    send_records(engine, producer, sequence, records(values)).await
}

async fn send_records(
    engine: &StorageEngine,
    producer: (i64, i16),
    sequence: i32,
    records: Vec<Record>,
) -> Result<i64, StorageError> {
    let batch = ProducerBatch {
        producer_id: producer.0,
        producer_epoch: producer.1,
        base_sequence: sequence,
        transactional: true,
    };
    let pending = engine
        .start_producer_append("t", 0, records, Some(batch), Duration::from_secs(5))
        .await?;
    Ok(pending.await?.base_offset)
}

async fn read(engine: &StorageEngine, isolation: Isolation) -> ReadResult {
    engine
        .reader("t", 0)
        .read_isolated(0, usize::MAX, 1 << 20, isolation)
        .await
        .expect("read")
}

fn values(result: &ReadResult) -> Vec<String> {
    offsets_and_values(&result.records)
        .into_iter()
        .map(|(_, value)| value)
        .collect()
}

/// Each record's offset and value as text.
fn offsets_and_values(records: &[Record]) -> Vec<(i64, String)> {
    records
        .iter()
        .map(|r| {
            let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default());
            (r.offset, value.into_owned())
        })
        .collect()
}

async fn init(engine: &StorageEngine, id: &str) -> (i64, i16) {
    engine
        .init_transaction(id, 60_000, None)
        .await
        .expect("init")
        .expect("init refused")
}

async fn begin(engine: &StorageEngine, id: &str, producer: (i64, i16)) {
    engine
        .add_transaction_partitions(id, producer.0, producer.1, &[("t".to_string(), 0)])
        .await
        .expect("add partitions")
        .expect("add partitions refused");
}

async fn committed_and_aborted_transactions_as_readers_see_them(backend: Backend) {
    let (engine, _clock) = start(&backend);
    engine.create_topic(NewTopic::new("t", 1)).await.unwrap();
    let producer = init(&engine, "tx").await;

    begin(&engine, "tx", producer).await;
    assert_eq!(send(&engine, producer, 0, &["a", "b"]).await.unwrap(), 0);
    engine.append("t", 0, records(&["plain"])).await.unwrap();
    // While the transaction is open, read_committed stops at its first
    // offset; read_uncommitted sees everything.
    let info = engine.refreshed_partition_info("t", 0).await.unwrap();
    assert_eq!((info.last_stable_offset, info.high_watermark), (0, 3));
    assert!(read(&engine, Isolation::Committed).await.records.is_empty());
    assert_eq!(
        values(&read(&engine, Isolation::Uncommitted).await),
        ["a", "b", "plain"]
    );
    engine
        .end_transaction("tx", producer.0, producer.1, true)
        .await
        .unwrap()
        .unwrap();
    // The COMMIT marker took offset 3.
    let info = engine.refreshed_partition_info("t", 0).await.unwrap();
    assert_eq!((info.last_stable_offset, info.high_watermark), (4, 4));

    begin(&engine, "tx", producer).await;
    assert_eq!(send(&engine, producer, 2, &["x"]).await.unwrap(), 4);
    engine
        .end_transaction("tx", producer.0, producer.1, false)
        .await
        .unwrap()
        .unwrap();
    engine.refreshed_partition_info("t", 0).await.unwrap();
    let all = read(&engine, Isolation::Committed).await;
    assert_eq!(all.last_stable_offset, 6);
    assert_eq!(values(&all).len(), 6, "records and markers: {all:?}");
    let marker = |commit| TransactionBatch {
        producer_id: producer.0,
        producer_epoch: producer.1,
        commit: Some(commit),
    };
    let data = TransactionBatch {
        producer_id: producer.0,
        producer_epoch: producer.1,
        commit: None,
    };
    let runs: Vec<_> = all
        .transactions
        .iter()
        .map(|r| (r.first_offset, r.last_offset, r.batch))
        .collect();
    assert_eq!(
        runs,
        [
            (0, 1, data),
            (3, 3, marker(true)),
            (4, 4, data),
            (5, 5, marker(false))
        ]
    );
    // The aborted transaction is indexed for read_committed readers.
    let aborted = engine.aborted_transactions("t", 0, 0, 5).await.unwrap();
    assert_eq!(aborted.len(), 1);
    assert_eq!((aborted[0].first_offset, aborted[0].marker_offset), (4, 5));
    let state = engine.describe_transaction("tx").await.unwrap().unwrap();
    assert_eq!(state.state, TransactionState::CompleteAbort);

    // What applications see (the HTTP API, the in-process consumer): no
    // markers, and for read_committed no aborted records.
    let visible = |read: &streamhouse_storage::VisibleRead| offsets_and_values(&read.records);
    let committed = engine
        .read_visible("t", 0, 0, 100, 1 << 20, Isolation::Committed)
        .await
        .unwrap();
    assert_eq!(
        visible(&committed),
        [(0, "a".into()), (1, "b".into()), (2, "plain".into())]
    );
    assert_eq!(committed.next_offset, 6);
    let uncommitted = engine
        .read_visible("t", 0, 0, 100, 1 << 20, Isolation::Uncommitted)
        .await
        .unwrap();
    assert_eq!(
        visible(&uncommitted),
        [
            (0, "a".into()),
            (1, "b".into()),
            (2, "plain".into()),
            (4, "x".into())
        ]
    );
    // From the aborted record on, read_committed finds nothing to show but
    // moves past it and its marker.
    let rest = engine
        .read_visible("t", 0, 4, 100, 1 << 20, Isolation::Committed)
        .await
        .unwrap();
    assert!(rest.records.is_empty());
    assert_eq!(rest.next_offset, 6);
    let waited = engine
        .read_or_wait(
            "t",
            0,
            3,
            100,
            1 << 20,
            std::time::Duration::ZERO,
            Isolation::Committed,
        )
        .await
        .unwrap();
    assert!(waited.records.is_empty());
    assert_eq!(waited.next_offset, 6);
    engine.shutdown().await;
}

async fn transactional_batches_outside_their_transaction_are_refused(backend: Backend) {
    let (engine, _clock) = start(&backend);
    engine.create_topic(NewTopic::new("t", 1)).await.unwrap();
    let producer = init(&engine, "tx").await;
    let refused = |result: Result<i64, StorageError>| match result {
        Err(StorageError::TransactionRefused { reason, .. }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    };
    // Not added to a transaction; a producer id never issued.
    assert_eq!(
        refused(send(&engine, producer, 0, &["a"]).await),
        TransactionRefusal::InvalidState
    );
    begin(&engine, "tx", producer).await;
    assert_eq!(
        refused(send(&engine, (producer.0 + 1_000, 0), 0, &["a"]).await),
        TransactionRefusal::ProducerIdMismatch
    );
    // EndTxn in the wrong state, and from a stale epoch.
    assert_eq!(
        engine
            .end_transaction("tx", producer.0, producer.1 + 1, true)
            .await
            .unwrap(),
        Err(TransactionRefusal::Fenced)
    );
    engine
        .end_transaction("tx", producer.0, producer.1, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        engine
            .end_transaction("tx", producer.0, producer.1, true)
            .await
            .unwrap(),
        Err(TransactionRefusal::InvalidState)
    );
    assert_eq!(
        engine
            .refreshed_partition_info("t", 0)
            .await
            .unwrap()
            .high_watermark,
        0,
        "nothing was stored, no marker was needed"
    );
    engine.shutdown().await;
}

async fn a_new_producer_epoch_aborts_the_open_transaction(backend: Backend) {
    let (engine, _clock) = start(&backend);
    engine.create_topic(NewTopic::new("t", 1)).await.unwrap();
    let zombie = init(&engine, "tx").await;
    begin(&engine, "tx", zombie).await;
    send(&engine, zombie, 0, &["z"]).await.unwrap();
    // The producer restarts: its open transaction is aborted (the marker
    // goes to offset 1) and the old instance is fenced.
    let producer = init(&engine, "tx").await;
    assert_eq!(producer.0, zombie.0);
    assert!(producer.1 > zombie.1);
    let info = engine.refreshed_partition_info("t", 0).await.unwrap();
    assert_eq!((info.last_stable_offset, info.high_watermark), (2, 2));
    assert_eq!(
        engine
            .aborted_transactions("t", 0, 0, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(matches!(
        send(&engine, zombie, 1, &["late"]).await,
        Err(StorageError::TransactionRefused { .. } | StorageError::ProducerFenced { .. })
    ));
    assert_eq!(
        engine
            .add_transaction_partitions("tx", zombie.0, zombie.1, &[("t".to_string(), 0)])
            .await
            .unwrap(),
        Err(TransactionRefusal::Fenced)
    );
    engine.shutdown().await;
}

async fn a_transaction_past_its_timeout_is_aborted(backend: Backend) {
    let (engine, clock) = start(&backend);
    engine.create_topic(NewTopic::new("t", 1)).await.unwrap();
    let producer = engine
        .init_transaction("tx", 10_000, None)
        .await
        .unwrap()
        .unwrap();
    begin(&engine, "tx", producer).await;
    send(&engine, producer, 0, &["a"]).await.unwrap();
    assert_eq!(
        engine
            .expire_transactions(5_000, i64::MAX, |_| true)
            .await
            .unwrap(),
        0
    );
    clock.advance(Duration::from_secs(11));
    // Only the agent coordinating the id aborts it.
    assert_eq!(
        engine
            .expire_transactions(5_000, i64::MAX, |_| false)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        engine
            .expire_transactions(5_000, i64::MAX, |_| true)
            .await
            .unwrap(),
        1
    );
    let info = engine.refreshed_partition_info("t", 0).await.unwrap();
    assert_eq!((info.last_stable_offset, info.high_watermark), (2, 2));
    let state = engine.describe_transaction("tx").await.unwrap().unwrap();
    assert_eq!(state.state, TransactionState::CompleteAbort);
    // The producer was fenced by the abort.
    assert_eq!(
        engine
            .end_transaction("tx", producer.0, producer.1, true)
            .await
            .unwrap(),
        Err(TransactionRefusal::Fenced)
    );
    engine.shutdown().await;
}

fn keyed(key: &str, value: &str) -> Record {
    Record::new(1_000, Bytes::from(value.to_string())).with_key(Bytes::from(key.to_string()))
}

/// Topic "t", one partition, compacted at any dirty ratio.
async fn compacted_topic(engine: &StorageEngine) {
    let config = streamhouse_core::TopicConfig::from_pairs([
        ("cleanup.policy", "compact"),
        ("min.cleanable.dirty.ratio", "0.01"),
    ])
    .unwrap();
    engine
        .create_topic(NewTopic::new("t", 1).with_config(config))
        .await
        .unwrap();
}

/// A whole transaction of "tx" on t-0 from `sequence`, committed or
/// aborted; its first offset.
async fn transaction(
    engine: &StorageEngine,
    producer: (i64, i16),
    sequence: i32,
    records: Vec<Record>,
    commit: bool,
) -> i64 {
    begin(engine, "tx", producer).await;
    let first = send_records(engine, producer, sequence, records)
        .await
        .unwrap();
    engine
        .end_transaction("tx", producer.0, producer.1, commit)
        .await
        .unwrap()
        .unwrap();
    first
}

/// One plain append per (key, value) on t-0.
async fn append_keyed(engine: &StorageEngine, pairs: &[(&str, &str)]) {
    for (key, value) in pairs {
        engine
            .append("t", 0, vec![keyed(key, value)])
            .await
            .unwrap();
    }
}

/// The values read_committed applications see from `offset` on.
async fn committed_values(engine: &StorageEngine, offset: i64) -> Vec<(i64, String)> {
    let read = engine
        .read_visible("t", 0, offset, 1000, 1 << 20, Isolation::Committed)
        .await
        .unwrap();
    offsets_and_values(&read.records)
}

/// DeleteRecords into an aborted transaction and past an open one's first
/// record: read_committed readers never see aborted records, and the last
/// stable offset never falls below the log start offset (as in Kafka).
async fn delete_records_keeps_transactions_correct(backend: Backend) {
    let (engine, _clock) = start(&backend);
    compacted_topic(&engine).await;
    let producer = init(&engine, "tx").await;
    assert_eq!(
        transaction(
            &engine,
            producer,
            0,
            vec![keyed("k1", "a1"), keyed("k2", "a2")],
            false
        )
        .await,
        0
    );
    append_keyed(&engine, &[("k1", "v1"), ("k2", "v2"), ("k1", "v3")]).await;
    assert_eq!(
        transaction(&engine, producer, 2, vec![keyed("k1", "c1")], true).await,
        6
    );
    append_keyed(&engine, &[("k2", "v4"), ("k1", "v5")]).await;
    let before = committed_values(&engine, 0).await;
    assert_eq!(
        before.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>(),
        ["v1", "v2", "v3", "c1", "v4", "v5"]
    );

    // DeleteRecords into the aborted transaction: its remaining record
    // stays hidden.
    engine.delete_records("t", 0, 1).await.unwrap();
    engine.refreshed_partition_info("t", 0).await.unwrap();
    assert!(
        !committed_values(&engine, 1)
            .await
            .iter()
            .any(|(_, v)| v.starts_with('a'))
    );
    assert_eq!(
        engine
            .aborted_transactions("t", 0, 1, 9)
            .await
            .unwrap()
            .len(),
        1
    );

    // DeleteRecords past the first record of an open transaction: the last
    // stable offset is the new log start offset until the transaction ends.
    begin(&engine, "tx", producer).await;
    let open = vec![keyed("k3", "open")];
    assert_eq!(send_records(&engine, producer, 3, open).await.unwrap(), 10);
    engine.append("t", 0, vec![keyed("k4", "p")]).await.unwrap();
    engine.delete_records("t", 0, 11).await.unwrap();
    // The aborted transaction's marker (offset 2) is below the log start:
    // it is forgotten.
    assert!(
        engine
            .aborted_transactions("t", 0, 0, 11)
            .await
            .unwrap()
            .is_empty()
    );
    let info = engine.refreshed_partition_info("t", 0).await.unwrap();
    assert_eq!(
        (
            info.log_start_offset,
            info.last_stable_offset,
            info.high_watermark
        ),
        (11, 11, 12)
    );
    assert!(committed_values(&engine, 11).await.is_empty());
    engine
        .end_transaction("tx", producer.0, producer.1, true)
        .await
        .unwrap()
        .unwrap();
    let info = engine.refreshed_partition_info("t", 0).await.unwrap();
    assert_eq!((info.last_stable_offset, info.high_watermark), (13, 13));
    assert_eq!(committed_values(&engine, 11).await, [(11, "p".to_string())]);
    engine.shutdown().await;
}

/// The values of every record read_uncommitted returns, markers included.
async fn stored(engine: &StorageEngine) -> Vec<(i64, String)> {
    offsets_and_values(&read(engine, Isolation::Uncommitted).await.records)
}

/// Key compaction of a partition with transactions, as Kafka's cleaner
/// does it: an aborted transaction's records are removed and never count
/// as a key's latest value, a committed one's are compacted like any
/// others, an open one stops compaction, and markers stay until they are
/// older than `delete.retention.ms`, when they go with their entry in the
/// aborted transaction index.
async fn key_compaction_removes_aborted_records_then_expired_markers(backend: Backend) {
    let (engine, clock) = start(&backend);
    compacted_topic(&engine).await;
    let producer = init(&engine, "tx").await;
    // 0-1: aborted k1=a1, k3=a3 (k3 has no other value), 2: its marker.
    assert_eq!(
        transaction(
            &engine,
            producer,
            0,
            vec![keyed("k1", "a1"), keyed("k3", "a3")],
            false
        )
        .await,
        0
    );
    // 3-5: plain.
    append_keyed(&engine, &[("k1", "v1"), ("k2", "v2"), ("k1", "v3")]).await;
    // 6: committed k1=c1, k4=c4; 8: its marker.
    assert_eq!(
        transaction(
            &engine,
            producer,
            2,
            vec![keyed("k1", "c1"), keyed("k4", "c4")],
            true
        )
        .await,
        6
    );
    // 9-10: plain; 11: an open transaction; 12: plain after it.
    append_keyed(&engine, &[("k2", "v4"), ("k1", "v5")]).await;
    begin(&engine, "tx", producer).await;
    let open = vec![keyed("k2", "o2")];
    assert_eq!(send_records(&engine, producer, 4, open).await.unwrap(), 11);
    engine
        .append("t", 0, vec![keyed("k1", "v6")])
        .await
        .unwrap();

    let compaction = CompactionConfig {
        span: Duration::ZERO,
        ..CompactionConfig::default()
    };
    let mut key_passes = 0;
    for _ in 0..3 {
        key_passes += engine.compact(&compaction).await.unwrap().key_passes;
    }
    assert!(key_passes >= 1, "key compaction ran");
    engine.refreshed_partition_info("t", 0).await.unwrap();
    // The aborted records are gone (k3 had no other value: gone with
    // them); k1's committed c1 gave way to v5; k4's c4 stays; nothing from
    // the open transaction on was touched. Markers stay.
    // A marker's value: version 0 and coordinator epoch 0.
    let marker = "\0\0\0\0\0\0";
    let want = [
        (2, marker),
        (7, "c4"),
        (8, marker),
        (9, "v4"),
        (10, "v5"),
        (11, "o2"),
        (12, "v6"),
    ];
    let want: Vec<(i64, String)> = want.iter().map(|(o, v)| (*o, v.to_string())).collect();
    assert_eq!(stored(&engine).await, want);
    let runs: Vec<_> = read(&engine, Isolation::Uncommitted)
        .await
        .transactions
        .iter()
        .map(|r| (r.first_offset, r.batch.commit))
        .collect();
    assert_eq!(runs, [(2, Some(false)), (8, Some(true)), (11, None)]);
    assert_eq!(
        committed_values(&engine, 0).await,
        [
            (7, "c4".to_string()),
            (9, "v4".to_string()),
            (10, "v5".to_string())
        ],
        "read_committed stops at the open transaction"
    );
    assert_eq!(
        engine
            .aborted_transactions("t", 0, 0, 12)
            .await
            .unwrap()
            .len(),
        1
    );

    // Past delete.retention.ms the markers go, and so does the aborted
    // transaction's index entry; the open transaction's records stay.
    clock.advance(Duration::from_millis(86_400_000 + 1_000));
    for _ in 0..3 {
        engine.compact(&compaction).await.unwrap();
    }
    engine.refreshed_partition_info("t", 0).await.unwrap();
    let stored_now: Vec<i64> = stored(&engine).await.iter().map(|(o, _)| *o).collect();
    assert_eq!(stored_now, [7, 9, 10, 11, 12]);
    assert!(
        engine
            .aborted_transactions("t", 0, 0, 12)
            .await
            .unwrap()
            .is_empty()
    );
    engine
        .end_transaction("tx", producer.0, producer.1, true)
        .await
        .unwrap()
        .unwrap();
    engine.refreshed_partition_info("t", 0).await.unwrap();
    assert_eq!(
        committed_values(&engine, 0).await.last(),
        Some(&(12, "v6".to_string()))
    );
    engine.shutdown().await;
}

/// Kafka's transactional.id.expiration.ms: an id with no transaction in
/// progress is forgotten once idle that long; one with a transaction in
/// progress is not, and a producer using a forgotten id starts afresh.
async fn idle_transactional_ids_expire(backend: Backend) {
    const WEEK_MS: i64 = 7 * 24 * 3600 * 1000;
    let (engine, clock) = start(&backend);
    engine.create_topic(NewTopic::new("t", 1)).await.unwrap();
    let idle = init(&engine, "idle").await;
    let busy = engine
        .init_transaction("busy", i32::MAX, None)
        .await
        .unwrap()
        .unwrap();
    begin(&engine, "busy", busy).await;
    clock.advance(Duration::from_millis(WEEK_MS as u64 - 1_000));
    engine
        .expire_transactions(5_000, WEEK_MS, |_| true)
        .await
        .unwrap();
    assert!(engine.describe_transaction("idle").await.unwrap().is_some());
    clock.advance(Duration::from_millis(2_000));
    engine
        .expire_transactions(5_000, WEEK_MS, |_| false)
        .await
        .unwrap();
    assert!(
        engine.describe_transaction("idle").await.unwrap().is_some(),
        "only the coordinator's ids"
    );
    engine
        .expire_transactions(5_000, WEEK_MS, |_| true)
        .await
        .unwrap();
    assert!(engine.describe_transaction("idle").await.unwrap().is_none());
    let listed: Vec<String> = engine
        .list_transactions()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.transactional_id)
        .collect();
    assert_eq!(listed, ["busy"], "the open transaction stays");
    let again = init(&engine, "idle").await;
    assert_ne!(again.0, idle.0, "a new producer id");
    engine.shutdown().await;
}
