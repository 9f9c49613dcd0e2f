use super::super::test_util::{record, records, write};
use super::super::{
    BLOCK_HEADER_LEN, BlockIndexEntry, Compression, FOOTER_LEN, HEADER_LEN, INDEX_ENTRY_LEN, MAGIC,
    RAW_BLOCK, SegmentError, SegmentHeader, SegmentReader,
};
use super::SegmentWriter;
use streamhouse_core::Record;

fn le_u32(data: &[u8], pos: usize) -> Option<u32> {
    let bytes = data.get(pos..pos.checked_add(4)?)?;
    bytes.try_into().ok().map(u32::from_le_bytes)
}

fn le_u64(data: &[u8], pos: usize) -> Option<u64> {
    let bytes = data.get(pos..pos.checked_add(8)?)?;
    bytes.try_into().ok().map(u64::from_le_bytes)
}

/// (uncompressed_len, stored_len, record_count) of the block at `position`.
fn block_header(segment: &[u8], position: usize) -> (usize, usize, u32) {
    (
        le_u32(segment, position).unwrap() as usize,
        le_u32(segment, position + 4).unwrap() as usize,
        le_u32(segment, position + 8).unwrap(),
    )
}

fn index(segment: &[u8]) -> Vec<BlockIndexEntry> {
    let header = SegmentHeader::decode(segment).unwrap();
    let index_position = le_u64(segment, segment.len() - FOOTER_LEN).unwrap() as usize;
    (0..header.block_count as usize)
        .map(|i| BlockIndexEntry::decode(segment, index_position + i * INDEX_ENTRY_LEN).unwrap())
        .collect()
}

/// The blocks' payloads, decompressed.
fn block_payloads(segment: &[u8]) -> Vec<Vec<u8>> {
    let header = SegmentHeader::decode(segment).unwrap();
    index(segment)
        .iter()
        .map(|e| {
            let pos = e.position as usize;
            let (uncompressed, stored, _) = block_header(segment, pos);
            let payload = &segment[pos + BLOCK_HEADER_LEN..pos + BLOCK_HEADER_LEN + stored];
            match header.compression {
                Compression::None => payload.to_vec(),
                Compression::Lz4 => lz4_flex::block::decompress(payload, uncompressed).unwrap(),
                Compression::Zstd => zstd::bulk::decompress(payload, uncompressed).unwrap(),
            }
        })
        .collect()
}

#[test]
fn test_writer_single_record() {
    let r = record(42, 1_000, Some(b"key"), b"value", &[("h", Some(b"v"))]);
    let mut writer = SegmentWriter::new(Compression::None);
    assert!(writer.is_empty());
    writer.append(&r).unwrap();
    assert_eq!(writer.record_count(), 1);
    assert!(!writer.is_empty());
    assert_eq!(writer.first_offset(), Some(42));
    assert_eq!(writer.last_offset(), Some(42));
    assert_eq!(writer.min_timestamp(), Some(1_000));
    assert_eq!(writer.max_timestamp(), Some(1_000));
    let estimated = writer.estimated_size();
    let uncompressed = writer.uncompressed_bytes();
    let segment = writer.finish().unwrap();

    // len 17, Δoffset 0, Δts 0, key "key" (3+1), value "value" (5+1),
    // 1 header h=v
    let expected_record: &[u8] = b"\x11\x00\x00\x04key\x06value\x01\x01h\x02v";
    assert_eq!(uncompressed, expected_record.len() as u64);
    assert_eq!(
        segment.len(),
        HEADER_LEN + BLOCK_HEADER_LEN + expected_record.len() + INDEX_ENTRY_LEN + FOOTER_LEN
    );
    assert_eq!(estimated, segment.len());
    assert_eq!(
        block_header(&segment, HEADER_LEN),
        (expected_record.len(), expected_record.len(), 1)
    );
    let payload = HEADER_LEN + BLOCK_HEADER_LEN;
    assert_eq!(
        &segment[payload..payload + expected_record.len()],
        expected_record
    );
    let header = SegmentHeader::decode(&segment).unwrap();
    assert_eq!((header.base_offset, header.last_offset), (42, 42));
    assert_eq!((header.min_timestamp, header.max_timestamp), (1_000, 1_000));
    assert_eq!(
        index(&segment),
        vec![BlockIndexEntry {
            first_offset: 42,
            last_offset: 42,
            first_timestamp: 1_000,
            max_timestamp: 1_000,
            position: HEADER_LEN as u64,
        }]
    );
}

