//! Segment encode and decode throughput on 1 KiB records, per codec.
//!
//! Values are random bytes (incompressible: the codecs' worst case for
//! throughput) in one group and repetitive JSON-like text in another.

// A benchmark: it stops at the first failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::RngExt;
use streamhouse_core::Record;
use streamhouse_storage::{Compression, SegmentReader, SegmentWriter};

const RECORDS: usize = 1024;
const VALUE_LEN: usize = 1024;

fn records(compressible: bool) -> Vec<Record> {
    let mut rng = rand::rng();
    (0..RECORDS)
        .map(|i| {
            let value: Vec<u8> = if compressible {
                format!(
                    "{{\"order\":{i},\"customer\":\"c-{}\",\"items\":[{}]}}",
                    i % 97,
                    "{\"sku\":\"A-1\",\"qty\":1},".repeat(40)
                )
                .into_bytes()
                .into_iter()
                .cycle()
                .take(VALUE_LEN)
                .collect()
            } else {
                (0..VALUE_LEN).map(|_| rng.random()).collect()
            };
            Record::new(1_700_000_000_000 + i as i64, Bytes::from(value))
                .with_key(Bytes::from(format!("key-{i}")))
                .with_offset(i as i64)
        })
        .collect()
}

fn encode(records: &[Record], compression: Compression) -> Bytes {
    let mut writer = SegmentWriter::new(compression);
    for record in records {
        writer.append(record).expect("append");
    }
    writer.finish().expect("finish")
}

fn bench(c: &mut Criterion) {
    for (data, compressible) in [("random", false), ("text", true)] {
        let input = records(compressible);
        let bytes: u64 = input.iter().map(|r| r.payload_size() as u64).sum();
        let mut group = c.benchmark_group(format!("segment_encode_{data}"));
        group.throughput(Throughput::Bytes(bytes));
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
            group.bench_with_input(
                BenchmarkId::from_parameter(compression),
                &compression,
                |b, &compression| b.iter(|| black_box(encode(&input, compression))),
            );
        }
        group.finish();

        let mut group = c.benchmark_group(format!("segment_decode_{data}"));
        group.throughput(Throughput::Bytes(bytes));
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let segment = encode(&input, compression);
            group.bench_with_input(
                BenchmarkId::from_parameter(compression),
                &segment,
                |b, segment| {
                    b.iter(|| {
                        let reader = SegmentReader::new(segment.clone()).expect("valid");
                        black_box(reader.read_all().expect("decode"))
                    })
                },
            );
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
