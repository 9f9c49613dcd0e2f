//! Compaction throughput on flush-sized segments, and what a compaction
//! pass costs the acknowledgement latency of produce running next to it.
//!
//! 1. A backlog of `--mib` MiB of 1 KiB records is produced to 16
//!    partitions at full speed: flush-sized segments (one row per partition
//!    per flush object), as a busy agent leaves them.
//! 2. Baseline: a steady produce at `--rate-mib` MiB/s to another topic for
//!    `--seconds`, with no compaction; its acknowledgement latencies.
//! 3. The same steady produce while one compaction pass rewrites everything
//!    flushed so far (the backlog and the baseline's segments); latencies
//!    of the appends sent while the pass ran. A consistency check follows.
//!
//! Targets come from `STREAMHOUSE_METADATA` and `STREAMHOUSE_OBJECT_STORE`
//! (as for `produce_bench`); without them the run uses the embedded default
//! in a temporary directory. Prints one JSON report.
//!
//! ```text
//! cargo run --release -p streamhouse-storage --example compaction_bench -- \
//!     [--mib 512] [--rate-mib 8] [--seconds 20]
//! ```

// A development tool: it stops at the first failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use futures::StreamExt;
use parking_lot::Mutex;
use streamhouse_core::Record;
use streamhouse_metadata::NewTopic;
use streamhouse_storage::jobs::CompactionConfig;
use streamhouse_storage::{StorageConfig, StorageEngine};
use support::{Target, percentile, value_pool};

mod support;

const RECORD_SIZE: usize = 1024;
const PARTITIONS: i32 = 16;
const BATCH: usize = 100;

