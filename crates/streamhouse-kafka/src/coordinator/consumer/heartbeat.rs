//! ConsumerGroupHeartbeat on a group in memory (KIP-848): join, stay,
//! change subscription, reconcile, leave. Pure: the coordinator saves what
//! changed before the answer goes out.

use std::time::Duration;

use tokio::time::Instant;

use super::assignment::Assignment;
use super::group::{ConsumerGroup, TopicSnapshot, rebalance_timeout, topic_regex};
use super::member::{LEAVE_EPOCH, MayDescribe, Member, MemberState, STATIC_LEAVE_EPOCH};
use crate::coordinator::GroupError;

/// Most topic names one member may subscribe to, and most bytes they may
/// take together: a member's subscription is kept in memory and stored
/// with every change, so a client cannot make either large.
pub(crate) const MAX_SUBSCRIBED_TOPICS: usize = 10_000;
pub(crate) const MAX_SUBSCRIPTION_BYTES: usize = 1 << 20;
/// Most bytes of topic names the members of one group may subscribe to
/// together.
pub(crate) const MAX_GROUP_SUBSCRIPTION_BYTES: usize = 16 << 20;
/// Longest subscription pattern.
pub(crate) const MAX_REGEX_BYTES: usize = 4096;

/// What a heartbeat asks, as the handler decoded it.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeartbeatRequest {
    pub(crate) group_id: String,
    pub(crate) member_id: String,
    pub(crate) member_epoch: i32,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    /// -1 when unchanged.
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) subscribed_topic_names: Option<Vec<String>>,
    pub(crate) subscribed_topic_regex: Option<String>,
    pub(crate) server_assignor: Option<String>,
    /// What the member owns, when it says.
    pub(crate) owned: Option<Assignment>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    /// The principal of the member's connection (`User:NAME`).
    pub(crate) principal: Option<String>,
}

/// What the member is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeartbeatAnswer {
    pub(crate) member_id: String,
    pub(crate) member_epoch: i32,
    pub(crate) heartbeat_interval_ms: i32,
    /// Its whole assignment, when it changed or the request was a full one.
    pub(crate) assignment: Option<Assignment>,
}

/// The coordinator's settings and view that a heartbeat needs.
pub(crate) struct HeartbeatEnv<'a> {
    pub(crate) now: Instant,
    pub(crate) session_timeout: Duration,
    pub(crate) heartbeat_interval_ms: i32,
    pub(crate) max_size: usize,
    /// The longest a member is given to revoke partitions, whatever it
    /// asks for.
    pub(crate) max_rebalance_timeout: Duration,
    pub(crate) topics: &'a TopicSnapshot,
    /// Whether a member may Describe a topic its pattern matches.
    pub(crate) may_describe: &'a MayDescribe,
}

