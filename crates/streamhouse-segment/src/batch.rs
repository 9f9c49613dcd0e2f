//! Multi-partition objects: one flush uploads one object holding one segment
//! per partition, followed by a table of contents (TOC).
//!
//! ```text
//! Object := Segment* TocEntry* TocFooter
//! ```
//!
//! ## TocEntry (30 bytes + topic)
//!
//! | field        | type          | notes                                     |
//! |--------------|---------------|-------------------------------------------|
//! | topic_len    | u16           |                                           |
//! | topic        | UTF-8 bytes   |                                           |
//! | partition    | i32           |                                           |
//! | byte_offset  | u64           | start of the segment in the object        |
//! | byte_length  | u64           |                                           |
//! | record_count | u64           |                                           |
//!
//! ## TocFooter ([`TOC_FOOTER_LEN`] = 24 bytes)
//!
//! | offset | field        | type    | notes                                          |
//! |-------:|--------------|---------|------------------------------------------------|
//! |      0 | toc_position | u64     | byte offset of the first TocEntry              |
//! |      8 | entry_count  | u32     |                                                |
//! |     12 | crc32c       | u32     | over the TocEntry bytes, toc_position and entry_count |
//! |     16 | reserved     | u32     | 0                                              |
//! |     20 | magic        | 4 bytes | `b"SHBO"`                                       |
//!
//! The TOC sits at the end so the object can be streamed out segment by
//! segment and the TOC written last; a reader finds it from the fixed-size
//! footer. Each segment keeps its own CRC, so a reader that range-reads one
//! segment can verify it without the rest of the object.

use bytes::Bytes;

use super::{SegmentError, corrupt, le_array, le_i32, le_u16, le_u32, le_u64};

#[cfg(test)]
mod tests;

/// Trailing magic of a batch object.
pub const BATCH_MAGIC: [u8; 4] = *b"SHBO";
pub const TOC_FOOTER_LEN: usize = 24;
/// Fixed bytes of a TocEntry besides the topic name.
const TOC_ENTRY_FIXED_LEN: usize = 2 + 4 + 8 + 8 + 8;

/// Where one partition's segment lies in a batch object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    pub topic: String,
    pub partition: i32,
    pub byte_offset: u64,
    pub byte_length: u64,
    pub record_count: u64,
}

impl ObjectEntry {
    /// The segment's byte range in the object, for a ranged read.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.byte_offset..self.byte_offset.saturating_add(self.byte_length)
    }
}

/// Collects finished segments for one object without copying them.
#[derive(Debug, Default)]
pub struct BatchObjectBuilder {
    segments: Vec<Bytes>,
    entries: Vec<ObjectEntry>,
    len: u64,
}

impl BatchObjectBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one partition's finished segment.
    ///
    /// # Panics
    ///
    /// If `topic` is longer than `u16::MAX` bytes or the object already has
    /// `u32::MAX` entries. Topic names are validated to at most 249
    /// characters long before they get here, so both are programming errors.
    pub fn add_segment(
        &mut self,
        topic: &str,
        partition: i32,
        segment: Bytes,
        record_count: u64,
    ) -> &ObjectEntry {
        assert!(
            topic.len() <= usize::from(u16::MAX),
            "topic name of {} bytes does not fit a TOC entry",
            topic.len()
        );
        assert!(
            self.entries.len() < u32::MAX as usize,
            "too many segments in one object"
        );
        let byte_length = segment.len() as u64;
        self.entries.push(ObjectEntry {
            topic: topic.to_owned(),
            partition,
            byte_offset: self.len,
            byte_length,
            record_count,
        });
        self.len += byte_length;
        self.segments.push(segment);
        &self.entries[self.entries.len() - 1]
    }

    /// Bytes of the segments added so far (the TOC's future position).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when no segment has been added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[ObjectEntry] {
        &self.entries
    }

    /// The chunks to upload, in order — the segments as given, then one
    /// chunk holding the TOC and its footer — and the entries.
    pub fn finish(self) -> (Vec<Bytes>, Vec<ObjectEntry>) {
        let toc_len: usize = self
            .entries
            .iter()
            .map(|e| TOC_ENTRY_FIXED_LEN + e.topic.len())
            .sum();
        let mut toc = Vec::with_capacity(toc_len + TOC_FOOTER_LEN);
        for entry in &self.entries {
            // Checked in `add_segment`.
            toc.extend_from_slice(&(entry.topic.len() as u16).to_le_bytes());
            toc.extend_from_slice(entry.topic.as_bytes());
            toc.extend_from_slice(&entry.partition.to_le_bytes());
            toc.extend_from_slice(&entry.byte_offset.to_le_bytes());
            toc.extend_from_slice(&entry.byte_length.to_le_bytes());
            toc.extend_from_slice(&entry.record_count.to_le_bytes());
        }
        toc.extend_from_slice(&self.len.to_le_bytes());
        toc.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        let crc = crc32c::crc32c(&toc);
        toc.extend_from_slice(&crc.to_le_bytes());
        toc.extend_from_slice(&0u32.to_le_bytes());
        toc.extend_from_slice(&BATCH_MAGIC);
        let mut chunks = self.segments;
        chunks.push(Bytes::from(toc));
        (chunks, self.entries)
    }
}