#[test]
fn test_writer_multiple_records() {
    let input = records(100, 50, 64);
    let mut writer = SegmentWriter::new(Compression::None);
    for r in &input {
        writer.append(r).unwrap();
    }
    assert_eq!(writer.record_count(), 50);
    assert_eq!(writer.first_offset(), Some(100));
    assert_eq!(writer.last_offset(), Some(149));
    let min_ts = input.iter().map(|r| r.timestamp).min();
    let max_ts = input.iter().map(|r| r.timestamp).max();
    assert_eq!(writer.min_timestamp(), min_ts);
    assert_eq!(writer.max_timestamp(), max_ts);
    let estimated = writer.estimated_size();
    let uncompressed = writer.uncompressed_bytes();
    let segment = writer.finish().unwrap();
    assert_eq!(estimated, segment.len());

    let blocks = index(&segment);
    assert_eq!(blocks.len(), 1);
    assert_eq!((blocks[0].first_offset, blocks[0].last_offset), (100, 149));
    assert_eq!(blocks[0].first_timestamp, input[0].timestamp);
    assert_eq!(Some(blocks[0].max_timestamp), max_ts);
    let (uncompressed_len, stored_len, count) = block_header(&segment, HEADER_LEN);
    assert_eq!(
        (uncompressed_len as u64, stored_len as u64, count),
        (uncompressed, uncompressed, 50)
    );
    assert_eq!(
        SegmentReader::new(segment).unwrap().read_all().unwrap(),
        input
    );
}

#[test]
fn test_writer_finish() {
    let mut input = records(7, 10, 20);
    input[4].timestamp = 5; // out of order: min is not the first
    input[8].timestamp = i64::MAX;
    let segment = write(Compression::None, 100, &input);
    let header = SegmentHeader::decode(&segment).unwrap();
    assert_eq!(header.version, 1);
    assert_eq!(header.compression, Compression::None);
    assert_eq!(header.record_count, 10);
    assert_eq!((header.base_offset, header.last_offset), (7, 16));
    assert_eq!((header.min_timestamp, header.max_timestamp), (5, i64::MAX));
    assert!(header.block_count > 1);
    assert_eq!(&segment[..4], &MAGIC);
    assert_eq!(&segment[4..8], &[1, 0, 0, 0]);
    assert_eq!(&segment[52..56], &[0, 0, 0, 0]);

    // Footer: index_position points just past the last block, CRC covers
    // everything before the CRC field, magic at the very end.
    let footer = segment.len() - FOOTER_LEN;
    let index_position = le_u64(&segment, footer).unwrap() as usize;
    assert_eq!(
        index_position,
        footer - header.block_count as usize * INDEX_ENTRY_LEN
    );
    assert_eq!(
        le_u32(&segment, footer + 8).unwrap(),
        crc32c::crc32c(&segment[..footer + 8])
    );
    assert_eq!(&segment[footer + 12..], &MAGIC);

    // Blocks tile the space between header and index, in index order.
    let blocks = index(&segment);
    assert_eq!(blocks.len(), header.block_count as usize);
    let mut position = HEADER_LEN;
    let mut counted = 0;
    for entry in &blocks {
        assert_eq!(entry.position as usize, position);
        let (_, stored, count) = block_header(&segment, position);
        counted += u64::from(count);
        position += BLOCK_HEADER_LEN + stored;
    }
    assert_eq!(position, index_position);
    assert_eq!(counted, 10);
    assert_eq!(blocks[0].first_offset, 7);
    assert_eq!(blocks.last().unwrap().last_offset, 16);
    assert_eq!(
        SegmentReader::new(segment).unwrap().read_all().unwrap(),
        input
    );
}

#[test]
fn test_writer_finish_empty() {
    let writer = SegmentWriter::new(Compression::Lz4);
    assert_eq!(writer.estimated_size(), HEADER_LEN + FOOTER_LEN);
    let segment = writer.finish().unwrap();
    assert_eq!(segment.len(), HEADER_LEN + FOOTER_LEN);
    let header = SegmentHeader::decode(&segment).unwrap();
    assert_eq!(
        header,
        SegmentHeader {
            version: 1,
            compression: Compression::Lz4,
            base_offset: 0,
            last_offset: -1,
            record_count: 0,
            min_timestamp: -1,
            max_timestamp: -1,
            block_count: 0,
        }
    );
    assert_eq!(le_u64(&segment, HEADER_LEN).unwrap(), HEADER_LEN as u64);
}