impl HeartbeatRequest {
    /// Kafka's checks of a heartbeat that do not depend on the group.
    pub(crate) fn validate(&self) -> Result<(), GroupError> {
        let invalid = |reason: &str| {
            Err(GroupError::InvalidRequest {
                reason: reason.to_string(),
            })
        };
        if self.group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        if self.instance_id.as_deref() == Some("") {
            return invalid("InstanceId can't be empty.");
        }
        if self.rack_id.as_deref() == Some("") {
            return invalid("RackId can't be empty.");
        }
        match self.member_epoch {
            epoch if epoch > 0 || epoch == LEAVE_EPOCH => {
                if self.member_id.is_empty() {
                    return invalid("MemberId can't be empty.");
                }
            }
            0 => {
                if self.rebalance_timeout_ms < 0 {
                    return invalid("RebalanceTimeoutMs must be provided in first request.");
                }
                if self.owned.as_ref().is_none_or(|owned| !owned.is_empty()) {
                    return invalid("TopicPartitions must be empty when (re-)joining.");
                }
                let names = self
                    .subscribed_topic_names
                    .as_ref()
                    .is_some_and(|n| !n.is_empty());
                let pattern = self
                    .subscribed_topic_regex
                    .as_ref()
                    .is_some_and(|r| !r.is_empty());
                if !names && !pattern {
                    return invalid(
                        "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                    );
                }
            }
            STATIC_LEAVE_EPOCH => {
                if self.member_id.is_empty() {
                    return invalid("MemberId can't be empty.");
                }
                if self.instance_id.is_none() {
                    return invalid("InstanceId can't be null.");
                }
            }
            _ => return invalid("MemberEpoch is invalid."),
        }
        if let Some(name) = &self.server_assignor
            && !super::assignor::ASSIGNORS.contains(&name.as_str())
        {
            return Err(GroupError::UnsupportedAssignor { name: name.clone() });
        }
        if let Some(names) = &self.subscribed_topic_names {
            let bytes: usize = names.iter().map(String::len).sum();
            if names.len() > MAX_SUBSCRIBED_TOPICS || bytes > MAX_SUBSCRIPTION_BYTES {
                return Err(GroupError::InvalidRequest {
                    reason: format!(
                        "a member subscribes to at most {MAX_SUBSCRIBED_TOPICS} topics of \
                         {MAX_SUBSCRIPTION_BYTES} bytes together"
                    ),
                });
            }
        }
        if let Some(pattern) = self
            .subscribed_topic_regex
            .as_deref()
            .filter(|p| !p.is_empty())
        {
            if pattern.len() > MAX_REGEX_BYTES {
                return Err(GroupError::InvalidRegularExpression {
                    reason: format!("longer than {MAX_REGEX_BYTES} bytes"),
                });
            }
            topic_regex(pattern)?;
        }
        Ok(())
    }

    /// Whether a full request: a join, or one carrying every field Kafka
    /// requires of one (sent after errors); its answer has the assignment.
    fn is_full(&self) -> bool {
        self.member_epoch == 0
            || (self.rebalance_timeout_ms != -1
                && (self.subscribed_topic_names.is_some() || self.subscribed_topic_regex.is_some())
                && self.owned.is_some())
    }
}

impl ConsumerGroup {
    /// A heartbeat that changes nothing stored: a stable member at the
    /// group's epoch, with nothing new to say. Its session is renewed.
    /// `None` when the heartbeat needs the full treatment.
    pub(crate) fn quick_heartbeat(
        &mut self,
        request: &HeartbeatRequest,
        env: &HeartbeatEnv<'_>,
    ) -> Option<HeartbeatAnswer> {
        if request.member_epoch <= 0
            || self.group_epoch != self.assignment_epoch
            || self.snapshot_generation != Some(env.topics.generation)
        {
            return None;
        }
        let member = self.members.get(&request.member_id)?;
        let unchanged = member.member_epoch == request.member_epoch
            && member.is_reconciled_to(self.assignment_epoch)
            && request
                .instance_id
                .as_ref()
                .is_none_or(|i| member.instance_id.as_ref() == Some(i))
            && request
                .rack_id
                .as_ref()
                .is_none_or(|r| member.rack_id.as_ref() == Some(r))
            && (request.rebalance_timeout_ms == -1
                || request.rebalance_timeout_ms == member.rebalance_timeout_ms)
            && request
                .server_assignor
                .as_ref()
                .is_none_or(|a| member.server_assignor.as_ref() == Some(a))
            && request
                .subscribed_topic_names
                .as_ref()
                .is_none_or(|names| sorted(names) == member.subscribed_topic_names)
            && request
                .subscribed_topic_regex
                .as_ref()
                .is_none_or(|r| regex_or_none(r) == member.subscribed_topic_regex)
            && request.client_id == member.client_id
            && request.client_host == member.client_host
            && request.principal == member.principal;
        if !unchanged {
            return None;
        }
        let answer = HeartbeatAnswer {
            member_id: member.member_id.clone(),
            member_epoch: member.member_epoch,
            heartbeat_interval_ms: env.heartbeat_interval_ms,
            assignment: request.is_full().then(|| member.assigned.clone()),
        };
        self.start_session(&request.member_id, env.now, env.session_timeout);
        Some(answer)
    }

