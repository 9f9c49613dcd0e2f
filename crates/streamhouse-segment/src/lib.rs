//! The on-disk segment format: consecutive records of one partition, packed
//! into compressed blocks with a block index, so a reader can fetch a whole
//! object from S3 once and then seek by offset or timestamp without decoding
//! what it does not return.
//!
//! The crate is pure: bytes in, values out. Fetching objects, caching them
//! and deciding what to write is the storage engine's work.
//!
//! # Invariant
//!
//! **A reader returns either exactly the records that were written or a
//! typed [`SegmentError`] — never a panic, never wrong data.** Everything
//! below serves that: the CRC catches damage, and every length, count and
//! offset read from the buffer is bounds-checked and cross-checked before it
//! is trusted, so even a segment crafted with a valid CRC cannot make the
//! reader index out of bounds or allocate without limit.
//!
//! # Byte layout, version 1
//!
//! All fixed-width integers are little-endian.
//!
//! ```text
//! Segment := Header Block* Index Footer
//! ```
//!
//! ## Header ([`HEADER_LEN`] = 56 bytes)
//!
//! | offset | field           | type    | notes                                        |
//! |-------:|-----------------|---------|----------------------------------------------|
//! |      0 | magic           | 4 bytes | `b"SHSG"`                                     |
//! |      4 | version         | u8      | `1`                                          |
//! |      5 | compression     | u8      | 0 = none, 1 = lz4 (lz4_flex block), 2 = zstd |
//! |      6 | reserved        | u16     | 0                                            |
//! |      8 | base_offset     | i64     | offset of the first record (0 when empty)    |
//! |     16 | last_offset     | i64     | offset of the last record (-1 when empty)    |
//! |     24 | record_count    | u64     |                                              |
//! |     32 | min_timestamp   | i64     | -1 when empty                                |
//! |     40 | max_timestamp   | i64     | -1 when empty                                |
//! |     48 | block_count     | u32     |                                              |
//! |     52 | reserved        | u32     | 0                                            |
//!
//! ## Block ([`BLOCK_HEADER_LEN`] = 12 bytes + payload)
//!
//! | offset | field            | type | notes                                      |
//! |-------:|------------------|------|--------------------------------------------|
//! |      0 | uncompressed_len | u32  | at most [`MAX_BLOCK_LEN`] (512 MiB)        |
//! |      4 | stored_len       | u32  | payload bytes that follow; the top bit (`RAW_BLOCK`) marks a block stored uncompressed |
//! |      8 | record_count     | u32  | at least 1                                 |
//! |     12 | payload          |      | the block's record bytes, compressed alone |
//!
//! The payload is compressed on its own with the segment's codec (stored raw
//! for `none`), so any block can be decoded without its neighbours. In a
//! compressed segment a block whose bytes do not compress (a sample of it
//! compresses to more than 90%) is stored raw, its `stored_len` carrying
//! the `RAW_BLOCK` bit, so that incompressible data costs no compression
//! time and no decompression time. A block
//! is closed once its uncompressed bytes reach the block target
//! ([`DEFAULT_BLOCK_SIZE`], 1 MiB); a record that on its own reaches the
//! target gets a block of its own.
//!
//! ## Record (inside a block's uncompressed bytes)
//!
//! | field           | encoding           | notes                                         |
//! |-----------------|--------------------|-----------------------------------------------|
//! | length          | varint u64         | bytes of the rest of this record              |
//! | offset_delta    | varint u64         | offset − block first_offset                   |
//! | timestamp_delta | varint zigzag i64  | timestamp − block first_timestamp (wrapping)  |
//! | key_len         | varint u64         | 0 = no key; n + 1 = key of n bytes            |
//! | key             | bytes              |                                               |
//! | value_len       | varint u64         | 0 = null value; n + 1 = value of n bytes      |
//! | value           | bytes              |                                               |
//! | header_count    | varint u64         |                                               |
//! | per header      |                    | name_len varint u64, name (UTF-8), value_len varint u64 (0 = null, n + 1 = n bytes), value |
//!
//! Varints are LEB128 as implemented by `integer-encoding` 4.1
//! (`VarInt::encode_var` / `decode_var`). Its `i64` impl zigzag-encodes
//! (`(n << 1) ^ (n >> 63)`), which is what `timestamp_delta` relies on; we
//! never pass an `i64` where a plain unsigned varint is meant. Deltas use
//! wrapping arithmetic so that any two `i64` timestamps, however far apart,
//! encode and decode back exactly.
//!
//! ## Index (`block_count` × [`INDEX_ENTRY_LEN`] = 40 bytes)
//!
//! | offset | field           | type | notes                                           |
//! |-------:|-----------------|------|-------------------------------------------------|
//! |      0 | first_offset    | i64  |                                                 |
//! |      8 | last_offset     | i64  |                                                 |
//! |     16 | first_timestamp | i64  | timestamp of the block's first record           |
//! |     24 | max_timestamp   | i64  | timestamps need not be monotonic                |
//! |     32 | position        | u64  | byte offset of the block header in the segment |
//!
//! ## Footer ([`FOOTER_LEN`] = 16 bytes)
//!
//! | offset | field          | type    | notes                                      |
//! |-------:|----------------|---------|--------------------------------------------|
//! |      0 | index_position | u64     |                                            |
//! |      8 | crc32c         | u32     | CRC32C of every byte before this field     |
//! |     12 | magic          | 4 bytes | `b"SHSG"`                                   |
//!
//! The footer's shape is fixed across versions: the CRC is checked before
//! the version byte is trusted, so a damaged version byte reads as damage
//! rather than as an unknown version.
//!
//! ## Multi-partition objects
//!
//! A flush uploads one object holding one segment per partition followed by
//! a table of contents; see [`batch`].

