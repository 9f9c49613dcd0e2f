//! Validates and decodes a segment held in one [`Bytes`] buffer.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use integer_encoding::VarInt;
use streamhouse_core::{Header, Record};

use super::{
    BLOCK_HEADER_LEN, BlockIndexEntry, Compression, FOOTER_LEN, HEADER_LEN, INDEX_ENTRY_LEN, MAGIC,
    MAX_BLOCK_LEN, MIN_RECORD_LEN, RAW_BLOCK, SegmentError, SegmentHeader, corrupt, le_array,
    le_u32, le_u64,
};

#[cfg(test)]
mod tests;

/// Upper bound on up-front `Vec<Record>` capacity: record counts come from
/// the data, and a compressed block may claim far more records than its
/// stored bytes suggest, so past this the vector grows as records really
/// decode.
const MAX_PREALLOC_RECORDS: usize = 1 << 16;

/// A validated segment.
///
/// Cloning is cheap: the buffer is shared ([`Bytes`]) and the parsed index
/// is behind an [`Arc`]. Decoded keys, values and header values are slices
/// of the segment buffer (uncompressed) or of one decompressed buffer per
/// block, never per-record copies.
#[derive(Clone)]
pub struct SegmentReader {
    data: Bytes,
    layout: Arc<Layout>,
    /// Added (wrapping) to every stored offset; see [`Self::with_base_offset`].
    shift: i64,
}

struct Layout {
    header: SegmentHeader,
    index: Vec<BlockIndexEntry>,
    blocks: Vec<BlockMeta>,
}

/// What the block headers say, checked against the index at open time.
#[derive(Debug, Clone, Copy)]
struct BlockMeta {
    payload: usize,
    stored_len: usize,
    uncompressed_len: usize,
    record_count: u32,
    /// Stored uncompressed in a compressed segment.
    raw: bool,
}

impl SegmentReader {
    /// Checks length, both magics, the CRC, version, codec, and that the
    /// header, block headers and index agree and stay in bounds. Records
    /// are not decoded here.
    pub fn new(data: Bytes) -> Result<Self, SegmentError> {
        let len = data.len();
        let min_len = HEADER_LEN + FOOTER_LEN;
        if len < min_len {
            return Err(SegmentError::Truncated {
                needed: min_len,
                available: len,
            });
        }
        let head_magic = le_array::<4>(&data, 0).ok_or_else(|| corrupt("header", 0))?;
        if head_magic != MAGIC {
            return Err(SegmentError::BadMagic { found: head_magic });
        }
        let footer = len - FOOTER_LEN;
        let tail_magic = le_array::<4>(&data, len - 4).ok_or_else(|| corrupt("footer", footer))?;
        if tail_magic != MAGIC {
            return Err(SegmentError::BadMagic { found: tail_magic });
        }
        // The CRC goes before any field is interpreted, so damage anywhere
        // is reported as damage rather than as whatever it happens to mimic.
        let expected = le_u32(&data, footer + 8).ok_or_else(|| corrupt("footer", footer))?;
        let actual = crc32c::crc32c(data.get(..footer + 8).unwrap_or_default());
        if expected != actual {
            return Err(SegmentError::CrcMismatch { expected, actual });
        }
        let header = SegmentHeader::decode(&data)?;
        let index_position = le_u64(&data, footer).ok_or_else(|| corrupt("footer", footer))?;
        let block_count = header.block_count as usize;
        let index_start = block_count
            .checked_mul(INDEX_ENTRY_LEN)
            .and_then(|index_len| footer.checked_sub(index_len))
            .filter(|&start| start >= HEADER_LEN && start as u64 == index_position)
            .ok_or_else(|| corrupt("index position does not match block count", footer))?;

        let mut index = Vec::with_capacity(block_count);
        let mut blocks = Vec::with_capacity(block_count);
        let mut position = HEADER_LEN;
        let mut total_records: u64 = 0;
        for i in 0..block_count {
            let entry_pos = index_start + i * INDEX_ENTRY_LEN;
            let entry = BlockIndexEntry::decode(&data, entry_pos)
                .ok_or_else(|| corrupt("index entry", entry_pos))?;
            let meta = check_block(&data, header.compression, &entry, position, index_start)?;
            check_entry(&entry, index.last(), meta.record_count, entry_pos)?;
            position = meta.payload + meta.stored_len;
            total_records += u64::from(meta.record_count);
            index.push(entry);
            blocks.push(meta);
        }
        if position != index_start {
            return Err(corrupt(
                "bytes between the last block and the index",
                position,
            ));
        }
        if total_records != header.record_count {
            return Err(corrupt("header record count does not match blocks", 24));
        }
        check_header(&header, &index)?;
        Ok(Self {
            data,
            layout: Arc::new(Layout {
                header,
                index,
                blocks,
            }),
            shift: 0,
        })
    }

