//! One flush commit: the metadata transaction that assigns offsets to a
//! flushed object's segments and inserts their rows. Measured with 1 and
//! 16 partitions per flush on the embedded SQLite store, and on PostgreSQL
//! when `STREAMHOUSE_TEST_POSTGRES_URL` names a server (each run in a fresh
//! schema).
//!
//! ```sh
//! cargo bench -p streamhouse-metadata --bench flush_commit
//! STREAMHOUSE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo bench -p streamhouse-metadata --bench flush_commit
//! ```

// A benchmark: it stops at the first failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use streamhouse_metadata::testing::{POSTGRES_URL_ENV, isolated_postgres_at, temp_sqlite};
use streamhouse_metadata::{FlushCommit, MetadataStore, NewTopic, PendingSegment};
use tokio::runtime::Runtime;

const TOPIC: &str = "bench";
const PARTITIONS: i32 = 16;

fn flush(partitions: i32, sequence: u64) -> FlushCommit {
    FlushCommit {
        bucket: "bench".into(),
        key: format!("batches/{sequence:020}.bin"),
        created_at: 1_700_000_000_000 + sequence as i64,
        segments: (0..partitions)
            .map(|partition| PendingSegment {
                topic: TOPIC.into(),
                partition,
                record_count: 500,
                size_bytes: 512 * 1024,
                byte_offset: i64::from(partition) * 512 * 1024,
                byte_length: 512 * 1024,
                min_timestamp: 1_700_000_000_000,
                max_timestamp: 1_700_000_000_050,
                producer: None,
                marker: None,
            })
            .collect(),
    }
}

fn bench_store(c: &mut Criterion, rt: &Runtime, backend: &str, store: Arc<dyn MetadataStore>) {
    rt.block_on(store.create_topic(NewTopic::new(TOPIC, i64::from(PARTITIONS))))
        .expect("create the bench topic");
    let sequence = AtomicU64::new(0);
    let mut group = c.benchmark_group(format!("flush_commit/{backend}"));
    for partitions in [1, PARTITIONS] {
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(
            BenchmarkId::new("partitions", partitions),
            &partitions,
            |b, &partitions| {
                b.iter(|| {
                    let commit = flush(partitions, sequence.fetch_add(1, Ordering::Relaxed));
                    rt.block_on(store.commit_flush(&commit))
                        .expect("flush commit")
                })
            },
        );
    }
    group.finish();
}

fn flush_commit(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let sqlite = rt.block_on(temp_sqlite()).expect("temporary SQLite store");
    let store: Arc<dyn MetadataStore> = Arc::new(sqlite.store.clone());
    bench_store(c, &rt, "sqlite", store);
    match std::env::var(POSTGRES_URL_ENV) {
        Ok(url) if !url.is_empty() => {
            let store = rt
                .block_on(isolated_postgres_at(&url, "bench_flush_commit"))
                .unwrap_or_else(|e| panic!("cannot prepare PostgreSQL at {url}: {e}"));
            bench_store(c, &rt, "postgres", Arc::new(store));
        }
        _ => eprintln!(
            "\n*** flush_commit/postgres NOT MEASURED: set {POSTGRES_URL_ENV} to a PostgreSQL URL ***\n"
        ),
    }
}

criterion_group!(benches, flush_commit);
criterion_main!(benches);
