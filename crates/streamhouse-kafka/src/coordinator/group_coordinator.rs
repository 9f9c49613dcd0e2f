//! [`GroupCoordinator`], the handle to the groups this agent coordinates:
//! its construction, the timer that expires sessions and rebalances, and
//! what operators and the group admin APIs see of the groups.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::classic::{Group, GroupState};
use super::consumer::ConsumerGroups;
use super::{GroupError, GroupLimits};

/// How often deadlines (rebalance, session, pending member) are checked.
const TICK: Duration = Duration::from_millis(100);

/// A member of a group as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSummary {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    /// Topic and partitions assigned to the member (consumer groups).
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// A group known to this coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub group_id: String,
    /// Kafka's state names: Empty, PreparingRebalance, CompletingRebalance,
    /// Stable, Dead.
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberSummary>,
}

pub(crate) struct Inner {
    pub(crate) limits: GroupLimits,
    /// Classic groups with a member or a member id handed out; a group is
    /// removed as soon as it has neither. Locked before `idle_since`.
    pub(crate) classic: Mutex<HashMap<String, Group>>,
    /// Groups with committed offsets that this coordinator has seen
    /// without members, and since when (see `expire_offsets`).
    pub(crate) idle_since: Mutex<HashMap<String, Instant>>,
    /// Groups of the consumer protocol (KIP-848), whose state is in the
    /// metadata store; absent in coordinators built without a store.
    pub(crate) consumer: Option<ConsumerGroups>,
}

/// Handle to the groups this agent coordinates.
#[derive(Clone)]
pub struct GroupCoordinator {
    pub(crate) inner: Arc<Inner>,
}

impl GroupCoordinator {
    /// A coordinator of classic groups only.
    #[cfg(test)]
    pub(crate) fn new(limits: GroupLimits) -> Self {
        Self::build(limits, None)
    }

    /// A coordinator of classic groups and of consumer-protocol groups,
    /// whose state it keeps through `engine`.
    pub(crate) fn with_consumer_protocol(
        limits: GroupLimits,
        engine: streamhouse_storage::StorageEngine,
    ) -> Self {
        let consumer = ConsumerGroups::new(engine, limits.clone());
        Self::build(limits, Some(consumer))
    }

    fn build(limits: GroupLimits, consumer: Option<ConsumerGroups>) -> Self {
        Self {
            inner: Arc::new(Inner {
                limits,
                classic: Mutex::new(HashMap::new()),
                idle_since: Mutex::new(HashMap::new()),
                consumer,
            }),
        }
    }

    /// The consumer-protocol groups; refused as retriable where this
    /// coordinator has none.
    pub(crate) fn consumer(&self) -> Result<&ConsumerGroups, GroupError> {
        self.inner
            .consumer
            .as_ref()
            .ok_or(GroupError::CoordinatorNotAvailable)
    }

    /// Whether a classic group of this id is held in memory.
    pub(crate) fn is_classic(&self, group_id: &str) -> bool {
        self.inner.classic.lock().contains_key(group_id)
    }

    /// Whether a classic group holds this id with members (a
    /// consumer-protocol heartbeat is refused then); a classic group
    /// without members is dropped, as Kafka drops an empty classic group
    /// that a consumer-protocol member joins.
    pub(crate) fn classic_has_members(&self, group_id: &str) -> bool {
        let mut groups = self.inner.classic.lock();
        match groups.get(group_id) {
            Some(group) if !group.by_id.is_empty() => true,
            Some(_) => {
                groups.remove(group_id);
                false
            }
            None => false,
        }
    }

