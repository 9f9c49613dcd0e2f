//! SASL PLAIN (RFC 4616): one token `authzid NUL authcid NUL password`,
//! verified by the caller against the user's SCRAM credential.

use super::SaslError;

/// What a PLAIN token carries. `Debug` hides the password.
pub(crate) struct PlainToken {
    pub(crate) user: String,
    pub(crate) password: String,
}

impl std::fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainToken")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Longest user name or password accepted (RFC 4616 allows 255 octets).
const MAX_FIELD: usize = 255;

/// Parses a PLAIN token. The authorization id, when given, must be the
/// user itself (Kafka's rule: no impersonation).
pub(crate) fn parse(token: &[u8]) -> Result<PlainToken, SaslError> {
    let text = std::str::from_utf8(token)
        .map_err(|_| SaslError::malformed("Invalid SASL/PLAIN response: not UTF-8"))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::malformed(
            "Invalid SASL/PLAIN response: expected 3 tokens",
        ));
    };
    if user.is_empty() {
        return Err(SaslError::malformed(
            "Authentication failed: username not specified",
        ));
    }
    if password.is_empty() {
        return Err(SaslError::malformed(
            "Authentication failed: password not specified",
        ));
    }
    if user.len() > MAX_FIELD || password.len() > MAX_FIELD || authzid.len() > MAX_FIELD {
        return Err(SaslError::malformed(
            "Invalid SASL/PLAIN response: a field is longer than 255 bytes",
        ));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(SaslError::Failed {
            message: "Authentication failed: Client requested an authorization id that is \
                      different from username"
                .into(),
        });
    }
    Ok(PlainToken {
        user: user.to_string(),
        password: password.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_gives_user_and_password() {
        let token = parse(b"\0alice\0secret").expect("valid");
        assert_eq!(
            (token.user.as_str(), token.password.as_str()),
            ("alice", "secret")
        );
        let token = parse(b"alice\0alice\0secret").expect("authzid = user");
        assert_eq!(token.user, "alice");
        assert!(!format!("{token:?}").contains("secret"));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for token in [
            &b""[..],
            b"alice",
            b"\0alice",
            b"\0\0secret",
            b"\0alice\0",
            b"\0alice\0secret\0more",
            b"\0al\xffice\0secret",
        ] {
            assert!(
                matches!(parse(token), Err(SaslError::Malformed { .. })),
                "{token:?}"
            );
        }
        let long = format!("\0{}\0pw", "u".repeat(256));
        assert!(parse(long.as_bytes()).is_err());
    }

    #[test]
    fn another_authorization_id_fails() {
        assert!(matches!(
            parse(b"admin\0alice\0secret"),
            Err(SaslError::Failed { .. })
        ));
    }
}
