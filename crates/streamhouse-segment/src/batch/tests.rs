use bytes::Bytes;

use super::super::test_util::{records, write};
use super::super::{Compression, SegmentError, SegmentReader};
use super::{
    BATCH_MAGIC, BatchObjectBuilder, ObjectEntry, TOC_FOOTER_LEN, is_batch_object, read_toc,
};

/// An object with three partitions' segments, concatenated as uploaded.
fn sample() -> (Vec<u8>, Vec<ObjectEntry>, Vec<Bytes>) {
    let segments = [
        write(Compression::None, 512, &records(0, 10, 50)),
        write(Compression::Lz4, 512, &records(100, 20, 50)),
        write(Compression::Zstd, 512, &records(7, 5, 50)),
    ];
    let mut builder = BatchObjectBuilder::new();
    assert!(builder.is_empty());
    let first = builder
        .add_segment("orders", 0, segments[0].clone(), 10)
        .clone();
    assert_eq!(first.byte_offset, 0);
    builder.add_segment("orders", 3, segments[1].clone(), 20);
    let third = builder.add_segment("ünïcode.events", -1, segments[2].clone(), 5);
    assert_eq!(
        third.byte_offset,
        (segments[0].len() + segments[1].len()) as u64
    );
    assert_eq!(
        builder.len(),
        segments.iter().map(|s| s.len() as u64).sum::<u64>()
    );
    assert_eq!(builder.entries().len(), 3);
    let (chunks, entries) = builder.finish();
    assert_eq!(chunks.len(), 4);
    // Segments are passed through, not copied.
    for (chunk, segment) in chunks.iter().zip(&segments) {
        assert_eq!(chunk.as_ptr(), segment.as_ptr());
    }
    let object = chunks.concat();
    (object, entries, segments.to_vec())
}

#[test]
fn test_batch_roundtrip() {
    let (object, entries, segments) = sample();
    assert!(is_batch_object(&object));
    assert!(!is_batch_object(&segments[0]));
    let toc = read_toc(&object).unwrap();
    assert_eq!(toc, entries);
    assert_eq!(
        toc.iter()
            .map(|e| (e.topic.as_str(), e.partition, e.record_count))
            .collect::<Vec<_>>(),
        vec![
            ("orders", 0, 10),
            ("orders", 3, 20),
            ("ünïcode.events", -1, 5)
        ]
    );
    for (entry, segment) in toc.iter().zip(&segments) {
        let range = entry.range();
        let bytes = &object[range.start as usize..range.end as usize];
        assert_eq!(bytes, segment.as_ref());
        let reader = SegmentReader::new(Bytes::copy_from_slice(bytes)).unwrap();
        assert_eq!(reader.record_count(), entry.record_count);
    }
    // The TOC chunk: 3 entries (30 bytes + topic each) then the footer.
    let toc_len = 3 * 30 + 6 + 6 + "ünïcode.events".len();
    let toc_position = segments.iter().map(Bytes::len).sum::<usize>();
    assert_eq!(object.len(), toc_position + toc_len + TOC_FOOTER_LEN);
    let footer = &object[object.len() - TOC_FOOTER_LEN..];
    assert_eq!(footer[..8], (toc_position as u64).to_le_bytes());
    assert_eq!(footer[8..12], 3u32.to_le_bytes());
    assert_eq!(
        footer[12..16],
        crc32c::crc32c(&object[toc_position..object.len() - 12]).to_le_bytes()
    );
    assert_eq!(footer[16..20], [0; 4]);
    assert_eq!(footer[20..], BATCH_MAGIC);
}

#[test]
fn test_batch_empty() {
    let (chunks, entries) = BatchObjectBuilder::new().finish();
    assert!(entries.is_empty());
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].len(), TOC_FOOTER_LEN);
    assert_eq!(read_toc(&chunks[0]).unwrap(), vec![]);
}

