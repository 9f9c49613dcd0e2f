//! The full pipeline, end to end, through the library: produce records into
//! a two-partition topic, read every one back, compare them byte for byte,
//! and show what landed in the metadata store and the object store.
//!
//! Targets come from `STREAMHOUSE_METADATA` and `STREAMHOUSE_OBJECT_STORE`
//! (defaults: `sqlite://./data/metadata.db` and `file://./data/objects`, the
//! embedded default that needs no servers). For S3 the endpoint and
//! credentials come from the standard `AWS_*` variables.
//!
//! ```text
//! cargo run --release -p streamhouse-storage --example pipeline -- [RECORDS]
//! ```

// A development tool: it stops at the first failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use streamhouse_core::Record;
use streamhouse_metadata::NewTopic;
use streamhouse_storage::{ConsumerConfig, StorageConfig, StorageEngine};

const PARTITIONS: i32 = 2;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let records: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse().context("RECORDS must be a number")?,
        None => 10_000,
    };
    let metadata_url = std::env::var("STREAMHOUSE_METADATA")
        .unwrap_or_else(|_| "sqlite://./data/metadata.db".into());
    let object_url = std::env::var("STREAMHOUSE_OBJECT_STORE")
        .unwrap_or_else(|_| "file://./data/objects".into());
    println!("metadata store: {}", redact(&metadata_url));
    println!("object store:   {object_url}");

    let engine = StorageEngine::open(&metadata_url, &object_url, StorageConfig::default())
        .await
        .context("opening the storage engine")?;
    let topic = format!(
        "pipeline-demo-{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    engine
        .create_topic(NewTopic::new(&topic, i64::from(PARTITIONS)))
        .await?;
    println!("created topic {topic} with {PARTITIONS} partitions");

    // Produce: each partition gets its records in batches from its own task,
    // and every acknowledged offset is remembered with the record sent.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for partition in 0..PARTITIONS {
        let engine = engine.clone();
        let topic = topic.clone();
        let count = records / PARTITIONS as u64
            + u64::from((partition as u64) < records % PARTITIONS as u64);
        tasks.push(tokio::spawn(async move {
            // Up to 16 batches in flight per partition share flushes; the
            // acknowledged offsets say where each record went.
            let producer = engine.producer();
            let batches: Vec<Vec<Record>> = (0..count)
                .map(|i| demo_record(partition, i))
                .collect::<Vec<_>>()
                .chunks(100)
                .map(<[Record]>::to_vec)
                .collect();
            let acked: Vec<(Vec<Record>, i64)> = futures::stream::iter(batches)
                .map(|batch| {
                    let producer = &producer;
                    let topic = &topic;
                    async move {
                        let result = producer.send_batch(topic, partition, batch.clone()).await?;
                        anyhow::Ok((batch, result.base_offset))
                    }
                })
                .buffered(16)
                .try_collect()
                .await?;
            let mut sent = BTreeMap::new();
            for (batch, base_offset) in acked {
                for (i, record) in batch.into_iter().enumerate() {
                    sent.insert(base_offset + i as i64, record);
                }
            }
            anyhow::Ok((partition, sent))
        }));
    }
    let mut sent: BTreeMap<i32, BTreeMap<i64, Record>> = BTreeMap::new();
    for task in tasks {
        let (partition, records) = task.await??;
        sent.insert(partition, records);
    }
    let produce_time = started.elapsed();
    let bytes: usize = sent
        .values()
        .flat_map(|p| p.values())
        .map(Record::payload_size)
        .sum();
    println!(
        "produced {records} records ({:.1} MiB) in {:.2?}: {:.0} records/s, {:.1} MiB/s",
        bytes as f64 / 1048576.0,
        produce_time,
        records as f64 / produce_time.as_secs_f64(),
        bytes as f64 / 1048576.0 / produce_time.as_secs_f64()
    );

    // Read back with a fresh engine, so nothing comes from the writer's cache.
    engine.shutdown().await;
    let reader = StorageEngine::open(&metadata_url, &object_url, StorageConfig::default()).await?;
    let started = Instant::now();
    let mut consumer = reader.consumer(ConsumerConfig::default());
    consumer.subscribe(&topic).await?;
    let mut received: BTreeMap<i32, BTreeMap<i64, Record>> = BTreeMap::new();
    loop {
        let batch = consumer.poll().await?;
        if batch.is_empty() {
            break;
        }
        for consumed in batch {
            let previous = received
                .entry(consumed.partition)
                .or_default()
                .insert(consumed.record.offset, consumed.record);
            ensure!(previous.is_none(), "a record was read twice");
        }
    }
    println!(
        "read back {} records in {:.2?}",
        received.values().map(BTreeMap::len).sum::<usize>(),
        started.elapsed()
    );

    let mut mismatches = 0;
    for partition in 0..PARTITIONS {
        let expected = sent.get(&partition).cloned().unwrap_or_default();
        let actual = received.get(&partition).cloned().unwrap_or_default();
        ensure!(
            expected.keys().eq(actual.keys()),
            "partition {partition}: offsets differ ({} sent, {} read)",
            expected.len(),
            actual.len()
        );
        for (offset, record) in &expected {
            let got = &actual[offset];
            if got.key != record.key
                || got.value != record.value
                || got.headers != record.headers
                || got.timestamp != record.timestamp
            {
                mismatches += 1;
                eprintln!("partition {partition} offset {offset}: read {got:?}, sent {record:?}");
            }
        }
        let offsets: Vec<i64> = actual.keys().copied().collect();
        ensure!(
            offsets.iter().copied().eq(0..offsets.len() as i64),
            "partition {partition}: offsets are not contiguous from 0"
        );
        println!(
            "partition {partition}: {} records, offsets 0..={}, byte-for-byte identical",
            actual.len(),
            offsets.last().copied().unwrap_or(-1)
        );
    }
    if mismatches > 0 {
        bail!("{mismatches} records differ from what was produced");
    }

    let mut objects = BTreeMap::new();
    for partition in 0..PARTITIONS {
        let rows = reader.segments(&topic, partition, 0, usize::MAX).await?;
        println!("partition {partition}: {} segment rows", rows.len());
        for row in rows {
            objects.insert(row.key, ());
        }
    }
    let listing: Vec<_> = reader
        .storage()
        .store()
        .list(Some(&Path::from(reader.storage().key("batches"))))
        .try_collect()
        .await?;
    let mut listed: Vec<_> = listing
        .iter()
        .filter(|meta| objects.contains_key(meta.location.as_ref()))
        .collect();
    listed.sort_by(|a, b| a.location.cmp(&b.location));
    println!(
        "objects holding this topic: {} (of {} flushed objects under {})",
        listed.len(),
        listing.len(),
        reader.storage().key("batches/")
    );
    for meta in listed.iter().take(10) {
        println!("  {:>10} bytes  {}", meta.size, meta.location);
    }
    if listed.len() > 10 {
        println!("  … {} more", listed.len() - 10);
    }
    ensure!(
        listed.len() == objects.len(),
        "segment rows reference {} objects but {} were listed",
        objects.len(),
        listed.len()
    );
    reader.shutdown().await;
    println!("OK: every acknowledged record was read back once, in order, unchanged");
    println!("TOPIC={topic}");
    Ok(())
}

/// A record with a key (absent for every tenth), headers and a value whose
/// bytes encode where it was produced.
fn demo_record(partition: i32, i: u64) -> Record {
    let filler: Vec<u8> = (0..(64 + (i * 37) % 900))
        .map(|b| (b * 31 + i) as u8)
        .collect();
    let mut value = format!("partition={partition} n={i} ").into_bytes();
    value.extend_from_slice(&filler);
    let mut record = Record::new(1_700_000_000_000 + i as i64, Bytes::from(value))
        .with_header("producer", Some(Bytes::from_static(b"pipeline-demo")))
        .with_header("n", Some(Bytes::from(i.to_string())));
    if !i.is_multiple_of(10) {
        record = record.with_key(Bytes::from(format!("key-{}", i % 97)));
    }
    record
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
