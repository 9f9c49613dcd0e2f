use bytes::Bytes;
use proptest::prelude::*;
use streamhouse_core::Record;

use super::super::test_util::{arb_records, codec, fix_crc, record, records, write};
use super::super::{
    BLOCK_HEADER_LEN, Compression, DEFAULT_BLOCK_SIZE, FOOTER_LEN, HEADER_LEN, SegmentError,
    SegmentWriter,
};
use super::SegmentReader;

const CODECS: [Compression; 3] = [Compression::None, Compression::Lz4, Compression::Zstd];

fn open(segment: Bytes) -> SegmentReader {
    SegmentReader::new(segment).expect("valid segment")
}

fn from_offset(input: &[Record], offset: i64) -> Vec<Record> {
    input
        .iter()
        .filter(|r| r.offset >= offset)
        .cloned()
        .collect()
}

/// Damages the first record of block `block` of an uncompressed segment
/// (its offset delta becomes 1, which no first record may have) and fixes
/// up the CRC, so only decoding that block can notice.
fn damage_block(segment: &Bytes, reader: &SegmentReader, block: usize) -> Bytes {
    let mut bytes = segment.to_vec();
    let payload = reader.blocks()[block].position as usize + BLOCK_HEADER_LEN;
    assert!(bytes[payload] < 0x80, "one-byte record length");
    bytes[payload + 1] = 1;
    fix_crc(&mut bytes);
    Bytes::from(bytes)
}

#[test]
fn test_roundtrip_single_record() {
    for codec in CODECS {
        let input = vec![record(
            7,
            1_700_000_000_123,
            Some(b"user-1"),
            b"{\"clicks\": 3}",
            &[("content-type", Some(b"application/json"))],
        )];
        let reader = open(write(codec, DEFAULT_BLOCK_SIZE, &input));
        assert_eq!(reader.record_count(), 1);
        assert_eq!(reader.len(), reader.data().len());
        assert!(!reader.is_empty());
        assert_eq!(reader.header().compression, codec);
        assert_eq!((reader.base_offset(), reader.last_offset()), (7, 7));
        assert_eq!(reader.read_all().unwrap(), input);
        assert_eq!(reader.read_from(7).unwrap(), input);
        assert_eq!(reader.read_from(8).unwrap(), vec![]);
        assert_eq!(reader.block_records(0).unwrap(), input);
    }
}

#[test]
fn test_roundtrip_multiple_records() {
    let input = records(1_000, 500, 100);
    for codec in CODECS {
        let reader = open(write(codec, 4096, &input));
        assert_eq!(reader.record_count(), 500);
        assert_eq!(reader.header().record_count, 500);
        assert_eq!((reader.base_offset(), reader.last_offset()), (1_000, 1_499));
        assert!(reader.blocks().len() > 10);
        assert_eq!(reader.read_all().unwrap(), input);
        let collected: Vec<_> = reader.iter_from(i64::MIN).map(Result::unwrap).collect();
        assert_eq!(collected, input);
        let by_block: Vec<_> = (0..reader.blocks().len())
            .flat_map(|b| reader.block_records(b).unwrap())
            .collect();
        assert_eq!(by_block, input);
    }
}

