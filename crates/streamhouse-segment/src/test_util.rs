//! Helpers shared by the segment tests.

use bytes::Bytes;
use proptest::prelude::*;
use streamhouse_core::{Header, Record};

use super::{Compression, SegmentWriter};

pub(crate) fn record(
    offset: i64,
    timestamp: i64,
    key: Option<&[u8]>,
    value: &[u8],
    headers: &[(&str, Option<&[u8]>)],
) -> Record {
    Record {
        offset,
        timestamp,
        key: key.map(Bytes::copy_from_slice),
        value: Some(Bytes::copy_from_slice(value)),
        headers: headers
            .iter()
            .map(|(k, v)| Header::new(*k, v.map(Bytes::copy_from_slice)))
            .collect(),
    }
}

/// `count` records from offset `base`, with distinct keys, values of
/// `value_len` bytes, a header on every third and jittery timestamps.
pub(crate) fn records(base: i64, count: usize, value_len: usize) -> Vec<Record> {
    (0..count)
        .map(|i| {
            let value: Vec<u8> = (0..value_len).map(|j| (i * 31 + j) as u8).collect();
            let mut r = record(
                base + i as i64,
                1_700_000_000_000 + (i as i64 * 7) % 50,
                Some(format!("key-{i}").as_bytes()),
                &value,
                &[],
            );
            if i % 3 == 0 {
                r.headers
                    .push(Header::new("trace", Some(Bytes::from(format!("t{i}")))));
            }
            r
        })
        .collect()
}

pub(crate) fn write(codec: Compression, block_size: usize, records: &[Record]) -> Bytes {
    let mut writer = SegmentWriter::with_block_size(codec, block_size);
    for r in records {
        writer.append(r).expect("append");
    }
    writer.finish().expect("finish")
}

/// Recomputes a segment's footer CRC after a deliberate edit, so the test
/// reaches the structural checks behind it.
pub(crate) fn fix_crc(segment: &mut [u8]) {
    let at = segment.len() - 8;
    let crc = crc32c::crc32c(&segment[..at]);
    segment[at..at + 4].copy_from_slice(&crc.to_le_bytes());
}

pub(crate) fn codec() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Lz4),
        Just(Compression::Zstd)
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

/// Records with strictly increasing offsets (any start, gaps included),
/// arbitrary timestamps, keys, values and headers.
pub(crate) fn arb_records(max: usize) -> impl Strategy<Value = Vec<Record>> {
    let fields = (
        1..1_000i64,
        prop_oneof![any::<i64>(), 1_700_000_000_000..1_700_000_100_000i64],
        proptest::option::of(bytes(40)),
        proptest::option::weighted(0.9, bytes(300)),
        proptest::collection::vec(
            (
                any::<String>().prop_map(|s| s.chars().take(8).collect::<String>()),
                proptest::option::of(bytes(20)),
            ),
            0..4,
        ),
    );
    (
        prop_oneof![Just(0i64), 0..1_000_000_000_000i64, Just(i64::MIN)],
        proptest::collection::vec(fields, 0..max),
    )
        .prop_map(|(base, fields)| {
            let mut offset = base;
            let mut out = Vec::with_capacity(fields.len());
            for (i, (gap, timestamp, key, value, headers)) in fields.into_iter().enumerate() {
                if i > 0 {
                    offset = offset.saturating_add(gap);
                }
                if out.last().is_some_and(|r: &Record| r.offset >= offset) {
                    break;
                }
                out.push(Record {
                    offset,
                    timestamp,
                    key,
                    value,
                    headers: headers
                        .into_iter()
                        .map(|(k, v)| Header::new(k, v))
                        .collect(),
                });
            }
            out
        })
}
