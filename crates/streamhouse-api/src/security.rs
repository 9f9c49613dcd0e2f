//! `/api/v1/users` and `/api/v1/acls`: SCRAM users (what they are, never
//! their keys) and Kafka ACL bindings.
//!
//! ACL values are Kafka's names as text (`Topic`, `Literal`, `Read`,
//! `Allow`); the server reads them case-insensitively, with or without
//! `_` (`TOPIC`, `describe_configs`), and answers with the spelling above.

use std::fmt;

use serde::{Deserialize, Serialize};

/// `PUT /api/v1/users/{name}`: sets the user's password. The server makes
/// a random salt and stores only the SCRAM credential derived from it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetUser {
    pub password: String,
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`; absent: both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<String>,
    /// PBKDF2 iterations, 4096-16384; absent: the server's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u32>,
}

/// Never shows the password.
impl fmt::Debug for SetUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetUser")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// `DELETE /api/v1/users/{name}?mechanism=…`; without a mechanism every
/// credential of the user is deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteUserQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<String>,
}

/// One user as `GET /api/v1/users` and `PUT` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub credentials: Vec<UserCredential>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCredential {
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    pub iterations: u32,
}

/// One ACL binding: `principal` is allowed (or denied) `operation` on the
/// resources `resource_name` matches under `pattern_type`, from `host`.
/// The body of `POST /api/v1/acls` is a list of these; `GET` and `DELETE`
/// answer with one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acl {
    /// `Topic`, `Group`, `Cluster` or `TransactionalId`.
    pub resource_type: String,
    /// A name, `*` for every name, or a prefix; the cluster is
    /// `kafka-cluster`.
    pub resource_name: String,
    /// `Literal` or `Prefixed`; absent: `Literal`.
    #[serde(default = "literal")]
    pub pattern_type: String,
    /// `User:alice`, or `User:*` for every user.
    pub principal: String,
    /// A client IP address, or `*`; absent: `*`.
    #[serde(default = "any_host")]
    pub host: String,
    /// `Read`, `Write`, `Create`, `Delete`, `Alter`, `Describe`,
    /// `DescribeConfigs`, `AlterConfigs`, `IdempotentWrite`,
    /// `ClusterAction` or `All`.
    pub operation: String,
    /// `Allow` or `Deny`.
    pub permission: String,
}

fn literal() -> String {
    "Literal".to_owned()
}

fn any_host() -> String {
    "*".to_owned()
}

/// The query of `GET` and `DELETE /api/v1/acls`: Kafka's ACL binding
/// filter. An absent field matches everything, as do the values `Any`;
/// `pattern_type=Match` with a `resource_name` selects every binding that
/// applies to a resource of that name (literal, `*` and prefixes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
}

impl AclFilter {
    /// Whether no field is set (the filter matches every binding).
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}