#[test]
fn test_read_from_offset() {
    // Gapped offsets 100, 103, 106, ... across many 256-byte blocks.
    let input: Vec<_> = records(0, 200, 30)
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.with_offset(100 + 3 * i as i64))
        .collect();
    let first = input[0].offset;
    let last = input[199].offset;
    for codec in CODECS {
        let segment = write(codec, 256, &input);
        let reader = open(segment.clone());
        assert!(reader.blocks().len() > 20, "{}", reader.blocks().len());
        assert_eq!(reader.read_from(first).unwrap(), input);
        assert_eq!(reader.read_from(first - 50).unwrap(), input);
        assert_eq!(reader.read_from(i64::MIN).unwrap(), input);
        assert_eq!(reader.read_from(last).unwrap(), vec![input[199].clone()]);
        assert_eq!(reader.read_from(last + 1).unwrap(), vec![]);
        assert_eq!(reader.read_from(i64::MAX).unwrap(), vec![]);
        assert_eq!(reader.read_from(400).unwrap(), input[100..].to_vec());
        // Offsets in a gap start at the next record.
        assert_eq!(reader.read_from(401).unwrap(), input[101..].to_vec());
        for offset in (first - 2..=last + 2).step_by(7) {
            assert_eq!(
                reader.read_from(offset).unwrap(),
                from_offset(&input, offset)
            );
            let lazy: Vec<_> = reader.iter_from(offset).map(Result::unwrap).collect();
            assert_eq!(lazy, from_offset(&input, offset));
        }
    }

    // The index is used: with every block but the last damaged (CRC fixed
    // up), reads that start in the last block still succeed, while a read
    // that has to decode an earlier block fails.
    let segment = write(Compression::None, 256, &input);
    let reader = open(segment.clone());
    let blocks = reader.blocks().len();
    let mut damaged = segment;
    for block in 0..blocks - 1 {
        damaged = damage_block(&damaged, &reader, block);
    }
    let damaged = open(damaged);
    let last_block = damaged.blocks()[blocks - 1];
    let tail = from_offset(&input, last_block.first_offset);
    assert!(!tail.is_empty());
    assert_eq!(damaged.read_from(last_block.first_offset).unwrap(), tail);
    assert_eq!(damaged.read_from(last).unwrap(), vec![input[199].clone()]);
    let lazy: Vec<_> = damaged
        .iter_from(last_block.first_offset)
        .map(Result::unwrap)
        .collect();
    assert_eq!(lazy, tail);
    assert!(matches!(
        damaged.read_all(),
        Err(SegmentError::Corrupt {
            what: "first record does not start the block",
            ..
        })
    ));
    // A gap offset just before the last block still starts there...
    assert_eq!(
        damaged.read_from(last_block.first_offset - 1).unwrap(),
        tail
    );
    // ...but the previous block's last record needs that damaged block.
    let previous = damaged.blocks()[blocks - 2];
    assert!(damaged.read_from(previous.last_offset).is_err());
}

#[test]
fn test_iter_from_stops_after_error() {
    let input = records(0, 100, 30);
    let segment = write(Compression::None, 256, &input);
    let reader = open(segment.clone());
    let damaged = open(damage_block(&segment, &reader, 2));
    let before = damaged.blocks()[2].first_offset as usize;
    let mut iter = damaged.iter_from(0);
    for expected in &input[..before] {
        assert_eq!(&iter.next().unwrap().unwrap(), expected);
    }
    assert!(matches!(
        iter.next(),
        Some(Err(SegmentError::Corrupt { .. }))
    ));
    assert!(iter.next().is_none());
    assert!(iter.next().is_none());
}

#[test]
fn test_roundtrip_with_lz4() {
    let input = records(0, 1_000, 256);
    let segment = write(Compression::Lz4, 32 * 1024, &input);
    let reader = open(segment.clone());
    assert_eq!(reader.header().compression, Compression::Lz4);
    assert_eq!(segment[5], 1);
    assert_eq!(reader.read_all().unwrap(), input);
    assert_eq!(reader.read_from(777).unwrap(), input[777..].to_vec());
}

#[test]
fn test_roundtrip_with_zstd() {
    let input = records(50, 1_000, 256);
    let segment = write(Compression::Zstd, 32 * 1024, &input);
    let reader = open(segment.clone());
    assert_eq!(reader.header().compression, Compression::Zstd);
    assert_eq!(segment[5], 2);
    assert!(segment.len() < input.len() * 256);
    assert_eq!(reader.read_all().unwrap(), input);
    assert_eq!(reader.read_from(1_000).unwrap(), input[950..].to_vec());
}

#[test]
fn test_roundtrip_null_and_empty_keys_and_headers() {
    let input = vec![
        record(0, 1, None, b"no key", &[]),
        record(1, 2, Some(b""), b"empty key", &[]),
        record(2, 3, Some(b"k"), b"", &[]),
        record(
            3,
            4,
            None,
            b"",
            &[
                ("null", None),
                ("empty", Some(b"")),
                ("", Some(b"v")),
                ("", None),
            ],
        ),
        record(
            4,
            5,
            Some(b""),
            b"x",
            &[("dup", Some(b"1")), ("dup", Some(b"2"))],
        ),
        record(5, 6, None, b"", &[("ünïcødé ✓", Some(b"\x00\xff"))]),
    ];
    for codec in CODECS {
        let read = open(write(codec, DEFAULT_BLOCK_SIZE, &input))
            .read_all()
            .unwrap();
        assert_eq!(read, input);
        assert_eq!(read[0].key, None);
        assert_eq!(read[1].key, Some(Bytes::new()));
        assert_eq!(read[3].headers[0].value, None);
        assert_eq!(read[3].headers[1].value, Some(Bytes::new()));
    }
}

