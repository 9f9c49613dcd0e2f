//! Kafka's ACL authorizer over an in-memory snapshot of the bindings.
//!
//! Every agent keeps the bindings indexed by resource type and name, and a
//! background task re-reads them when the metadata store's security
//! version moves (checked every `refresh_interval`, and at once after this
//! agent's own changes), so a change on one agent is enforced on all of
//! them within about two intervals. Decisions follow Kafka's
//! `StandardAuthorizer`: super users may do everything, a matching Deny
//! wins over any Allow, and without a matching Allow the answer is no.
//!
//! The invariant that matters: until the first snapshot has loaded, only
//! super users are allowed (fail closed); a later failed refresh keeps the
//! last snapshot.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use streamhouse_core::security::{
    AclBinding, AclBindingFilter, AclOperation, AclPermission, Caller, PatternType, Principal,
    ResourceType, WILDCARD_HOST, WILDCARD_RESOURCE,
};
use streamhouse_metadata::{AclStore, MetadataError};
use tokio_util::sync::CancellationToken;

/// The principal an ACL names to match every user (Kafka's
/// `WildcardPrincipal`).
const WILDCARD_PRINCIPAL: &str = "User:*";

/// The resource name Kafka's `authorizeByResourceType` checks first, so a
/// caller allowed on every resource (a super user, a `*` Allow) is allowed
/// whatever else is stored.
const PROBE_RESOURCE: &str = "hardcode";

/// A security version no store reports: nothing seen yet.
const UNSEEN: i64 = i64::MIN;

/// The authorization half of the engine: settings, the current snapshot and
/// the last security version seen.
pub(crate) struct Authorizer {
    enabled: bool,
    /// Super users as `TYPE:NAME`.
    super_users: HashSet<String>,
    store: Arc<dyn AclStore>,
    snapshot: RwLock<Option<Loaded>>,
    /// The newest security version read from the store, whether or not
    /// ACLs are enforced (credential caches compare against it).
    version: AtomicI64,
    /// Whether the last refresh failed, so a failing store is logged once.
    failing: AtomicBool,
}

