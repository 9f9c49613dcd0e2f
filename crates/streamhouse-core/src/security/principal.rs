//! Principals (`User:NAME`) and the caller of one request.

use std::fmt;

use crate::ValidationError;

/// An authenticated identity, as Kafka writes it: `User:alice`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal {
    /// The principal type; StreamHouse only issues `User`.
    pub kind: String,
    pub name: String,
}

impl Principal {
    pub const USER: &'static str = "User";
    /// What a client on a listener without authentication is.
    pub const ANONYMOUS: &'static str = "ANONYMOUS";

    pub fn user(name: impl Into<String>) -> Self {
        Self {
            kind: Self::USER.to_owned(),
            name: name.into(),
        }
    }

    /// `User:ANONYMOUS`, the principal of PLAINTEXT and SSL connections
    /// without a client certificate.
    pub fn anonymous() -> Self {
        Self::user(Self::ANONYMOUS)
    }

    pub fn is_anonymous(&self) -> bool {
        self.kind == Self::USER && self.name == Self::ANONYMOUS
    }

    /// Parses `TYPE:NAME` (`User:alice`); the name may contain `:`.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        match text.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(Self {
                kind: kind.to_owned(),
                name: name.to_owned(),
            }),
            _ => Err(ValidationError::InvalidPrincipal {
                text: text.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// Who sent one request: the connection's principal and the client's
/// address (ACLs may name a host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    /// The client's IP address as text (`127.0.0.1`, `::1`).
    pub host: String,
}

impl Caller {
    pub fn new(principal: Principal, host: impl Into<String>) -> Self {
        Self {
            principal,
            host: host.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_parse_and_print_as_kafka_writes_them() {
        let alice = Principal::parse("User:alice").unwrap();
        assert_eq!(alice, Principal::user("alice"));
        assert_eq!(alice.to_string(), "User:alice");
        assert_eq!(
            Principal::parse("User:CN=a,O=b:c").unwrap().name,
            "CN=a,O=b:c"
        );
        for bad in ["", "alice", "User:", ":alice"] {
            assert!(Principal::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Principal::anonymous().is_anonymous());
    }
}