#[test]
fn test_uncompressed_values_are_zero_copy() {
    let input = records(0, 50, 100);
    let segment = write(Compression::None, 1024, &input);
    let range = segment.as_ptr() as usize..segment.as_ptr() as usize + segment.len();
    let reader = open(segment.clone());
    for r in reader.read_all().unwrap() {
        let value = r.value.unwrap();
        let at = value.as_ptr() as usize;
        assert!(range.contains(&at) && at + value.len() <= range.end);
        let key = r.key.unwrap();
        assert!(range.contains(&(key.as_ptr() as usize)));
        for h in r.headers {
            assert!(range.contains(&(h.value.unwrap().as_ptr() as usize)));
        }
    }
    // Compressed: all values of a block share the block's one buffer.
    let reader = open(write(Compression::Lz4, 1024, &input));
    let block = reader.block_records(0).unwrap();
    assert!(block.len() > 2);
    let start = block[0].value.as_ref().unwrap().as_ptr() as usize;
    for r in &block {
        let at = r.value.as_ref().unwrap().as_ptr() as usize;
        assert!(at > start.saturating_sub(1024) && at < start + 1024);
    }
}

#[test]
fn test_invalid_magic() {
    let segment = write(Compression::None, DEFAULT_BLOCK_SIZE, &records(0, 3, 10));
    let mut bad_head = segment.to_vec();
    bad_head[..4].copy_from_slice(b"XXXX");
    assert!(matches!(
        SegmentReader::new(Bytes::from(bad_head)),
        Err(SegmentError::BadMagic { found }) if &found == b"XXXX"
    ));
    let mut bad_tail = segment.to_vec();
    let n = bad_tail.len();
    bad_tail[n - 4..].copy_from_slice(b"SHBO");
    assert!(matches!(
        SegmentReader::new(Bytes::from(bad_tail)),
        Err(SegmentError::BadMagic { found }) if &found == b"SHBO"
    ));
    assert!(matches!(
        SegmentReader::new(Bytes::from(vec![0u8; 100])),
        Err(SegmentError::BadMagic {
            found: [0, 0, 0, 0]
        })
    ));
}