struct Loaded {
    version: i64,
    acls: Arc<AclSnapshot>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("enabled", &self.enabled)
            .field("super_users", &self.super_users)
            .field("version", &self.version.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Authorizer {
    pub(crate) fn new(enabled: bool, super_users: &[Principal], store: Arc<dyn AclStore>) -> Self {
        Self {
            enabled,
            super_users: super_users.iter().map(ToString::to_string).collect(),
            store,
            snapshot: RwLock::new(None),
            version: AtomicI64::new(UNSEEN),
            failing: AtomicBool::new(false),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// The newest security version seen, `None` before the first read.
    pub(crate) fn version(&self) -> Option<i64> {
        Some(self.version.load(Ordering::Acquire)).filter(|v| *v != UNSEEN)
    }

    fn current(&self) -> Option<Arc<AclSnapshot>> {
        self.snapshot.read().as_ref().map(|l| l.acls.clone())
    }

    /// Kafka's decision for one action on one resource.
    pub(crate) fn authorize(
        &self,
        caller: &Caller,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if !self.enabled {
            return true;
        }
        let principal = caller.principal.to_string();
        if self.super_users.contains(&principal) {
            return true;
        }
        match self.current() {
            Some(acls) => acls.authorize(&principal, &caller.host, operation, resource_type, name),
            None => false,
        }
    }

    /// Kafka's `authorizeByResourceType`.
    pub(crate) fn authorize_any(
        &self,
        caller: &Caller,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        if !self.enabled {
            return true;
        }
        let principal = caller.principal.to_string();
        if self.super_users.contains(&principal) {
            return true;
        }
        match self.current() {
            Some(acls) => acls.authorize_any(&principal, &caller.host, operation, resource_type),
            None => false,
        }
    }

    /// Reads the security version and, when ACLs are enforced and it moved,
    /// the bindings.
    pub(crate) async fn refresh(&self) -> Result<(), MetadataError> {
        let version = self.store.security_version().await?;
        self.version.fetch_max(version, Ordering::AcqRel);
        if !self.enabled {
            return Ok(());
        }
        if self
            .snapshot
            .read()
            .as_ref()
            .is_some_and(|l| l.version >= version)
        {
            return Ok(());
        }
        // Read after the version: the bindings are at least that new.
        let bindings = self.store.list_acls(&AclBindingFilter::any()).await?;
        let acls = Arc::new(AclSnapshot::new(bindings));
        let mut snapshot = self.snapshot.write();
        if snapshot.as_ref().is_none_or(|l| l.version < version) {
            *snapshot = Some(Loaded { version, acls });
        }
        Ok(())
    }

    /// [`refresh`](Self::refresh), logging the first of a run of failures
    /// and the recovery.
    pub(crate) async fn refresh_logged(&self) {
        match self.refresh().await {
            Ok(()) => {
                if self.failing.swap(false, Ordering::AcqRel) {
                    tracing::info!("users and ACLs are read from the metadata store again");
                }
            }
            Err(error) => {
                if !self.failing.swap(true, Ordering::AcqRel) {
                    if self.enabled && self.current().is_none() {
                        tracing::error!(
                            %error,
                            "cannot load ACLs; denying every request but super users' until \
                             they load"
                        );
                    } else {
                        tracing::warn!(
                            %error,
                            "cannot re-read users and ACLs; enforcing the last ones read"
                        );
                    }
                }
            }
        }
    }
}

/// Re-reads users and ACLs every `interval` until `cancel`, starting at
/// once.
pub(crate) async fn follow_changes(
    authorizer: Arc<Authorizer>,
    interval: Duration,
    cancel: CancellationToken,
) {
    loop {
        authorizer.refresh_logged().await;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// One binding's who, from where, what and whether, under its resource
/// pattern in the index.
#[derive(Debug, Clone)]
struct Entry {
    principal: String,
    host: String,
    operation: AclOperation,
    permission: AclPermission,
}

impl Entry {
    fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL)
            && (self.host == host || self.host == WILDCARD_HOST)
    }
}

/// The bindings of one resource type, by pattern.
#[derive(Debug, Default)]
struct TypeAcls {
    /// LITERAL bindings by name, `*` included.
    literal: HashMap<String, Vec<Entry>>,
    /// PREFIXED bindings by prefix.
    prefixed: HashMap<String, Vec<Entry>>,
    /// The byte lengths of the stored prefixes, so a lookup tries only
    /// those.
    prefix_lengths: BTreeSet<usize>,
    /// Every binding, for `authorize_any`.
    all: Vec<AclBinding>,
}

impl TypeAcls {
    /// The entries of every binding whose pattern covers `name`.
    fn covering<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        let literal = self
            .literal
            .get(name)
            .into_iter()
            .chain(
                (name != WILDCARD_RESOURCE)
                    .then(|| self.literal.get(WILDCARD_RESOURCE))
                    .flatten(),
            )
            .flatten();
        let prefixed = self
            .prefix_lengths
            .iter()
            .take_while(move |&&len| len <= name.len())
            .filter_map(move |&len| name.get(..len))
            .filter_map(|prefix| self.prefixed.get(prefix))
            .flatten();
        literal.chain(prefixed)
    }
}

/// Every binding, indexed for decisions.
#[derive(Debug, Default)]
pub(crate) struct AclSnapshot {
    by_type: HashMap<ResourceType, TypeAcls>,
}

/// The operations whose Allow also allows `operation` (Kafka: Read, Write,
/// Delete and Alter imply Describe; AlterConfigs implies DescribeConfigs).
fn allowing(operation: AclOperation) -> &'static [AclOperation] {
    use AclOperation::*;
    match operation {
        Describe => &[Describe, Read, Write, Delete, Alter],
        DescribeConfigs => &[DescribeConfigs, AlterConfigs],
        Read => &[Read],
        Write => &[Write],
        Create => &[Create],
        Delete => &[Delete],
        Alter => &[Alter],
        ClusterAction => &[ClusterAction],
        AlterConfigs => &[AlterConfigs],
        IdempotentWrite => &[IdempotentWrite],
        All => &[All],
        Any => &[],
    }
}

impl AclSnapshot {
    pub(crate) fn new(bindings: Vec<AclBinding>) -> Self {
        let mut by_type: HashMap<ResourceType, TypeAcls> = HashMap::new();
        for binding in bindings {
            let acls = by_type.entry(binding.resource_type).or_default();
            let entry = Entry {
                principal: binding.principal.clone(),
                host: binding.host.clone(),
                operation: binding.operation,
                permission: binding.permission,
            };
            match binding.pattern_type {
                PatternType::Literal => acls
                    .literal
                    .entry(binding.resource_name.clone())
                    .or_default()
                    .push(entry),
                PatternType::Prefixed => {
                    acls.prefix_lengths.insert(binding.resource_name.len());
                    acls.prefixed
                        .entry(binding.resource_name.clone())
                        .or_default()
                        .push(entry);
                }
                // Never stored (AclBinding::validate).
                PatternType::Any | PatternType::Match => continue,
            }
            acls.all.push(binding);
        }
        Self { by_type }
    }

    pub(crate) fn authorize(
        &self,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let Some(acls) = self.by_type.get(&resource_type) else {
            return false;
        };
        let applicable = || {
            acls.covering(name)
                .filter(|entry| entry.applies_to(principal, host))
        };
        let denied = applicable().any(|entry| {
            entry.permission == AclPermission::Deny
                && (entry.operation == operation || entry.operation == AclOperation::All)
        });
        if denied {
            return false;
        }
        let allowing = allowing(operation);
        applicable().any(|entry| {
            entry.permission == AclPermission::Allow
                && (entry.operation == AclOperation::All || allowing.contains(&entry.operation))
        })
    }

    /// Kafka's `Authorizer.authorizeByResourceType`: allowed when some
    /// Allow of the type applies to the caller and is not dominated by a
    /// Deny, and no Deny of the type covers every resource.
    pub(crate) fn authorize_any(
        &self,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        if self.authorize(principal, host, operation, resource_type, PROBE_RESOURCE) {
            return true;
        }
        let Some(acls) = self.by_type.get(&resource_type) else {
            return false;
        };
        let mut deny_literals = HashSet::new();
        let mut deny_prefixes = HashSet::new();
        let mut allow_literals = HashSet::new();
        let mut allow_prefixes = HashSet::new();
        let mut wildcard_allow = false;
        for binding in &acls.all {
            if binding.host != host && binding.host != WILDCARD_HOST {
                continue;
            }
            if binding.principal != principal && binding.principal != WILDCARD_PRINCIPAL {
                continue;
            }
            if binding.operation != operation && binding.operation != AclOperation::All {
                continue;
            }
            let name = binding.resource_name.as_str();
            match (binding.permission, binding.pattern_type) {
                (AclPermission::Deny, PatternType::Literal) => {
                    if name == WILDCARD_RESOURCE {
                        return false;
                    }
                    deny_literals.insert(name);
                }
                (AclPermission::Deny, PatternType::Prefixed) => {
                    if name.is_empty() {
                        return false;
                    }
                    deny_prefixes.insert(name);
                }
                (AclPermission::Allow, PatternType::Literal) => {
                    if name == WILDCARD_RESOURCE {
                        wildcard_allow = true;
                    } else {
                        allow_literals.insert(name);
                    }
                }
                (AclPermission::Allow, PatternType::Prefixed) => {
                    if name.is_empty() {
                        wildcard_allow = true;
                    } else {
                        allow_prefixes.insert(name);
                    }
                }
                _ => {}
            }
        }
        if wildcard_allow {
            return true;
        }
        let dominated = |name: &str| deny_prefixes.iter().any(|prefix| name.starts_with(prefix));
        allow_literals
            .iter()
            .any(|name| !deny_literals.contains(name) && !dominated(name))
            || allow_prefixes.iter().any(|prefix| !dominated(prefix))
    }
}

#[cfg(test)]
mod tests;
