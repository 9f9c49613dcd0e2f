//! Decompressing produced record batches within a limit.
//!
//! The invariant that matters: no codec allocates more than `limit` bytes
//! of output, whatever the input claims. Streams are read through a reader
//! capped at `limit + 1` bytes; snappy's per-block claimed lengths are
//! checked before anything is allocated for them.

use std::io::Read;

use bytes::Bytes;

/// Decompressed output would exceed the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("decompresses to more than {limit} bytes")]
pub(crate) struct OverLimit {
    pub(crate) limit: usize,
}

/// Why a batch's records could not be decompressed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecompressError {
    #[error(transparent)]
    OverLimit(#[from] OverLimit),
    #[error("{codec}: {reason}")]
    Invalid { codec: &'static str, reason: String },
}

/// Kafka's codec ids (the low three bits of a batch's attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    pub(crate) fn from_attributes(attributes: i16) -> Option<Self> {
        match attributes & 0x7 {
            0 => Some(Codec::None),
            1 => Some(Codec::Gzip),
            2 => Some(Codec::Snappy),
            3 => Some(Codec::Lz4),
            4 => Some(Codec::Zstd),
            _ => None,
        }
    }
}

/// Largest zstd window accepted (2^24 = 16 MiB): a frame cannot make the
/// decoder allocate a larger one. Producers use far smaller windows.
const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// Xerial's framing header, which Kafka's Java client writes before snappy
/// blocks; without it the data is one raw snappy block.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

/// Decompresses `data` into at most `limit` bytes.
pub(crate) fn decompress(
    codec: Codec,
    data: Bytes,
    limit: usize,
) -> Result<Bytes, DecompressError> {
    let invalid = |codec: &'static str| {
        move |e: std::io::Error| DecompressError::Invalid {
            codec,
            reason: e.to_string(),
        }
    };
    match codec {
        Codec::None => {
            if data.len() > limit {
                return Err(OverLimit { limit }.into());
            }
            Ok(data)
        }
        Codec::Gzip => read_capped(flate2::read::MultiGzDecoder::new(&data[..]), limit)
            .map_err(|e| e.or_invalid(invalid("gzip"))),
        Codec::Lz4 => read_capped(lz4_flex::frame::FrameDecoder::new(&data[..]), limit)
            .map_err(|e| e.or_invalid(invalid("lz4"))),
        Codec::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::new(&data[..]).map_err(|e| {
                DecompressError::Invalid {
                    codec: "zstd",
                    reason: e.to_string(),
                }
            })?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| DecompressError::Invalid {
                    codec: "zstd",
                    reason: e.to_string(),
                })?;
            read_capped(decoder, limit).map_err(|e| e.or_invalid(invalid("zstd")))
        }
        Codec::Snappy => snappy(&data, limit),
    }
}

enum ReadError {
    OverLimit(OverLimit),
    Io(std::io::Error),
}

impl ReadError {
    fn or_invalid(
        self,
        invalid: impl FnOnce(std::io::Error) -> DecompressError,
    ) -> DecompressError {
        match self {
            ReadError::OverLimit(over) => over.into(),
            ReadError::Io(error) => invalid(error),
        }
    }
}

/// Reads a decompressing stream to its end, failing as soon as it yields
/// more than `limit` bytes.
fn read_capped(reader: impl Read, limit: usize) -> Result<Bytes, ReadError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(ReadError::Io)?;
    if out.len() > limit {
        return Err(ReadError::OverLimit(OverLimit { limit }));
    }
    Ok(Bytes::from(out))
}