#[test]
fn test_writer_with_lz4_compression() {
    // Repetitive values compress well; the same records uncompressed give
    // the reference block bytes.
    let input: Vec<_> = (0..200)
        .map(|i| {
            record(
                i,
                1_000 + i,
                Some(b"sensor-1"),
                &[b'a' + (i % 3) as u8; 500],
                &[],
            )
        })
        .collect();
    let plain = write(Compression::None, 16 * 1024, &input);
    let lz4 = write(Compression::Lz4, 16 * 1024, &input);
    let header = SegmentHeader::decode(&lz4).unwrap();
    assert_eq!(header.compression, Compression::Lz4);
    assert_eq!(lz4[5], 1);
    assert_eq!(header.record_count, 200);
    assert!(header.block_count > 1);
    assert!(
        lz4.len() * 10 < plain.len(),
        "{} vs {}",
        lz4.len(),
        plain.len()
    );

    for entry in index(&lz4) {
        let (uncompressed, stored, _) = block_header(&lz4, entry.position as usize);
        assert!(stored < uncompressed);
    }
    // Each block compresses its own record bytes: decompressed payloads are
    // exactly the uncompressed segment's payloads.
    assert_eq!(block_payloads(&lz4), block_payloads(&plain));
    let plain_index = index(&plain);
    let lz4_index: Vec<_> = index(&lz4);
    assert_eq!(lz4_index.len(), plain_index.len());
    for (a, b) in lz4_index.iter().zip(&plain_index) {
        assert_eq!(
            (
                a.first_offset,
                a.last_offset,
                a.first_timestamp,
                a.max_timestamp
            ),
            (
                b.first_offset,
                b.last_offset,
                b.first_timestamp,
                b.max_timestamp
            )
        );
    }
    assert_eq!(SegmentReader::new(lz4).unwrap().read_all().unwrap(), input);
}

#[test]
fn test_writer_with_zstd_compression() {
    let input = records(0, 300, 200);
    let plain = write(Compression::None, 8 * 1024, &input);
    let zstd = write(Compression::Zstd, 8 * 1024, &input);
    assert_eq!(zstd[5], 2);
    assert_eq!(block_payloads(&zstd), block_payloads(&plain));
    assert_eq!(SegmentReader::new(zstd).unwrap().read_all().unwrap(), input);
}

#[test]
fn test_writer_rejects_non_increasing_offsets() {
    let mut writer = SegmentWriter::new(Compression::None);
    writer.append(&record(5, 1, None, b"a", &[])).unwrap();
    let err = writer.append(&record(5, 2, None, b"b", &[])).unwrap_err();
    assert!(matches!(
        err,
        SegmentError::OffsetNotIncreasing {
            previous: 5,
            offset: 5
        }
    ));
    let err = writer.append(&record(4, 2, None, b"b", &[])).unwrap_err();
    assert!(matches!(
        err,
        SegmentError::OffsetNotIncreasing {
            previous: 5,
            offset: 4
        }
    ));
    // A rejected record leaves no trace.
    assert_eq!(writer.record_count(), 1);
    assert_eq!(writer.last_offset(), Some(5));
    writer.append(&record(9, 3, None, b"c", &[])).unwrap();
    let segment = writer.finish().unwrap();
    let read = SegmentReader::new(segment).unwrap().read_all().unwrap();
    assert_eq!(
        read,
        vec![record(5, 1, None, b"a", &[]), record(9, 3, None, b"c", &[])]
    );
}

#[test]
fn test_writer_splits_blocks_at_block_size() {
    let input = records(0, 100, 40);
    let block_size = 256;
    let segment = write(Compression::None, block_size, &input);
    let blocks = index(&segment);
    assert!(blocks.len() > 10);
    let payloads = block_payloads(&segment);
    let mut next_offset = 0;
    for (i, (entry, payload)) in blocks.iter().zip(&payloads).enumerate() {
        let (uncompressed, _, count) = block_header(&segment, entry.position as usize);
        assert_eq!(uncompressed, payload.len());
        assert_eq!(entry.first_offset, next_offset);
        assert_eq!(entry.last_offset - entry.first_offset + 1, i64::from(count));
        next_offset = entry.last_offset + 1;
        // Every block but the last was closed when it reached the target,
        // and not one record later: without its last record it was short.
        let last_record_len = payload.len() - {
            let mut pos = 0;
            for _ in 0..count - 1 {
                let (len, n) =
                    <u64 as integer_encoding::VarInt>::decode_var(&payload[pos..]).unwrap();
                pos += n + len as usize;
            }
            pos
        };
        if i + 1 < blocks.len() {
            assert!(uncompressed >= block_size, "block {i}: {uncompressed}");
        }
        assert!(uncompressed - last_record_len < block_size, "block {i}");
    }
    assert_eq!(next_offset, 100);
    assert_eq!(
        SegmentReader::new(segment).unwrap().read_all().unwrap(),
        input
    );
}

