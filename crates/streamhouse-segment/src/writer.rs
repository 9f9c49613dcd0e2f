//! Builds one segment in memory from records of one partition.

use std::fmt;

use bytes::Bytes;
use integer_encoding::VarInt;
use streamhouse_core::Record;

use super::{
    BLOCK_HEADER_LEN, BlockIndexEntry, Compression, DEFAULT_BLOCK_SIZE, FOOTER_LEN, HEADER_LEN,
    INDEX_ENTRY_LEN, MAGIC, MAX_BLOCK_LEN, RAW_BLOCK, SegmentError, SegmentHeader, VERSION,
};

#[cfg(test)]
mod tests;

/// Accumulates records into blocks and produces the finished segment bytes.
///
/// Uncompressed blocks are encoded straight into the output buffer, so a
/// record's bytes are copied exactly once; compressed blocks are encoded into
/// a reused scratch buffer and compressed into the output when closed.
pub struct SegmentWriter {
    compression: Compression,
    block_size: usize,
    /// Header placeholder, closed blocks, and for `Compression::None` the
    /// open block (header placeholder plus records).
    buf: Vec<u8>,
    /// The open block's record bytes when compressing.
    scratch: Vec<u8>,
    index: Vec<BlockIndexEntry>,
    open: Option<OpenBlock>,
    record_count: u64,
    first_offset: Option<i64>,
    last_offset: Option<i64>,
    min_timestamp: Option<i64>,
    max_timestamp: Option<i64>,
    uncompressed_bytes: u64,
    /// Created on first use and reused: a zstd context is costly to set up.
    zstd: Option<zstd::bulk::Compressor<'static>>,
}

#[derive(Debug, Clone, Copy)]
struct OpenBlock {
    position: usize,
    first_offset: i64,
    last_offset: i64,
    first_timestamp: i64,
    max_timestamp: i64,
    record_count: u32,
    len: usize,
}

impl SegmentWriter {
    pub fn new(compression: Compression) -> Self {
        Self::with_block_size(compression, DEFAULT_BLOCK_SIZE)
    }

    /// `block_size` is clamped to `1..=MAX_BLOCK_LEN`; 1 puts every record in
    /// a block of its own.
    pub fn with_block_size(compression: Compression, block_size: usize) -> Self {
        let mut buf = Vec::with_capacity(HEADER_LEN + BLOCK_HEADER_LEN);
        buf.resize(HEADER_LEN, 0);
        Self {
            compression,
            block_size: block_size.clamp(1, MAX_BLOCK_LEN),
            buf,
            scratch: Vec::new(),
            index: Vec::new(),
            open: None,
            record_count: 0,
            first_offset: None,
            last_offset: None,
            min_timestamp: None,
            max_timestamp: None,
            uncompressed_bytes: 0,
            zstd: None,
        }
    }