    /// A heartbeat: joins, reconciles or leaves. On an error the group may
    /// be half changed: the coordinator runs it on a copy and keeps the
    /// copy only when it succeeds and is saved.
    pub(crate) fn heartbeat(
        &mut self,
        request: &HeartbeatRequest,
        env: &HeartbeatEnv<'_>,
    ) -> Result<HeartbeatAnswer, GroupError> {
        if request.member_epoch == LEAVE_EPOCH || request.member_epoch == STATIC_LEAVE_EPOCH {
            return self.leave(request, env);
        }
        let (base, mut bump) = if request.member_epoch == 0 {
            self.joining_member(request, env)?
        } else {
            (self.current_member(request)?.clone(), false)
        };
        let previous_assigned = base.assigned.clone();

        let mut member = base.clone();
        if let Some(instance) = &request.instance_id {
            member.instance_id = Some(instance.clone());
        }
        if let Some(rack) = &request.rack_id {
            member.rack_id = Some(rack.clone());
        }
        if request.rebalance_timeout_ms != -1 {
            member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        }
        if let Some(assignor) = &request.server_assignor {
            member.server_assignor = Some(assignor.clone());
        }
        if let Some(names) = &request.subscribed_topic_names {
            member.subscribed_topic_names = sorted(names);
        }
        if let Some(pattern) = &request.subscribed_topic_regex {
            member.subscribed_topic_regex = regex_or_none(pattern);
        }
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        member.principal = request.principal.clone();
        if !member.same_subscription(&base) {
            bump = true;
            let others: usize = self
                .members
                .values()
                .filter(|m| m.member_id != member.member_id)
                .flat_map(|m| m.subscribed_topic_names.iter().map(String::len))
                .sum();
            let mine: usize = member.subscribed_topic_names.iter().map(String::len).sum();
            if others + mine > MAX_GROUP_SUBSCRIPTION_BYTES {
                return Err(GroupError::InvalidRequest {
                    reason: format!(
                        "the group's members subscribe to more than \
                         {MAX_GROUP_SUBSCRIPTION_BYTES} bytes of topic names"
                    ),
                });
            }
        }

        // The member's subscription counts from here on.
        self.put_member(member.clone());
        // Generation 0: the topics were never listed (the metadata store
        // did not answer); the subscriptions are left as they are rather
        // than emptied.
        let listed = env.topics.generation > 0;
        if listed && (bump || self.snapshot_generation != Some(env.topics.generation)) {
            let subscribed = self.subscribed_among(&env.topics.by_name);
            if subscribed != self.subscribed {
                self.subscribed = subscribed;
                bump = true;
            }
            self.snapshot_generation = Some(env.topics.generation);
        }
        if bump {
            self.group_epoch += 1;
            tracing::info!(group = %self.group_id, epoch = self.group_epoch, "bumped the group epoch");
        }
        if self.group_epoch > self.assignment_epoch {
            self.update_target(env.may_describe);
        }
        let member = self
            .members
            .get(&member.member_id)
            .cloned()
            .unwrap_or(member);

        let reconciled = if member.is_reconciled_to(self.assignment_epoch) {
            member
        } else {
            let owned = request.owned.as_ref();
            member.reconcile(
                self.assignment_epoch,
                |topic, partition| self.owned_by_other(&member.member_id, topic, partition),
                owned,
            )
        };
        let member_id = reconciled.member_id.clone();
        self.start_session(&member_id, env.now, env.session_timeout);
        let revocation = (reconciled.state == MemberState::UnrevokedPartitions).then(|| {
            let keep = self
                .timers
                .get(&member_id)
                .and_then(|t| t.revocation)
                .filter(|(epoch, _)| *epoch == reconciled.member_epoch);
            keep.unwrap_or((
                reconciled.member_epoch,
                env.now + rebalance_timeout(&reconciled, env.max_rebalance_timeout),
            ))
        });
        if let Some(timers) = self.timers.get_mut(&member_id) {
            timers.revocation = revocation;
        }
        let answer = HeartbeatAnswer {
            member_id: member_id.clone(),
            member_epoch: reconciled.member_epoch,
            heartbeat_interval_ms: env.heartbeat_interval_ms,
            assignment: (request.is_full() || reconciled.assigned != previous_assigned)
                .then(|| reconciled.assigned.clone()),
        };
        self.put_member(reconciled);
        Ok(answer)
    }

