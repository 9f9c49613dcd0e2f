//! Users and ACLs behind the engine: SCRAM credentials kept in the
//! metadata store, and the authorization decision both front-ends ask for.
//!
//! The front-ends authenticate (SASL, TLS, HTTP Basic) and know which
//! operation on which resource a request needs; the engine alone decides
//! whether the caller may, from ACLs cached in every agent (see
//! `crate::authorizer`).

use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

use moka::future::Cache;
use rand::TryRng;
use streamhouse_core::ValidationError;
use streamhouse_core::security::{
    AclBinding, AclBindingFilter, AclOperation, Caller, Principal, ResourceType, ScramCredential,
    ScramMechanism,
};
use streamhouse_metadata::MetadataError;

use tokio::sync::Semaphore;

use super::StorageEngine;
use crate::error::{Result, StorageError};

/// Iterations of a credential made without a count given
/// (`streamhouse user set`, the REST API).
pub const DEFAULT_SCRAM_ITERATIONS: u32 = 8192;

/// Longest user name, in bytes.
pub const MAX_USER_NAME_BYTES: usize = 255;

/// Bytes of random salt in a credential made from a password.
const SALT_BYTES: usize = 32;

/// How long a verified password is trusted without PBKDF2 again; HTTP
/// Basic sends it with every request.
const LOGIN_CACHE_TTL: Duration = Duration::from_secs(1);
const LOGIN_CACHE_ENTRIES: u64 = 10_000;

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

/// Checks a user name: 1 to 255 bytes, no control characters.
pub fn validate_user_name(name: &str) -> std::result::Result<(), ValidationError> {
    let invalid = |reason| {
        Err(ValidationError::InvalidUserName {
            name: name.chars().filter(|c| !c.is_control()).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > MAX_USER_NAME_BYTES {
        return invalid("it is longer than 255 bytes");
    }
    if name.chars().any(char::is_control) {
        return invalid("it contains control characters");
    }
    Ok(())
}

fn invalid_credential(what: &'static str, reason: String) -> StorageError {
    StorageError::from(MetadataError::InvalidArgument { what, reason })
}

fn check_iterations(iterations: u32) -> Result<()> {
    let range = ScramMechanism::MIN_ITERATIONS..=ScramMechanism::MAX_ITERATIONS;
    if range.contains(&iterations) {
        Ok(())
    } else {
        Err(invalid_credential(
            "iterations",
            format!(
                "{iterations} is outside {}..={}",
                range.start(),
                range.end()
            ),
        ))
    }
}

/// What an unknown user's password is checked against, so that a login
/// takes as long whether or not the user exists.
fn decoy_credential() -> &'static ScramCredential {
    static DECOY: OnceLock<ScramCredential> = OnceLock::new();
    DECOY.get_or_init(|| {
        ScramCredential::from_password(
            ScramMechanism::Sha512,
            b"no such user",
            b"streamhouse decoy salt",
            DEFAULT_SCRAM_ITERATIONS,
        )
    })
}

/// Recent successful password checks, keyed by user and a keyed hash of
/// the password (never the password), each valid while the security
/// version it was made under is current.
pub(crate) struct LoginCache {
    verified: Cache<(String, Vec<u8>), i64>,
    /// Password checks and derivations (PBKDF2) running at once. Anyone
    /// who can reach a SASL listener or the HTTP API can ask for a check,
    /// so a flood of bad logins waits here for a few threads instead of
    /// taking every blocking thread and core from the agent's other work.
    checks: Arc<Semaphore>,
    /// Random per process, so the fingerprints in memory are no offline
    /// oracle for the passwords.
    key: [u8; 32],
}

/// One password check per core.
fn concurrent_password_checks() -> usize {
    std::thread::available_parallelism().map_or(2, |cores| cores.get())
}

impl LoginCache {
    pub(crate) fn new() -> Self {
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        Self {
            verified: Cache::builder()
                .max_capacity(LOGIN_CACHE_ENTRIES)
                .time_to_live(LOGIN_CACHE_TTL)
                .build(),
            checks: Arc::new(Semaphore::new(concurrent_password_checks())),
            key,
        }
    }

    /// Runs PBKDF2 `work` on a blocking thread once a check slot is free.
    async fn pbkdf2<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let permit = self
            .checks
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StorageError::ShuttingDown)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|_| StorageError::ShuttingDown)
    }

    fn fingerprint(&self, user: &str, password: &str) -> (String, Vec<u8>) {
        (
            user.to_owned(),
            ScramMechanism::Sha256.hmac(&self.key, password.as_bytes()),
        )
    }

    fn invalidate(&self) {
        self.verified.invalidate_all();
    }
}

