//! A member of a consumer-protocol group and how its assignment moves
//! towards its target (Kafka's `CurrentAssignmentBuilder`).
//!
//! The invariant that matters: a partition is given to a member only once
//! no other member owns it (holds it, or still has to revoke it). A member
//! that must give partitions up first stays at its epoch with the
//! partitions it keeps, and moves to the target epoch only once it reports
//! that it no longer owns the others.

use streamhouse_storage::ConsumerGroupMemberRecord;
use uuid::Uuid;

use super::assignment::{self, Assignment};
use crate::coordinator::GroupError;

/// The epoch a member leaves with.
pub(crate) const LEAVE_EPOCH: i32 = -1;
/// The epoch a static member leaves with when it will come back.
pub(crate) const STATIC_LEAVE_EPOCH: i32 = -2;

/// Whether a member may Describe a topic its pattern subscription matches.
pub(crate) type MayDescribe = dyn Fn(&Member, &str) -> bool + Send + Sync;

/// Where a member is in its reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberState {
    /// At the target epoch with everything it can have.
    Stable,
    /// Must revoke partitions before it moves on.
    UnrevokedPartitions,
    /// At the target epoch, waiting for partitions others still own.
    UnreleasedPartitions,
}

impl MemberState {
    pub(crate) fn name(self) -> &'static str {
        match self {
            MemberState::Stable => "stable",
            MemberState::UnrevokedPartitions => "unrevoked_partitions",
            MemberState::UnreleasedPartitions => "unreleased_partitions",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "stable" => Some(MemberState::Stable),
            "unrevoked_partitions" => Some(MemberState::UnrevokedPartitions),
            "unreleased_partitions" => Some(MemberState::UnreleasedPartitions),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    /// The principal the member last heart-beat as (`User:NAME`).
    pub(crate) principal: Option<String>,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) server_assignor: Option<String>,
    /// Sorted, without repeats.
    pub(crate) subscribed_topic_names: Vec<String>,
    pub(crate) subscribed_topic_regex: Option<String>,
    pub(crate) member_epoch: i32,
    pub(crate) previous_member_epoch: i32,
    pub(crate) state: MemberState,
    pub(crate) assigned: Assignment,
    pub(crate) pending_revocation: Assignment,
    pub(crate) target: Assignment,
}

impl Member {
    pub(crate) fn new(member_id: String) -> Self {
        Self {
            member_id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            principal: None,
            rebalance_timeout_ms: 0,
            server_assignor: None,
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            member_epoch: 0,
            previous_member_epoch: 0,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            target: Assignment::new(),
        }
    }

    /// Whether it subscribes to the same topics as `other`.
    pub(crate) fn same_subscription(&self, other: &Member) -> bool {
        self.subscribed_topic_names == other.subscribed_topic_names
            && self.subscribed_topic_regex == other.subscribed_topic_regex
    }

    /// A static member that left and may come back under a new member id.
    pub(crate) fn has_left_temporarily(&self) -> bool {
        self.member_epoch == STATIC_LEAVE_EPOCH
    }

    /// Whether it is at `epoch` with nothing left to do.
    pub(crate) fn is_reconciled_to(&self, epoch: i32) -> bool {
        self.member_epoch == epoch && self.state == MemberState::Stable
    }

    /// Checks a heartbeat's epoch against the member's (Kafka's rule): a
    /// greater one is fenced; a smaller one only when it is the previous
    /// epoch and the member owns nothing outside its assignment (the
    /// answer that moved it on may have been lost).
    pub(crate) fn check_epoch(
        &self,
        epoch: i32,
        owned: Option<&Assignment>,
    ) -> Result<(), GroupError> {
        if epoch > self.member_epoch {
            return Err(GroupError::FencedMemberEpoch {
                sent: epoch,
                current: self.member_epoch,
            });
        }
        if epoch < self.member_epoch {
            let lost_answer = epoch == self.previous_member_epoch
                && owned.is_some_and(|owned| assignment::is_subset(owned, &self.assigned));
            if !lost_answer {
                return Err(GroupError::FencedMemberEpoch {
                    sent: epoch,
                    current: self.member_epoch,
                });
            }
        }
        Ok(())
    }