/// True if `object` ends with the batch object magic. Cheap; does not
/// validate anything else.
pub fn is_batch_object(object: &[u8]) -> bool {
    object.len() >= TOC_FOOTER_LEN && object.ends_with(&BATCH_MAGIC)
}

/// Parses and validates the TOC of a whole batch object: magic, CRC, bounds,
/// UTF-8 topics, and that every entry's range lies before the TOC.
pub fn read_toc(object: &[u8]) -> Result<Vec<ObjectEntry>, SegmentError> {
    let len = object.len();
    if len < TOC_FOOTER_LEN {
        return Err(SegmentError::Truncated {
            needed: TOC_FOOTER_LEN,
            available: len,
        });
    }
    let footer = len - TOC_FOOTER_LEN;
    let bad_footer = || corrupt("toc footer", footer);
    let magic = le_array::<4>(object, len - 4).ok_or_else(bad_footer)?;
    if magic != BATCH_MAGIC {
        return Err(SegmentError::BadMagic { found: magic });
    }
    let toc_position = le_u64(object, footer).ok_or_else(bad_footer)?;
    let entry_count = le_u32(object, footer + 8).ok_or_else(bad_footer)?;
    let expected = le_u32(object, footer + 12).ok_or_else(bad_footer)?;
    let toc_start = usize::try_from(toc_position)
        .ok()
        .filter(|&start| start <= footer)
        .ok_or_else(|| corrupt("toc position beyond footer", footer))?;
    let covered = object.get(toc_start..footer + 12).ok_or_else(bad_footer)?;
    let actual = crc32c::crc32c(covered);
    if expected != actual {
        return Err(SegmentError::CrcMismatch { expected, actual });
    }
    if le_u32(object, footer + 16) != Some(0) {
        return Err(corrupt("toc reserved field is not zero", footer + 16));
    }
    let toc = object.get(..footer).ok_or_else(bad_footer)?;
    // Each entry takes at least TOC_ENTRY_FIXED_LEN bytes, which bounds the
    // allocation whatever entry_count claims.
    let max_entries = (footer - toc_start) / TOC_ENTRY_FIXED_LEN;
    let mut entries = Vec::with_capacity((entry_count as usize).min(max_entries));
    let mut pos = toc_start;
    for _ in 0..entry_count {
        let (entry, next) = read_entry(toc, pos, toc_position)?;
        entries.push(entry);
        pos = next;
    }
    if pos != footer {
        return Err(corrupt("toc length does not match entry count", pos));
    }
    Ok(entries)
}

/// One entry at `pos` of `toc` (which ends where the footer starts).
fn read_entry(
    toc: &[u8],
    pos: usize,
    toc_position: u64,
) -> Result<(ObjectEntry, usize), SegmentError> {
    let overrun = || corrupt("toc entry overruns the toc", pos);
    let topic_len = usize::from(le_u16(toc, pos).ok_or_else(overrun)?);
    let topic_start = pos + 2;
    let topic_end = topic_start + topic_len;
    let topic = toc.get(topic_start..topic_end).ok_or_else(overrun)?;
    let topic = std::str::from_utf8(topic)
        .map_err(|_| corrupt("toc topic is not UTF-8", topic_start))?
        .to_owned();
    let partition = le_i32(toc, topic_end).ok_or_else(overrun)?;
    let byte_offset = le_u64(toc, topic_end + 4).ok_or_else(overrun)?;
    let byte_length = le_u64(toc, topic_end + 12).ok_or_else(overrun)?;
    let record_count = le_u64(toc, topic_end + 20).ok_or_else(overrun)?;
    if byte_offset
        .checked_add(byte_length)
        .is_none_or(|end| end > toc_position)
    {
        return Err(corrupt("toc entry range extends past the toc", pos));
    }
    let entry = ObjectEntry {
        topic,
        partition,
        byte_offset,
        byte_length,
        record_count,
    };
    Ok((entry, topic_end + 28))
}