    /// The header as stored (not rebased).
    pub fn header(&self) -> &SegmentHeader {
        &self.layout.header
    }

    /// The block index as stored (not rebased).
    pub fn blocks(&self) -> &[BlockIndexEntry] {
        &self.layout.index
    }

    /// The whole segment buffer.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// Size of the segment in bytes (what it weighs in a cache), not the
    /// number of records: see [`Self::record_count`].
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn record_count(&self) -> u64 {
        self.layout.header.record_count
    }

    /// True when the segment holds no records (even though it still has a
    /// header and footer, so [`Self::len`] is never 0).
    pub fn is_empty(&self) -> bool {
        self.layout.header.record_count == 0
    }

    /// Reads the segment as if its first record had offset `base_offset`:
    /// every returned offset, and every offset argument, is shifted by
    /// `base_offset - header().base_offset`. Lets a segment written before
    /// its offsets were assigned be served at the offsets committed for it.
    ///
    /// Shifting uses wrapping arithmetic, so it cannot panic; it is only
    /// meaningful when the rebased offsets fit in an `i64`, as Kafka offsets
    /// always do.
    pub fn with_base_offset(mut self, base_offset: i64) -> Self {
        self.shift = base_offset.wrapping_sub(self.layout.header.base_offset);
        self
    }

    /// Reads the segment at the offsets its metadata row gives it, the row
    /// starting at `row_base`. A segment whose stored offsets start at 0 was
    /// written before its offsets were assigned (a flush) and is rebased to
    /// start at `row_base`. Any other segment stores each record's offset
    /// as it is (compaction output): it is read as stored, since its first
    /// record may come after its row's first offset when key compaction
    /// removed the records before it. A segment starting at offset 0 reads
    /// the same either way, its row starting at 0 too.
    pub fn placed_at(self, row_base: i64) -> Self {
        if self.layout.header.base_offset == 0 {
            self.with_base_offset(row_base)
        } else {
            self
        }
    }

    /// Rebased offset of the first record (of the segment start if empty).
    pub fn base_offset(&self) -> i64 {
        self.layout.header.base_offset.wrapping_add(self.shift)
    }

    /// Rebased offset of the last record (`base_offset() - 1` if empty).
    pub fn last_offset(&self) -> i64 {
        self.layout.header.last_offset.wrapping_add(self.shift)
    }

    pub fn read_all(&self) -> Result<Vec<Record>, SegmentError> {
        self.collect(self.iter_stored(Some(i64::MIN)))
    }

    /// Records with (rebased) offset `>= offset`. Finds the first block by
    /// binary search on the index; earlier blocks are never decoded.
    pub fn read_from(&self, offset: i64) -> Result<Vec<Record>, SegmentError> {
        self.collect(self.iter_from(offset))
    }

