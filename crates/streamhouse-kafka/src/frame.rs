//! Framing: a request is a 4-byte big-endian length followed by that many
//! bytes (request header, then body); a response is the same shape.
//!
//! Decoding never panics on any input: lengths are checked before the
//! protocol crate sees the bytes, and everything it rejects becomes a
//! [`DecodeError`].

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::versions;

/// Why a connection cannot go on reading frames.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("frame of {size} bytes exceeds the maximum of {max}")]
    TooLarge { size: i64, max: usize },
    #[error("negative frame size {size}")]
    Negative { size: i32 },
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads one frame; `Ok(None)` when the peer closed the connection between
/// frames.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<Bytes>, FrameError> {
    let mut size = [0u8; 4];
    match reader.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(size);
    let len = usize::try_from(size).map_err(|_| FrameError::Negative { size })?;
    if len > max {
        return Err(FrameError::TooLarge {
            size: i64::from(size),
            max,
        });
    }
    let mut frame = BytesMut::zeroed(len);
    match reader.read_exact(&mut frame).await {
        Ok(_) => Ok(Some(frame.freeze())),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(FrameError::Truncated),
        Err(e) => Err(e.into()),
    }
}

/// A decoded request.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) header: RequestHeader,
    pub(crate) api_key: ApiKey,
    pub(crate) version: i16,
    pub(crate) body: RequestKind,
}

/// Why a frame is not a request this server can answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("frame of {len} bytes is too short for a request header")]
    TooShort { len: usize },
    #[error("unknown API key {api_key}")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    #[error("{api_key:?} version {version} is not supported")]
    UnsupportedVersion {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    },
    #[error("malformed {api_key:?} v{version} request: {reason}")]
    Malformed {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        reason: String,
    },
}

impl DecodeError {
    pub(crate) fn label(&self) -> &'static str {
        match self {
            DecodeError::TooShort { .. } => "too_short",
            DecodeError::UnknownApiKey { .. } => "unknown_api_key",
            DecodeError::UnsupportedVersion { .. } => "unsupported_version",
            DecodeError::Malformed { .. } => "malformed",
        }
    }
}

/// Decodes a request frame (without its length prefix).
pub(crate) fn decode_request(frame: Bytes) -> Result<Request, DecodeError> {
    // api_key (2) + api_version (2) + correlation_id (4)
    if frame.len() < 8 {
        return Err(DecodeError::TooShort { len: frame.len() });
    }
    let mut prefix = &frame[..8];
    let raw_key = prefix.get_i16();
    let version = prefix.get_i16();
    let correlation_id = prefix.get_i32();
    let api_key = ApiKey::try_from(raw_key).map_err(|_| DecodeError::UnknownApiKey {
        api_key: raw_key,
        correlation_id,
    })?;
    if !versions::is_supported(api_key, version) {
        return Err(DecodeError::UnsupportedVersion {
            api_key,
            version,
            correlation_id,
        });
    }
    let malformed = |reason: String| DecodeError::Malformed {
        api_key,
        version,
        correlation_id,
        reason,
    };
    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, api_key.request_header_version(version))
        .map_err(|e| malformed(format!("header: {e}")))?;
    let body =
        RequestKind::decode(api_key, &mut buf, version).map_err(|e| malformed(e.to_string()))?;
    Ok(Request {
        header,
        api_key,
        version,
        body,
    })
}

/// Encodes a response with its header and length prefix.
pub(crate) fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
) -> anyhow::Result<Bytes> {
    // A Fetch answer can be tens of MiB: size the buffer once rather than
    // let it double (copying and touching fresh pages each time).
    let body = match response {
        ResponseKind::Fetch(fetch) => fetch.compute_size(version).unwrap_or(0),
        _ => 0,
    };
    let mut buf = BytesMut::with_capacity(body + 256);
    buf.put_i32(0);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    header.encode(&mut buf, api_key.response_header_version(version))?;
    response.encode(&mut buf, version)?;
    let len = i32::try_from(buf.len() - 4)?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests;
