//! A classic group and its state machine.
//!
//! A group moves Empty → PreparingRebalance (members join) →
//! CompletingRebalance (the leader computes the assignment with its
//! assignor: range, roundrobin, cooperative-sticky…) → Stable (everyone
//! has its assignment), and back to PreparingRebalance whenever a member
//! joins, leaves, or stops heart-beating for its session timeout.
//!
//! Every transition answers the JoinGroup and SyncGroup requests it
//! completes through their oneshot channels, so a waiting request is never
//! left behind by a state change.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::join::{JoinParams, JoinRefused, JoinResult, Joined};
use super::sync::{SyncResult, Synced};
use crate::coordinator::GroupError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub(crate) fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

pub(crate) struct Member {
    pub(crate) group_instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout: Duration,
    pub(crate) rebalance_timeout: Duration,
    pub(crate) protocols: Vec<(String, Bytes)>,
    pub(crate) assignment: Bytes,
    pub(crate) last_heartbeat: Instant,
    pub(crate) awaiting_join: Option<oneshot::Sender<JoinResult>>,
    pub(crate) awaiting_sync: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    /// This member's metadata for `protocol`, empty if it has none.
    pub(crate) fn metadata_for(&self, protocol: Option<&str>) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| Some(name.as_str()) == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }
}

pub(crate) struct Group {
    pub(crate) state: GroupState,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol: Option<String>,
    pub(crate) leader: Option<String>,
    /// In join order, so the first member to join leads.
    pub(crate) members: BTreeMap<u64, String>,
    pub(crate) by_id: HashMap<String, (u64, Member)>,
    next_join_order: u64,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they expire.
    pub(crate) pending: HashMap<String, Instant>,
    rebalance_deadline: Option<Instant>,
}

impl Group {
    pub(crate) fn new() -> Self {
        Self {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            by_id: HashMap::new(),
            next_join_order: 0,
            pending: HashMap::new(),
            rebalance_deadline: None,
        }
    }

    pub(crate) fn member(&self, member_id: &str) -> Option<&Member> {
        self.by_id.get(member_id).map(|(_, m)| m)
    }

    pub(crate) fn member_mut(&mut self, member_id: &str) -> Option<&mut Member> {
        self.by_id.get_mut(member_id).map(|(_, m)| m)
    }

    /// Members in join order, with their ids.
    pub(crate) fn members_in_join_order(&self) -> impl Iterator<Item = (&String, &Member)> {
        self.members
            .values()
            .filter_map(|id| self.member(id).map(|member| (id, member)))
    }

    /// No member and no member id handed out: nothing to keep in memory
    /// (committed offsets, if any, live in the metadata store).
    pub(crate) fn is_unused(&self) -> bool {
        self.by_id.is_empty() && self.pending.is_empty()
    }

    /// Members and member ids handed out: what `group.max.size` bounds.
    pub(crate) fn size(&self) -> usize {
        self.by_id.len() + self.pending.len()
    }

    pub(crate) fn add_member(&mut self, member_id: String, member: Member) {
        let order = self.next_join_order;
        self.next_join_order += 1;
        self.members.insert(order, member_id.clone());
        self.by_id.insert(member_id, (order, member));
    }

    /// The member that holds a static instance id, if any.
    pub(crate) fn instance_member(&self, instance: &str) -> Option<String> {
        self.by_id
            .iter()
            .find(|(_, (_, m))| m.group_instance_id.as_deref() == Some(instance))
            .map(|(id, _)| id.clone())
    }