    /// Lazy version of [`Self::read_from`]: decodes one block at a time.
    /// After the first error it yields nothing more.
    pub fn iter_from(&self, offset: i64) -> RecordIter<'_> {
        self.iter_stored(self.stored_offset(offset))
    }

    /// Lowest (rebased) offset whose record timestamp is `>= timestamp`.
    /// Timestamps need not be monotonic, so every block whose
    /// `max_timestamp` reaches `timestamp` is a candidate, in offset order;
    /// blocks that cannot match are skipped without decoding.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<i64>, SegmentError> {
        for (block, entry) in self.layout.index.iter().enumerate() {
            if entry.max_timestamp < timestamp {
                continue;
            }
            let mut decoder = self.decoder(block)?;
            while let Some(frame) = decoder.next_frame()? {
                if frame.timestamp >= timestamp {
                    return Ok(Some(frame.offset.wrapping_add(self.shift)));
                }
            }
            // The decoder checks the block's max timestamp at its end, so
            // reaching here means the index and block disagree.
            return Err(corrupt(
                "no record reaches block max_timestamp",
                entry.position as usize,
            ));
        }
        Ok(None)
    }

    /// Decodes block `block` (0-based, in index order), rebased.
    pub fn block_records(&self, block: usize) -> Result<Vec<Record>, SegmentError> {
        let meta = self
            .layout
            .blocks
            .get(block)
            .ok_or(SegmentError::BlockOutOfRange {
                block,
                block_count: self.layout.blocks.len(),
            })?;
        let mut decoder = self.decoder(block)?;
        let mut records =
            Vec::with_capacity((meta.record_count as usize).min(MAX_PREALLOC_RECORDS));
        while let Some(mut record) = decoder.next_record()? {
            record.offset = record.offset.wrapping_add(self.shift);
            records.push(record);
        }
        Ok(records)
    }

    fn collect(&self, iter: RecordIter<'_>) -> Result<Vec<Record>, SegmentError> {
        let remaining: u64 = self
            .layout
            .blocks
            .get(iter.next_block..)
            .unwrap_or_default()
            .iter()
            .map(|b| u64::from(b.record_count))
            .sum();
        let capacity = usize::try_from(remaining)
            .map_or(MAX_PREALLOC_RECORDS, |n| n.min(MAX_PREALLOC_RECORDS));
        let mut records = Vec::with_capacity(capacity);
        for record in iter {
            records.push(record?);
        }
        Ok(records)
    }

    /// Translates a rebased offset into stored coordinates: `None` when it
    /// is above every offset a stored record could have.
    fn stored_offset(&self, offset: i64) -> Option<i64> {
        let stored = i128::from(offset) - i128::from(self.shift);
        if stored > i128::from(i64::MAX) {
            None
        } else {
            Some(i64::try_from(stored).unwrap_or(i64::MIN))
        }
    }

    /// `min_offset` in stored coordinates; `None` yields nothing.
    fn iter_stored(&self, min_offset: Option<i64>) -> RecordIter<'_> {
        let (next_block, min_offset) = match min_offset {
            Some(min) => (
                self.layout.index.partition_point(|e| e.last_offset < min),
                min,
            ),
            None => (self.layout.index.len(), i64::MAX),
        };
        RecordIter {
            reader: self,
            next_block,
            current: None,
            min_offset,
            done: false,
        }
    }

    /// Positions the decoder on block `block`, decompressing if needed.
    fn decoder(&self, block: usize) -> Result<BlockDecoder, SegmentError> {
        let (Some(meta), Some(entry)) =
            (self.layout.blocks.get(block), self.layout.index.get(block))
        else {
            return Err(SegmentError::BlockOutOfRange {
                block,
                block_count: self.layout.blocks.len(),
            });
        };
        let stored_end = meta.payload + meta.stored_len;
        if stored_end > self.data.len() {
            return Err(corrupt("block payload out of bounds", meta.payload));
        }
        let stored = self.data.slice(meta.payload..stored_end);
        let codec = self.layout.header.compression;
        let buf = match codec {
            _ if meta.raw => stored,
            Compression::None => stored,
            Compression::Lz4 => {
                let mut out = vec![0u8; meta.uncompressed_len];
                let n = lz4_flex::block::decompress_into(&stored, &mut out).map_err(|e| {
                    SegmentError::Decompress {
                        codec,
                        reason: e.to_string(),
                    }
                })?;
                out.truncate(n);
                Bytes::from(out)
            }
            Compression::Zstd => {
                let failed = |e: std::io::Error| SegmentError::Decompress {
                    codec,
                    reason: e.to_string(),
                };
                let mut out = Vec::with_capacity(meta.uncompressed_len);
                zstd::bulk::Decompressor::new()
                    .map_err(failed)?
                    .decompress_to_buffer(&stored, &mut out)
                    .map_err(failed)?;
                Bytes::from(out)
            }
        };
        if buf.len() != meta.uncompressed_len {
            return Err(corrupt("decompressed length mismatch", meta.payload));
        }
        Ok(BlockDecoder {
            buf,
            pos: 0,
            base: meta.payload,
            remaining: meta.record_count,
            first_offset: entry.first_offset,
            first_timestamp: entry.first_timestamp,
            span: entry.last_offset.wrapping_sub(entry.first_offset) as u64,
            expected_max_timestamp: entry.max_timestamp,
            last_delta: None,
            max_timestamp: entry.first_timestamp,
            finished: false,
        })
    }
}

