//! Key compaction throughput and memory: `--mib` MiB of 1 KiB records
//! whose keys repeat (`--distinct` percent of the records have distinct
//! keys) are produced to one partition of a `cleanup.policy=compact`
//! topic; then a fresh engine runs one compaction pass over all of it.
//!
//! Reported: the pass's time and input MiB/s, records kept, and the
//! resident memory of the process just before the pass and at its peak
//! during the pass (the kernel's high-water mark, reset right before the
//! pass through `/proc/self/clear_refs`), so the difference is what the
//! pass itself held: the key map plus its buffers.
//!
//! Targets come from `STREAMHOUSE_METADATA` and `STREAMHOUSE_OBJECT_STORE`
//! (as for `produce_bench`); without them the run uses the embedded default
//! in a temporary directory. Prints one JSON report.
//!
//! ```text
//! cargo run --release -p streamhouse-storage --example key_compaction_bench -- \
//!     [--mib 1024] [--distinct 1] [--key-map-mib 64]
//! ```

// A development tool: it stops at the first failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use futures::StreamExt;
use streamhouse_core::{Record, TopicConfig};
use streamhouse_metadata::NewTopic;
use streamhouse_storage::jobs::CompactionConfig;
use streamhouse_storage::{StorageConfig, StorageEngine};
use support::{Target, value_pool};

// The latency percentiles there are for the produce benchmarks.
#[allow(dead_code)]
mod support;

/// The allocator `streamhouse serve` runs with, so that the resident
/// figures are the agent's.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// And its options (see `streamhouse-server`'s `main.rs`).
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] =
    b"background_thread:true,dirty_decay_ms:1000,oversize_threshold:1048576\0";

const RECORD_SIZE: usize = 1024;
const BATCH: usize = 100;

#[derive(Parser)]
struct Args {
    /// MiB of records to compact.
    #[arg(long, default_value_t = 1024)]
    mib: u64,
    /// Percent of the records that have distinct keys (the rest repeat
    /// them).
    #[arg(long, default_value_t = 1.0)]
    distinct: f64,
    /// MiB of the key map.
    #[arg(long, default_value_t = 64)]
    key_map_mib: u64,
}

/// A field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim()
                .trim_end_matches(" kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let target = Target::from_env()?;
    let records = args.mib * 1048576 / RECORD_SIZE as u64;
    let keys = ((records as f64 * args.distinct / 100.0).round() as u64).max(1);
    let topic = format!(
        "keyed-{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    let config = TopicConfig::from_pairs([("cleanup.policy", "compact")])?;

    // 1. The records, at full speed.
    let writer = StorageEngine::open(
        &target.metadata_url,
        &target.object_url,
        StorageConfig::default(),
    )
    .await?;
    writer
        .create_topic(NewTopic::new(&topic, 1).with_config(config))
        .await?;
    let pool = Arc::new(value_pool(RECORD_SIZE - 16));
    let started = Instant::now();
    let batches = records.div_ceil(BATCH as u64);
    futures::stream::iter(0..batches)
        .map(|n| {
            let (writer, pool, topic) = (writer.clone(), pool.clone(), topic.clone());
            async move {
                let batch: Vec<Record> = (0..BATCH as u64)
                    .map(|i| {
                        let k = n * BATCH as u64 + i;
                        // Keys spread over the run, so every key has
                        // versions early and late.
                        let key = format!("key-{:012}", k % keys);
                        Record::new(k as i64, pool[(k as usize) % pool.len()].clone())
                            .with_key(Bytes::from(key))
                    })
                    .collect();
                writer.append(&topic, 0, batch).await.map(|_| ())
            }
        })
        .buffer_unordered(64)
        .for_each(|result| async move { result.expect("append") })
        .await;
    let produce_seconds = started.elapsed().as_secs_f64();
    let stats = writer.storage_stats().await?;
    writer.shutdown().await;
    drop(writer);

    // 2. One pass, in a fresh engine, with the peak memory reset first.
    let engine = StorageEngine::open(
        &target.metadata_url,
        &target.object_url,
        StorageConfig::default(),
    )
    .await?;
    // Long enough for the allocator to return what the produce phase
    // freed (it decays over about a second).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_before = status_bytes("VmRSS");
    std::fs::write("/proc/self/clear_refs", "5").context("reset the peak resident set")?;
    let compaction = CompactionConfig {
        span: Duration::ZERO,
        key_map_bytes: args.key_map_mib << 20,
        ..CompactionConfig::default()
    };
    let started = Instant::now();
    let report = engine.compact(&compaction).await?;
    let pass_seconds = started.elapsed().as_secs_f64();
    let peak = status_bytes("VmHWM");
    let check = engine.check_consistency().await?;
    anyhow::ensure!(check.is_ok(), "consistency: {:?}", check.problems);
    let mut kept = 0u64;
    let mut next = 0;
    loop {
        let result = engine.read(&topic, 0, next, 100_000, 64 << 20).await?;
        let Some(last) = result.records.last() else {
            break;
        };
        kept += result.records.len() as u64;
        next = last.offset + 1;
        if next >= result.high_watermark {
            break;
        }
    }
    anyhow::ensure!(kept == keys, "{kept} records kept, {keys} keys");
    engine.shutdown().await;

    let input_mib = mib(stats.bytes.max(0) as u64);
    let report = serde_json::json!({
        "setup": target.setup,
        "records": records,
        "distinct_keys": keys,
        "distinct_percent": args.distinct,
        "key_map_mib": args.key_map_mib,
        "stored_mib_before": input_mib,
        "produce_seconds": produce_seconds,
        "pass_seconds": pass_seconds,
        "key_passes": report.key_passes,
        "input_mib_per_second": input_mib / pass_seconds,
        "records_per_second": records as f64 / pass_seconds,
        "records_kept": kept,
        "records_removed": report.records_removed,
        "mib_written": mib(report.bytes_written),
        "rss_before_pass_mib": mib(rss_before),
        "rss_peak_during_pass_mib": mib(peak),
        "pass_added_mib": mib(peak.saturating_sub(rss_before)),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
