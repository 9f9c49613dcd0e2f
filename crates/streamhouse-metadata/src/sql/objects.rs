//! Which objects segment rows reference, and the tombstones of those that
//! lost their last reference.

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

use super::backend::Backend;
use crate::store::ObjectLedger;

/// Referenced keys in the (sorted) range of keys asked about.
pub(crate) const SELECT_REFERENCED_KEYS: &str = "SELECT DISTINCT s3_key FROM segments \
     WHERE s3_bucket = $1 AND s3_key >= $2 AND s3_key <= $3";

pub(crate) const SELECT_EXPIRED_TOMBSTONES: &str = "SELECT s3_key FROM object_tombstones \
     WHERE s3_bucket = $1 AND unreferenced_at < $2 ORDER BY unreferenced_at LIMIT $3";

pub(crate) const SELECT_TOMBSTONED_KEYS: &str = "SELECT s3_key FROM object_tombstones \
     WHERE s3_bucket = $1 AND s3_key >= $2 AND s3_key <= $3";

pub(crate) const DELETE_TOMBSTONE: &str =
    "DELETE FROM object_tombstones WHERE s3_bucket = $1 AND s3_key = $2";

/// Which of `keys` the key-range `query` (`$1` bucket, `$2`
/// lowest key, `$3` highest key) returns.
async fn keys_among<S>(
    store: &S,
    query: &'static str,
    operation: &'static str,
    bucket: &str,
    keys: &[String],
) -> crate::Result<Vec<String>>
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> &'q String: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Type<S::Db>,
    for<'r> (String,): FromRow<'r, <S::Db as Database>::Row>,
{
    let (Some(first), Some(last)) = (keys.iter().min(), keys.iter().max()) else {
        return Ok(Vec::new());
    };
    let wanted: std::collections::HashSet<&String> = keys.iter().collect();
    Ok(sqlx::query_scalar::<S::Db, String>(query)
        .bind(bucket)
        .bind(first)
        .bind(last)
        .fetch_all(store.pool())
        .await
        .map_err(|e| crate::MetadataError::from_sqlx(operation, e))?
        .into_iter()
        .filter(|key| wanted.contains(key))
        .collect())
}

#[async_trait]
impl<S> ObjectLedger for S
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> &'q String: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Type<S::Db>,
    for<'r> (String,): FromRow<'r, <S::Db as Database>::Row>,
{
    async fn referenced_objects(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> crate::Result<Vec<String>> {
        keys_among(
            self,
            SELECT_REFERENCED_KEYS,
            "referenced objects",
            bucket,
            keys,
        )
        .await
    }

    async fn expired_tombstones(
        &self,
        bucket: &str,
        before: i64,
        limit: usize,
    ) -> crate::Result<Vec<String>> {
        sqlx::query_scalar::<S::Db, String>(SELECT_EXPIRED_TOMBSTONES)
            .bind(bucket)
            .bind(before)
            .bind(super::limit_to_i64(limit))
            .fetch_all(self.pool())
            .await
            .map_err(|e| crate::MetadataError::from_sqlx("expired tombstones", e))
    }

    async fn tombstoned_objects(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> crate::Result<Vec<String>> {
        keys_among(
            self,
            SELECT_TOMBSTONED_KEYS,
            "tombstoned objects",
            bucket,
            keys,
        )
        .await
    }

    async fn remove_tombstones(&self, bucket: &str, keys: &[String]) -> crate::Result<()> {
        const OP: &str = "remove tombstones";
        if keys.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write(OP).await?;
        for key in keys {
            sqlx::query(DELETE_TOMBSTONE)
                .bind(bucket)
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        }
        tx.commit()
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        Ok(())
    }
}