impl fmt::Debug for SegmentReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentReader")
            .field("header", &self.layout.header)
            .field("bytes", &self.data.len())
            .field("shift", &self.shift)
            .finish()
    }
}

/// Reads and checks the block header at `position` against its index entry.
fn check_block(
    data: &[u8],
    codec: Compression,
    entry: &BlockIndexEntry,
    position: usize,
    index_start: usize,
) -> Result<BlockMeta, SegmentError> {
    if entry.position != position as u64 {
        return Err(corrupt(
            "index position does not match block layout",
            position,
        ));
    }
    let payload = position + BLOCK_HEADER_LEN;
    if payload > index_start {
        return Err(corrupt("block header overruns index", position));
    }
    let field = |at| le_u32(data, at).ok_or_else(|| corrupt("block header", position));
    let uncompressed_len = field(position)? as usize;
    let stored_field = field(position + 4)?;
    let raw = stored_field & RAW_BLOCK != 0;
    let stored_len = (stored_field & !RAW_BLOCK) as usize;
    let record_count = field(position + 8)?;
    if uncompressed_len > MAX_BLOCK_LEN {
        return Err(corrupt("block uncompressed length exceeds limit", position));
    }
    if stored_len > index_start - payload {
        return Err(corrupt("block payload overruns index", position));
    }
    if codec == Compression::None && raw {
        return Err(corrupt(
            "raw flag on a block of an uncompressed segment",
            position,
        ));
    }
    if (codec == Compression::None || raw) && stored_len != uncompressed_len {
        return Err(corrupt("uncompressed block lengths differ", position));
    }
    if record_count == 0 {
        return Err(corrupt("empty block", position));
    }
    if (record_count as usize).saturating_mul(MIN_RECORD_LEN) > uncompressed_len {
        return Err(corrupt("block record count exceeds its length", position));
    }
    Ok(BlockMeta {
        payload,
        stored_len,
        uncompressed_len,
        record_count,
        raw,
    })
}

/// Checks an index entry on its own and against the previous one.
fn check_entry(
    entry: &BlockIndexEntry,
    previous: Option<&BlockIndexEntry>,
    record_count: u32,
    entry_pos: usize,
) -> Result<(), SegmentError> {
    if entry.first_offset > entry.last_offset {
        return Err(corrupt("block first offset after last offset", entry_pos));
    }
    // Offsets are strictly increasing, so n records span at least n - 1.
    let span = entry.last_offset.wrapping_sub(entry.first_offset) as u64;
    if u64::from(record_count) - 1 > span {
        return Err(corrupt(
            "block record count exceeds its offset range",
            entry_pos,
        ));
    }
    if entry.first_timestamp > entry.max_timestamp {
        return Err(corrupt("block first timestamp above its max", entry_pos));
    }
    if let Some(previous) = previous
        && previous.last_offset >= entry.first_offset
    {
        return Err(corrupt(
            "block offsets overlap the previous block",
            entry_pos,
        ));
    }
    Ok(())
}