impl StorageEngine {
    /// Whether ACLs are enforced.
    pub fn authorizer_enabled(&self) -> bool {
        self.inner.authorizer.enabled()
    }

    /// Whether `caller` may do `operation` on the resource of
    /// `resource_type` named `name`, with Kafka's rules: super users may do
    /// everything, Deny wins over Allow, and Read, Write, Delete and Alter
    /// imply Describe, AlterConfigs implies DescribeConfigs. Always true
    /// without `--authorizer acl`; false for everyone but super users
    /// until the ACLs have been read once.
    pub fn authorize(
        &self,
        caller: &Caller,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        self.inner
            .authorizer
            .authorize(caller, operation, resource_type, name)
    }

    /// Whether `caller` may do `operation` on at least one resource of
    /// `resource_type` (Kafka's `authorizeByResourceType`, used where
    /// Kafka accepts Write on any topic in place of IdempotentWrite).
    pub fn authorize_any(
        &self,
        caller: &Caller,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        self.inner
            .authorizer
            .authorize_any(caller, operation, resource_type)
    }

    /// The stored credential of `user` for `mechanism`; `None` for an
    /// unknown user or an invalid name.
    pub async fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<Option<ScramCredential>> {
        if validate_user_name(user).is_err() {
            return Ok(None);
        }
        Ok(self
            .metadata()
            .scram_credentials(user)
            .await?
            .into_iter()
            .find(|credential| credential.mechanism == mechanism))
    }

