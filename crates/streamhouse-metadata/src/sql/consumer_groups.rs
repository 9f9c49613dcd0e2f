//! Consumer groups of Kafka's consumer protocol (KIP-848): one row per
//! group with its epochs, one per member with its subscription and
//! assignments as JSON.

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

use super::backend::{Backend, Dialect};
use crate::consumer_groups::{
    ConsumerGroupListing, ConsumerGroupMemberRecord, ConsumerGroupRecord, ConsumerGroupSave,
    SubscribedTopic,
};
use crate::error::MetadataError;
use crate::store::ConsumerGroupLog;

pub(crate) const SELECT_GROUP: &str = "SELECT group_id, version, group_epoch, assignment_epoch, \
     state, subscribed_topics FROM consumer_groups WHERE group_id = $1";

pub(crate) const SELECT_MEMBERS: &str =
    "SELECT member FROM consumer_group_members WHERE group_id = $1 ORDER BY member_id";

pub(crate) const INSERT_GROUP: &str = "INSERT INTO consumer_groups (group_id, version, \
     group_epoch, assignment_epoch, state, subscribed_topics, updated_at) \
     VALUES ($1, 1, $2, $3, $4, $5, $6) ON CONFLICT (group_id) DO NOTHING";

pub(crate) const UPDATE_GROUP: &str = "UPDATE consumer_groups SET version = version + 1, \
     group_epoch = $3, assignment_epoch = $4, state = $5, subscribed_topics = $6, updated_at = $7 \
     WHERE group_id = $1 AND version = $2";

pub(crate) const UPSERT_MEMBER: &str = "INSERT INTO consumer_group_members \
     (group_id, member_id, member) VALUES ($1, $2, $3) \
     ON CONFLICT (group_id, member_id) DO UPDATE SET member = excluded.member";

pub(crate) const DELETE_MEMBER: &str =
    "DELETE FROM consumer_group_members WHERE group_id = $1 AND member_id = $2";

pub(crate) const DELETE_MEMBERS: &str = "DELETE FROM consumer_group_members WHERE group_id = $1";

pub(crate) const DELETE_GROUP: &str =
    "DELETE FROM consumer_groups WHERE group_id = $1 AND version = $2";

pub(crate) const SELECT_VERSION: &str = "SELECT version FROM consumer_groups WHERE group_id = $1";

pub(crate) const LIST_GROUPS: &str = "SELECT g.group_id, g.state, \
     (SELECT COUNT(*) FROM consumer_group_members m WHERE m.group_id = g.group_id) AS members \
     FROM consumer_groups g ORDER BY g.group_id";

