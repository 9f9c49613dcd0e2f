//! Format-level tests: the exact bytes of a known segment.

use super::test_util::record;
use super::*;

/// Three records, uncompressed, base offset 0. Any change to these bytes is
/// a format change and needs a new version.
const GOLDEN_HEX: &str = concat!(
    // header: magic, version 1, codec 0, reserved
    "5348534701000000",
    // base_offset 0, last_offset 2, record_count 3
    "0000000000000000",
    "0200000000000000",
    "0300000000000000",
    // min_timestamp 1_700_000_000_000, max_timestamp +5
    "0068e5cf8b010000",
    "0568e5cf8b010000",
    // block_count 1, reserved
    "0100000000000000",
    // block: uncompressed_len 29, stored_len 29, record_count 3
    "1d0000001d00000003000000",
    // record 0: len 12, Δoff 0, Δts 0, key "k", value "v1", 1 header h=x
    "0c0000026b0376310101680278",
    // record 1: len 8, Δoff 1, Δts zigzag(5)=10, no key, empty value,
    // 1 header h=null
    "08010a000101016800",
    // record 2: len 6, Δoff 2, Δts zigzag(3)=6, key "k", null value,
    // no headers
    "060206026b0000",
    // index: first 0, last 2, first_ts, max_ts, position 56
    "0000000000000000",
    "0200000000000000",
    "0068e5cf8b010000",
    "0568e5cf8b010000",
    "3800000000000000",
    // footer: index_position 97, crc32c, magic
    "6100000000000000",
    "2315524b",
    "53485347",
);

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn golden_records() -> Vec<streamhouse_core::Record> {
    vec![
        record(
            0,
            1_700_000_000_000,
            Some(b"k"),
            b"v1",
            &[("h", Some(b"x"))],
        ),
        record(1, 1_700_000_000_005, None, b"", &[("h", None)]),
        streamhouse_core::Record {
            offset: 2,
            timestamp: 1_700_000_000_003,
            key: Some(bytes::Bytes::from_static(b"k")),
            value: None,
            headers: Vec::new(),
        },
    ]
}

#[test]
fn test_golden_bytes() {
    let mut writer = SegmentWriter::new(Compression::None);
    for r in golden_records() {
        writer.append(&r).unwrap();
    }
    let segment = writer.finish().unwrap();
    let expected = unhex(GOLDEN_HEX);
    assert_eq!(expected.len(), 153);
    assert_eq!(segment.as_ref(), expected.as_slice());
}

#[test]
fn test_golden_bytes_decode() {
    let reader = SegmentReader::new(bytes::Bytes::from(unhex(GOLDEN_HEX))).unwrap();
    assert_eq!(reader.read_all().unwrap(), golden_records());
}

#[test]
fn test_compression_names() {
    for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
        assert_eq!(codec.to_string().parse::<Compression>().unwrap(), codec);
        assert_eq!(Compression::from_u8(codec.as_u8()).unwrap(), codec);
    }
    assert_eq!("LZ4".parse::<Compression>().unwrap(), Compression::Lz4);
    assert_eq!(Compression::Zstd.to_string(), "zstd");
    assert_eq!(
        "snappy".parse::<Compression>().unwrap_err().input,
        "snappy".to_owned()
    );
    assert!(matches!(
        Compression::from_u8(3),
        Err(SegmentError::UnknownCompression { codec: 3 })
    ));
}

#[test]
fn test_header_encode_decode() {
    let header = SegmentHeader {
        version: VERSION,
        compression: Compression::Zstd,
        base_offset: 10,
        last_offset: 20,
        record_count: 7,
        min_timestamp: -5,
        max_timestamp: 99,
        block_count: 3,
    };
    assert_eq!(SegmentHeader::decode(&header.encode()).unwrap(), header);
    assert!(matches!(
        SegmentHeader::decode(&header.encode()[..55]),
        Err(SegmentError::Truncated {
            needed: 56,
            available: 55
        })
    ));
    let mut bad = header.encode();
    bad[4] = 2;
    assert!(matches!(
        SegmentHeader::decode(&bad),
        Err(SegmentError::UnsupportedVersion { version: 2 })
    ));
}

#[test]
fn test_types_are_send_and_sync() {
    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send::<SegmentWriter>();
    assert_send_sync::<SegmentReader>();
    assert_send_sync::<SegmentError>();
    assert_send::<BatchObjectBuilder>();
}

#[test]
fn segments_are_placed_at_their_rows_offsets() {
    let write = |offsets: &[i64]| {
        let mut writer = SegmentWriter::new(Compression::None);
        for &offset in offsets {
            writer
                .append(&record(offset, 1_000 + offset, Some(b"k"), b"v", &[]))
                .unwrap();
        }
        SegmentReader::new(writer.finish().unwrap()).unwrap()
    };
    let offsets = |reader: &SegmentReader, from: i64| -> Vec<i64> {
        reader.iter_from(from).map(|r| r.unwrap().offset).collect()
    };
    // A flushed segment (offsets from 0) moves to its row's offsets.
    let flushed = write(&[0, 1, 2]).placed_at(100);
    assert_eq!(offsets(&flushed, 0), [100, 101, 102]);
    // Compaction output keeps each record's offset, gaps included, even
    // when its first record comes after its row's first offset.
    let compacted = write(&[103, 107, 110]).placed_at(100);
    assert_eq!(offsets(&compacted, 0), [103, 107, 110]);
    // A read from inside a gap starts at the next record.
    assert_eq!(offsets(&compacted, 104), [107, 110]);
    assert_eq!(offsets(&compacted, 111), Vec::<i64>::new());
    // Output of compaction starting at offset 0 reads the same either way.
    assert_eq!(offsets(&write(&[0, 5]).placed_at(0), 0), [0, 5]);
}
