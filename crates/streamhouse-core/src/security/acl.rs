//! Kafka's ACL model: a binding allows or denies one operation on the
//! resources a pattern matches, to one principal from one host.
//!
//! A binding stored or created never holds the filter-only values (`Any`,
//! `Match`, `Unknown`); [`AclBinding::validate`] checks that. Filters
//! ([`AclBindingFilter`]) select bindings for DescribeAcls and DeleteAcls
//! with Kafka's matching rules.

use std::fmt;
use std::str::FromStr;

use crate::ValidationError;

/// A resource name or principal that matches every name.
pub const WILDCARD_RESOURCE: &str = "*";
/// The host that matches every client address.
pub const WILDCARD_HOST: &str = "*";

macro_rules! kafka_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($variant),*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),* }
            }

            /// The value for a wire code, `None` for codes Kafka calls
            /// UNKNOWN (0) or does not define.
            pub fn from_code(code: i8) -> Option<Self> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }

            /// Kafka's name, as its tools print it (`Topic`, `Read`).
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;

            /// Case-insensitive, with or without `_` (`describe_configs`,
            /// `DescribeConfigs`, `DESCRIBE_CONFIGS`).
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                let wanted: String = text.chars().filter(|c| *c != '_' && *c != '-').collect();
                $name::ALL
                    .iter()
                    .copied()
                    .find(|value| value.name().eq_ignore_ascii_case(&wanted))
                    .ok_or_else(|| ValidationError::InvalidAcl {
                        reason: format!("unknown {} {text:?}", stringify!($name)),
                    })
            }
        }
    };
}

kafka_enum! {
    /// What an ACL protects (Kafka's `ResourceType`).
    ResourceType {
        Any = 1, "Any";
        Topic = 2, "Topic";
        Group = 3, "Group";
        Cluster = 4, "Cluster";
        TransactionalId = 5, "TransactionalId";
        DelegationToken = 6, "DelegationToken";
        User = 7, "User";
    }
}

kafka_enum! {
    /// How a binding's resource name is matched (Kafka's `PatternType`).
    PatternType {
        Any = 1, "Any";
        Match = 2, "Match";
        Literal = 3, "Literal";
        Prefixed = 4, "Prefixed";
    }
}

kafka_enum! {
    /// What a request does to a resource (Kafka's `AclOperation`).
    AclOperation {
        Any = 1, "Any";
        All = 2, "All";
        Read = 3, "Read";
        Write = 4, "Write";
        Create = 5, "Create";
        Delete = 6, "Delete";
        Alter = 7, "Alter";
        Describe = 8, "Describe";
        ClusterAction = 9, "ClusterAction";
        DescribeConfigs = 10, "DescribeConfigs";
        AlterConfigs = 11, "AlterConfigs";
        IdempotentWrite = 12, "IdempotentWrite";
    }
}

kafka_enum! {
    /// Whether a binding allows or denies (Kafka's `AclPermissionType`).
    AclPermission {
        Any = 1, "Any";
        Deny = 2, "Deny";
        Allow = 3, "Allow";
    }
}

/// One ACL: `principal` is allowed (or denied) `operation` on the
/// resources of `resource_type` that `resource_name` matches under
/// `pattern_type`, when connecting from `host`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `User:alice`, or `User:*` for every user.
    pub principal: String,
    /// An IP address, or `*`.
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

impl AclBinding {
    /// Checks what Kafka's CreateAcls checks: concrete values only (no
    /// `Any`/`Match`), a `TYPE:NAME` principal, a non-empty host and name,
    /// and the cluster resource named `kafka-cluster`.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let invalid = |reason: String| Err(ValidationError::InvalidAcl { reason });
        if self.resource_type == ResourceType::Any {
            return invalid("resource type ANY is only valid in a filter".into());
        }
        if matches!(self.pattern_type, PatternType::Any | PatternType::Match) {
            return invalid(format!(
                "pattern type {} is only valid in a filter",
                self.pattern_type
            ));
        }
        if self.operation == AclOperation::Any {
            return invalid("operation ANY is only valid in a filter".into());
        }
        if self.permission == AclPermission::Any {
            return invalid("permission type ANY is only valid in a filter".into());
        }
        if self.resource_name.is_empty() {
            return invalid("the resource name is empty".into());
        }
        if self.host.is_empty() {
            return invalid("the host is empty".into());
        }
        if crate::security::Principal::parse(&self.principal).is_err() {
            return invalid(format!(
                "invalid principal {:?}: expected TYPE:NAME, e.g. User:alice",
                self.principal
            ));
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return invalid(format!(
                "the cluster resource is named {CLUSTER_NAME:?}, not {:?}",
                self.resource_name
            ));
        }
        Ok(())
    }

    /// Whether this binding's pattern covers the resource `name`.
    pub fn covers(&self, name: &str) -> bool {
        match self.pattern_type {
            PatternType::Literal => {
                self.resource_name == WILDCARD_RESOURCE || self.resource_name == name
            }
            PatternType::Prefixed => name.starts_with(&self.resource_name),
            PatternType::Any | PatternType::Match => false,
        }
    }
}