use std::fmt;
use std::str::FromStr;

pub mod batch;
pub mod reader;
pub mod writer;

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;

pub use batch::{
    BATCH_MAGIC, BatchObjectBuilder, ObjectEntry, TOC_FOOTER_LEN, is_batch_object, read_toc,
};
pub use reader::{RecordIter, SegmentReader};
pub use writer::SegmentWriter;

/// Leading and trailing magic of a segment.
pub const MAGIC: [u8; 4] = *b"SHSG";
/// Format version written by [`SegmentWriter`] and the only one read.
pub const VERSION: u8 = 1;
/// Default uncompressed size at which a block is closed.
pub const DEFAULT_BLOCK_SIZE: usize = 1 << 20;
pub const HEADER_LEN: usize = 56;
pub const FOOTER_LEN: usize = 16;
pub const INDEX_ENTRY_LEN: usize = 40;
pub const BLOCK_HEADER_LEN: usize = 12;
/// Set in a block's `stored_len` when its payload is stored uncompressed in
/// a compressed segment. Blocks never exceed [`MAX_BLOCK_LEN`], so the top
/// bit of the length is free.
pub const RAW_BLOCK: u32 = 1 << 31;
/// Largest uncompressed block the reader will allocate for, and so the
/// largest the writer will produce.
pub const MAX_BLOCK_LEN: usize = 512 << 20;

/// The smallest possible record encoding: six one-byte varints (length,
/// offset delta, timestamp delta, key_len, value_len, header_count). Used to
/// reject record counts that cannot fit in a block before allocating for them.
pub(crate) const MIN_RECORD_LEN: usize = 6;

/// Block compression codec of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn as_u8(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 1,
            Compression::Zstd => 2,
        }
    }

    pub fn from_u8(codec: u8) -> Result<Self, SegmentError> {
        match codec {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Lz4),
            2 => Ok(Compression::Zstd),
            codec => Err(SegmentError::UnknownCompression { codec }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of parsing a [`Compression`] from a configuration string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compression {input:?}: expected none, lz4 or zstd")]
pub struct ParseCompressionError {
    pub input: String,
}

impl FromStr for Compression {
    type Err = ParseCompressionError;

    /// Case-insensitive, since configuration values are typed by people.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Compression::None, Compression::Lz4, Compression::Zstd]
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseCompressionError {
                input: s.to_owned(),
            })
    }
}

/// Everything that can go wrong writing or reading a segment or a batch
/// object's table of contents.
///
/// `Clone` and `Eq` so that one failure can be handed to every waiter on it
/// and compared in tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    #[error("truncated: needed {needed} bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("bad magic {found:?}")]
    BadMagic { found: [u8; 4] },
    #[error("unsupported segment version {version}")]
    UnsupportedVersion { version: u8 },
    #[error("unknown compression codec {codec}")]
    UnknownCompression { codec: u8 },
    /// `expected` is the CRC stored in the data, `actual` the one computed.
    #[error("crc mismatch: stored {expected:#010x}, computed {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },
    /// A structural inconsistency. `position` is a byte offset in the
    /// segment (or object); inside a compressed block it is the block's
    /// payload start plus the offset within the decompressed bytes.
    #[error("corrupt segment: {what} at byte {position}")]
    Corrupt { what: &'static str, position: usize },
    #[error("{codec} decompression failed: {reason}")]
    Decompress { codec: Compression, reason: String },
    #[error("{codec} compression failed: {reason}")]
    Compress { codec: Compression, reason: String },
    #[error("offset {offset} is not greater than the previous offset {previous}")]
    OffsetNotIncreasing { previous: i64, offset: i64 },
    /// The writer refuses a record whose encoding would exceed the block
    /// size the reader accepts, rather than write a segment nobody can read.
    #[error("record of {size} encoded bytes exceeds the {max} byte block limit")]
    RecordTooLarge { size: usize, max: usize },
    /// [`SegmentReader::block_records`] was asked for a block that does not
    /// exist.
    #[error("block {block} out of range: segment has {block_count} blocks")]
    BlockOutOfRange { block: usize, block_count: usize },
}

