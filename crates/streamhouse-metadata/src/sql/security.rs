//! Users (SCRAM credentials) and ACL bindings, and the security version
//! every change to them bumps in the same transaction.
//!
//! Enumerations are stored as Kafka's wire codes; a row with a code this
//! version does not know is reported as corrupt rather than guessed at.

use std::collections::BTreeSet;

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};
use streamhouse_core::security::{
    AclBinding, AclBindingFilter, AclOperation, AclPermission, PatternType, ResourceType,
    ScramCredential, ScramMechanism,
};

use super::backend::{Backend, Dialect};
use crate::error::{MetadataError, Result};
use crate::store::{AclStore, UserCredentials};
use crate::types::ScramCredentialInfo;

pub(crate) const UPSERT_CREDENTIAL: &str = "INSERT INTO scram_credentials (user_name, mechanism, \
     salt, iterations, stored_key, server_key, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (user_name, mechanism) DO UPDATE SET salt = excluded.salt, \
     iterations = excluded.iterations, stored_key = excluded.stored_key, \
     server_key = excluded.server_key, updated_at = excluded.updated_at";

pub(crate) const SELECT_CREDENTIALS: &str = "SELECT mechanism, salt, iterations, stored_key, \
     server_key FROM scram_credentials WHERE user_name = $1 ORDER BY mechanism";

pub(crate) const DELETE_CREDENTIAL: &str =
    "DELETE FROM scram_credentials WHERE user_name = $1 AND mechanism = $2";

pub(crate) const SELECT_CREDENTIAL_INFO: &str = "SELECT user_name, mechanism, iterations \
     FROM scram_credentials ORDER BY user_name, mechanism";

pub(crate) const INSERT_ACL: &str = "INSERT INTO acl_bindings (resource_type, resource_name, \
     pattern_type, principal, host, operation, permission, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING";

pub(crate) const SELECT_ACLS: &str = "SELECT resource_type, resource_name, pattern_type, \
     principal, host, operation, permission FROM acl_bindings";

pub(crate) const DELETE_ACL: &str = "DELETE FROM acl_bindings WHERE resource_type = $1 \
     AND resource_name = $2 AND pattern_type = $3 AND principal = $4 AND host = $5 \
     AND operation = $6 AND permission = $7";

pub(crate) const BUMP_SECURITY_VERSION: &str =
    "UPDATE security_version SET version = version + 1 WHERE id = 1";

pub(crate) const SELECT_SECURITY_VERSION: &str =
    "SELECT version FROM security_version WHERE id = 1";

/// Commits a change to users or ACLs, bumping the security version in the
/// same transaction when anything changed, so every agent notices it.
async fn commit_security_change<DB>(
    mut tx: sqlx::Transaction<'static, DB>,
    changed: bool,
    operation: &'static str,
) -> Result<()>
where
    DB: Database,
    for<'c> &'c mut <DB as Database>::Connection: Executor<'c, Database = DB>,
    <DB as Database>::Arguments: IntoArguments<DB>,
{
    if changed {
        sqlx::query(BUMP_SECURITY_VERSION)
            .execute(&mut *tx)
            .await
            .map_err(|e| MetadataError::from_sqlx(operation, e))?;
    }
    tx.commit()
        .await
        .map_err(|e| MetadataError::from_sqlx(operation, e))
}

