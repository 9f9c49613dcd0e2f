//! The agents of the cluster and the leases on background jobs.

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

use super::backend::{Backend, Dialect};
use crate::store::{ClusterRegistry, JobLeases};

pub(crate) const UPSERT_AGENT: &str = "INSERT INTO agents (agent_id, node_id, host, port, zone, \
     started_at, last_heartbeat, listeners) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (agent_id) DO UPDATE SET node_id = excluded.node_id, host = excluded.host, \
     port = excluded.port, zone = excluded.zone, started_at = excluded.started_at, \
     last_heartbeat = excluded.last_heartbeat, listeners = excluded.listeners";

pub(crate) const TOUCH_NODE_ID: &str =
    "UPDATE node_ids SET last_seen = $2 WHERE agent_id = $1 RETURNING node_id";

pub(crate) const FREE_NODE_IDS: &str = "DELETE FROM node_ids WHERE last_seen < $1 \
     AND agent_id NOT IN (SELECT agent_id FROM agents)";

pub(crate) const TAKEN_NODE_IDS: &str = "SELECT node_id FROM node_ids ORDER BY node_id";

pub(crate) const INSERT_NODE_ID: &str =
    "INSERT INTO node_ids (node_id, agent_id, last_seen) VALUES ($1, $2, $3)";

/// Tries to take a node id this many times: agents starting at once may
/// pick the same free one, and all but one retry.
const NODE_ID_ATTEMPTS: usize = 8;

pub(crate) const HEARTBEAT_AGENT: &str =
    "UPDATE agents SET last_heartbeat = $2 WHERE agent_id = $1";

pub(crate) const DELETE_AGENT: &str = "DELETE FROM agents WHERE agent_id = $1";

pub(crate) const SELECT_AGENTS: &str = "SELECT agent_id, node_id, host, port, zone, started_at, \
     last_heartbeat, listeners FROM agents WHERE last_heartbeat >= $1 ORDER BY agent_id";

/// Takes a lease that is free, expired, or already ours.
pub(crate) const ACQUIRE_LEASE: &str = "INSERT INTO job_leases (job, holder, expires_at) \
     VALUES ($1, $2, $3) \
     ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
     WHERE job_leases.holder = excluded.holder OR job_leases.expires_at < $4 \
     RETURNING holder";

pub(crate) const RELEASE_LEASE: &str = "DELETE FROM job_leases WHERE job = $1 AND holder = $2";

#[derive(sqlx::FromRow)]
pub(crate) struct AgentRow {
    agent_id: String,
    node_id: i32,
    host: String,
    port: i32,
    zone: Option<String>,
    started_at: i64,
    last_heartbeat: i64,
    listeners: String,
}

impl From<AgentRow> for crate::types::AgentInfo {
    fn from(row: AgentRow) -> Self {
        Self {
            agent_id: row.agent_id,
            node_id: row.node_id,
            host: row.host,
            port: row.port,
            zone: row.zone,
            started_at: row.started_at,
            last_heartbeat: row.last_heartbeat,
            listeners: crate::types::AgentListener::decode_list(&row.listeners),
        }
    }
}