/// The name of the one cluster resource, as in Kafka.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// Selects bindings for DescribeAcls and DeleteAcls. `None` (and the `Any`
/// values) match everything; [`PatternType::Match`] with a name selects
/// every binding that would apply to a resource of that name (literal,
/// wildcard and prefixed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclBindingFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

impl AclBindingFilter {
    /// The filter that matches every binding.
    pub fn any() -> Self {
        Self {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermission::Any,
        }
    }

    pub fn matches(&self, binding: &AclBinding) -> bool {
        let resource_type =
            self.resource_type == ResourceType::Any || self.resource_type == binding.resource_type;
        let resource = match (self.pattern_type, &self.resource_name) {
            (PatternType::Any, None) => true,
            (PatternType::Any, Some(name)) => &binding.resource_name == name,
            (PatternType::Match, None) => true,
            (PatternType::Match, Some(name)) => binding.covers(name),
            (pattern, None) => binding.pattern_type == pattern,
            (pattern, Some(name)) => {
                binding.pattern_type == pattern && &binding.resource_name == name
            }
        };
        let principal = self
            .principal
            .as_ref()
            .is_none_or(|principal| principal == &binding.principal);
        let host = self.host.as_ref().is_none_or(|host| host == &binding.host);
        let operation = self.operation == AclOperation::Any || self.operation == binding.operation;
        let permission =
            self.permission == AclPermission::Any || self.permission == binding.permission;
        resource_type && resource && principal && host && operation && permission
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(pattern_type: PatternType, name: &str) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: AclOperation::Read,
            permission: AclPermission::Allow,
        }
    }

    #[test]
    fn codes_and_names_are_kafkas() {
        assert_eq!(ResourceType::Topic.code(), 2);
        assert_eq!(ResourceType::TransactionalId.code(), 5);
        assert_eq!(PatternType::Prefixed.code(), 4);
        assert_eq!(AclOperation::IdempotentWrite.code(), 12);
        assert_eq!(AclPermission::Allow.code(), 3);
        assert_eq!(AclOperation::from_code(0), None);
        assert_eq!(
            "describe_configs".parse::<AclOperation>().unwrap(),
            AclOperation::DescribeConfigs
        );
        assert_eq!(
            "TOPIC".parse::<ResourceType>().unwrap(),
            ResourceType::Topic
        );
        assert!("Frobnicate".parse::<AclOperation>().is_err());
    }

    #[test]
    fn patterns_cover_names_as_in_kafka() {
        assert!(binding(PatternType::Literal, "orders").covers("orders"));
        assert!(!binding(PatternType::Literal, "orders").covers("orders-eu"));
        assert!(binding(PatternType::Literal, "*").covers("anything"));
        assert!(binding(PatternType::Prefixed, "ord").covers("orders"));
        assert!(!binding(PatternType::Prefixed, "ord").covers("payments"));
    }

    #[test]
    fn filters_select_as_describe_and_delete_acls_do() {
        let literal = binding(PatternType::Literal, "orders");
        let prefixed = binding(PatternType::Prefixed, "ord");
        let wildcard = binding(PatternType::Literal, "*");
        assert!(AclBindingFilter::any().matches(&literal));
        let matching = AclBindingFilter {
            resource_name: Some("orders".into()),
            pattern_type: PatternType::Match,
            ..AclBindingFilter::any()
        };
        assert!(matching.matches(&literal));
        assert!(matching.matches(&prefixed));
        assert!(matching.matches(&wildcard));
        let exact = AclBindingFilter {
            resource_name: Some("ord".into()),
            pattern_type: PatternType::Prefixed,
            ..AclBindingFilter::any()
        };
        assert!(exact.matches(&prefixed));
        assert!(!exact.matches(&literal));
        let by_principal = AclBindingFilter {
            principal: Some("User:bob".into()),
            ..AclBindingFilter::any()
        };
        assert!(!by_principal.matches(&literal));
    }

    #[test]
    fn bindings_hold_no_filter_values() {
        assert!(binding(PatternType::Literal, "orders").validate().is_ok());
        assert!(binding(PatternType::Match, "orders").validate().is_err());
        let mut bad = binding(PatternType::Literal, "orders");
        bad.principal = "alice".into();
        assert!(bad.validate().is_err());
        let mut cluster = binding(PatternType::Literal, "other");
        cluster.resource_type = ResourceType::Cluster;
        assert!(cluster.validate().is_err());
        cluster.resource_name = CLUSTER_NAME.into();
        assert!(cluster.validate().is_ok());
    }
}