    /// Starts the timer that expires sessions and rebalance deadlines.
    pub(crate) fn start(&self, stop: CancellationToken) -> JoinHandle<()> {
        let coordinator = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(TICK);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => {
                        coordinator.answer_waiting(&GroupError::NotCoordinator);
                        return;
                    }
                    _ = ticker.tick() => coordinator.expire(Instant::now()),
                }
            }
        })
    }

    /// Expires sessions, pending member ids and rebalance deadlines, and
    /// forgets the groups left with nothing in them.
    pub(crate) fn expire(&self, now: Instant) {
        let mut groups = self.inner.classic.lock();
        for (group_id, group) in groups.iter_mut() {
            group.expire(group_id, now);
        }
        groups.retain(|_, group| !group.is_unused());
    }

    /// Answers every waiting JoinGroup and SyncGroup with `error`, so that
    /// a shutting-down agent does not hold requests it will never finish;
    /// the clients find the next coordinator.
    pub(crate) fn answer_waiting(&self, error: &GroupError) {
        let mut groups = self.inner.classic.lock();
        for group in groups.values_mut() {
            group.answer_waiting(error);
        }
    }

    /// Every group with state on this agent: classic groups, and
    /// consumer-protocol groups held in memory.
    pub fn list(&self) -> Vec<GroupSummary> {
        let mut list: Vec<GroupSummary> = {
            let groups = self.inner.classic.lock();
            groups
                .iter()
                .map(|(id, group)| summarize(id, group))
                .collect()
        };
        if let Some(consumer) = &self.inner.consumer {
            list.extend(consumer.summaries());
        }
        list.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        list
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupSummary> {
        let classic = {
            let groups = self.inner.classic.lock();
            groups.get(group_id).map(|group| summarize(group_id, group))
        };
        classic.or_else(|| self.inner.consumer.as_ref()?.summary(group_id))
    }

    /// What OffsetDelete may remove from a group this coordinator holds:
    /// `None` when it holds none (the group has only committed offsets).
    pub(crate) fn offset_delete_scope(&self, group_id: &str) -> Option<OffsetDeleteScope> {
        let groups = self.inner.classic.lock();
        let group = groups.get(group_id)?;
        if group.state == GroupState::Empty {
            return Some(OffsetDeleteScope::Any);
        }
        if group.protocol_type.as_deref() != Some("consumer") {
            return Some(OffsetDeleteScope::NonEmpty);
        }
        let protocol = group.protocol.as_deref();
        let mut topics = std::collections::BTreeSet::new();
        for (_, member) in group.members_in_join_order() {
            match decode_subscription(&member.metadata_for(protocol)) {
                Some(subscribed) => topics.extend(subscribed),
                // A subscription it cannot read protects everything.
                None => return Some(OffsetDeleteScope::NonEmpty),
            }
        }
        Some(OffsetDeleteScope::Unsubscribed(topics))
    }

    /// Members with their raw metadata and assignment, for DescribeGroups.
    pub(crate) fn describe_members(&self, group_id: &str) -> Option<DescribedGroupState> {
        let groups = self.inner.classic.lock();
        let group = groups.get(group_id)?;
        let protocol = group.protocol.as_deref();
        Some(DescribedGroupState {
            state: group.state,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol: protocol.unwrap_or_default().to_string(),
            members: group
                .members_in_join_order()
                .map(|(id, member)| DescribedMember {
                    member_id: id.clone(),
                    group_instance_id: member.group_instance_id.clone(),
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    metadata: member.metadata_for(protocol),
                    assignment: member.assignment.clone(),
                })
                .collect(),
        })
    }

    /// Forgets an empty group (DeleteGroups); refuses one with members.
    /// Whether the coordinator held the group.
    pub(crate) fn remove_if_empty(&self, group_id: &str) -> Result<bool, GroupError> {
        let mut groups = self.inner.classic.lock();
        match groups.get(group_id) {
            None => Ok(false),
            Some(group) if group.by_id.is_empty() => {
                groups.remove(group_id);
                Ok(true)
            }
            Some(_) => Err(GroupError::NonEmptyGroup),
        }
    }

    /// Drops a group this agent no longer coordinates; its members learn
    /// with NOT_COORDINATOR and rejoin at the new coordinator.
    pub(crate) fn forget(&self, group_id: &str) {
        if let Some(consumer) = &self.inner.consumer {
            consumer.forget(group_id);
        }
        let removed = self.inner.classic.lock().remove(group_id);
        if let Some(group) = removed {
            tracing::info!(
                group = group_id,
                "no longer the coordinator; dropping the group"
            );
            group.dismiss(&GroupError::NotCoordinator);
        }
    }
}

/// Which of its offsets OffsetDelete may remove from a group with members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OffsetDeleteScope {
    /// An empty group: all of them.
    Any,
    /// A consumer group: those of topics no member subscribes to.
    Unsubscribed(std::collections::BTreeSet<String>),
    /// A group of another protocol with members: none (NON_EMPTY_GROUP).
    NonEmpty,
}

/// The topics of a consumer protocol subscription (version-prefixed), or
/// `None` when it cannot be read.
fn decode_subscription(metadata: &Bytes) -> Option<Vec<String>> {
    if metadata.len() < 2 {
        return None;
    }
    let mut buf = metadata.clone();
    let version = bytes::Buf::get_i16(&mut buf).clamp(0, 3);
    ConsumerProtocolSubscription::decode(&mut buf, version)
        .ok()
        .map(|s| s.topics.into_iter().map(|t| t.to_string()).collect())
}

/// A group's state with raw member data.
pub(crate) struct DescribedGroupState {
    pub(crate) state: GroupState,
    pub(crate) protocol_type: String,
    pub(crate) protocol: String,
    pub(crate) members: Vec<DescribedMember>,
}

pub(crate) struct DescribedMember {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) metadata: Bytes,
    pub(crate) assignment: Bytes,
}

fn summarize(group_id: &str, group: &Group) -> GroupSummary {
    let is_consumer = group.protocol_type.as_deref() == Some("consumer");
    GroupSummary {
        group_id: group_id.to_string(),
        state: group.state.name().to_string(),
        protocol_type: group.protocol_type.clone().unwrap_or_default(),
        protocol: group.protocol.clone().unwrap_or_default(),
        members: group
            .members_in_join_order()
            .map(|(id, member)| MemberSummary {
                member_id: id.clone(),
                client_id: member.client_id.clone(),
                client_host: member.client_host.clone(),
                assignment: if is_consumer {
                    decode_assignment(&member.assignment)
                } else {
                    Vec::new()
                },
            })
            .collect(),
    }
}

/// Topic partitions in a consumer protocol assignment (version-prefixed).
pub(crate) fn decode_assignment(assignment: &Bytes) -> Vec<(String, Vec<i32>)> {
    if assignment.len() < 2 {
        return Vec::new();
    }
    let mut buf = assignment.clone();
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    let _ = bytes::Buf::get_i16(&mut buf);
    // Newer clients may send a version this decoder does not know; the
    // layout of the partitions is the same in every version so far.
    let version = version.clamp(0, 3);
    match ConsumerProtocolAssignment::decode(&mut buf, version) {
        Ok(decoded) => decoded
            .assigned_partitions
            .into_iter()
            .map(|tp| (tp.topic.0.to_string(), tp.partitions))
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