#[test]
fn test_crc_mismatch_on_any_flipped_byte() {
    let input = vec![
        record(0, 10, Some(b"k"), b"v", &[("h", Some(b"x"))]),
        record(1, 5, None, b"value", &[]),
        record(5, 20, Some(b""), b"", &[("n", None)]),
    ];
    for codec in CODECS {
        let segment = write(codec, 16, &input);
        assert_eq!(open(segment.clone()).read_all().unwrap(), input);
        for position in 0..segment.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut bytes = segment.to_vec();
                bytes[position] ^= mask;
                match SegmentReader::new(Bytes::from(bytes)) {
                    Err(SegmentError::CrcMismatch { .. } | SegmentError::BadMagic { .. }) => {}
                    other => panic!("{codec}: byte {position} ^ {mask:#x}: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn test_truncation_at_every_length() {
    let input = records(3, 20, 16);
    for codec in CODECS {
        for segment in [
            write(codec, 64, &input),
            SegmentWriter::new(codec).finish().unwrap(),
        ] {
            for len in 0..segment.len() {
                match SegmentReader::new(segment.slice(..len)) {
                    Err(SegmentError::Truncated { needed, available }) => {
                        assert_eq!((needed, available), (HEADER_LEN + FOOTER_LEN, len));
                    }
                    Err(SegmentError::BadMagic { .. } | SegmentError::CrcMismatch { .. }) => {
                        assert!(len >= HEADER_LEN + FOOTER_LEN);
                    }
                    other => panic!("{codec}: length {len}: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn test_with_base_offset_rebases() {
    // Written with placeholder offsets starting at 0, served at 1_000.
    let input: Vec<_> = [0i64, 1, 3, 4, 9, 10, 11, 20]
        .iter()
        .enumerate()
        .map(|(i, &o)| record(o, 100 + i as i64, None, format!("v{o}").as_bytes(), &[]))
        .collect();
    let rebased: Vec<_> = input
        .iter()
        .map(|r| r.clone().with_offset(r.offset + 1_000))
        .collect();
    for codec in CODECS {
        let reader = open(write(codec, 16, &input)).with_base_offset(1_000);
        assert_eq!(reader.header().base_offset, 0);
        assert_eq!(reader.header().last_offset, 20);
        assert_eq!(reader.blocks()[0].first_offset, 0);
        assert_eq!((reader.base_offset(), reader.last_offset()), (1_000, 1_020));
        assert_eq!(reader.read_all().unwrap(), rebased);
        assert_eq!(reader.read_from(1_004).unwrap(), rebased[3..].to_vec());
        assert_eq!(reader.read_from(1_005).unwrap(), rebased[4..].to_vec());
        // Stored coordinates mean nothing to a rebased reader.
        assert_eq!(reader.read_from(4).unwrap(), rebased);
        assert_eq!(reader.read_from(1_021).unwrap(), vec![]);
        let lazy: Vec<_> = reader.iter_from(1_010).map(Result::unwrap).collect();
        assert_eq!(lazy, rebased[5..].to_vec());
        assert_eq!(reader.offset_for_timestamp(104).unwrap(), Some(1_009));
        let by_block: Vec<_> = (0..reader.blocks().len())
            .flat_map(|b| reader.block_records(b).unwrap())
            .collect();
        assert_eq!(by_block, rebased);

        // Rebasing downwards, and again on an already rebased reader.
        let down = reader.clone().with_base_offset(-5);
        assert_eq!((down.base_offset(), down.last_offset()), (-5, 15));
        assert_eq!(down.read_from(-1).unwrap()[0].offset, -1);
        assert_eq!(down.read_from(i64::MIN).unwrap().len(), input.len());
        // Extreme shifts stay panic-free.
        let far = reader.clone().with_base_offset(i64::MAX - 20);
        assert_eq!(far.last_offset(), i64::MAX);
        assert_eq!(far.read_from(i64::MAX).unwrap().len(), 1);
        assert_eq!(far.read_from(i64::MIN).unwrap().len(), input.len());
        let low = reader.with_base_offset(i64::MIN);
        assert_eq!(low.read_from(i64::MAX).unwrap(), vec![]);
        assert_eq!(low.read_all().unwrap()[0].offset, i64::MIN);
    }
}

#[test]
fn test_offset_for_timestamp_non_monotonic() {
    let timestamps = [100i64, 50, 300, 200, 150, 400, 120, 90, 390, 10, 250, 260];
    let input: Vec<_> = timestamps
        .iter()
        .enumerate()
        .map(|(i, &t)| record(10 + 2 * i as i64, t, None, b"payload", &[]))
        .collect();
    let expected = |t: i64| input.iter().find(|r| r.timestamp >= t).map(|r| r.offset);
    for codec in CODECS {
        for block_size in [1, 32, DEFAULT_BLOCK_SIZE] {
            let reader = open(write(codec, block_size, &input));
            for t in (i64::MIN..=i64::MIN).chain(-5..=410).chain([i64::MAX]) {
                assert_eq!(
                    reader.offset_for_timestamp(t).unwrap(),
                    expected(t),
                    "t={t}"
                );
            }
        }
    }
    assert_eq!(expected(301), Some(20));
    assert_eq!(expected(401), None);

    // Blocks whose max timestamp is below the target are skipped without
    // decoding: damage them and the lookup still works.
    let segment = write(Compression::None, 1, &input);
    let reader = open(segment.clone());
    let mut damaged = segment;
    for (block, entry) in reader.blocks().iter().enumerate() {
        if entry.max_timestamp < 395 {
            damaged = damage_block(&damaged, &reader, block);
        }
    }
    let damaged = open(damaged);
    assert_eq!(damaged.offset_for_timestamp(395).unwrap(), Some(20));
    assert_eq!(damaged.offset_for_timestamp(1_000).unwrap(), None);
    assert!(damaged.offset_for_timestamp(0).is_err());
}

#[test]
fn test_empty_segment_roundtrip() {
    for codec in CODECS {
        let segment = SegmentWriter::new(codec).finish().unwrap();
        assert_eq!(segment.len(), HEADER_LEN + FOOTER_LEN);
        let reader = open(segment);
        assert_eq!(reader.record_count(), 0);
        assert_eq!(reader.len(), HEADER_LEN + FOOTER_LEN);
        assert!(reader.is_empty());
        assert!(reader.blocks().is_empty());
        assert_eq!(reader.header().compression, codec);
        assert_eq!((reader.base_offset(), reader.last_offset()), (0, -1));
        assert_eq!(reader.read_all().unwrap(), vec![]);
        assert_eq!(reader.read_from(0).unwrap(), vec![]);
        assert!(reader.iter_from(i64::MIN).next().is_none());
        assert_eq!(reader.offset_for_timestamp(i64::MIN).unwrap(), None);
        assert!(matches!(
            reader.block_records(0),
            Err(SegmentError::BlockOutOfRange {
                block: 0,
                block_count: 0
            })
        ));
        let rebased = reader.with_base_offset(77);
        assert_eq!((rebased.base_offset(), rebased.last_offset()), (77, 76));
    }
}

#[test]
fn test_block_records_out_of_range() {
    let reader = open(write(Compression::Zstd, 64, &records(0, 10, 20)));
    let blocks = reader.blocks().len();
    assert!(matches!(
        reader.block_records(blocks),
        Err(SegmentError::BlockOutOfRange { block, block_count }) if block == blocks && block_count == blocks
    ));
}

/// Edits that keep the CRC valid are caught by the structural checks.
#[test]
fn test_corrupt_with_valid_crc() {
    let input = vec![
        record(0, 1_000, Some(b"k"), b"v1", &[("h", Some(b"x"))]),
        record(1, 1_005, None, b"", &[("h", None)]),
    ];
    let segment = write(Compression::None, DEFAULT_BLOCK_SIZE, &input).to_vec();
    let block = HEADER_LEN;
    let payload = block + BLOCK_HEADER_LEN;
    let index = segment.len() - FOOTER_LEN - 40;
    let edit = |at: usize, bytes: &[u8]| {
        let mut s = segment.clone();
        s[at..at + bytes.len()].copy_from_slice(bytes);
        fix_crc(&mut s);
        SegmentReader::new(Bytes::from(s)).and_then(|r| r.read_all())
    };
    let corrupt = |result: Result<Vec<Record>, SegmentError>| {
        assert!(
            matches!(result, Err(SegmentError::Corrupt { .. })),
            "{result:?}"
        );
    };
    assert!(matches!(
        edit(4, &[2]),
        Err(SegmentError::UnsupportedVersion { version: 2 })
    ));
    assert!(matches!(
        edit(5, &[9]),
        Err(SegmentError::UnknownCompression { codec: 9 })
    ));
    corrupt(edit(6, &[1])); // reserved
    corrupt(edit(52, &[1])); // reserved
    corrupt(edit(8, &[5])); // header base offset
    corrupt(edit(24, &[3])); // header record count
    corrupt(edit(40, &[0])); // header max timestamp
    corrupt(edit(48, &[2])); // block count
    corrupt(edit(block, &[99])); // uncompressed_len
    corrupt(edit(block, &[0xff, 0xff, 0xff, 0x7f])); // huge uncompressed_len
    corrupt(edit(block + 4, &[21])); // stored_len
    corrupt(edit(block + 8, &[1])); // block record count below header's
    corrupt(edit(block + 8, &[3])); // more records than offsets
    corrupt(edit(payload, &[0x0d])); // record length
    corrupt(edit(payload, &[0x8c])); // record length varint runs on
    corrupt(edit(payload + 1, &[1])); // first offset delta
    corrupt(edit(payload + 2, &[2])); // first timestamp delta
    corrupt(edit(payload + 3, &[9])); // key overruns record
    corrupt(edit(payload + 10, &[0xff])); // header name not UTF-8
    corrupt(edit(payload + 13 + 1, &[0])); // second offset not increasing
    corrupt(edit(payload + 13 + 1, &[2])); // beyond block last offset
    corrupt(edit(payload + 13 + 5, &[9])); // header count exceeds record
    corrupt(edit(index + 8, &[2])); // index last offset
    corrupt(edit(index + 24, &[0x06])); // index max timestamp
    corrupt(edit(index + 32, &[57])); // index position
    corrupt(edit(segment.len() - FOOTER_LEN, &[0x5b])); // index_position
}

#[test]
fn test_corrupt_compressed_payload_with_valid_crc() {
    let input = records(0, 50, 100);
    for codec in [Compression::Lz4, Compression::Zstd] {
        let segment = write(codec, DEFAULT_BLOCK_SIZE, &input).to_vec();
        let payload = HEADER_LEN + BLOCK_HEADER_LEN;
        // Claimed uncompressed length one byte short of the real one.
        let mut short = segment.clone();
        short[HEADER_LEN] = short[HEADER_LEN].wrapping_sub(1);
        fix_crc(&mut short);
        match open(Bytes::from(short)).read_all() {
            Err(SegmentError::Decompress { codec: c, .. }) => assert_eq!(c, codec),
            Err(SegmentError::Corrupt { .. }) => {}
            other => panic!("{codec}: {other:?}"),
        }
        // Garbage payload.
        let mut garbage = segment.clone();
        for b in &mut garbage[payload..payload + 40] {
            *b = 0xa5;
        }
        fix_crc(&mut garbage);
        assert!(open(Bytes::from(garbage)).read_all().is_err(), "{codec}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn test_proptest_roundtrip_identity(
        input in arb_records(40),
        codec in codec(),
        block_size in prop_oneof![1usize..64, 64usize..4096, Just(DEFAULT_BLOCK_SIZE)],
        probe in any::<prop::sample::Index>(),
        probe_ts in any::<i64>(),
    ) {
        let reader = open(write(codec, block_size, &input));
        prop_assert_eq!(reader.record_count(), input.len() as u64);
        prop_assert_eq!(reader.read_all().unwrap(), input.clone());
        if !input.is_empty() {
            let offset = input[probe.index(input.len())].offset;
            prop_assert_eq!(reader.read_from(offset).unwrap(), from_offset(&input, offset));
            let target = input[probe.index(input.len())].timestamp;
            for t in [target, probe_ts] {
                let expected = input.iter().find(|r| r.timestamp >= t).map(|r| r.offset);
                prop_assert_eq!(reader.offset_for_timestamp(t).unwrap(), expected);
            }
        }
    }

    /// Random edits with the CRC fixed up reach the structural checks,
    /// which must answer with a value or an error, never a panic.
    #[test]
    fn test_proptest_mutations_never_panic(
        input in arb_records(12),
        codec in codec(),
        block_size in 1usize..512,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in proptest::option::of(any::<prop::sample::Index>()),
        probe in any::<i64>(),
    ) {
        let mut bytes = write(codec, block_size, &input).to_vec();
        for (at, value) in edits {
            let at = at.index(bytes.len() - FOOTER_LEN);
            bytes[at] = value;
        }
        if let Some(cut) = cut {
            // Drop a chunk before the footer.
            let at = cut.index(bytes.len() - FOOTER_LEN);
            bytes.drain(at..(at + 8).min(bytes.len() - FOOTER_LEN));
        }
        fix_crc(&mut bytes);
        if let Ok(reader) = SegmentReader::new(Bytes::from(bytes)) {
            let _ = reader.read_all();
            let _ = reader.read_from(probe);
            let _ = reader.iter_from(probe).count();
            let _ = reader.offset_for_timestamp(probe);
            for block in 0..reader.blocks().len() {
                let _ = reader.block_records(block);
            }
        }
    }
}

#[test]
fn test_raw_block_flag_is_checked() {
    // An uncompressed segment cannot carry the raw flag.
    let mut plain = write(Compression::None, DEFAULT_BLOCK_SIZE, &records(0, 3, 10)).to_vec();
    let flag_byte = HEADER_LEN + 4 + 3;
    plain[flag_byte] |= 0x80;
    fix_crc(&mut plain);
    assert!(matches!(
        SegmentReader::new(Bytes::from(plain)),
        Err(SegmentError::Corrupt { .. })
    ));
    // A raw block of a compressed segment must be as long as it claims.
    let mut lz4 = write(Compression::Lz4, DEFAULT_BLOCK_SIZE, &records(0, 3, 300)).to_vec();
    lz4[flag_byte] |= 0x80;
    fix_crc(&mut lz4);
    assert!(matches!(
        SegmentReader::new(Bytes::from(lz4)),
        Err(SegmentError::Corrupt { .. })
    ));
}