    /// The member moved one step towards `target` at `target_epoch`.
    /// `owned_elsewhere` tells whether another member owns a partition;
    /// `owned` is what the member reported owning (`None` when the
    /// heartbeat did not say).
    pub(crate) fn reconcile(
        &self,
        target_epoch: i32,
        owned_elsewhere: impl Fn(Uuid, i32) -> bool,
        owned: Option<&Assignment>,
    ) -> Member {
        match self.state {
            MemberState::Stable if self.member_epoch == target_epoch => self.clone(),
            MemberState::Stable | MemberState::UnreleasedPartitions => {
                self.next_assignment(self.member_epoch, target_epoch, &owned_elsewhere, owned)
            }
            MemberState::UnrevokedPartitions => {
                if still_owns(owned, &self.pending_revocation) {
                    return self.clone();
                }
                self.next_assignment(self.member_epoch + 1, target_epoch, &owned_elsewhere, owned)
            }
        }
    }

    fn next_assignment(
        &self,
        epoch: i32,
        target_epoch: i32,
        owned_elsewhere: &impl Fn(Uuid, i32) -> bool,
        owned: Option<&Assignment>,
    ) -> Member {
        let target = &self.target;
        let mut keep = Assignment::new();
        let mut revoke = Assignment::new();
        for (topic, partition) in assignment::pairs(&self.assigned) {
            if target.get(&topic).is_some_and(|t| t.contains(&partition)) {
                assignment::insert(&mut keep, topic, partition);
            } else {
                assignment::insert(&mut revoke, topic, partition);
            }
        }
        let mut unreleased = false;
        let mut gain = Assignment::new();
        for (topic, partition) in assignment::pairs(target) {
            if keep.get(&topic).is_some_and(|k| k.contains(&partition)) {
                continue;
            }
            if owned_elsewhere(topic, partition) {
                unreleased = true;
            } else {
                assignment::insert(&mut gain, topic, partition);
            }
        }
        let mut next = self.clone();
        next.pending_revocation = Assignment::new();
        if !revoke.is_empty() && still_owns(owned, &revoke) {
            // Give up first; stay at this epoch meanwhile.
            next.state = MemberState::UnrevokedPartitions;
            next.set_epoch(epoch);
            next.assigned = keep;
            next.pending_revocation = revoke;
            return next;
        }
        for (topic, partition) in assignment::pairs(&gain) {
            assignment::insert(&mut keep, topic, partition);
        }
        next.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        next.set_epoch(target_epoch);
        next.assigned = keep;
        next
    }

    fn set_epoch(&mut self, epoch: i32) {
        if epoch != self.member_epoch {
            self.previous_member_epoch = self.member_epoch;
            self.member_epoch = epoch;
        }
    }

    pub(crate) fn to_record(&self) -> ConsumerGroupMemberRecord {
        ConsumerGroupMemberRecord {
            member_id: self.member_id.clone(),
            instance_id: self.instance_id.clone(),
            rack_id: self.rack_id.clone(),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            principal: self.principal.clone(),
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            server_assignor: self.server_assignor.clone(),
            subscribed_topic_names: self.subscribed_topic_names.clone(),
            subscribed_topic_regex: self.subscribed_topic_regex.clone(),
            member_epoch: self.member_epoch,
            previous_member_epoch: self.previous_member_epoch,
            state: self.state.name().to_string(),
            assigned: assignment::to_records(&self.assigned),
            pending_revocation: assignment::to_records(&self.pending_revocation),
            target: assignment::to_records(&self.target),
        }
    }

    pub(crate) fn from_record(record: &ConsumerGroupMemberRecord) -> Result<Member, String> {
        let state = MemberState::parse(&record.state)
            .ok_or_else(|| format!("member state {:?}", record.state))?;
        let mut names = record.subscribed_topic_names.clone();
        names.sort();
        names.dedup();
        Ok(Member {
            member_id: record.member_id.clone(),
            instance_id: record.instance_id.clone(),
            rack_id: record.rack_id.clone(),
            client_id: record.client_id.clone(),
            client_host: record.client_host.clone(),
            principal: record.principal.clone(),
            rebalance_timeout_ms: record.rebalance_timeout_ms,
            server_assignor: record.server_assignor.clone(),
            subscribed_topic_names: names,
            subscribed_topic_regex: record.subscribed_topic_regex.clone(),
            member_epoch: record.member_epoch,
            previous_member_epoch: record.previous_member_epoch,
            state,
            assigned: assignment::from_records(&record.assigned)?,
            pending_revocation: assignment::from_records(&record.pending_revocation)?,
            target: assignment::from_records(&record.target)?,
        })
    }
}