#[derive(sqlx::FromRow)]
pub(crate) struct CredentialRow {
    mechanism: i16,
    salt: Vec<u8>,
    iterations: i32,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct CredentialInfoRow {
    user_name: String,
    mechanism: i16,
    iterations: i32,
}

#[derive(sqlx::FromRow)]
pub(crate) struct AclRow {
    resource_type: i16,
    resource_name: String,
    pattern_type: i16,
    principal: String,
    host: String,
    operation: i16,
    permission: i16,
}

fn corrupt(what: &'static str, detail: String) -> MetadataError {
    MetadataError::CorruptRow { what, detail }
}

fn mechanism(code: i16) -> Result<ScramMechanism> {
    i8::try_from(code)
        .ok()
        .and_then(ScramMechanism::from_code)
        .ok_or_else(|| corrupt("SCRAM credential", format!("unknown mechanism code {code}")))
}

fn iterations(count: i32) -> Result<u32> {
    u32::try_from(count)
        .map_err(|_| corrupt("SCRAM credential", format!("iteration count {count}")))
}

fn code<T>(what: &'static str, code: i16, from_code: fn(i8) -> Option<T>) -> Result<T> {
    i8::try_from(code)
        .ok()
        .and_then(from_code)
        .ok_or_else(|| corrupt("ACL binding", format!("unknown {what} code {code}")))
}

impl TryFrom<CredentialRow> for ScramCredential {
    type Error = MetadataError;

    fn try_from(row: CredentialRow) -> Result<Self> {
        Ok(ScramCredential {
            mechanism: mechanism(row.mechanism)?,
            salt: row.salt,
            iterations: iterations(row.iterations)?,
            stored_key: row.stored_key,
            server_key: row.server_key,
        })
    }
}

impl TryFrom<AclRow> for AclBinding {
    type Error = MetadataError;

