//! Heartbeat and LeaveGroup: a member says it is alive, or that it is gone.

use tokio::time::Instant;

use super::group::GroupState;
use super::join::JoinRefused;
use crate::coordinator::{GroupCoordinator, GroupError};

impl GroupCoordinator {
    /// Keeps the member's session alive; tells it to rejoin when the group
    /// is rebalancing or has moved past its generation.
    pub(crate) fn heartbeat(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
    ) -> Result<(), GroupError> {
        let mut groups = self.inner.classic.lock();
        let group = groups
            .get_mut(group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        let state = group.state;
        let current = group.generation;
        let member = group
            .member_mut(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        member.last_heartbeat = Instant::now();
        match state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            _ if generation != current => Err(GroupError::IllegalGeneration),
            _ => Ok(()),
        }
    }

    /// Removes members; returns, in order, whether each one was a member.
    pub(crate) fn leave(
        &self,
        group_id: &str,
        member_ids: &[String],
    ) -> Vec<Result<(), GroupError>> {
        let mut groups = self.inner.classic.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return vec![Err(GroupError::UnknownMemberId); member_ids.len()];
        };
        let now = Instant::now();
        let mut results = Vec::with_capacity(member_ids.len());
        let mut left = false;
        for member_id in member_ids {
            match group.remove_member(member_id) {
                Some(member) => {
                    if let Some(join) = member.awaiting_join {
                        let _ = join.send(Err(JoinRefused::new(
                            GroupError::UnknownMemberId,
                            member_id.clone(),
                        )));
                    }
                    tracing::debug!(group = group_id, member = %member_id, "member left");
                    left = true;
                    results.push(Ok(()));
                }
                None => results.push(Err(GroupError::UnknownMemberId)),
            }
        }
        if left {
            group.after_departure(now);
            if group.is_unused() {
                groups.remove(group_id);
            }
        }
        results
    }
}