/// Whether the member still owns any of `partitions`; a heartbeat that did
/// not report what it owns is taken to own everything.
fn still_owns(owned: Option<&Assignment>, partitions: &Assignment) -> bool {
    owned.is_none_or(|owned| assignment::intersects(owned, partitions))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic() -> Uuid {
        Uuid::from_bytes([7; 16])
    }

    fn set(partitions: &[i32]) -> Assignment {
        assignment::from_pairs(partitions.iter().map(|&p| (topic(), p)))
    }

    fn member(epoch: i32, assigned: &[i32], target: &[i32]) -> Member {
        let mut member = Member::new("m".into());
        member.member_epoch = epoch;
        member.assigned = set(assigned);
        member.target = set(target);
        member
    }

    #[test]
    fn a_member_revokes_before_it_moves_to_the_next_epoch() {
        let m = member(3, &[0, 1, 2], &[0, 3]);
        let free = |_: Uuid, _: i32| false;
        // Still owning 1 and 2: asked to revoke them, kept at epoch 3.
        let step = m.reconcile(5, free, Some(&set(&[0, 1, 2])));
        assert_eq!(step.state, MemberState::UnrevokedPartitions);
        assert_eq!((step.member_epoch, step.assigned.clone()), (3, set(&[0])));
        assert_eq!(step.pending_revocation, set(&[1, 2]));
        // A heartbeat that still owns one of them changes nothing.
        assert_eq!(step.reconcile(5, free, Some(&set(&[0, 2]))), step);
        assert_eq!(step.reconcile(5, free, None), step);
        // Revoked: on to the target epoch with partition 3.
        let done = step.reconcile(5, free, Some(&set(&[0])));
        assert_eq!(done.state, MemberState::Stable);
        assert_eq!((done.member_epoch, done.previous_member_epoch), (5, 3));
        assert_eq!(done.assigned, set(&[0, 3]));
        assert!(done.pending_revocation.is_empty());
    }

    #[test]
    fn partitions_another_member_owns_are_withheld_until_released() {
        let m = member(1, &[0], &[0, 1]);
        let step = m.reconcile(2, |_, p| p == 1, Some(&set(&[0])));
        assert_eq!(step.state, MemberState::UnreleasedPartitions);
        assert_eq!((step.member_epoch, step.assigned.clone()), (2, set(&[0])));
        let released = step.reconcile(2, |_, _| false, Some(&set(&[0])));
        assert_eq!(released.state, MemberState::Stable);
        assert_eq!(released.assigned, set(&[0, 1]));
    }

    #[test]
    fn epochs_are_checked_as_kafka_does() {
        let mut m = member(5, &[0, 1], &[0, 1]);
        m.previous_member_epoch = 4;
        assert_eq!(m.check_epoch(5, None), Ok(()));
        assert!(matches!(
            m.check_epoch(6, None),
            Err(GroupError::FencedMemberEpoch {
                sent: 6,
                current: 5
            })
        ));
        // The previous epoch passes when it owns no more than assigned.
        assert_eq!(m.check_epoch(4, Some(&set(&[1]))), Ok(()));
        assert!(m.check_epoch(4, Some(&set(&[1, 2]))).is_err());
        assert!(m.check_epoch(4, None).is_err());
        assert!(m.check_epoch(3, Some(&set(&[]))).is_err());
    }

    #[test]
    fn the_stored_form_round_trips() {
        let mut m = member(4, &[1], &[1, 2]);
        m.instance_id = Some("i".into());
        m.principal = Some("User:alice".into());
        m.subscribed_topic_names = vec!["a".into(), "b".into()];
        m.state = MemberState::UnreleasedPartitions;
        assert_eq!(Member::from_record(&m.to_record()), Ok(m));
        let mut record = member(1, &[], &[]).to_record();
        record.state = "bogus".into();
        assert!(Member::from_record(&record).is_err());
    }
}
