//! The server side of the SASL exchanges Kafka clients use: PLAIN
//! (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802, RFC 7677).
//!
//! Each mechanism is a state machine without I/O: it takes the client's
//! token and returns the server's answer, or says which credential it
//! needs and is given it. The invariant that matters: every token is
//! hostile; a malformed one is an error, never a panic, and whether a user
//! exists is never revealed (an unknown SCRAM user goes through the same
//! exchange with a fake credential).

pub(crate) mod plain;
pub(crate) mod scram;

use std::fmt;
use std::str::FromStr;

use streamhouse_storage::security::ScramMechanism;

/// A SASL mechanism a listener may offer (`--sasl-mechanisms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaslMechanism {
    Plain,
    Scram(ScramMechanism),
}

impl SaslMechanism {
    pub const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Plain,
        SaslMechanism::Scram(ScramMechanism::Sha256),
        SaslMechanism::Scram(ScramMechanism::Sha512),
    ];

    /// The mechanism's SASL name.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(scram) => scram.name(),
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SaslMechanism {
    type Err = String;

    /// Exact names, as clients send them in SaslHandshake.
    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|mechanism| mechanism.name() == text)
            .ok_or_else(|| {
                format!(
                    "unknown SASL mechanism {text:?} (expected PLAIN, SCRAM-SHA-256 or \
                     SCRAM-SHA-512)"
                )
            })
    }
}

/// Why an exchange failed. The messages are what the client is told; they
/// never carry a password, a proof or a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SaslError {
    /// Wrong password, wrong proof or unknown user: Kafka's
    /// SASL_AUTHENTICATION_FAILED.
    #[error("{message}")]
    Failed { message: String },
    /// A token that does not follow the mechanism's syntax or order:
    /// Kafka's ILLEGAL_SASL_STATE.
    #[error("{reason}")]
    Malformed { reason: String },
}

impl SaslError {
    pub(crate) fn malformed(reason: impl Into<String>) -> Self {
        SaslError::Malformed {
            reason: reason.into(),
        }
    }

    /// Kafka's message for a credential that did not check out.
    pub(crate) fn invalid_credentials(mechanism: SaslMechanism) -> Self {
        let message = match mechanism {
            SaslMechanism::Plain => "Authentication failed: Invalid username or password".into(),
            SaslMechanism::Scram(_) => format!(
                "Authentication failed during authentication due to invalid credentials with \
                 SASL mechanism {mechanism}"
            ),
        };
        SaslError::Failed { message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanisms_parse_by_exact_name() {
        for mechanism in SaslMechanism::ALL {
            assert_eq!(mechanism.name().parse::<SaslMechanism>(), Ok(mechanism));
        }
        assert!("plain".parse::<SaslMechanism>().is_err());
        assert!("GSSAPI".parse::<SaslMechanism>().is_err());
    }
}
