//! SegmentIndex lookups that hit, with 100,000 segments in one partition
//! (read forward, as a consumer does, and at random offsets) and spread over
//! 1,000 partitions.

// A benchmark: it stops at the first failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use rand::RngExt;
use streamhouse_metadata::{MetadataError, SegmentInfo};
use streamhouse_storage::segment_index::SegmentSource;
use streamhouse_storage::{IndexedSegment, SegmentIndex, SegmentIndexConfig};

const SEGMENTS: i64 = 100_000;
const RECORDS_PER_SEGMENT: i64 = 100;

/// Never consulted: every lookup in this benchmark hits.
struct NoSource;

#[async_trait]
impl SegmentSource for NoSource {
    async fn segments_from(
        &self,
        _topic: &str,
        _partition: i32,
        _from_offset: i64,
        _limit: usize,
    ) -> Result<Vec<SegmentInfo>, MetadataError> {
        panic!("a hit must not query the metadata store")
    }
}

fn segment(base_offset: i64, object: &Arc<str>) -> IndexedSegment {
    IndexedSegment {
        base_offset,
        end_offset: base_offset + RECORDS_PER_SEGMENT - 1,
        record_count: RECORDS_PER_SEGMENT,
        object: object.clone(),
        byte_offset: 0,
        byte_length: 1,
        min_timestamp: 0,
        max_timestamp: 0,
        transaction: None,
    }
}

fn index() -> SegmentIndex {
    SegmentIndex::with_source(
        Arc::new(NoSource),
        SegmentIndexConfig {
            ttl: std::time::Duration::from_secs(3600),
            max_segments: SEGMENTS as usize,
        },
    )
}

fn bench(c: &mut Criterion) {
    let object: Arc<str> = Arc::from("batches/x.bin");
    let one_partition = index();
    for i in 0..SEGMENTS {
        one_partition.insert("orders", 0, segment(i * RECORDS_PER_SEGMENT, &object));
    }
    let spread = index();
    for p in 0..1000 {
        for i in 0..SEGMENTS / 1000 {
            spread.insert("orders", p, segment(i * RECORDS_PER_SEGMENT, &object));
        }
    }
    let mut rng = rand::rng();
    let offsets: Vec<i64> = (0..4096)
        .map(|_| rng.random_range(0..SEGMENTS * RECORDS_PER_SEGMENT))
        .collect();
    let partitions: Vec<i32> = (0..4096).map(|_| rng.random_range(0..1000)).collect();

    let mut group = c.benchmark_group("segment_index_lookup");
    // A consumer reads forward: each lookup lands near the previous one.
    let mut next = 0;
    group.bench_function("100k_segments_sequential", |b| {
        b.iter(|| {
            next = (next + RECORDS_PER_SEGMENT / 2) % (SEGMENTS * RECORDS_PER_SEGMENT);
            black_box(one_partition.lookup_cached("orders", 0, next).expect("hit"))
        })
    });
    let mut i = 0;
    group.bench_function("100k_segments_random", |b| {
        b.iter(|| {
            i = (i + 1) % offsets.len();
            black_box(
                one_partition
                    .lookup_cached("orders", 0, offsets[i])
                    .expect("hit"),
            )
        })
    });
    group.bench_function("100k_segments_1000_partitions", |b| {
        b.iter(|| {
            i = (i + 1) % offsets.len();
            let offset = offsets[i] % (SEGMENTS / 1000 * RECORDS_PER_SEGMENT);
            black_box(
                spread
                    .lookup_cached("orders", partitions[i], offset)
                    .expect("hit"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