    pub fn compression(&self) -> Compression {
        self.compression
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Reserves room for `bytes` more bytes of encoded records, so that a
    /// writer whose output size is known (compaction) grows its buffer
    /// once instead of doubling it.
    pub fn reserve(&mut self, bytes: usize) {
        self.buf.reserve(bytes);
    }

    /// Appends `record`, keeping `record.offset` as given.
    ///
    /// On error nothing was appended and the writer can still be used.
    pub fn append(&mut self, record: &Record) -> Result<(), SegmentError> {
        if let Some(previous) = self.last_offset
            && record.offset <= previous
        {
            return Err(SegmentError::OffsetNotIncreasing {
                previous,
                offset: record.offset,
            });
        }
        let fields = fields_len(record);
        // In a fresh block both deltas are 0 and take one byte each, which
        // is the smallest this record can be anywhere.
        let fresh = framed_len(fields + 2);
        if fresh > MAX_BLOCK_LEN {
            return Err(SegmentError::RecordTooLarge {
                size: fresh,
                max: MAX_BLOCK_LEN,
            });
        }
        if let Some(open) = &self.open {
            let here = framed_len(fields + deltas_len(open, record));
            // Closing lazily (here rather than right after the block fills)
            // means a compression failure never leaves a record half-added.
            if open.len >= self.block_size
                || here >= self.block_size
                || open.len + here > MAX_BLOCK_LEN
                || open.record_count == u32::MAX
            {
                self.close_block()?;
            }
        }
        let open = match self.open {
            Some(open) => open,
            None => self.open_block(record),
        };
        let offset_delta = record.offset.wrapping_sub(open.first_offset) as u64;
        let timestamp_delta = record.timestamp.wrapping_sub(open.first_timestamp);
        let body_len = fields + offset_delta.required_space() + timestamp_delta.required_space();
        let total = framed_len(body_len);

        let sink = match self.compression {
            Compression::None => &mut self.buf,
            Compression::Lz4 | Compression::Zstd => &mut self.scratch,
        };
        let before = sink.len();
        sink.reserve(total);
        put_uvarint(sink, body_len as u64);
        put_uvarint(sink, offset_delta);
        put_ivarint(sink, timestamp_delta);
        encode_fields(sink, record);
        debug_assert_eq!(sink.len() - before, total);

        self.open = Some(OpenBlock {
            last_offset: record.offset,
            max_timestamp: open.max_timestamp.max(record.timestamp),
            record_count: open.record_count + 1,
            len: open.len + total,
            ..open
        });
        self.record_count += 1;
        self.first_offset.get_or_insert(record.offset);
        self.last_offset = Some(record.offset);
        self.min_timestamp = Some(
            self.min_timestamp
                .map_or(record.timestamp, |t| t.min(record.timestamp)),
        );
        self.max_timestamp = Some(
            self.max_timestamp
                .map_or(record.timestamp, |t| t.max(record.timestamp)),
        );
        self.uncompressed_bytes += total as u64;
        Ok(())
    }

    pub fn record_count(&self) -> u64 {
        self.record_count
    }

    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    pub fn first_offset(&self) -> Option<i64> {
        self.first_offset
    }

    pub fn last_offset(&self) -> Option<i64> {
        self.last_offset
    }

    pub fn min_timestamp(&self) -> Option<i64> {
        self.min_timestamp
    }

    pub fn max_timestamp(&self) -> Option<i64> {
        self.max_timestamp
    }

    /// Approximate size of the finished segment: closed blocks as stored,
    /// the open block uncompressed, plus index and footer. O(1).
    pub fn estimated_size(&self) -> usize {
        let open_len = match (&self.open, self.compression) {
            (None, _) | (Some(_), Compression::None) => 0, // already in `buf`
            (Some(open), _) => BLOCK_HEADER_LEN + open.len,
        };
        let blocks = self.index.len() + usize::from(self.open.is_some());
        self.buf.len() + open_len + blocks * INDEX_ENTRY_LEN + FOOTER_LEN
    }

    /// Total size of the record encodings appended so far, before
    /// compression and without block, index or footer overhead.
    pub fn uncompressed_bytes(&self) -> u64 {
        self.uncompressed_bytes
    }

    pub fn finish(mut self) -> Result<Bytes, SegmentError> {
        self.close_block()?;
        let block_count = u32::try_from(self.index.len()).map_err(|_| SegmentError::Corrupt {
            what: "more than u32::MAX blocks",
            position: self.buf.len(),
        })?;
        let header = SegmentHeader {
            version: VERSION,
            compression: self.compression,
            base_offset: self.first_offset.unwrap_or(0),
            last_offset: self.last_offset.unwrap_or(-1),
            record_count: self.record_count,
            min_timestamp: self.min_timestamp.unwrap_or(-1),
            max_timestamp: self.max_timestamp.unwrap_or(-1),
            block_count,
        };
        let mut buf = self.buf;
        buf[..HEADER_LEN].copy_from_slice(&header.encode());
        let index_position = buf.len() as u64;
        buf.reserve(self.index.len() * INDEX_ENTRY_LEN + FOOTER_LEN);
        for entry in &self.index {
            entry.encode_into(&mut buf);
        }
        buf.extend_from_slice(&index_position.to_le_bytes());
        let crc = crc32c::crc32c(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());
        buf.extend_from_slice(&MAGIC);
        // Finished segments sit in the read cache, which weighs them by
        // length: give back the growth slack so that memory matches.
        buf.shrink_to_fit();
        Ok(Bytes::from(buf))
    }

    fn open_block(&mut self, record: &Record) -> OpenBlock {
        let position = self.buf.len();
        if self.compression == Compression::None {
            // Patched with the real lengths when the block closes.
            self.buf.extend_from_slice(&[0; BLOCK_HEADER_LEN]);
        }
        OpenBlock {
            position,
            first_offset: record.offset,
            last_offset: record.offset,
            first_timestamp: record.timestamp,
            max_timestamp: record.timestamp,
            record_count: 0,
            len: 0,
        }
    }

    fn close_block(&mut self) -> Result<(), SegmentError> {
        let Some(open) = self.open else {
            return Ok(());
        };
        // `open.len` never exceeds MAX_BLOCK_LEN, which fits in a u32.
        let uncompressed_len = open.len as u32;
        let stored_len = match self.compression {
            Compression::None => uncompressed_len,
            codec if !compresses(codec, &self.scratch) => {
                self.buf.extend_from_slice(&[0; BLOCK_HEADER_LEN]);
                self.buf.extend_from_slice(&self.scratch);
                uncompressed_len | RAW_BLOCK
            }
            codec => {
                self.buf.extend_from_slice(&[0; BLOCK_HEADER_LEN]);
                match self.compress_open_block(codec) {
                    Ok(stored_len) => stored_len,
                    Err(err) => {
                        // Leave the block open and intact so the caller may
                        // retry or drop the writer; nothing half-written stays.
                        self.buf.truncate(open.position);
                        return Err(err);
                    }
                }
            }
        };
        let mut header = [0u8; BLOCK_HEADER_LEN];
        header[0..4].copy_from_slice(&uncompressed_len.to_le_bytes());
        header[4..8].copy_from_slice(&stored_len.to_le_bytes());
        header[8..12].copy_from_slice(&open.record_count.to_le_bytes());
        self.buf[open.position..open.position + BLOCK_HEADER_LEN].copy_from_slice(&header);
        self.index.push(BlockIndexEntry {
            first_offset: open.first_offset,
            last_offset: open.last_offset,
            first_timestamp: open.first_timestamp,
            max_timestamp: open.max_timestamp,
            position: open.position as u64,
        });
        self.scratch.clear();
        self.open = None;
        Ok(())
    }

    /// Compresses `scratch` onto the end of `buf`; returns the stored length.
    fn compress_open_block(&mut self, codec: Compression) -> Result<u32, SegmentError> {
        let start = self.buf.len();
        let failed = |reason: String| SegmentError::Compress { codec, reason };
        let written = match codec {
            // Uncompressed blocks are normally written in place; this arm
            // only keeps the match total without a panic path.
            Compression::None => {
                self.buf.extend_from_slice(&self.scratch);
                self.scratch.len()
            }
            Compression::Lz4 => {
                let bound = lz4_flex::block::get_maximum_output_size(self.scratch.len());
                self.buf.resize(start + bound, 0);
                lz4_flex::block::compress_into(&self.scratch, &mut self.buf[start..])
                    .map_err(|e| failed(e.to_string()))?
            }
            Compression::Zstd => {
                let compressor = match &mut self.zstd {
                    Some(compressor) => compressor,
                    None => self.zstd.insert(
                        zstd::bulk::Compressor::new(zstd::DEFAULT_COMPRESSION_LEVEL)
                            .map_err(|e| failed(e.to_string()))?,
                    ),
                };
                let bound = zstd::compress_bound(self.scratch.len());
                self.buf.resize(start + bound, 0);
                compressor
                    .compress_to_buffer(&self.scratch, &mut self.buf[start..])
                    .map_err(|e| failed(e.to_string()))?
            }
        };
        self.buf.truncate(start + written);
        u32::try_from(written).map_err(|_| failed(format!("{written} byte block exceeds u32")))
    }
}

impl fmt::Debug for SegmentWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentWriter")
            .field("compression", &self.compression)
            .field("block_size", &self.block_size)
            .field("record_count", &self.record_count)
            .field("first_offset", &self.first_offset)
            .field("last_offset", &self.last_offset)
            .field(
                "blocks",
                &(self.index.len() + usize::from(self.open.is_some())),
            )
            .field("estimated_size", &self.estimated_size())
            .finish()
    }
}

