//! JoinGroup: a member enters the group, or rejoins it for a rebalance.
//!
//! A request that is refused, for whatever reason, leaves no group behind:
//! a group exists only while it has a member or a member id handed out.

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::group::{Group, GroupState, Member};
use crate::coordinator::limits::Timeouts;
use crate::coordinator::{GroupCoordinator, GroupError, GroupLimits, Wait};

/// What a JoinGroup needs from the request.
#[derive(Debug, Clone)]
pub(crate) struct JoinParams {
    pub(crate) group_id: String,
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    /// As the client sent them; the coordinator checks them against its
    /// limits. JoinGroup v0 has no rebalance timeout: the handler passes
    /// the session timeout, as Kafka does.
    pub(crate) session_timeout_ms: i32,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) protocol_type: String,
    pub(crate) protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member first gets its id with
    /// MEMBER_ID_REQUIRED and joins again with it.
    pub(crate) require_known_member_id: bool,
    /// The request's version (static leaders rejoin differently from v9).
    pub(crate) version: i16,
}

/// A member in a generation of the group.
#[derive(Debug, Clone)]
pub(crate) struct Joined {
    pub(crate) generation_id: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) leader: String,
    pub(crate) member_id: String,
    /// Filled for the leader only: every member and its metadata for the
    /// selected protocol.
    pub(crate) members: Vec<(String, Option<String>, Bytes)>,
    /// JoinGroup v9: the leader need not compute a new assignment (a static
    /// leader rejoined a stable group).
    pub(crate) skip_assignment: bool,
}

/// A JoinGroup that did not get a generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoinRefused {
    pub(crate) error: GroupError,
    /// The member id the answer names: the one handed out with
    /// [`GroupError::MemberIdRequired`], the one the member joined with,
    /// or none.
    pub(crate) member_id: String,
}

impl JoinRefused {
    pub(crate) fn new(error: GroupError, member_id: String) -> Self {
        Self { error, member_id }
    }
}

pub(crate) type JoinResult = Result<Joined, JoinRefused>;

impl GroupCoordinator {
    /// A JoinGroup: answered at once when it is refused or changes nothing,
    /// otherwise when the rebalance it takes part in completes.
    pub(crate) fn join(&self, params: JoinParams) -> Wait<JoinResult> {
        self.try_join(params)
            .unwrap_or_else(|refused| Wait::Ready(Err(refused)))
    }

    fn try_join(&self, params: JoinParams) -> Result<Wait<JoinResult>, JoinRefused> {
        let refuse = |error: GroupError| JoinRefused::new(error, params.member_id.clone());
        if params.group_id.is_empty() {
            return Err(refuse(GroupError::InvalidGroupId));
        }
        let limits = &self.inner.limits;
        let timeouts = limits
            .join_timeouts(params.session_timeout_ms, params.rebalance_timeout_ms)
            .map_err(|error| {
                tracing::debug!(group = %params.group_id, %error, "join refused");
                refuse(error)
            })?;
        let now = Instant::now();
        let mut groups = self.inner.classic.lock();
        if !groups.contains_key(&params.group_id) {
            self.admit_new_group(groups.len(), &params)
                .map_err(refuse)?;
        }
        let group_id = params.group_id.clone();
        let group = groups.entry(group_id.clone()).or_insert_with(Group::new);
        let outcome = group.join(params, timeouts, limits, now);
        if group.is_unused() {
            groups.remove(&group_id);
        }
        outcome
    }

    /// Whether a join may start a group this coordinator does not hold.
    fn admit_new_group(&self, groups: usize, params: &JoinParams) -> Result<(), GroupError> {
        // Only a member without an id starts a group (Kafka answers
        // UNKNOWN_MEMBER_ID to a member id the group never had).
        if !params.member_id.is_empty() {
            return Err(GroupError::UnknownMemberId);
        }
        if !Group::accepts_first(params) {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        self.inner.limits.admit_group(groups).inspect_err(|_| {
            tracing::debug!(group = %params.group_id, groups, "group limit reached");
        })?;
        self.inner.idle_since.lock().remove(&params.group_id);
        Ok(())
    }
}

impl Group {
    /// The join in this group, step by step: the protocols must fit, a
    /// restarted static member takes its old place, the member gets its id,
    /// and either the current generation stands or a rebalance starts.
    fn join(
        &mut self,
        mut params: JoinParams,
        timeouts: Timeouts,
        limits: &GroupLimits,
        now: Instant,
    ) -> Result<Wait<JoinResult>, JoinRefused> {
        if !self.accepts(&params) {
            return Err(JoinRefused::new(
                GroupError::InconsistentGroupProtocol,
                params.member_id,
            ));
        }
        if let Some(joined) = self.rejoin_static_member(&mut params, now)? {
            return Ok(Wait::Ready(Ok(joined)));
        }
        let member_id = self.member_id_for(&params, timeouts, limits, now)?;
        if let Some(joined) = self.keep_generation(&member_id, &params, now) {
            return Ok(Wait::Ready(Ok(joined)));
        }
        let waiting = self.await_rebalance(member_id, params, timeouts, now);
        Ok(Wait::Later(waiting))
    }