#[test]
fn test_batch_crc_mismatch() {
    let (object, entries, segments) = sample();
    let toc_position: usize = segments.iter().map(Bytes::len).sum();
    // Every byte covered by the CRC: TOC entries, toc_position, entry_count,
    // and the CRC itself.
    for at in toc_position..object.len() - 8 {
        let mut bad = object.clone();
        bad[at] ^= 0x40;
        match read_toc(&bad) {
            Err(SegmentError::CrcMismatch { .. }) => {}
            // A changed toc_position may point outside the object instead.
            Err(SegmentError::Corrupt { .. }) if at >= object.len() - TOC_FOOTER_LEN => {}
            other => panic!("byte {at}: {other:?}"),
        }
    }
    // Damage inside a segment is not the TOC's business: the segment's own
    // CRC catches it.
    let mut bad = object.clone();
    bad[100] ^= 1;
    assert_eq!(read_toc(&bad).unwrap(), entries);
    let range = entries[0].range();
    assert!(matches!(
        SegmentReader::new(Bytes::copy_from_slice(
            &bad[range.start as usize..range.end as usize]
        )),
        Err(SegmentError::CrcMismatch { .. })
    ));
}

#[test]
fn test_batch_truncation() {
    let (object, _, _) = sample();
    for len in 0..object.len() {
        match read_toc(&object[..len]) {
            Err(SegmentError::Truncated { needed, available }) => {
                assert_eq!((needed, available), (TOC_FOOTER_LEN, len));
            }
            Err(SegmentError::BadMagic { .. } | SegmentError::CrcMismatch { .. }) => {}
            Err(SegmentError::Corrupt { .. }) => {}
            other => panic!("length {len}: {other:?}"),
        }
    }
    // Dropping a prefix shifts everything the TOC points at.
    for cut in 1..64 {
        assert!(read_toc(&object[cut..]).is_err(), "cut {cut}");
    }
}

#[test]
fn test_batch_bad_magic() {
    let (mut object, _, _) = sample();
    let n = object.len();
    object[n - 4..].copy_from_slice(b"SHSG");
    assert!(!is_batch_object(&object));
    assert!(matches!(
        read_toc(&object),
        Err(SegmentError::BadMagic { found }) if &found == b"SHSG"
    ));
    assert!(!is_batch_object(b"SHBO"));
    assert!(matches!(
        read_toc(b"SHBO"),
        Err(SegmentError::Truncated {
            needed: 24,
            available: 4
        })
    ));
}

/// A TOC with a valid CRC whose contents do not add up is still refused.
#[test]
fn test_batch_corrupt_with_valid_crc() {
    let (object, _, segments) = sample();
    let toc_position: usize = segments.iter().map(Bytes::len).sum();
    let footer = object.len() - TOC_FOOTER_LEN;
    let edit = |at: usize, bytes: &[u8]| {
        let mut o = object.clone();
        o[at..at + bytes.len()].copy_from_slice(bytes);
        let crc = crc32c::crc32c(&o[toc_position..footer + 12]);
        o[footer + 12..footer + 16].copy_from_slice(&crc.to_le_bytes());
        read_toc(&o)
    };
    let corrupt = |r: Result<Vec<ObjectEntry>, SegmentError>| {
        assert!(matches!(r, Err(SegmentError::Corrupt { .. })), "{r:?}");
    };
    corrupt(edit(footer + 8, &[4])); // entry_count too high
    corrupt(edit(footer + 8, &[2])); // entry_count too low
    corrupt(edit(footer + 8, &[0xff, 0xff, 0xff, 0xff])); // huge entry_count
    corrupt(edit(toc_position, &[0xff, 0xff])); // topic_len overruns
    corrupt(edit(toc_position + 2, &[0xff])); // topic not UTF-8
    corrupt(edit(toc_position + 2 + 6 + 4 + 8, &[0xff, 0xff])); // byte_length past the TOC
    corrupt(edit(toc_position + 2 + 6 + 4, &[0xff; 8])); // byte_offset overflows
    let mut reserved = object.clone();
    reserved[footer + 16] = 1;
    corrupt(read_toc(&reserved));
}