/// Bytes of a block sampled to decide whether it is worth compressing.
const SAMPLE: usize = 8 << 10;

/// Whether a block compresses by at least 10%, judged from its first
/// [`SAMPLE`] bytes: random or already-compressed data is stored raw
/// instead of paying for compression that saves nothing.
fn compresses(codec: Compression, block: &[u8]) -> bool {
    let sample = &block[..block.len().min(SAMPLE)];
    if sample.len() < 256 {
        return true;
    }
    let compressed = match codec {
        Compression::None => return false,
        Compression::Lz4 => lz4_flex::block::compress(sample).len(),
        Compression::Zstd => zstd::bulk::compress(sample, 1).map_or(usize::MAX, |c| c.len()),
    };
    compressed * 10 < sample.len() * 9
}

/// Length of a record with `body_len` bytes after its length prefix.
fn framed_len(body_len: usize) -> usize {
    (body_len as u64).required_space() + body_len
}

fn deltas_len(open: &OpenBlock, record: &Record) -> usize {
    let offset_delta = record.offset.wrapping_sub(open.first_offset) as u64;
    let timestamp_delta = record.timestamp.wrapping_sub(open.first_timestamp);
    offset_delta.required_space() + timestamp_delta.required_space()
}

fn len_prefixed(len: usize) -> usize {
    (len as u64).required_space() + len
}

