//! SASL: not enabled. Clients configured for SASL get a clear error instead
//! of a hung or dropped connection.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateResponse, SaslHandshakeResponse};

use super::common::str_bytes;

pub(crate) fn handshake() -> SaslHandshakeResponse {
    SaslHandshakeResponse::default()
        .with_error_code(ResponseError::UnsupportedSaslMechanism.code())
        .with_mechanisms(Vec::new())
}

pub(crate) fn authenticate() -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(ResponseError::SaslAuthenticationFailed.code())
        .with_error_message(Some(str_bytes("SASL is not enabled on this server")))
}
