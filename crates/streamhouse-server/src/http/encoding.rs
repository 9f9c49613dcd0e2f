//! How record bytes (keys, values, header values) travel inside JSON:
//! as UTF-8 text or as standard base64.
//!
//! The invariant that matters: no byte is ever lost or replaced. A produce
//! request's strings are decoded exactly as the request's `encoding` says.
//! A read asks for an encoding; when it asks for `utf8` and a record holds
//! bytes that are not valid UTF-8, that one record is returned in base64
//! and says so in its own `encoding` field. Failing the read instead would
//! leave a text consumer stuck at that offset forever; replacing the bytes
//! with U+FFFD would corrupt data silently.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use streamhouse_core::Record;

pub(crate) use streamhouse_api::Encoding;

use super::ApiError;

/// Turning request strings into bytes and bytes into response strings, as
/// an [`Encoding`] says.
pub(crate) trait EncodingCodec {
    /// Decodes one field of a produce request; `field` names it for the
    /// error message (`records[3].value`).
    fn decode(self, text: String, field: impl FnOnce() -> String) -> Result<Bytes, ApiError>;

    /// Encodes bytes for a response. Only called with `Utf8` for bytes
    /// known to be valid UTF-8 (see [`encoding_for`]).
    fn encode(self, bytes: &[u8]) -> String;
}

impl EncodingCodec for Encoding {
    fn decode(self, text: String, field: impl FnOnce() -> String) -> Result<Bytes, ApiError> {
        match self {
            Encoding::Utf8 => Ok(Bytes::from(text.into_bytes())),
            Encoding::Base64 => STANDARD
                .decode(text.as_bytes())
                .map(Bytes::from)
                .map_err(|e| {
                    ApiError::invalid_input(format!("{} is not valid base64: {e}", field()))
                }),
        }
    }

    fn encode(self, bytes: &[u8]) -> String {
        match self {
            Encoding::Utf8 => match std::str::from_utf8(bytes) {
                Ok(text) => text.to_string(),
                Err(_) => STANDARD.encode(bytes),
            },
            Encoding::Base64 => STANDARD.encode(bytes),
        }
    }
}

/// The encoding one record is returned in: the requested one, except that
/// `utf8` becomes `base64` when any of the record's byte fields is not
/// valid UTF-8.
pub(crate) fn encoding_for(record: &Record, requested: Encoding) -> Encoding {
    if requested == Encoding::Base64 {
        return Encoding::Base64;
    }
    let is_text = |bytes: &[u8]| std::str::from_utf8(bytes).is_ok();
    let all_text = record.key.as_deref().is_none_or(is_text)
        && record.value.as_deref().is_none_or(is_text)
        && record
            .headers
            .iter()
            .all(|h| h.value.as_deref().is_none_or(is_text));
    if all_text {
        Encoding::Utf8
    } else {
        Encoding::Base64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_round_trips_text_and_base64_round_trips_bytes() {
        let text = Encoding::Utf8
            .decode("héllo".into(), || "value".into())
            .map_err(|e| e.message().to_string());
        assert_eq!(text.as_deref(), Ok("héllo".as_bytes()));

        let binary = Encoding::Base64
            .decode("AP8Q".into(), || "value".into())
            .map_err(|e| e.message().to_string());
        assert_eq!(binary.as_deref(), Ok(&[0x00, 0xff, 0x10][..]));
        assert_eq!(Encoding::Base64.encode(&[0x00, 0xff, 0x10]), "AP8Q");
    }

    #[test]
    fn bad_base64_names_the_field() {
        let error = Encoding::Base64
            .decode("not base64!".into(), || "records[2].key".into())
            .err()
            .map(|e| e.message().to_string())
            .unwrap_or_default();
        assert!(error.contains("records[2].key"), "{error}");
    }

    #[test]
    fn utf8_falls_back_to_base64_per_record() {
        let text = Record::new(1, Bytes::from_static(b"plain")).with_key(Bytes::from_static(b"k"));
        assert_eq!(encoding_for(&text, Encoding::Utf8), Encoding::Utf8);
        let binary_header = Record::new(1, Bytes::from_static(b"plain"))
            .with_header("h", Some(Bytes::from_static(&[0xff])));
        assert_eq!(
            encoding_for(&binary_header, Encoding::Utf8),
            Encoding::Base64
        );
        let null_header = Record::new(1, Bytes::from_static(b"plain")).with_header("h", None);
        assert_eq!(encoding_for(&null_header, Encoding::Utf8), Encoding::Utf8);
        assert_eq!(encoding_for(&text, Encoding::Base64), Encoding::Base64);
    }
}