fn check_header(header: &SegmentHeader, index: &[BlockIndexEntry]) -> Result<(), SegmentError> {
    let (Some(first), Some(last)) = (index.first(), index.last()) else {
        let empty = header.base_offset == 0
            && header.last_offset == -1
            && header.min_timestamp == -1
            && header.max_timestamp == -1;
        return if empty {
            Ok(())
        } else {
            Err(corrupt("empty segment with non-empty header fields", 8))
        };
    };
    if header.base_offset != first.first_offset || header.last_offset != last.last_offset {
        return Err(corrupt("header offsets do not match index", 8));
    }
    let max = index.iter().map(|e| e.max_timestamp).max();
    let min_first = index.iter().map(|e| e.first_timestamp).min();
    if Some(header.max_timestamp) != max {
        return Err(corrupt("header max timestamp does not match index", 40));
    }
    if min_first.is_some_and(|m| header.min_timestamp > m) {
        return Err(corrupt("header min timestamp above a block's first", 32));
    }
    Ok(())
}

/// Lazily decoded records from a starting offset; see
/// [`SegmentReader::iter_from`].
pub struct RecordIter<'a> {
    reader: &'a SegmentReader,
    next_block: usize,
    current: Option<BlockDecoder>,
    /// Stored coordinates: records below it (only ever in the first block
    /// visited) are decoded but not returned.
    min_offset: i64,
    done: bool,
}

impl Iterator for RecordIter<'_> {
    type Item = Result<Record, SegmentError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let decoder = match &mut self.current {
                Some(decoder) => decoder,
                None => {
                    if self.next_block >= self.reader.layout.blocks.len() {
                        self.done = true;
                        return None;
                    }
                    let block = self.next_block;
                    self.next_block += 1;
                    match self.reader.decoder(block) {
                        Ok(decoder) => self.current.insert(decoder),
                        Err(err) => {
                            self.done = true;
                            return Some(Err(err));
                        }
                    }
                }
            };
            match decoder.next_record() {
                Ok(Some(mut record)) => {
                    if record.offset >= self.min_offset {
                        record.offset = record.offset.wrapping_add(self.reader.shift);
                        return Some(Ok(record));
                    }
                }
                Ok(None) => self.current = None,
                Err(err) => {
                    self.done = true;
                    return Some(Err(err));
                }
            }
        }
        None
    }
}

/// A record's fixed prefix, decoded before its fields.
struct Frame {
    /// Stored offset.
    offset: i64,
    timestamp: i64,
    /// Start of the key_len varint.
    fields: usize,
    end: usize,
}

/// Walks one block's uncompressed bytes, checking as it goes that offsets
/// start at the block's first offset, strictly increase and stay within the
/// indexed range, and at the end that the count, last offset, max timestamp
/// and length all agree with the index and block header.
struct BlockDecoder {
    buf: Bytes,
    pos: usize,
    /// Segment position reported for `buf[0]` in errors.
    base: usize,
    remaining: u32,
    first_offset: i64,
    first_timestamp: i64,
    /// `last_offset - first_offset` of the block.
    span: u64,
    expected_max_timestamp: i64,
    last_delta: Option<u64>,
    max_timestamp: i64,
    finished: bool,
}