#[derive(sqlx::FromRow)]
pub(crate) struct GroupRow {
    group_id: String,
    version: i64,
    group_epoch: i32,
    assignment_epoch: i32,
    state: String,
    subscribed_topics: String,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ListingRow {
    group_id: String,
    state: String,
    members: i64,
}

fn corrupt(detail: impl std::fmt::Display) -> MetadataError {
    MetadataError::CorruptRow {
        what: "consumer group",
        detail: detail.to_string(),
    }
}

fn encode<T: serde::Serialize>(what: &'static str, value: &T) -> crate::Result<String> {
    serde_json::to_string(value).map_err(|e| MetadataError::InvalidArgument {
        what,
        reason: e.to_string(),
    })
}

#[async_trait]
impl<S> ConsumerGroupLog for S
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> &'q String: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> String: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i32: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Type<S::Db>,
    for<'r> GroupRow: FromRow<'r, <S::Db as Database>::Row>,
    for<'r> ListingRow: FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (String,): FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (i64,): FromRow<'r, <S::Db as Database>::Row>,
{
    async fn load_consumer_group(
        &self,
        group_id: &str,
    ) -> crate::Result<Option<ConsumerGroupRecord>> {
        const OP: &str = "load consumer group";
        // One snapshot for the group and its members.
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        let Some(row) = sqlx::query_as::<S::Db, GroupRow>(SELECT_GROUP)
            .bind(group_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?
        else {
            return Ok(None);
        };
        let members = sqlx::query_scalar::<S::Db, String>(SELECT_MEMBERS)
            .bind(group_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        tx.commit()
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        let subscribed_topics: Vec<SubscribedTopic> =
            serde_json::from_str(&row.subscribed_topics).map_err(corrupt)?;
        let members = members
            .iter()
            .map(|json| serde_json::from_str::<ConsumerGroupMemberRecord>(json).map_err(corrupt))
            .collect::<crate::Result<Vec<_>>>()?;
        Ok(Some(ConsumerGroupRecord {
            group_id: row.group_id,
            version: row.version,
            group_epoch: row.group_epoch,
            assignment_epoch: row.assignment_epoch,
            state: row.state,
            subscribed_topics,
            members,
        }))
    }

    async fn save_consumer_group(&self, save: &ConsumerGroupSave) -> crate::Result<Option<i64>> {
        const OP: &str = "save consumer group";
        if save.group_id.is_empty() {
            return Err(MetadataError::InvalidArgument {
                what: "group id",
                reason: "must not be empty".into(),
            });
        }
        let topics = encode("subscribed topics", &save.subscribed_topics)?;
        let members = save
            .upserted
            .iter()
            .map(|m| Ok((m.member_id.as_str(), encode("consumer group member", m)?)))
            .collect::<crate::Result<Vec<_>>>()?;
        let now = self.clock().now_ms();
        let mut tx = self.begin_write(OP).await?;
        let (written, version) = match save.expected_version {
            None => {
                let result = sqlx::query(INSERT_GROUP)
                    .bind(&save.group_id)
                    .bind(save.group_epoch)
                    .bind(save.assignment_epoch)
                    .bind(&save.state)
                    .bind(&topics)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                (S::Db::rows_affected(&result), 1)
            }
            Some(expected) => {
                let result = sqlx::query(UPDATE_GROUP)
                    .bind(&save.group_id)
                    .bind(expected)
                    .bind(save.group_epoch)
                    .bind(save.assignment_epoch)
                    .bind(&save.state)
                    .bind(&topics)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| MetadataError::from_sqlx(OP, e))?;
                (S::Db::rows_affected(&result), expected.saturating_add(1))
            }
        };
        if written == 0 {
            // Dropping the transaction rolls it back.
            return Ok(None);
        }
        for member_id in &save.removed {
            sqlx::query(DELETE_MEMBER)
                .bind(&save.group_id)
                .bind(member_id)
                .execute(&mut *tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        }
        for (member_id, json) in members {
            sqlx::query(UPSERT_MEMBER)
                .bind(&save.group_id)
                .bind(member_id)
                .bind(json)
                .execute(&mut *tx)
                .await
                .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        }
        tx.commit()
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        Ok(Some(version))
    }

    async fn delete_consumer_group(
        &self,
        group_id: &str,
        expected_version: i64,
    ) -> crate::Result<bool> {
        const OP: &str = "delete consumer group";
        let mut tx = self.begin_write(OP).await?;
        let deleted = sqlx::query(DELETE_GROUP)
            .bind(group_id)
            .bind(expected_version)
            .execute(&mut *tx)
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        if S::Db::rows_affected(&deleted) == 0 {
            return Ok(false);
        }
        sqlx::query(DELETE_MEMBERS)
            .bind(group_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        tx.commit()
            .await
            .map_err(|e| MetadataError::from_sqlx(OP, e))?;
        Ok(true)
    }

    async fn list_consumer_groups(&self) -> crate::Result<Vec<ConsumerGroupListing>> {
        Ok(sqlx::query_as::<S::Db, ListingRow>(LIST_GROUPS)
            .fetch_all(self.pool())
            .await
            .map_err(|e| MetadataError::from_sqlx("list consumer groups", e))?
            .into_iter()
            .map(|row| ConsumerGroupListing {
                group_id: row.group_id,
                state: row.state,
                members: row.members,
            })
            .collect())
    }

    async fn consumer_group_version(&self, group_id: &str) -> crate::Result<Option<i64>> {
        sqlx::query_scalar::<S::Db, i64>(SELECT_VERSION)
            .bind(group_id)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| MetadataError::from_sqlx("consumer group version", e))
    }
}
