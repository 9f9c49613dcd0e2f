//! SyncGroup: the leader hands in the assignment of the new generation and
//! every member receives its own.

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::group::{Group, GroupState};
use crate::coordinator::{GroupCoordinator, GroupError, Wait};

/// A member's assignment in the current generation.
#[derive(Debug, Clone)]
pub(crate) struct Synced {
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) assignment: Bytes,
}

pub(crate) type SyncResult = Result<Synced, GroupError>;

impl GroupCoordinator {
    /// A SyncGroup: answered at once in a stable group or when refused,
    /// otherwise when the leader's assignment arrives.
    /// `protocol_type` and `protocol_name` (SyncGroup v5+) are checked
    /// against the group's when given; `assignments` (the leader's, for
    /// every member) are empty from followers.
    pub(crate) fn sync(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> Wait<SyncResult> {
        let mut groups = self.inner.classic.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Wait::Ready(Err(GroupError::UnknownMemberId));
        };
        if let Err(error) = group.check_sync(generation, member_id, protocol_type, protocol_name) {
            return Wait::Ready(Err(error));
        }
        match group.state {
            GroupState::Empty | GroupState::PreparingRebalance => {
                Wait::Ready(Err(GroupError::RebalanceInProgress))
            }
            GroupState::Stable => {
                let assignment = group
                    .member(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                Wait::Ready(Ok(group.synced(assignment)))
            }
            GroupState::CompletingRebalance => {
                Wait::Later(group.await_assignment(group_id, member_id, assignments))
            }
        }
    }
}

impl Group {
    /// Whether the SyncGroup comes from a member of this generation that
    /// agrees on the protocol.
    fn check_sync(
        &self,
        generation: i32,
        member_id: &str,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
    ) -> Result<(), GroupError> {
        if self.member(member_id).is_none() {
            return Err(GroupError::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|p| Some(p) != self.protocol.as_deref())
        {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        Ok(())
    }

    /// Records the member as waiting for its assignment; the leader's sync
    /// completes the rebalance and answers everyone waiting.
    fn await_assignment(
        &mut self,
        group_id: &str,
        member_id: &str,
        assignments: Vec<(String, Bytes)>,
    ) -> oneshot::Receiver<SyncResult> {
        let (reply, waiting) = oneshot::channel();
        if let Some(member) = self.member_mut(member_id) {
            member.awaiting_sync = Some(reply);
            member.last_heartbeat = Instant::now();
        }
        if self.leader.as_deref() == Some(member_id) {
            self.complete_sync(group_id, assignments);
        }
        waiting
    }
}