    fn try_from(row: AclRow) -> Result<Self> {
        Ok(AclBinding {
            resource_type: code("resource type", row.resource_type, ResourceType::from_code)?,
            resource_name: row.resource_name,
            pattern_type: code("pattern type", row.pattern_type, PatternType::from_code)?,
            principal: row.principal,
            host: row.host,
            operation: code("operation", row.operation, AclOperation::from_code)?,
            permission: code("permission", row.permission, AclPermission::from_code)?,
        })
    }
}

fn check_user(user: &str) -> Result<()> {
    if user.is_empty() {
        return Err(MetadataError::InvalidArgument {
            what: "user name",
            reason: "it is empty".into(),
        });
    }
    Ok(())
}

#[async_trait]
impl<S> UserCredentials for S
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> &'q [u8]: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i16: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i32: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Type<S::Db>,
    for<'r> CredentialRow: FromRow<'r, <S::Db as Database>::Row>,
    for<'r> CredentialInfoRow: FromRow<'r, <S::Db as Database>::Row>,
{
    async fn scram_credentials(&self, user: &str) -> Result<Vec<ScramCredential>> {
        sqlx::query_as::<S::Db, CredentialRow>(SELECT_CREDENTIALS)
            .bind(user)
            .fetch_all(self.pool())
            .await
            .map_err(|e| MetadataError::from_sqlx("read SCRAM credentials", e))?
            .into_iter()
            .map(ScramCredential::try_from)
            .collect()
    }

    async fn upsert_scram_credential(
        &self,
        user: &str,
        credential: &ScramCredential,
    ) -> Result<()> {
        const OP: &str = "store SCRAM credential";
        check_user(user)?;
        let iterations =
            i32::try_from(credential.iterations).map_err(|_| MetadataError::InvalidArgument {
                what: "iterations",
                reason: format!("{} is too large", credential.iterations),
            })?;
        let mut tx = self.begin_write(OP).await?;
        sqlx::query(UPSERT_CREDENTIAL)
            .bind(user)
            .bind(i16::from(credential.mechanism.code()))
            .bind(credential.salt.as_slice())
            .bind(iterations)
            .bind(credential.stored_key.as_slice())
            .bind(credential.server_key.as_slice())
            .bind(self.clock().now_ms())
            .execute(&mut *tx)
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        commit_security_change(tx, true, OP).await
    }

    async fn delete_scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Result<bool> {
        const OP: &str = "delete SCRAM credential";
        let mut tx = self.begin_write(OP).await?;
        let deleted = sqlx::query(DELETE_CREDENTIAL)
            .bind(user)
            .bind(i16::from(mechanism.code()))
            .execute(&mut *tx)
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        let deleted = S::Db::rows_affected(&deleted) > 0;
        commit_security_change(tx, deleted, OP).await?;
        Ok(deleted)
    }

    async fn list_scram_credentials(&self) -> Result<Vec<ScramCredentialInfo>> {
        sqlx::query_as::<S::Db, CredentialInfoRow>(SELECT_CREDENTIAL_INFO)
            .fetch_all(self.pool())
            .await
            .map_err(|e| MetadataError::from_sqlx("list SCRAM credentials", e))?
            .into_iter()
            .map(|row| {
                Ok(ScramCredentialInfo {
                    user: row.user_name,
                    mechanism: mechanism(row.mechanism)?,
                    iterations: iterations(row.iterations)?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl<S> AclStore for S
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i16: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Type<S::Db>,
    for<'r> AclRow: FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (i64,): FromRow<'r, <S::Db as Database>::Row>,
{
    async fn create_acls(&self, bindings: &[AclBinding]) -> Result<u64> {
        const OP: &str = "create ACLs";
        for binding in bindings {
            binding.validate()?;
        }
        let now = self.clock().now_ms();
        let mut tx = self.begin_write(OP).await?;
        let mut created = 0;
        for binding in bindings {
            let inserted = sqlx::query(INSERT_ACL)
                .bind(i16::from(binding.resource_type.code()))
                .bind(binding.resource_name.as_str())
                .bind(i16::from(binding.pattern_type.code()))
                .bind(binding.principal.as_str())
                .bind(binding.host.as_str())
                .bind(i16::from(binding.operation.code()))
                .bind(i16::from(binding.permission.code()))
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?;
            created += S::Db::rows_affected(&inserted);
        }
        commit_security_change(tx, created > 0, OP).await?;
        Ok(created)
    }

    async fn list_acls(&self, filter: &AclBindingFilter) -> Result<Vec<AclBinding>> {
        let rows = sqlx::query_as::<S::Db, AclRow>(SELECT_ACLS)
            .fetch_all(self.pool())
            .await
            .map_err(|e| MetadataError::from_sqlx("list ACLs", e))?;
        let mut bindings = rows
            .into_iter()
            .map(AclBinding::try_from)
            .filter(|binding| binding.as_ref().map_or(true, |b| filter.matches(b)))
            .collect::<Result<Vec<_>>>()?;
        bindings.sort();
        Ok(bindings)
    }

    async fn delete_acls(&self, filters: &[AclBindingFilter]) -> Result<Vec<Vec<AclBinding>>> {
        const OP: &str = "delete ACLs";
        let mut tx = self.begin_write(OP).await?;
        let mut stored = sqlx::query_as::<S::Db, AclRow>(SELECT_ACLS)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?
            .into_iter()
            .map(AclBinding::try_from)
            .collect::<Result<Vec<_>>>()?;
        stored.sort();
        let selected: BTreeSet<&AclBinding> = stored
            .iter()
            .filter(|binding| filters.iter().any(|filter| filter.matches(binding)))
            .collect();
        let mut deleted = BTreeSet::new();
        for binding in selected {
            let result = sqlx::query(DELETE_ACL)
                .bind(i16::from(binding.resource_type.code()))
                .bind(binding.resource_name.as_str())
                .bind(i16::from(binding.pattern_type.code()))
                .bind(binding.principal.as_str())
                .bind(binding.host.as_str())
                .bind(i16::from(binding.operation.code()))
                .bind(i16::from(binding.permission.code()))
                .execute(&mut *tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?;
            // Another agent may have deleted it since the read.
            if S::Db::rows_affected(&result) > 0 {
                deleted.insert(binding);
            }
        }
        commit_security_change(tx, !deleted.is_empty(), OP).await?;
        Ok(filters
            .iter()
            .map(|filter| {
                deleted
                    .iter()
                    .filter(|binding| filter.matches(binding))
                    .map(|binding| (*binding).clone())
                    .collect()
            })
            .collect())
    }

    async fn security_version(&self) -> Result<i64> {
        sqlx::query_scalar::<S::Db, i64>(SELECT_SECURITY_VERSION)
            .fetch_one(self.pool())
            .await
            .map_err(|e| MetadataError::from_sqlx("read security version", e))
    }
}