fn snappy(data: &[u8], limit: usize) -> Result<Bytes, DecompressError> {
    let invalid = |reason: String| DecompressError::Invalid {
        codec: "snappy",
        reason,
    };
    let block_len = |block: &[u8]| {
        snap::raw::decompress_len(block).map_err(|e| invalid(format!("block header: {e}")))
    };
    if !data.starts_with(XERIAL_MAGIC) {
        let claimed = block_len(data)?;
        if claimed > limit {
            return Err(OverLimit { limit }.into());
        }
        let mut out = vec![0; claimed];
        let written = snap::raw::Decoder::new()
            .decompress(data, &mut out)
            .map_err(|e| invalid(e.to_string()))?;
        out.truncate(written);
        return Ok(Bytes::from(out));
    }
    let mut rest = data
        .get(XERIAL_HEADER_LEN..)
        .ok_or_else(|| invalid("truncated framing header".into()))?;
    let mut out: Vec<u8> = Vec::new();
    let mut decoder = snap::raw::Decoder::new();
    while !rest.is_empty() {
        let (len, after) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| invalid("truncated block length".into()))?;
        let len = u32::from_be_bytes(*len) as usize;
        let block = after
            .get(..len)
            .ok_or_else(|| invalid(format!("block of {len} bytes is truncated")))?;
        rest = &after[len..];
        let claimed = block_len(block)?;
        let start = out.len();
        if claimed > limit - start {
            return Err(OverLimit { limit }.into());
        }
        out.resize(start + claimed, 0);
        let written = decoder
            .decompress(block, &mut out[start..])
            .map_err(|e| invalid(e.to_string()))?;
        out.truncate(start + written);
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Bytes {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).expect("gzip");
        Bytes::from(encoder.finish().expect("gzip"))
    }

    fn lz4(data: &[u8]) -> Bytes {
        let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
        encoder.write_all(data).expect("lz4");
        Bytes::from(encoder.finish().expect("lz4"))
    }

    fn zstd(data: &[u8]) -> Bytes {
        Bytes::from(zstd::encode_all(data, 3).expect("zstd"))
    }

    fn xerial(data: &[u8]) -> Bytes {
        let mut out = Vec::from(&b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01"[..]);
        for chunk in data.chunks(32 << 10) {
            let block = snap::raw::Encoder::new()
                .compress_vec(chunk)
                .expect("snappy");
            out.extend_from_slice(&(block.len() as u32).to_be_bytes());
            out.extend_from_slice(&block);
        }
        Bytes::from(out)
    }

    fn raw_snappy(data: &[u8]) -> Bytes {
        Bytes::from(
            snap::raw::Encoder::new()
                .compress_vec(data)
                .expect("snappy"),
        )
    }

    type Encode = fn(&[u8]) -> Bytes;
    const CODECS: [(Codec, Encode); 5] = [
        (Codec::Gzip, gzip),
        (Codec::Lz4, lz4),
        (Codec::Zstd, zstd),
        (Codec::Snappy, xerial),
        (Codec::Snappy, raw_snappy),
    ];

    #[test]
    fn every_codec_round_trips_up_to_the_limit() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for (codec, encode) in CODECS {
            let out = decompress(codec, encode(&data), data.len()).expect("within the limit");
            assert_eq!(&out[..], &data[..], "{codec:?}");
        }
    }

    #[test]
    fn every_codec_stops_at_the_limit() {
        // 64 MiB of zeros compresses to a few KiB (or KiB per block).
        let zeros = vec![0u8; 64 << 20];
        for (codec, encode) in CODECS {
            let bomb = encode(&zeros);
            assert!(bomb.len() < 4 << 20, "{codec:?}: {}", bomb.len());
            let error = decompress(codec, bomb, 1 << 20).expect_err("over the limit");
            assert!(
                matches!(error, DecompressError::OverLimit(OverLimit { limit }) if limit == 1 << 20),
                "{codec:?}: {error}"
            );
        }
    }

    #[test]
    fn a_snappy_block_claiming_4_gib_is_refused_before_allocating() {
        // A raw snappy block whose varint header claims u32::MAX bytes.
        let mut claim = vec![0xff, 0xff, 0xff, 0xff, 0x0f];
        claim.extend_from_slice(&[0u8; 16]);
        let error =
            decompress(Codec::Snappy, Bytes::from(claim.clone()), 1 << 20).expect_err("refused");
        assert!(matches!(error, DecompressError::OverLimit(_)), "{error}");
        let mut framed = Vec::from(&b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01"[..]);
        framed.extend_from_slice(&(claim.len() as u32).to_be_bytes());
        framed.extend_from_slice(&claim);
        let error = decompress(Codec::Snappy, Bytes::from(framed), 1 << 20).expect_err("refused");
        assert!(matches!(error, DecompressError::OverLimit(_)), "{error}");
    }

    #[test]
    fn garbage_is_invalid_not_a_panic() {
        for (codec, encode) in CODECS {
            let valid = encode(b"hello hello hello hello");
            for cut in 0..valid.len() {
                let _ = decompress(codec, valid.slice(..cut), 1 << 20);
            }
            let mut damaged = valid.to_vec();
            for byte in damaged.iter_mut().skip(4) {
                *byte ^= 0x5a;
            }
            let _ = decompress(codec, Bytes::from(damaged), 1 << 20);
        }
    }
}