    /// Moves a member to a new id, keeping its place, assignment and
    /// leadership; requests still waiting under the old id are fenced.
    pub(crate) fn rename_member(&mut self, old_id: &str, new_id: &str) {
        let Some((order, mut member)) = self.by_id.remove(old_id) else {
            return;
        };
        if let Some(join) = member.awaiting_join.take() {
            let _ = join.send(Err(JoinRefused::new(
                GroupError::FencedInstanceId,
                old_id.to_string(),
            )));
        }
        if let Some(sync) = member.awaiting_sync.take() {
            let _ = sync.send(Err(GroupError::FencedInstanceId));
        }
        self.members.insert(order, new_id.to_string());
        self.by_id.insert(new_id.to_string(), (order, member));
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.to_string());
        }
    }

    /// Every member with its metadata for the selected protocol, in join
    /// order: what the leader assigns from.
    pub(crate) fn member_metadata(&self) -> Vec<(String, Option<String>, Bytes)> {
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members_in_join_order()
            .map(|(id, m)| {
                (
                    id.clone(),
                    m.group_instance_id.clone(),
                    m.metadata_for(Some(&protocol)),
                )
            })
            .collect()
    }

    pub(crate) fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let (order, member) = self.by_id.remove(member_id)?;
        self.members.remove(&order);
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
        Some(member)
    }

    /// Whether a group with no members could take this join: it names a
    /// protocol type and at least one protocol (Kafka's check for an empty
    /// group).
    pub(crate) fn accepts_first(params: &JoinParams) -> bool {
        !params.protocol_type.is_empty() && !params.protocols.is_empty()
    }

    /// Whether the join's protocol type is the group's and every member
    /// supports one of its protocols.
    pub(crate) fn accepts(&self, params: &JoinParams) -> bool {
        if self.by_id.is_empty() {
            return Self::accepts_first(params);
        }
        self.protocol_type.as_deref() == Some(params.protocol_type.as_str())
            && params.protocols.iter().any(|(name, _)| {
                self.by_id
                    .values()
                    .all(|(_, m)| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    /// The protocol every member supports that most members prefer.
    fn select_protocol(&self) -> Option<String> {
        let candidates: Vec<&String> = self
            .members
            .values()
            .next()
            .and_then(|first| self.member(first))
            .map(|m| m.protocols.iter().map(|(n, _)| n).collect())
            .unwrap_or_default();
        let supported: Vec<&String> = candidates
            .into_iter()
            .filter(|name| {
                self.by_id
                    .values()
                    .all(|(_, m)| m.protocols.iter().any(|(n, _)| n == *name))
            })
            .collect();
        let mut votes: Vec<(usize, &String)> = supported
            .iter()
            .map(|name| {
                let count = self
                    .by_id
                    .values()
                    .filter(|(_, m)| {
                        m.protocols
                            .iter()
                            .find(|(n, _)| supported.contains(&n))
                            .is_some_and(|(n, _)| n == *name)
                    })
                    .count();
                (count, *name)
            })
            .collect();
        // Most votes wins; ties go to the first member's preference order,
        // which `supported` already follows.
        votes.sort_by_key(|&(count, _)| std::cmp::Reverse(count));
        votes.first().map(|(_, name)| (*name).clone())
    }

    pub(crate) fn all_rejoined(&self) -> bool {
        self.by_id.values().all(|(_, m)| m.awaiting_join.is_some())
    }

    /// Starts a rebalance: members must rejoin within the longest rebalance
    /// timeout; a pending SyncGroup learns that the group moved on.
    pub(crate) fn prepare_rebalance(&mut self, now: Instant) {
        for (_, member) in self.by_id.values_mut() {
            if let Some(sync) = member.awaiting_sync.take() {
                let _ = sync.send(Err(GroupError::RebalanceInProgress));
            }
        }
        let timeout = self
            .by_id
            .values()
            .map(|(_, m)| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.state = GroupState::PreparingRebalance;
        self.rebalance_deadline = Some(now + timeout);
    }

    /// Ends the join phase: members that did not rejoin are dropped, a new
    /// generation starts, and every waiting JoinGroup is answered.
    pub(crate) fn complete_join(&mut self) {
        let gone: Vec<String> = self
            .by_id
            .iter()
            .filter(|(_, (_, m))| m.awaiting_join.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for member_id in gone {
            self.remove_member(&member_id);
        }
        self.rebalance_deadline = None;
        self.generation += 1;
        if self.by_id.is_empty() {
            // Kafka keeps the protocol type of a group that emptied.
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = self.select_protocol();
        if self.leader.is_none() {
            self.leader = self.members.values().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let all_members = self.member_metadata();
        let generation = self.generation;
        let protocol_type = self.protocol_type.clone();
        let now = Instant::now();
        for (id, (_, member)) in self.by_id.iter_mut() {
            member.last_heartbeat = now;
            member.assignment = Bytes::new();
            if let Some(waiter) = member.awaiting_join.take() {
                let _ = waiter.send(Ok(Joined {
                    generation_id: generation,
                    protocol_type: protocol_type.clone(),
                    protocol_name: Some(protocol.clone()),
                    leader: leader.clone(),
                    member_id: id.clone(),
                    members: if *id == leader {
                        all_members.clone()
                    } else {
                        Vec::new()
                    },
                    skip_assignment: false,
                }));
            }
        }
    }

    /// The current generation as a SyncGroup answer carrying `assignment`.
    pub(crate) fn synced(&self, assignment: Bytes) -> Synced {
        Synced {
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment,
        }
    }

    /// Ends the sync phase with the leader's assignments: every member gets
    /// its own (empty if the leader gave it none), every waiting SyncGroup
    /// is answered, and the group is Stable.
    pub(crate) fn complete_sync(&mut self, group_id: &str, assignments: Vec<(String, Bytes)>) {
        let mut assigned: HashMap<String, Bytes> = assignments.into_iter().collect();
        let ids: Vec<String> = self.by_id.keys().cloned().collect();
        for id in ids {
            let assignment = assigned.remove(&id).unwrap_or_default();
            let answer = self.synced(assignment.clone());
            if let Some(member) = self.member_mut(&id) {
                member.assignment = assignment;
                if let Some(waiter) = member.awaiting_sync.take() {
                    let _ = waiter.send(Ok(answer));
                }
            }
        }
        self.state = GroupState::Stable;
        tracing::info!(
            group = group_id,
            generation = self.generation,
            members = self.by_id.len(),
            protocol = self.protocol.as_deref().unwrap_or(""),
            "group stable"
        );
    }

    /// After members left: a rebalance without them, finished at once if
    /// everyone still in the group is already waiting to join.
    pub(crate) fn after_departure(&mut self, now: Instant) {
        match self.state {
            GroupState::PreparingRebalance => {
                if self.all_rejoined() {
                    self.complete_join();
                }
            }
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now);
                if self.all_rejoined() {
                    self.complete_join();
                }
            }
            GroupState::Empty => {}
        }
    }

    /// Expires sessions, pending member ids and the rebalance deadline.
    pub(crate) fn expire(&mut self, group_id: &str, now: Instant) {
        self.pending.retain(|_, deadline| *deadline > now);
        // Sessions run in every state: a member that neither heart-beats
        // nor waits in a JoinGroup or SyncGroup is gone, also in the
        // middle of a rebalance (it must not hold the others up until
        // the rebalance timeout).
        let expired: Vec<String> = self
            .by_id
            .iter()
            .filter(|(_, (_, m))| {
                m.awaiting_join.is_none()
                    && m.awaiting_sync.is_none()
                    && now.duration_since(m.last_heartbeat) > m.session_timeout
            })
            .map(|(id, _)| id.clone())
            .collect();
        for member_id in &expired {
            tracing::info!(group = %group_id, member = %member_id, "session expired");
            self.remove_member(member_id);
        }
        if self.state == GroupState::PreparingRebalance
            && self.rebalance_deadline.is_some_and(|d| d <= now)
        {
            tracing::info!(
                group = %group_id,
                "rebalance timeout; completing without the members that did not rejoin"
            );
            self.complete_join();
        } else if !expired.is_empty() {
            self.after_departure(now);
        }
    }

    /// Answers every waiting JoinGroup and SyncGroup with `error`, each
    /// JoinGroup under its member's id.
    pub(crate) fn answer_waiting(&mut self, error: &GroupError) {
        for (member_id, (_, member)) in self.by_id.iter_mut() {
            if let Some(join) = member.awaiting_join.take() {
                let _ = join.send(Err(JoinRefused::new(error.clone(), member_id.clone())));
            }
            if let Some(sync) = member.awaiting_sync.take() {
                let _ = sync.send(Err(error.clone()));
            }
        }
    }

    /// Drops the group, answering every waiting request with `error` and
    /// no member id: its members start over elsewhere.
    pub(crate) fn dismiss(self, error: &GroupError) {
        for (_, (_, member)) in self.by_id {
            if let Some(join) = member.awaiting_join {
                let _ = join.send(Err(JoinRefused::new(error.clone(), String::new())));
            }
            if let Some(sync) = member.awaiting_sync {
                let _ = sync.send(Err(error.clone()));
            }
        }
    }
}