#[test]
fn test_writer_oversized_record_gets_own_block() {
    let small = |o| record(o, o, None, b"small", &[]);
    let big = record(2, 2, Some(b"big"), &[7u8; 1000], &[]);
    let input = vec![small(0), small(1), big, small(3), small(4)];
    for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let segment = write(codec, 100, &input);
        let blocks = index(&segment);
        let spans: Vec<_> = blocks
            .iter()
            .map(|e| {
                let (_, _, count) = block_header(&segment, e.position as usize);
                (e.first_offset, e.last_offset, count)
            })
            .collect();
        assert_eq!(spans, vec![(0, 1, 2), (2, 2, 1), (3, 4, 2)], "{codec}");
        let reader = SegmentReader::new(segment).unwrap();
        assert_eq!(reader.block_records(1).unwrap(), vec![input[2].clone()]);
        assert_eq!(reader.read_all().unwrap(), input);
    }
}

#[test]
fn test_writer_estimated_size_tracks_compressed_blocks() {
    let input: Vec<_> = (0..100)
        .map(|i| record(i, i, None, &[0u8; 1000], &[]))
        .collect();
    let mut writer = SegmentWriter::with_block_size(Compression::Lz4, 4096);
    for r in &input {
        writer.append(r).unwrap();
    }
    let estimated = writer.estimated_size();
    assert_eq!(writer.uncompressed_bytes(), 100 * 1008);
    let segment = writer.finish().unwrap();
    // Closed blocks count as stored; only the open block is uncompressed.
    assert!(estimated >= segment.len());
    assert!(
        estimated < segment.len() + 5 * 1008,
        "{estimated} vs {}",
        segment.len()
    );
}

#[test]
fn test_writer_extreme_offsets_and_timestamps() {
    let input = vec![
        record(i64::MIN, i64::MAX, Some(b""), b"", &[("", Some(b""))]),
        record(-1, i64::MIN, None, b"x", &[]),
        record(i64::MAX, 0, None, b"y", &[]),
    ];
    for codec in [Compression::None, Compression::Zstd] {
        let reader = SegmentReader::new(write(codec, 1 << 20, &input)).unwrap();
        assert_eq!(reader.header().base_offset, i64::MIN);
        assert_eq!(reader.header().last_offset, i64::MAX);
        assert_eq!(reader.read_all().unwrap(), input);
        assert_eq!(reader.read_from(0).unwrap(), input[2..].to_vec());
    }
}

#[test]
fn test_writer_block_size_clamped() {
    let input = records(0, 3, 4);
    let segment = write(Compression::None, 0, &input);
    assert_eq!(index(&segment).len(), 3);
    let writer = SegmentWriter::with_block_size(Compression::None, usize::MAX);
    assert_eq!(writer.block_size(), super::super::MAX_BLOCK_LEN);
}

/// Pseudo-random bytes that no codec can shrink.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

#[test]
fn test_writer_stores_incompressible_blocks_raw() {
    for codec in [Compression::Lz4, Compression::Zstd] {
        let random: Vec<Record> = (0..40)
            .map(|i| record(i, 1_000 + i, Some(b"k"), &noise(1024, i as u64 + 1), &[]))
            .collect();
        let segment = write(codec, 16 * 1024, &random);
        let mut position = HEADER_LEN;
        let mut raw_blocks = 0;
        for _ in 0..index(&segment).len() {
            let stored_field = u32::from_le_bytes(
                segment[position + 4..position + 8]
                    .try_into()
                    .expect("4 bytes"),
            );
            let uncompressed =
                u32::from_le_bytes(segment[position..position + 4].try_into().expect("4 bytes"));
            assert_ne!(
                stored_field & RAW_BLOCK,
                0,
                "{codec}: random data is stored raw"
            );
            assert_eq!(stored_field & !RAW_BLOCK, uncompressed);
            raw_blocks += 1;
            position += BLOCK_HEADER_LEN + uncompressed as usize;
        }
        assert!(raw_blocks > 1);
        let reader = SegmentReader::new(segment).expect("valid");
        assert_eq!(reader.read_all().expect("records"), random, "{codec}");

        // Text still compresses.
        let text = records(0, 40, 1024);
        let segment = write(codec, 16 * 1024, &text);
        let (uncompressed, stored, _) = block_header(&segment, HEADER_LEN);
        assert!(
            stored < uncompressed / 2,
            "{codec}: {stored} of {uncompressed}"
        );
        assert_eq!(
            SegmentReader::new(segment)
                .expect("valid")
                .read_all()
                .expect("records"),
            text
        );
    }
}
