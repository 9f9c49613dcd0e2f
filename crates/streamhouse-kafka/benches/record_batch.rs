//! Kafka record batch v2 on the hot paths: decoding what producers send
//! (each of the four codecs and uncompressed, CRC checked) into
//! StreamHouse records, and encoding records into the batch a Fetch
//! answer carries.
//!
//! One batch holds 1,000 records of 1 KiB JSON-like values with a short key
//! and one header, about what librdkafka sends with its default batch size.

// A benchmark: it stops at the first failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kafka_protocol::records::{Compression, TimestampType};
use streamhouse_core::Record;
use streamhouse_kafka::records::{BatchLimits, decode_produced, encode_batch, encode_records};

const RECORDS: usize = 1000;
const VALUE_LEN: usize = 1024;

fn value(i: usize) -> Bytes {
    let text = format!(
        "{{\"order\":{i},\"customer\":\"c-{}\",\"amount\":{}.{:02},\"items\":[{}]}}",
        i % 97,
        i * 7 % 1000,
        i % 100,
        "{\"sku\":\"A-1\",\"qty\":1},".repeat(40)
    );
    Bytes::from(
        text.into_bytes()
            .into_iter()
            .cycle()
            .take(VALUE_LEN)
            .collect::<Vec<u8>>(),
    )
}

fn records() -> Vec<Record> {
    (0..RECORDS)
        .map(|i| {
            Record::new(1_700_000_000_000 + i as i64, value(i))
                .with_key(Bytes::from(format!("key-{i}")))
                .with_header("trace", Some(Bytes::from_static(b"abc123")))
                .with_offset(i as i64)
        })
        .collect()
}

/// A batch as a producer sends it: offsets from zero, CreateTime stamps.
fn produced_batch(records: &[Record], compression: Compression) -> Bytes {
    encode_records(records, TimestampType::Creation, compression)
        .expect("encoding a record batch in memory")
}

fn payload_bytes(records: &[Record]) -> u64 {
    records.iter().map(|r| r.payload_size() as u64).sum()
}

fn decode(c: &mut Criterion) {
    let records = records();
    let mut group = c.benchmark_group("produce_decode");
    group.throughput(Throughput::Bytes(payload_bytes(&records)));
    for (name, compression) in [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ] {
        let batch = produced_batch(&records, compression);
        group.bench_with_input(BenchmarkId::from_parameter(name), &batch, |b, batch| {
            b.iter(|| {
                let decoded = decode_produced(batch.clone(), &BatchLimits::UNLIMITED)
                    .expect("a valid batch decodes");
                black_box(decoded.record_count())
            })
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let records = records();
    let mut group = c.benchmark_group("fetch_encode");
    group.throughput(Throughput::Bytes(payload_bytes(&records)));
    group.bench_function("none", |b| {
        b.iter(|| black_box(encode_batch(black_box(&records), false).expect("records encode")))
    });
    group.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
