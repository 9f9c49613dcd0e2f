//! SaslHandshake and SaslAuthenticate answers. The exchange itself runs in
//! the connection loop (it changes the connection's principal, and after a
//! v0 handshake the tokens come without Kafka request headers); what
//! reaches dispatch is a request on a listener without SASL or after
//! authentication, which Kafka answers with ILLEGAL_SASL_STATE.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateResponse, SaslHandshakeResponse};

use super::common::str_bytes;
use crate::sasl::SaslMechanism;

fn names(mechanisms: &[SaslMechanism]) -> Vec<kafka_protocol::protocol::StrBytes> {
    mechanisms
        .iter()
        .map(|m| kafka_protocol::protocol::StrBytes::from_static_str(m.name()))
        .collect()
}

/// The answer to a SaslHandshake naming `mechanism`: success, or
/// UNSUPPORTED_SASL_MECHANISM; either way the enabled mechanisms.
pub(crate) fn handshake(enabled: &[SaslMechanism], accepted: bool) -> SaslHandshakeResponse {
    let code = if accepted {
        0
    } else {
        ResponseError::UnsupportedSaslMechanism.code()
    };
    SaslHandshakeResponse::default()
        .with_error_code(code)
        .with_mechanisms(names(enabled))
}

pub(crate) fn handshake_not_allowed() -> SaslHandshakeResponse {
    SaslHandshakeResponse::default()
        .with_error_code(ResponseError::IllegalSaslState.code())
        .with_mechanisms(Vec::new())
}

pub(crate) fn authenticate_not_allowed() -> SaslAuthenticateResponse {
    authenticate_error(
        ResponseError::IllegalSaslState.code(),
        "SaslAuthenticate request received after successful authentication or on a listener \
         without SASL",
    )
}

/// A successful step: the server's token; the session lifetime is 0 (no
/// re-authentication required).
pub(crate) fn authenticate_ok(token: Vec<u8>) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(0)
        .with_auth_bytes(Bytes::from(token))
        .with_session_lifetime_ms(0)
}

pub(crate) fn authenticate_error(code: i16, message: &str) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(code)
        .with_error_message(Some(str_bytes(message.to_string())))
        .with_auth_bytes(Bytes::new())
}