/// The fixed-size segment header, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader {
    pub version: u8,
    pub compression: Compression,
    pub base_offset: i64,
    pub last_offset: i64,
    pub record_count: u64,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    pub block_count: u32,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&MAGIC);
        out[4] = self.version;
        out[5] = self.compression.as_u8();
        out[8..16].copy_from_slice(&self.base_offset.to_le_bytes());
        out[16..24].copy_from_slice(&self.last_offset.to_le_bytes());
        out[24..32].copy_from_slice(&self.record_count.to_le_bytes());
        out[32..40].copy_from_slice(&self.min_timestamp.to_le_bytes());
        out[40..48].copy_from_slice(&self.max_timestamp.to_le_bytes());
        out[48..52].copy_from_slice(&self.block_count.to_le_bytes());
        out
    }

    /// Parses the header at the start of `data`. Checks magic, version,
    /// codec and reserved fields, but not the CRC: that needs the whole
    /// segment (see [`SegmentReader::new`]). Useful on its own to inspect an
    /// object from a ranged read of its first [`HEADER_LEN`] bytes.
    pub fn decode(data: &[u8]) -> Result<Self, SegmentError> {
        let truncated = || SegmentError::Truncated {
            needed: HEADER_LEN,
            available: data.len(),
        };
        let head: &[u8; HEADER_LEN] = data
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(truncated)?;
        let magic = le_array::<4>(head, 0).ok_or_else(truncated)?;
        if magic != MAGIC {
            return Err(SegmentError::BadMagic { found: magic });
        }
        let version = head[4];
        if version != VERSION {
            return Err(SegmentError::UnsupportedVersion { version });
        }
        let compression = Compression::from_u8(head[5])?;
        let field = |pos| le_i64(head, pos).ok_or_else(truncated);
        let header = SegmentHeader {
            version,
            compression,
            base_offset: field(8)?,
            last_offset: field(16)?,
            record_count: le_u64(head, 24).ok_or_else(truncated)?,
            min_timestamp: field(32)?,
            max_timestamp: field(40)?,
            block_count: le_u32(head, 48).ok_or_else(truncated)?,
        };
        if le_u16(head, 6) != Some(0) || le_u32(head, 52) != Some(0) {
            return Err(SegmentError::Corrupt {
                what: "reserved header field is not zero",
                position: 6,
            });
        }
        Ok(header)
    }
}

/// One block's entry in the segment index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockIndexEntry {
    pub first_offset: i64,
    pub last_offset: i64,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    pub position: u64,
}

impl BlockIndexEntry {
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.first_offset.to_le_bytes());
        out.extend_from_slice(&self.last_offset.to_le_bytes());
        out.extend_from_slice(&self.first_timestamp.to_le_bytes());
        out.extend_from_slice(&self.max_timestamp.to_le_bytes());
        out.extend_from_slice(&self.position.to_le_bytes());
    }

    /// The entry at byte `pos` of `data`; `None` if fewer than
    /// [`INDEX_ENTRY_LEN`] bytes remain there.
    pub fn decode(data: &[u8], pos: usize) -> Option<Self> {
        Some(BlockIndexEntry {
            first_offset: le_i64(data, pos)?,
            last_offset: le_i64(data, pos.checked_add(8)?)?,
            first_timestamp: le_i64(data, pos.checked_add(16)?)?,
            max_timestamp: le_i64(data, pos.checked_add(24)?)?,
            position: le_u64(data, pos.checked_add(32)?)?,
        })
    }
}

// Bounds-checked little-endian reads: every fixed-width field taken from a
// buffer goes through these, so a bad length can only yield `None`.

pub(crate) fn le_array<const N: usize>(data: &[u8], pos: usize) -> Option<[u8; N]> {
    data.get(pos..pos.checked_add(N)?)?.try_into().ok()
}

pub(crate) fn le_u16(data: &[u8], pos: usize) -> Option<u16> {
    le_array(data, pos).map(u16::from_le_bytes)
}

pub(crate) fn le_u32(data: &[u8], pos: usize) -> Option<u32> {
    le_array(data, pos).map(u32::from_le_bytes)
}

pub(crate) fn le_i32(data: &[u8], pos: usize) -> Option<i32> {
    le_array(data, pos).map(i32::from_le_bytes)
}

pub(crate) fn le_u64(data: &[u8], pos: usize) -> Option<u64> {
    le_array(data, pos).map(u64::from_le_bytes)
}

pub(crate) fn le_i64(data: &[u8], pos: usize) -> Option<i64> {
    le_array(data, pos).map(i64::from_le_bytes)
}

pub(crate) fn corrupt(what: &'static str, position: usize) -> SegmentError {
    SegmentError::Corrupt { what, position }
}