impl BlockDecoder {
    fn err(&self, what: &'static str, pos: usize) -> SegmentError {
        corrupt(what, self.base.saturating_add(pos))
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, SegmentError> {
        if self.remaining == 0 {
            if !self.finished {
                self.finish_checks()?;
                self.finished = true;
            }
            return Ok(None);
        }
        let start = self.pos;
        let (len, n) =
            uvarint(&self.buf, start).ok_or_else(|| self.err("bad record length", start))?;
        let body = start + n;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| body.checked_add(len))
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| self.err("record overruns block", start))?;
        let record = self.buf.get(..end).unwrap_or_default();
        let (delta, n) = uvarint(record, body).ok_or_else(|| self.err("bad offset delta", body))?;
        let ts_at = body + n;
        let (ts_delta, n) =
            ivarint(record, ts_at).ok_or_else(|| self.err("bad timestamp delta", ts_at))?;
        match self.last_delta {
            None if delta != 0 || ts_delta != 0 => {
                return Err(self.err("first record does not start the block", start));
            }
            Some(previous) if delta <= previous => {
                return Err(self.err("offsets not increasing", start));
            }
            _ => {}
        }
        if delta > self.span {
            return Err(self.err("offset beyond block last offset", start));
        }
        let timestamp = self.first_timestamp.wrapping_add(ts_delta);
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.last_delta = Some(delta);
        self.remaining -= 1;
        self.pos = end;
        Ok(Some(Frame {
            offset: self.first_offset.wrapping_add(delta as i64),
            timestamp,
            fields: ts_at + n,
            end,
        }))
    }

    fn finish_checks(&self) -> Result<(), SegmentError> {
        if self.pos != self.buf.len() {
            return Err(self.err("bytes after the block's last record", self.pos));
        }
        if self.last_delta != Some(self.span) {
            return Err(self.err("block last offset does not match index", self.pos));
        }
        if self.max_timestamp != self.expected_max_timestamp {
            return Err(self.err("block max timestamp does not match index", self.pos));
        }
        Ok(())
    }

    /// Next record with its stored offset.
    fn next_record(&mut self) -> Result<Option<Record>, SegmentError> {
        let Some(frame) = self.next_frame()? else {
            return Ok(None);
        };
        let mut cur = Cursor {
            buf: &self.buf,
            pos: frame.fields,
            end: frame.end,
            base: self.base,
        };
        let key = cur.nullable("bad key")?;
        let value = cur.nullable("bad value")?;
        let header_count = cur.uvarint("bad header count")?;
        // Each header takes at least two bytes, which bounds the allocation.
        let max_headers = (cur.end - cur.pos) / 2;
        let header_count = usize::try_from(header_count)
            .ok()
            .filter(|&n| n <= max_headers)
            .ok_or_else(|| cur.err("header count exceeds record"))?;
        let mut headers = Vec::with_capacity(header_count);
        for _ in 0..header_count {
            let name_len = cur.uvarint("bad header name length")?;
            let name = cur.string(name_len)?;
            let value = cur.nullable("bad header value")?;
            headers.push(Header { key: name, value });
        }
        if cur.pos != cur.end {
            return Err(cur.err("record length does not match its fields"));
        }
        Ok(Some(Record {
            offset: frame.offset,
            timestamp: frame.timestamp,
            key,
            value,
            headers,
        }))
    }
}

/// Reads fields of one record; never past `end`.
struct Cursor<'a> {
    buf: &'a Bytes,
    pos: usize,
    end: usize,
    base: usize,
}

impl Cursor<'_> {
    fn err(&self, what: &'static str) -> SegmentError {
        corrupt(what, self.base.saturating_add(self.pos))
    }

    fn uvarint(&mut self, what: &'static str) -> Result<u64, SegmentError> {
        let record = self.buf.get(..self.end).unwrap_or_default();
        let (value, n) = uvarint(record, self.pos).ok_or_else(|| self.err(what))?;
        self.pos += n;
        Ok(value)
    }

    fn take(&mut self, len: u64, what: &'static str) -> Result<(usize, usize), SegmentError> {
        let start = self.pos;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| start.checked_add(len))
            .filter(|&end| end <= self.end)
            .ok_or_else(|| self.err(what))?;
        self.pos = end;
        Ok((start, end))
    }

    fn bytes(&mut self, len: u64, what: &'static str) -> Result<Bytes, SegmentError> {
        let (start, end) = self.take(len, what)?;
        Ok(self.buf.slice(start..end))
    }

    /// `0` is `None`, `n + 1` is `n` bytes.
    fn nullable(&mut self, what: &'static str) -> Result<Option<Bytes>, SegmentError> {
        match self.uvarint(what)? {
            0 => Ok(None),
            n => self.bytes(n - 1, what).map(Some),
        }
    }

    fn string(&mut self, len: u64) -> Result<String, SegmentError> {
        let at = self.pos;
        let (start, end) = self.take(len, "header name overruns record")?;
        let raw = self.buf.get(start..end).unwrap_or_default();
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| corrupt("header name is not UTF-8", self.base.saturating_add(at)))
    }
}

fn uvarint(buf: &[u8], pos: usize) -> Option<(u64, usize)> {
    u64::decode_var(buf.get(pos..)?)
}

/// Zigzag, via integer-encoding's `i64` impl.
fn ivarint(buf: &[u8], pos: usize) -> Option<(i64, usize)> {
    i64::decode_var(buf.get(pos..)?)
}