#[async_trait]
impl<S> ClusterRegistry for S
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> &'q String: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q str>: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i32: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Type<S::Db>,
    for<'r> AgentRow: FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (String,): FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (i32,): FromRow<'r, <S::Db as Database>::Row>,
{
    async fn register_agent(&self, agent: &crate::AgentInfo) -> crate::Result<()> {
        let listeners = crate::types::AgentListener::encode_list(&agent.listeners);
        sqlx::query(UPSERT_AGENT)
            .bind(&agent.agent_id)
            .bind(agent.node_id)
            .bind(&agent.host)
            .bind(agent.port)
            .bind(agent.zone.as_deref())
            .bind(agent.started_at)
            .bind(agent.last_heartbeat)
            .bind(&listeners)
            .execute(self.pool())
            .await
            .map_err(|e| crate::MetadataError::from_sqlx("register agent", e))?;
        Ok(())
    }

    async fn node_id(&self, agent_id: &str, now: i64, reusable_before: i64) -> crate::Result<i32> {
        const OP: &str = "allocate node id";
        let mut last_error = None;
        for _ in 0..NODE_ID_ATTEMPTS {
            let mut tx = self.begin_write(OP).await?;
            let held = sqlx::query_scalar::<S::Db, i32>(TOUCH_NODE_ID)
                .bind(agent_id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
            if let Some(node_id) = held {
                tx.commit()
                    .await
                    .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
                return Ok(node_id);
            }
            sqlx::query(FREE_NODE_IDS)
                .bind(reusable_before)
                .execute(&mut *tx)
                .await
                .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
            let taken = sqlx::query_scalar::<S::Db, i32>(TAKEN_NODE_IDS)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
            let free = smallest_free(&taken);
            let inserted = sqlx::query(INSERT_NODE_ID)
                .bind(free)
                .bind(agent_id)
                .bind(now)
                .execute(&mut *tx)
                .await;
            match inserted {
                Ok(_) => {
                    tx.commit()
                        .await
                        .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
                    return Ok(free);
                }
                // Another agent took it first: look again.
                Err(error) => last_error = Some(crate::MetadataError::from_sqlx(OP, error)),
            }
        }
        Err(
            last_error.unwrap_or_else(|| crate::MetadataError::InvalidArgument {
                what: "node id",
                reason: "no attempt was made".into(),
            }),
        )
    }

    async fn heartbeat_agent(&self, agent_id: &str, now: i64) -> crate::Result<bool> {
        let updated = sqlx::query(HEARTBEAT_AGENT)
            .bind(agent_id)
            .bind(now)
            .execute(self.pool())
            .await
            .map_err(|e| crate::MetadataError::from_sqlx("agent heartbeat", e))?;
        Ok(S::Db::rows_affected(&updated) > 0)
    }

    async fn deregister_agent(&self, agent_id: &str) -> crate::Result<()> {
        sqlx::query(DELETE_AGENT)
            .bind(agent_id)
            .execute(self.pool())
            .await
            .map_err(|e| crate::MetadataError::from_sqlx("deregister agent", e))?;
        Ok(())
    }

    async fn list_agents(&self, alive_since: i64) -> crate::Result<Vec<crate::AgentInfo>> {
        Ok(sqlx::query_as::<S::Db, AgentRow>(SELECT_AGENTS)
            .bind(alive_since)
            .fetch_all(self.pool())
            .await
            .map_err(|e| crate::MetadataError::from_sqlx("list agents", e))?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

#[async_trait]
impl<S> JobLeases for S
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> &'q String: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q str>: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i32: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Type<S::Db>,
    for<'r> AgentRow: FromRow<'r, <S::Db as Database>::Row>,
    for<'r> (String,): FromRow<'r, <S::Db as Database>::Row>,
{
    async fn acquire_lease(
        &self,
        job: &str,
        holder: &str,
        now: i64,
        expires_at: i64,
    ) -> crate::Result<bool> {
        const OP: &str = "acquire lease";
        let mut tx = self.begin_write(OP).await?;
        let taken = sqlx::query_scalar::<S::Db, String>(ACQUIRE_LEASE)
            .bind(job)
            .bind(holder)
            .bind(expires_at)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        tx.commit()
            .await
            .map_err(|e| crate::MetadataError::from_sqlx(OP, e))?;
        Ok(taken.as_deref() == Some(holder))
    }

    async fn release_lease(&self, job: &str, holder: &str) -> crate::Result<()> {
        sqlx::query(RELEASE_LEASE)
            .bind(job)
            .bind(holder)
            .execute(self.pool())
            .await
            .map_err(|e| crate::MetadataError::from_sqlx("release lease", e))?;
        Ok(())
    }
}

/// The smallest non-negative id not in `taken` (sorted).
fn smallest_free(taken: &[i32]) -> i32 {
    let mut free = 0;
    for &id in taken {
        if id == free {
            free += 1;
        } else if id > free {
            break;
        }
    }
    free
}

#[cfg(test)]
mod tests {
    use super::smallest_free;

    #[test]
    fn the_smallest_free_node_id_fills_gaps() {
        assert_eq!(smallest_free(&[]), 0);
        assert_eq!(smallest_free(&[0, 1, 2]), 3);
        assert_eq!(smallest_free(&[0, 2, 3]), 1);
        assert_eq!(smallest_free(&[1, 2]), 0);
    }
}