/// Compaction throughput and its cost to concurrent produce latency.
#[derive(Parser)]
struct Args {
    /// MiB of backlog to compact.
    #[arg(long, default_value_t = 512)]
    mib: u64,
    /// MiB/s of the steady produce running next to compaction.
    #[arg(long, default_value_t = 8.0)]
    rate_mib: f64,
    /// Seconds of the steady produce, alone and during the pass (longer
    /// if the pass takes longer).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

fn latency_summary(mut latencies: Vec<Duration>) -> serde_json::Value {
    latencies.sort();
    serde_json::json!({
        "appends": latencies.len(),
        "p50": percentile(&latencies, 0.50),
        "p99": percentile(&latencies, 0.99),
        "max": percentile(&latencies, 1.0),
    })
}

fn batch(pool: &[Bytes], n: u64) -> Vec<Record> {
    (0..BATCH)
        .map(|i| {
            let k = n as usize * BATCH + i;
            Record::new(k as i64, pool[k % pool.len()].clone())
        })
        .collect()
}

/// Appends of `BATCH` records at `rate_mib` MiB/s to `topic`, spread over
/// the partitions, until `stop` says so. Returns (sent at, latency) of
/// every append.
async fn steady_produce(
    engine: StorageEngine,
    topic: String,
    pool: Arc<Vec<Bytes>>,
    rate_mib: f64,
    stop: impl Fn(Duration) -> bool,
) -> anyhow::Result<Vec<(Instant, Duration)>> {
    let appends_per_s = rate_mib * 1048576.0 / (RECORD_SIZE * BATCH) as f64;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / appends_per_s));
    let results = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    let mut n = 0u64;
    while !stop(started.elapsed()) {
        tick.tick().await;
        let engine = engine.clone();
        let topic = topic.clone();
        let records = batch(&pool, n);
        let partition = (n % PARTITIONS as u64) as i32;
        let results = results.clone();
        tasks.spawn(async move {
            let sent = Instant::now();
            engine.append(&topic, partition, records).await?;
            results.lock().push((sent, sent.elapsed()));
            anyhow::Ok(())
        });
        n += 1;
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let results = std::mem::take(&mut *results.lock());
    Ok(results)
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
    let suffix = ulid::Ulid::generate().to_string().to_lowercase();
    let backlog = format!("backlog-{suffix}");
    let live = format!("live-{suffix}");
    for topic in [&backlog, &live] {
        engine
            .create_topic(NewTopic::new(topic, i64::from(PARTITIONS)))
            .await?;
    }
    let pool = Arc::new(value_pool(RECORD_SIZE));

    // 1. The backlog, at full speed.
    let batches = args.mib * 1048576 / (RECORD_SIZE * BATCH) as u64;
    let started = Instant::now();
    futures::stream::iter(0..batches)
        .map(|n| {
            let engine = engine.clone();
            let backlog = backlog.clone();
            let records = batch(&pool, n);
            async move {
                let partition = (n % PARTITIONS as u64) as i32;
                engine.append(&backlog, partition, records).await
            }
        })
        .buffer_unordered(256)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let backlog_seconds = started.elapsed().as_secs_f64();

    // 2. Steady produce alone.
    let seconds = Duration::from_secs(args.seconds);
    let baseline = steady_produce(
        engine.clone(),
        live.clone(),
        pool.clone(),
        args.rate_mib,
        |elapsed| elapsed >= seconds,
    )
    .await?;

    // 3. The same produce while one pass rewrites everything flushed so far.
    let config = CompactionConfig {
        span: Duration::ZERO,
        ..CompactionConfig::default()
    };
    let before = engine.storage_stats().await?;
    let store_before = engine.object_store_stats();
    let pass_started = Instant::now();
    let pass = {
        let engine = engine.clone();
        let config = config.clone();
        tokio::spawn(async move { engine.compact(&config).await })
    };
    let pass_done = Arc::new(Mutex::new(None::<Instant>));
    let watcher = {
        let pass_done = pass_done.clone();
        tokio::spawn(async move {
            let report = pass.await;
            *pass_done.lock() = Some(Instant::now());
            report
        })
    };
    let during = {
        let pass_done = pass_done.clone();
        steady_produce(
            engine.clone(),
            live.clone(),
            pool.clone(),
            args.rate_mib,
            move |elapsed| elapsed >= seconds && pass_done.lock().is_some(),
        )
        .await?
    };
    let report = watcher.await???;
    let pass_ended = pass_done.lock().context("the pass finished")?;
    let pass_seconds = pass_ended.duration_since(pass_started).as_secs_f64();
    let store_after = engine.object_store_stats();
    let after = engine.storage_stats().await?;
    let during_pass: Vec<Duration> = during
        .iter()
        .filter(|(sent, _)| *sent >= pass_started && *sent < pass_ended)
        .map(|(_, latency)| *latency)
        .collect();
    let check = engine.check_consistency().await?;
    engine.shutdown().await;
    anyhow::ensure!(
        check.is_ok(),
        "consistency check failed: {:?}",
        check.problems
    );

    let mib = |bytes: u64| bytes as f64 / 1048576.0;
    let report = serde_json::json!({
        "benchmark": "compaction",
        "setup": target.setup,
        "parameters": {
            "backlog_mib": args.mib,
            "record_size": RECORD_SIZE,
            "partitions": PARTITIONS,
            "steady_produce_mib_per_s": args.rate_mib,
            "target_bytes": config.target_bytes,
            "compression": config.compression.to_string(),
        },
        "backlog_seconds": backlog_seconds,
        "before": {
            "segment_rows": before.segment_rows,
            "objects": before.objects,
        },
        "pass": {
            "seconds": pass_seconds,
            "rows_replaced": report.rows_replaced,
            "rows_written": report.rows_written,
            "mib_read": mib(report.bytes_read),
            "mib_written": mib(report.bytes_written),
            "mib_per_s_rewritten": mib(report.bytes_read) / pass_seconds,
            "object_gets": store_after.gets - store_before.gets,
            "object_puts": store_after.puts - store_before.puts,
            "conflicts": report.conflicts,
        },
        "after": {
            "segment_rows": after.segment_rows,
            "objects": after.objects,
            "check": { "segment_rows": check.segment_rows, "records": check.records, "ok": true },
        },
        "ack_latency_ms": {
            "baseline": latency_summary(baseline.into_iter().map(|(_, l)| l).collect()),
            "during_compaction": latency_summary(during_pass),
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