/// Encoded size of key, value and headers: everything after the deltas.
fn fields_len(record: &Record) -> usize {
    let key = nullable_len(record.key.as_deref());
    let value = nullable_len(record.value.as_deref());
    let headers: usize = record
        .headers
        .iter()
        .map(|h| len_prefixed(h.key.len()) + nullable_len(h.value.as_deref()))
        .sum();
    key + value + (record.headers.len() as u64).required_space() + headers
}

fn nullable_len(bytes: Option<&[u8]>) -> usize {
    match bytes {
        None => 1,
        Some(b) => (b.len() as u64 + 1).required_space() + b.len(),
    }
}

fn encode_fields(out: &mut Vec<u8>, record: &Record) {
    put_nullable(out, record.key.as_deref());
    put_nullable(out, record.value.as_deref());
    put_uvarint(out, record.headers.len() as u64);
    for header in &record.headers {
        put_uvarint(out, header.key.len() as u64);
        out.extend_from_slice(header.key.as_bytes());
        put_nullable(out, header.value.as_deref());
    }
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_uvarint(out, 0),
        Some(b) => {
            put_uvarint(out, b.len() as u64 + 1);
            out.extend_from_slice(b);
        }
    }
}

fn put_uvarint(out: &mut Vec<u8>, value: u64) {
    let mut tmp = [0u8; 10];
    let n = value.encode_var(&mut tmp);
    out.extend_from_slice(&tmp[..n]);
}

/// Zigzag, via integer-encoding's `i64` impl.
fn put_ivarint(out: &mut Vec<u8>, value: i64) {
    let mut tmp = [0u8; 10];
    let n = value.encode_var(&mut tmp);
    out.extend_from_slice(&tmp[..n]);
}
