//! Committed offsets and the coordinator: whether an OffsetCommit may
//! commit at the generation it names, and Kafka's offset expiry for groups
//! without members. The offsets themselves live in the metadata store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use streamhouse_storage::{GroupOffsets, MetadataError};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use streamhouse_core::clock::Clock;

use super::classic::GroupState;
use super::{GroupCoordinator, GroupError};
use crate::cluster::Cluster;

impl GroupCoordinator {
    /// Whether a TxnOffsetCommit v3 naming a member may stage offsets
    /// (KIP-447): a zombie of an older generation, a member that left, or
    /// a static member replaced by a newer one is refused, so its offsets
    /// never become the group's. Requests that name no member (v0–v2, or
    /// a producer outside the group) are not checked.
    pub(crate) fn validate_txn_commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if generation < 0 && member_id.is_empty() && group_instance_id.is_none() {
            return Ok(());
        }
        let groups = self.inner.classic.lock();
        let Some(group) = groups.get(group_id) else {
            return Err(if member_id.is_empty() {
                GroupError::IllegalGeneration
            } else {
                GroupError::UnknownMemberId
            });
        };
        if let Some(instance) = group_instance_id
            && group
                .instance_member(instance)
                .is_some_and(|holder| holder != member_id)
        {
            return Err(GroupError::FencedInstanceId);
        }
        if !member_id.is_empty() && group.member(member_id).is_none() {
            return Err(GroupError::UnknownMemberId);
        }
        if generation >= 0 && generation != group.generation {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }

    /// Whether an OffsetCommit from `member_id` at `generation` may commit.
    pub(crate) fn validate_commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
    ) -> Result<(), GroupError> {
        let groups = self.inner.classic.lock();
        let Some(group) = groups.get(group_id) else {
            // Not managed here: a standalone consumer may commit; a member
            // of a generation this coordinator never saw must rejoin.
            return if generation < 0 {
                Ok(())
            } else {
                Err(GroupError::IllegalGeneration)
            };
        };
        if generation < 0 && group.state == GroupState::Empty {
            return Ok(());
        }
        if group.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        if group.member(member_id).is_none() {
            return Err(GroupError::UnknownMemberId);
        }
        if generation != group.generation {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }

    /// Starts expiring committed offsets of the groups this agent
    /// coordinates (see `expire_offsets`) every
    /// `offsets_retention_check_interval`, until `stop`.
    pub(crate) fn start_offset_expiry(
        &self,
        store: Arc<dyn GroupOffsets>,
        cluster: Cluster,
        clock: Arc<dyn Clock>,
        stop: CancellationToken,
    ) -> JoinHandle<()> {
        self.run_offset_expiry(
            store,
            clock,
            move |group| cluster.is_me(&cluster.coordinator(group)),
            stop,
        )
    }

    /// The offset expiry loop; `coordinates` tells whether this agent
    /// coordinates a group: only a group's coordinator knows whether it has
    /// members.
    fn run_offset_expiry(
        &self,
        store: Arc<dyn GroupOffsets>,
        clock: Arc<dyn Clock>,
        coordinates: impl Fn(&str) -> bool + Send + Sync + 'static,
        stop: CancellationToken,
    ) -> JoinHandle<()> {
        let coordinator = self.clone();
        let every = self
            .inner
            .limits
            .offsets_retention_check_interval
            .max(Duration::from_millis(1));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                let pass = coordinator.expire_offsets(
                    store.as_ref(),
                    &coordinates,
                    Instant::now(),
                    clock.now_ms(),
                );
                tokio::select! {
                    _ = stop.cancelled() => return,
                    result = pass => if let Err(error) = result {
                        tracing::warn!(%error, "offset expiry failed; retrying at the next check");
                    },
                }
            }
        })
    }

    /// Kafka's offset expiry for the groups this agent coordinates: an
    /// offset is removed from the metadata store once it was committed at
    /// least `offsets_retention` ago and its group has been without members
    /// for at least as long. How long a group has been empty is what this
    /// coordinator saw itself: a group it finds without members starts
    /// counting then, so an agent restart or a coordinator move delays
    /// expiry, never hastens it. Returns how many offsets expired.
    pub(crate) async fn expire_offsets(
        &self,
        store: &dyn GroupOffsets,
        coordinates: &(dyn Fn(&str) -> bool + Send + Sync),
        now: Instant,
        wall_clock_ms: i64,
    ) -> Result<u64, MetadataError> {
        let retention = self.inner.limits.offsets_retention;
        let with_offsets = store.list_groups().await?;
        // Consumer-protocol groups with members keep their offsets; empty
        // ones without offsets are deleted, as Kafka deletes them.
        let (busy, empty) = match &self.inner.consumer {
            Some(consumer) => consumer.stored_groups().await?,
            None => Default::default(),
        };
        if let Some(consumer) = &self.inner.consumer {
            for group_id in empty
                .iter()
                .filter(|id| coordinates(id) && !with_offsets.contains(*id))
            {
                match consumer.delete_if_empty(group_id).await {
                    Ok(true) => {
                        tracing::info!(group = %group_id, "empty consumer group without offsets deleted")
                    }
                    Ok(false) | Err(GroupError::NonEmptyGroup) => {}
                    Err(error) => {
                        tracing::warn!(group = %group_id, %error, "cannot delete an empty consumer group")
                    }
                }
            }
        }
        let due: Vec<String> = {
            let groups = self.inner.classic.lock();
            let mut idle_since = self.inner.idle_since.lock();
            // Groups that have members, are not ours or have no offsets
            // any more drop out; the others keep counting.
            let idle: HashMap<String, Instant> = with_offsets
                .into_iter()
                .filter(|id| !groups.contains_key(id) && !busy.contains(id) && coordinates(id))
                .map(|id| {
                    let since = idle_since.get(&id).copied().unwrap_or(now);
                    (id, since)
                })
                .collect();
            *idle_since = idle;
            idle_since
                .iter()
                .filter(|(_, since)| now.saturating_duration_since(**since) >= retention)
                .map(|(id, _)| id.clone())
                .collect()
        };
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let committed_before = wall_clock_ms.saturating_sub(retention_ms);
        let mut expired = 0;
        for group_id in due {
            // A member may have joined while the store answered.
            if self.inner.classic.lock().contains_key(&group_id) {
                continue;
            }
            if let Some(consumer) = &self.inner.consumer
                && consumer.has_members(&group_id).await.unwrap_or(true)
            {
                continue;
            }
            let removed = store.expire_offsets(&group_id, committed_before).await?;
            if removed > 0 {
                tracing::info!(group = %group_id, offsets = removed,
                    "committed offsets expired (group empty for offsets.retention.minutes)");
                expired += removed;
            }
        }
        metrics::counter!("streamhouse_kafka_offsets_expired_total").increment(expired);
        Ok(expired)
    }
}

#[cfg(test)]
mod tests;