    /// The member a heartbeat at epoch > 0 comes from, checked.
    fn current_member(&self, request: &HeartbeatRequest) -> Result<&Member, GroupError> {
        if let Some(instance) = &request.instance_id {
            let holder = self
                .static_member(instance)
                .ok_or(GroupError::UnknownMemberId)?;
            if holder.member_id != request.member_id {
                return Err(GroupError::FencedInstanceId);
            }
        }
        let member = self
            .members
            .get(&request.member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        member.check_epoch(request.member_epoch, request.owned.as_ref())?;
        Ok(member)
    }

    /// The member a join (epoch 0) starts from, and whether membership
    /// changed in a way that needs a new group epoch. A static member
    /// coming back after leaving with epoch -2 takes over its old state
    /// under its new member id; a member joining again with the id it had
    /// starts from nothing.
    fn joining_member(
        &mut self,
        request: &HeartbeatRequest,
        env: &HeartbeatEnv<'_>,
    ) -> Result<(Member, bool), GroupError> {
        let member_id = request.member_id.clone();
        if let Some(instance) = &request.instance_id
            && let Some(holder) = self.static_member(instance).cloned()
            && (holder.member_id != member_id || holder.has_left_temporarily())
        {
            if !holder.has_left_temporarily() {
                return Err(GroupError::UnreleasedInstanceId {
                    instance_id: instance.clone(),
                    holder: holder.member_id,
                });
            }
            self.remove_member(&holder.member_id);
            let mut comeback = holder;
            comeback.member_id = member_id;
            comeback.member_epoch = 0;
            comeback.previous_member_epoch = 0;
            comeback.state = MemberState::Stable;
            tracing::info!(group = %self.group_id, member = %comeback.member_id,
                instance = %instance, "static member rejoined");
            return Ok((comeback, false));
        }
        if let Some(existing) = self.members.get(&member_id)
            && existing.previous_member_epoch == 0
            && existing.member_epoch > 0
        {
            // The answer to its join was lost: it is the member that
            // joined, at its first epoch (Kafka's rule).
            return Ok((existing.clone(), false));
        }
        // A member joining again under the id it had starts over. The
        // coordinator works on a copy of the group, so a refusal below
        // leaves it in place.
        let rejoined = self.remove_member(&member_id).is_some();
        if self.members.len() >= env.max_size {
            return Err(GroupError::GroupMaxSizeReached {
                max_size: env.max_size,
            });
        }
        tracing::info!(group = %self.group_id, member = %member_id, rejoined, "member joined");
        Ok((Member::new(member_id), true))
    }

    /// A member leaving, for good (-1) or, for a static member, to come
    /// back (-2).
    fn leave(
        &mut self,
        request: &HeartbeatRequest,
        env: &HeartbeatEnv<'_>,
    ) -> Result<HeartbeatAnswer, GroupError> {
        let member_id = match &request.instance_id {
            Some(instance) => {
                let holder = self
                    .static_member(instance)
                    .ok_or(GroupError::UnknownMemberId)?;
                if holder.member_id != request.member_id {
                    return Err(GroupError::FencedInstanceId);
                }
                holder.member_id.clone()
            }
            None => {
                if !self.members.contains_key(&request.member_id) {
                    return Err(GroupError::UnknownMemberId);
                }
                request.member_id.clone()
            }
        };
        if request.member_epoch == STATIC_LEAVE_EPOCH {
            if let Some(mut member) = self.members.get(&member_id).cloned() {
                member.member_epoch = STATIC_LEAVE_EPOCH;
                member.pending_revocation = Assignment::new();
                member.state = MemberState::Stable;
                self.put_member(member);
            }
            if let Some(timers) = self.timers.get_mut(&member_id) {
                timers.revocation = None;
            }
            tracing::info!(group = %self.group_id, member = %member_id, "static member left for now");
        } else {
            self.fence(&member_id, "left the group", env.may_describe);
        }
        Ok(HeartbeatAnswer {
            member_id,
            member_epoch: request.member_epoch,
            heartbeat_interval_ms: env.heartbeat_interval_ms,
            assignment: None,
        })
    }

    /// Removes a member (left, session expired, revocation too slow): its
    /// partitions go to the others at a new group epoch.
    pub(crate) fn fence(&mut self, member_id: &str, why: &str, may_describe: &MayDescribe) {
        if self.remove_member(member_id).is_none() {
            return;
        }
        tracing::info!(group = %self.group_id, member = %member_id, "member removed: {why}");
        let all = self.subscribed.clone();
        self.subscribed = self.subscribed_among(&all);
        self.group_epoch += 1;
        if !self.members.is_empty() {
            self.update_target(may_describe);
        }
    }

    /// Members whose session ended or who did not revoke in time, at `now`.
    pub(crate) fn expired(&self, now: Instant) -> Vec<(String, &'static str)> {
        self.timers
            .iter()
            .filter_map(|(id, timers)| {
                if timers.session <= now {
                    return Some((id.clone(), "its session expired"));
                }
                let (epoch, deadline) = timers.revocation?;
                let stuck = self.members.get(id).is_some_and(|m| {
                    m.member_epoch == epoch && m.state == MemberState::UnrevokedPartitions
                });
                (stuck && deadline <= now)
                    .then(|| (id.clone(), "it did not revoke its partitions in time"))
            })
            .collect()
    }
}

fn sorted(names: &[String]) -> Vec<String> {
    let mut names = names.to_vec();
    names.sort();
    names.dedup();
    names
}

/// An empty pattern clears the subscription by pattern.
fn regex_or_none(pattern: &str) -> Option<String> {
    (!pattern.is_empty()).then(|| pattern.to_string())
}