    /// A static member (group.instance.id) that restarts joins without a
    /// member id: it takes its old place under a new id and keeps its
    /// assignment, so a stable group does not rebalance (KIP-345). Answers
    /// at once when the group can stay as it is; otherwise `params` names
    /// the new id and the join goes on.
    fn rejoin_static_member(
        &mut self,
        params: &mut JoinParams,
        now: Instant,
    ) -> Result<Option<Joined>, JoinRefused> {
        let Some(instance) = params.group_instance_id.clone() else {
            return Ok(None);
        };
        let Some(old_id) = self.instance_member(&instance) else {
            return Ok(None);
        };
        if !params.member_id.is_empty() {
            if params.member_id != old_id {
                return Err(JoinRefused::new(
                    GroupError::FencedInstanceId,
                    params.member_id.clone(),
                ));
            }
            return Ok(None);
        }
        let new_id = new_member_id(&params.client_id);
        self.rename_member(&old_id, &new_id);
        tracing::info!(group = %params.group_id, %instance, member = %new_id,
            "static member rejoined");
        let unchanged = self
            .member(&new_id)
            .is_some_and(|m| m.protocols == params.protocols);
        let leads = self.leader.as_deref() == Some(new_id.as_str());
        if self.state == GroupState::Stable && unchanged {
            // As Kafka: no rebalance. A leader that can skip the assignment
            // (JoinGroup v9, KIP-814) gets the members and is told to;
            // an older one is named a follower (the leader under its old
            // id) and syncs to get its assignment back.
            let skip = leads && params.version >= 9;
            let current = self.current_generation(new_id.clone());
            let joined = Joined {
                members: if skip {
                    self.member_metadata()
                } else {
                    Vec::new()
                },
                skip_assignment: skip,
                leader: if leads && !skip {
                    old_id.clone()
                } else {
                    current.leader.clone()
                },
                ..current
            };
            if let Some(member) = self.member_mut(&new_id) {
                member.last_heartbeat = now;
            }
            return Ok(Some(joined));
        }
        params.member_id = new_id;
        Ok(None)
    }

    /// The id the joining member goes on with: a new one for a member
    /// without an id (which a v4+ member must first come back with), or
    /// its own if the group knows it.
    fn member_id_for(
        &mut self,
        params: &JoinParams,
        timeouts: Timeouts,
        limits: &GroupLimits,
        now: Instant,
    ) -> Result<String, JoinRefused> {
        if !params.member_id.is_empty() {
            let known = self.by_id.contains_key(&params.member_id)
                || self.pending.remove(&params.member_id).is_some();
            if !known {
                return Err(JoinRefused::new(
                    GroupError::UnknownMemberId,
                    params.member_id.clone(),
                ));
            }
            return Ok(params.member_id.clone());
        }
        limits.admit_member(self.size()).map_err(|error| {
            tracing::debug!(group = %params.group_id, members = self.by_id.len(),
                pending = self.pending.len(), "group is full");
            JoinRefused::new(error, String::new())
        })?;
        let member_id = new_member_id(&params.client_id);
        if params.require_known_member_id && params.group_instance_id.is_none() {
            self.pending
                .insert(member_id.clone(), now + timeouts.session);
            return Err(JoinRefused::new(GroupError::MemberIdRequired, member_id));
        }
        Ok(member_id)
    }

    /// A known member rejoining a stable group with the same metadata, and
    /// not the leader, gets the current generation without making everyone
    /// rebalance.
    fn keep_generation(
        &mut self,
        member_id: &str,
        params: &JoinParams,
        now: Instant,
    ) -> Option<Joined> {
        let unchanged = self.state == GroupState::Stable
            && self.leader.as_deref() != Some(member_id)
            && self
                .member(member_id)
                .is_some_and(|m| m.protocols == params.protocols);
        if !unchanged {
            return None;
        }
        let joined = self.current_generation(member_id.to_string());
        if let Some(member) = self.member_mut(member_id) {
            member.last_heartbeat = now;
        }
        Some(joined)
    }

    /// The current generation as a follower's JoinGroup answer.
    fn current_generation(&self, member_id: String) -> Joined {
        Joined {
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id,
            members: Vec::new(),
            skip_assignment: false,
        }
    }

    /// Records the member as waiting to join (a join it was already waiting
    /// in is refused) and starts a rebalance, or completes the one under
    /// way if everyone has now rejoined.
    fn await_rebalance(
        &mut self,
        member_id: String,
        params: JoinParams,
        timeouts: Timeouts,
        now: Instant,
    ) -> oneshot::Receiver<JoinResult> {
        let (reply, waiting) = oneshot::channel();
        match self.member_mut(&member_id) {
            Some(member) => {
                member.protocols = params.protocols;
                member.session_timeout = timeouts.session;
                member.rebalance_timeout = timeouts.rebalance;
                member.last_heartbeat = now;
                if let Some(previous) = member.awaiting_join.replace(reply) {
                    let _ = previous.send(Err(JoinRefused::new(
                        GroupError::UnknownMemberId,
                        member_id.clone(),
                    )));
                }
            }
            None => self.add_member(
                member_id.clone(),
                Member {
                    group_instance_id: params.group_instance_id,
                    client_id: params.client_id,
                    client_host: params.client_host,
                    session_timeout: timeouts.session,
                    rebalance_timeout: timeouts.rebalance,
                    protocols: params.protocols,
                    assignment: Bytes::new(),
                    last_heartbeat: now,
                    awaiting_join: Some(reply),
                    awaiting_sync: None,
                },
            ),
        }
        self.protocol_type = Some(params.protocol_type);
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now);
        }
        if self.all_rejoined() {
            self.complete_join();
        }
        tracing::debug!(group = %params.group_id, member = %member_id, "member joining");
        waiting
    }
}

/// A new member id: the client id (or "member") and a UUID, as Kafka does.
fn new_member_id(client_id: &str) -> String {
    let prefix = if client_id.is_empty() {
        "member"
    } else {
        client_id
    };
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}
