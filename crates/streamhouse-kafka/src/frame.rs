//! Framing: a request is a 4-byte big-endian length followed by that many
//! bytes (request header, then body); a response is the same shape.
//!
//! Decoding never panics on any input: lengths are checked before the
//! protocol crate sees the bytes, and everything it rejects becomes a
//! [`DecodeError`].

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::versions;

/// Why a connection cannot go on reading frames.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("frame of {size} bytes exceeds the maximum of {max} (socket.request.max.bytes)")]
    TooLarge { size: i64, max: usize },
    #[error("negative frame size {size}")]
    Negative { size: i32 },
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("a frame started but was not complete within {} ms", .timeout.as_millis())]
    ReadTimeout { timeout: Duration },
    #[error("the request memory budget is closed")]
    BudgetClosed,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Bytes read into memory at once while a frame arrives; the request
/// budget is taken in steps of this size, so a client that announces a
/// large frame holds only what it has actually sent.
const READ_CHUNK: usize = 64 << 10;

/// A frame and its share of the request memory budget, returned to the
/// budget when dropped.
pub(crate) struct Frame {
    pub(crate) bytes: Bytes,
    pub(crate) _budget: Option<OwnedSemaphorePermit>,
}

/// How a connection reads frames.
pub(crate) struct FrameLimits {
    /// Largest frame (`socket.request.max.bytes`).
    pub(crate) max_bytes: usize,
    /// Shared by all connections (`queued.max.request.bytes`).
    pub(crate) budget: Arc<Semaphore>,
    /// A frame must be complete this long after its first byte arrived,
    /// not counting time spent waiting for the budget.
    pub(crate) read_timeout: Duration,
}

/// Reads one frame; `Ok(None)` when the peer closed the connection between
/// frames. The caller decides how long to wait for a frame to start; once
/// its first byte is read the rest must arrive within `read_timeout`.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limits: &FrameLimits,
) -> Result<Option<Frame>, FrameError> {
    let mut size = [0u8; 4];
    match reader.read(&mut size[..1]).await {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let mut deadline = Instant::now() + limits.read_timeout;
    let timed_out = || FrameError::ReadTimeout {
        timeout: limits.read_timeout,
    };
    match tokio::time::timeout_at(deadline, reader.read_exact(&mut size[1..])).await {
        Err(_) => return Err(timed_out()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(FrameError::Truncated);
        }
        Ok(Err(e)) => return Err(e.into()),
        Ok(Ok(_)) => {}
    }
    let size = i32::from_be_bytes(size);
    let len = usize::try_from(size).map_err(|_| FrameError::Negative { size })?;
    if len > limits.max_bytes {
        return Err(FrameError::TooLarge {
            size: i64::from(size),
            max: limits.max_bytes,
        });
    }
    let mut frame = BytesMut::with_capacity(len.min(READ_CHUNK));
    let mut budget: Option<OwnedSemaphorePermit> = None;
    while frame.len() < len {
        let chunk = (len - frame.len()).min(READ_CHUNK);
        // Waiting for the budget is the agent's doing, not the client's:
        // it does not count against the read timeout.
        let waiting = Instant::now();
        let permit = limits
            .budget
            .clone()
            .acquire_many_owned(chunk as u32)
            .await
            .map_err(|_| FrameError::BudgetClosed)?;
        deadline += waiting.elapsed();
        match &mut budget {
            Some(held) => held.merge(permit),
            None => budget = Some(permit),
        }
        if frame.len() == READ_CHUNK {
            // The client has sent a full chunk: size the buffer once for
            // the rest rather than let it double (pages are only touched
            // as bytes arrive).
            frame.reserve(len - frame.len());
        }
        let target = frame.len() + chunk;
        while frame.len() < target {
            let read = {
                let mut limited = (&mut *reader).take((target - frame.len()) as u64);
                tokio::time::timeout_at(deadline, limited.read_buf(&mut frame)).await
            };
            match read {
                Err(_) => return Err(timed_out()),
                Ok(Ok(0)) => return Err(FrameError::Truncated),
                Ok(Ok(_)) => {}
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(FrameError::Truncated);
                }
                Ok(Err(e)) => return Err(e.into()),
            }
        }
    }
    Ok(Some(Frame {
        bytes: frame.freeze(),
        _budget: budget,
    }))
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
