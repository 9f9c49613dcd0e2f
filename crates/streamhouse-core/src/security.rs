//! Who a client is and what it may do, in Kafka's terms: principals
//! (`User:alice`), ACL bindings (resource type and pattern, operation,
//! Allow or Deny, principal and host) and their filters, and SCRAM
//! credentials (RFC 5802 / RFC 7677).
//!
//! Everything here is plain data and pure functions, shared by the
//! metadata store (which keeps users and ACLs), the storage engine (which
//! decides), and the Kafka and HTTP front-ends (which authenticate and
//! translate). The numeric codes are Kafka's wire codes.

mod acl;
mod principal;
pub mod scram;

pub use acl::{
    AclBinding, AclBindingFilter, AclOperation, AclPermission, CLUSTER_NAME, PatternType,
    ResourceType, WILDCARD_HOST, WILDCARD_RESOURCE,
};
pub use principal::{Caller, Principal};
pub use scram::{ScramCredential, ScramMechanism};