    /// The principal of `user` if `password` is theirs (checked against
    /// their SCRAM-SHA-512 credential, else their SCRAM-SHA-256 one), for
    /// SASL PLAIN and HTTP Basic. `None` for a wrong password or an unknown
    /// user, which cost the same PBKDF2 work. The check runs on a blocking
    /// thread; a success is remembered for about a second.
    pub async fn authenticate_password(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Option<Principal>> {
        let valid_name = validate_user_name(user).is_ok();
        let logins = &self.inner.logins;
        let key = logins.fingerprint(user, password);
        // Read before the credentials: a change after it makes the entry
        // stale at once.
        let version = self.inner.authorizer.version();
        if valid_name
            && version.is_some()
            && logins
                .verified
                .get(&key)
                .await
                .is_some_and(|v| Some(v) == version)
        {
            return Ok(Some(Principal::user(user)));
        }
        let credentials = if valid_name {
            self.metadata().scram_credentials(user).await?
        } else {
            Vec::new()
        };
        let chosen = [ScramMechanism::Sha512, ScramMechanism::Sha256]
            .into_iter()
            .find_map(|mechanism| credentials.iter().find(|c| c.mechanism == mechanism))
            .cloned();
        let password = password.as_bytes().to_vec();
        let verified = logins
            .pbkdf2(move || match chosen {
                Some(credential) => credential.verify_password(&password),
                None => {
                    let _ = decoy_credential().verify_password(&password);
                    false
                }
            })
            .await?;
        if !verified {
            return Ok(None);
        }
        if let Some(version) = version {
            logins.verified.insert(key, version).await;
        }
        Ok(Some(Principal::user(user)))
    }

    /// Creates or replaces `user`'s credential for its mechanism. The
    /// iteration count must lie in Kafka's 4096..=16384.
    pub async fn set_scram_credential(
        &self,
        user: &str,
        credential: ScramCredential,
    ) -> Result<()> {
        validate_user_name(user)?;
        check_iterations(credential.iterations)?;
        let len = credential.mechanism.output_len();
        if credential.salt.is_empty() {
            return Err(invalid_credential("salt", "it is empty".into()));
        }
        if credential.stored_key.len() != len || credential.server_key.len() != len {
            return Err(invalid_credential(
                "SCRAM credential",
                format!("{} keys are {len} bytes", credential.mechanism),
            ));
        }
        self.metadata()
            .upsert_scram_credential(user, &credential)
            .await?;
        self.security_changed().await;
        Ok(())
    }

    /// Makes `user`'s `mechanism` credential from `password` with a random
    /// 32-byte salt from the operating system and `iterations` (PBKDF2 on
    /// a blocking thread), and stores it.
    pub async fn set_password(
        &self,
        user: &str,
        password: &str,
        mechanism: ScramMechanism,
        iterations: u32,
    ) -> Result<()> {
        validate_user_name(user)?;
        check_iterations(iterations)?;
        if password.is_empty() {
            return Err(invalid_credential("password", "it is empty".into()));
        }
        let mut salt = [0u8; SALT_BYTES];
        rand::rngs::SysRng
            .try_fill_bytes(&mut salt)
            .map_err(|e| invalid_credential("salt", format!("no randomness from the OS: {e}")))?;
        let password = password.as_bytes().to_vec();
        let credential = self
            .inner
            .logins
            .pbkdf2(move || ScramCredential::from_password(mechanism, &password, &salt, iterations))
            .await?;
        self.set_scram_credential(user, credential).await
    }

    /// Deletes `user`'s credential for `mechanism`; false if none existed.
    pub async fn delete_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<bool> {
        validate_user_name(user)?;
        let deleted = self
            .metadata()
            .delete_scram_credential(user, mechanism)
            .await?;
        if deleted {
            self.security_changed().await;
        }
        Ok(deleted)
    }

    /// Users with at least one credential, by name, each with its
    /// mechanisms in Kafka's order.
    pub async fn scram_users(&self) -> Result<Vec<ScramUser>> {
        let mut users: Vec<ScramUser> = Vec::new();
        for info in self.metadata().list_scram_credentials().await? {
            match users.last_mut() {
                Some(last) if last.name == info.user => {
                    last.credentials.push((info.mechanism, info.iterations))
                }
                _ => users.push(ScramUser {
                    name: info.user,
                    credentials: vec![(info.mechanism, info.iterations)],
                }),
            }
        }
        Ok(users)
    }

    /// Stores new ACL bindings (existing equal ones are kept once); each
    /// must be valid ([`AclBinding::validate`]). This agent enforces them
    /// before returning, every other within two refresh intervals.
    pub async fn create_acls(&self, bindings: &[AclBinding]) -> Result<()> {
        for binding in bindings {
            binding.validate()?;
        }
        let created = self.metadata().create_acls(bindings).await?;
        if created > 0 {
            self.security_changed().await;
        }
        Ok(())
    }

    /// The stored bindings `filter` selects, read from the metadata store.
    pub async fn acls(&self, filter: &AclBindingFilter) -> Result<Vec<AclBinding>> {
        Ok(self.metadata().list_acls(filter).await?)
    }

    /// Deletes the bindings each filter selects; per filter, what it
    /// deleted.
    pub async fn delete_acls(&self, filters: &[AclBindingFilter]) -> Result<Vec<Vec<AclBinding>>> {
        let deleted = self.metadata().delete_acls(filters).await?;
        if deleted.iter().any(|d| !d.is_empty()) {
            self.security_changed().await;
        }
        Ok(deleted)
    }

    /// After this agent changed users or ACLs: forget remembered logins and
    /// enforce the new ACLs now rather than at the next refresh.
    async fn security_changed(&self) {
        self.inner.logins.invalidate();
        self.inner.authorizer.refresh_logged().await;
    }
}
