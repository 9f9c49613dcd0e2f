//! The agents of the cluster and the leases on background jobs.

pub(crate) const UPSERT_AGENT: &str = "INSERT INTO agents (agent_id, node_id, host, port, zone, \
     started_at, last_heartbeat) VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (agent_id) DO UPDATE SET node_id = excluded.node_id, host = excluded.host, \
     port = excluded.port, zone = excluded.zone, started_at = excluded.started_at, \
     last_heartbeat = excluded.last_heartbeat";

pub(crate) const HEARTBEAT_AGENT: &str =
    "UPDATE agents SET last_heartbeat = $2 WHERE agent_id = $1";

pub(crate) const DELETE_AGENT: &str = "DELETE FROM agents WHERE agent_id = $1";

pub(crate) const SELECT_AGENTS: &str = "SELECT agent_id, node_id, host, port, zone, started_at, \
     last_heartbeat FROM agents WHERE last_heartbeat >= $1 ORDER BY agent_id";

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
        }
    }
}

/// Implements [`crate::ClusterRegistry`] and [`crate::JobLeases`] for a
/// backend with `self.pool` and `begin_write()`.
macro_rules! impl_cluster_registry {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::ClusterRegistry for $store {
            async fn register_agent(&self, agent: &$crate::AgentInfo) -> $crate::Result<()> {
                sqlx::query($crate::sql::cluster::UPSERT_AGENT)
                    .bind(&agent.agent_id)
                    .bind(agent.node_id)
                    .bind(&agent.host)
                    .bind(agent.port)
                    .bind(agent.zone.as_deref())
                    .bind(agent.started_at)
                    .bind(agent.last_heartbeat)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| $crate::MetadataError::from_sqlx("register agent", e))?;
                Ok(())
            }

            async fn heartbeat_agent(&self, agent_id: &str, now: i64) -> $crate::Result<bool> {
                let updated = sqlx::query($crate::sql::cluster::HEARTBEAT_AGENT)
                    .bind(agent_id)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| $crate::MetadataError::from_sqlx("agent heartbeat", e))?;
                Ok(updated.rows_affected() > 0)
            }

            async fn deregister_agent(&self, agent_id: &str) -> $crate::Result<()> {
                sqlx::query($crate::sql::cluster::DELETE_AGENT)
                    .bind(agent_id)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| $crate::MetadataError::from_sqlx("deregister agent", e))?;
                Ok(())
            }

            async fn list_agents(
                &self,
                alive_since: i64,
            ) -> $crate::Result<Vec<$crate::AgentInfo>> {
                Ok(sqlx::query_as::<$db, $crate::sql::cluster::AgentRow>(
                    $crate::sql::cluster::SELECT_AGENTS,
                )
                .bind(alive_since)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| $crate::MetadataError::from_sqlx("list agents", e))?
                .into_iter()
                .map(Into::into)
                .collect())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::JobLeases for $store {
            async fn acquire_lease(
                &self,
                job: &str,
                holder: &str,
                now: i64,
                expires_at: i64,
            ) -> $crate::Result<bool> {
                const OP: &str = "acquire lease";
                let mut tx = self.begin_write(OP).await?;
                let taken = sqlx::query_scalar::<$db, String>($crate::sql::cluster::ACQUIRE_LEASE)
                    .bind(job)
                    .bind(holder)
                    .bind(expires_at)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| $crate::MetadataError::from_sqlx(OP, e))?;
                tx.commit()
                    .await
                    .map_err(|e| $crate::MetadataError::from_sqlx(OP, e))?;
                Ok(taken.as_deref() == Some(holder))
            }

            async fn release_lease(&self, job: &str, holder: &str) -> $crate::Result<()> {
                sqlx::query($crate::sql::cluster::RELEASE_LEASE)
                    .bind(job)
                    .bind(holder)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| $crate::MetadataError::from_sqlx("release lease", e))?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_cluster_registry;
