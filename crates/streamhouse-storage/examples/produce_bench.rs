//! In-process produce throughput through the storage engine, next to the
//! raw PUT throughput of the same object store measured in the same run.
//!
//! Targets come from `STREAMHOUSE_METADATA` and `STREAMHOUSE_OBJECT_STORE`;
//! without them the run uses the embedded default in a temporary directory.
//! Prints one JSON report.
//!
//! ```text
//! cargo run --release -p streamhouse-storage --example produce_bench -- \
//!     [--mib 512] [--record-size 1024] [--partitions 16] [--batch 100] [--in-flight 256]
//! ```

// A development tool: it stops at the first failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use streamhouse_core::Record;
use streamhouse_metadata::NewTopic;
use streamhouse_storage::{ObjectStorage, StorageConfig, StorageEngine};
use support::{Target, percentile, value_pool};

mod support;

/// In-process produce throughput next to raw PUTs of the same size.
#[derive(Parser)]
struct Args {
    /// MiB of records to produce.
    #[arg(long, default_value_t = 512)]
    mib: u64,
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    #[arg(long, default_value_t = 16)]
    partitions: i32,
    /// Records per append.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Appends in flight at once.
    #[arg(long, default_value_t = 256)]
    in_flight: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let target = Target::from_env()?;
    let engine = StorageEngine::open(
        &target.metadata_url,
        &target.object_url,
        StorageConfig::default(),
    )
    .await?;
    let topic = format!(
        "bench-{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    engine
        .create_topic(NewTopic::new(&topic, i64::from(args.partitions)))
        .await?;

    let pool = value_pool(args.record_size);
    let total_records = args.mib * 1024 * 1024 / args.record_size as u64;
    let batches = total_records.div_ceil(args.batch as u64);
    let before = engine.object_store_stats();
    let started = Instant::now();
    let latencies: Vec<Duration> = futures::stream::iter(0..batches)
        .map(|b| {
            let engine = engine.clone();
            let topic = topic.clone();
            let records: Vec<Record> = (0..args.batch)
                .map(|i| {
                    let n = b as usize * args.batch + i;
                    Record::new(n as i64, pool[n % pool.len()].clone())
                })
                .collect();
            let partition = (b % args.partitions as u64) as i32;
            async move {
                let sent = Instant::now();
                engine.append(&topic, partition, records).await?;
                anyhow::Ok(sent.elapsed())
            }
        })
        .buffer_unordered(args.in_flight)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let elapsed = started.elapsed();
    let after = engine.object_store_stats();
    engine.shutdown().await;

    let mut sorted = latencies;
    sorted.sort();
    let records = batches * args.batch as u64;
    let mib = (records * args.record_size as u64) as f64 / 1048576.0;
    let puts = after.puts - before.puts;
    let written = after.bytes_written - before.bytes_written;
    let object_size = written.checked_div(puts).unwrap_or(0);

    // The baseline: PUTs of the same size, as many at once as the flusher
    // keeps in flight, straight to the same store.
    let storage = ObjectStorage::from_url(&target.object_url)?;
    let store = storage.store();
    let payload = PutPayload::from(Bytes::from(
        (0..object_size.max(1))
            .map(|i| i as u8)
            .collect::<Vec<u8>>(),
    ));
    let baseline_puts = puts.clamp(8, 256);
    let concurrency = StorageConfig::default().flush.max_inflight_flushes;
    let store_ref = &store;
    let payload_ref = &payload;
    let storage_ref = &storage;
    let raw_started = Instant::now();
    let mut raw_latencies: Vec<Duration> = futures::stream::iter(0..baseline_puts)
        .map(|i| async move {
            let path = Path::from(storage_ref.key(&format!("bench-baseline/{i}.bin")));
            let sent = Instant::now();
            store_ref.put(&path, payload_ref.clone()).await?;
            anyhow::Ok(sent.elapsed())
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let raw_elapsed = raw_started.elapsed();
    raw_latencies.sort();
    let raw_mib_s = (baseline_puts * object_size) as f64 / 1048576.0 / raw_elapsed.as_secs_f64();
    for i in 0..baseline_puts {
        let path = Path::from(storage.key(&format!("bench-baseline/{i}.bin")));
        let _ = store.delete(&path).await;
    }

    let produce_mib_s = mib / elapsed.as_secs_f64();
    let report = serde_json::json!({
        "benchmark": "in-process produce",
        "setup": target.setup,
        "parameters": {
            "record_size": args.record_size,
            "records": records,
            "partitions": args.partitions,
            "batch_records": args.batch,
            "batches_in_flight": args.in_flight,
            "flush_interval_ms": StorageConfig::default().flush.flush_interval.as_millis() as u64,
            "compression": StorageConfig::default().flush.compression.to_string(),
        },
        "produce": {
            "seconds": elapsed.as_secs_f64(),
            "mib_per_s": produce_mib_s,
            "records_per_s": records as f64 / elapsed.as_secs_f64(),
            "ack_latency_ms": {
                "p50": percentile(&sorted, 0.50),
                "p99": percentile(&sorted, 0.99),
                "max": percentile(&sorted, 1.0),
            },
            "object_puts": puts,
            "avg_object_bytes": object_size,
        },
        "raw_put_baseline": {
            "object_bytes": object_size,
            "concurrency": concurrency,
            "puts": baseline_puts,
            "mib_per_s": raw_mib_s,
            "latency_ms": {
                "p50": percentile(&raw_latencies, 0.50),
                "p99": percentile(&raw_latencies, 0.99),
            },
        },
        "produce_vs_raw_put": produce_mib_s / raw_mib_s,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
