//! Kafka's consumer group protocol (KIP-848): ConsumerGroupHeartbeat with
//! server-side assignment, and what the other group APIs see of these
//! groups.
//!
//! A group's state lives in the metadata store; the coordinating agent
//! holds a copy, changes it one heartbeat at a time and saves each change
//! before it answers. An agent that takes a group over (its coordinator
//! died or the cluster changed) loads it and carries on at the same
//! epochs, so members keep their partitions.
//!
//! - `group.rs`: the group in memory; `heartbeat.rs`: the protocol's steps
//!   on it; `member.rs`: a member's reconciliation; `assignor.rs`: the
//!   `uniform` and `range` assignors; `assignment.rs`: partition sets;
//!   `slots.rs`: the groups held, loaded and saved, and their timers.
//!
//! The invariant that matters: a change is answered only once saved, and
//! a save names the version it was computed from, so two agents that both
//! believe they coordinate a group never lose each other's changes.

mod assignment;
mod assignor;
mod group;
mod heartbeat;
mod member;
mod slots;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use streamhouse_storage::StorageEngine;
use streamhouse_storage::security::{AclOperation, Caller, Principal, ResourceType};
use uuid::Uuid;

pub(crate) use assignment::Assignment;
pub(crate) use group::ConsumerGroupState;
use group::{ConsumerGroup, TopicSnapshot};
pub(crate) use heartbeat::{HeartbeatAnswer, HeartbeatRequest};
use member::{MayDescribe, Member};
use slots::{Held, ListedTopics, Slot};

use super::{GroupError, GroupLimits, GroupSummary, MemberSummary, OffsetDeleteScope};

/// Whether a principal (`User:NAME`) connecting from a host may Describe
/// a topic.
type Authorize = dyn Fn(&str, &str, &str) -> bool + Send + Sync;

struct Inner {
    engine: StorageEngine,
    limits: GroupLimits,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    topics: Mutex<ListedTopics>,
    topics_refresh: tokio::sync::Mutex<()>,
    /// What a member's pattern subscription may match.
    authorize: Arc<Authorize>,
}

/// The consumer-protocol groups this agent coordinates.
#[derive(Clone)]
pub(crate) struct ConsumerGroups {
    inner: Arc<Inner>,
}

/// A member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub(crate) struct DescribedConsumerMember {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    pub(crate) member_epoch: i32,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) subscribed_topic_names: Vec<String>,
    pub(crate) subscribed_topic_regex: Option<String>,
    /// (topic id, topic name, partitions)
    pub(crate) assignment: Vec<(Uuid, String, Vec<i32>)>,
    pub(crate) target: Vec<(Uuid, String, Vec<i32>)>,
}

/// A group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub(crate) struct DescribedConsumerGroup {
    pub(crate) state: ConsumerGroupState,
    pub(crate) group_epoch: i32,
    pub(crate) assignment_epoch: i32,
    pub(crate) assignor: &'static str,
    pub(crate) members: Vec<DescribedConsumerMember>,
}

impl ConsumerGroups {
    pub(crate) fn new(engine: StorageEngine, limits: GroupLimits) -> Self {
        let authorizer = engine.clone();
        let authorize = move |principal: &str, host: &str, topic: &str| {
            Principal::parse(principal).is_ok_and(|principal| {
                authorizer.authorize(
                    &Caller::new(principal, host),
                    AclOperation::Describe,
                    ResourceType::Topic,
                    topic,
                )
            })
        };
        Self {
            inner: Arc::new(Inner {
                engine,
                limits,
                slots: Mutex::new(HashMap::new()),
                topics: Mutex::new((Arc::new(TopicSnapshot::default()), None)),
                topics_refresh: tokio::sync::Mutex::new(()),
                authorize: Arc::new(authorize),
            }),
        }
    }

    /// Whether a member may Describe a topic its pattern matches: the
    /// principal it last heart-beat as, from the host it came from.
    pub(super) fn may_describe(&self) -> Arc<MayDescribe> {
        let authorize = self.inner.authorize.clone();
        Arc::new(
            move |member: &Member, topic: &str| match &member.principal {
                Some(principal) => authorize(principal, &member.client_host, topic),
                None => true,
            },
        )
    }

    /// Whether this coordinator holds a consumer-protocol group of this id
    /// with members (a classic JoinGroup is refused then).
    pub(crate) async fn has_members(&self, group_id: &str) -> Result<bool, GroupError> {
        let slot = self.slot(group_id);
        self.ensure_loaded(group_id, &slot).await?;
        Ok(matches!(&*slot.held.lock(), Held::Loaded(g) if !g.members.is_empty()))
    }

    /// Whether a consumer-protocol group of this id exists (with or
    /// without members).
    pub(crate) async fn exists(&self, group_id: &str) -> Result<bool, GroupError> {
        let slot = self.slot(group_id);
        self.ensure_loaded(group_id, &slot).await
    }

    /// A ConsumerGroupHeartbeat. `classic_has_members` tells whether a
    /// classic group with members holds the id (then the heartbeat is
    /// refused); a classic group without members is the caller's to drop.
    pub(crate) async fn heartbeat(
        &self,
        request: HeartbeatRequest,
        classic_has_members: bool,
    ) -> Result<HeartbeatAnswer, GroupError> {
        request.validate()?;
        let group_id = request.group_id.clone();
        let topics = self.topics().await;
        let may_describe = self.may_describe();
        let slot = self.slot(&group_id);
        self.verify(&group_id, &slot).await?;
        {
            let env = self.env(&topics, may_describe.as_ref());
            if let Held::Loaded(group) = &mut *slot.held.lock()
                && let Some(answer) = group.quick_heartbeat(&request, &env)
            {
                return Ok(answer);
            }
        }
        let _writer = slot.writer.lock().await;
        let mut reloaded = false;
        loop {
            let mut created = false;
            if !self.load_locked(&group_id, &slot).await? {
                if request.member_epoch != 0 {
                    // A member of a group the store does not have: it
                    // joins again.
                    return Err(GroupError::UnknownMemberId);
                }
                if classic_has_members {
                    return Err(GroupError::GroupIdNotFound {
                        group_id,
                        reason: "is a classic group with members, not a consumer group",
                    });
                }
                self.inner.limits.admit_group(self.groups_with_members())?;
                created = true;
            }
            let before = match &*slot.held.lock() {
                Held::Loaded(group) if !created => (**group).clone(),
                _ => ConsumerGroup::new(group_id.clone()),
            };
            let mut draft = before.clone();
            let env = self.env(&topics, may_describe.as_ref());
            let answer = match draft.heartbeat(&request, &env) {
                Ok(answer) => answer,
                // What the member is told to give everything up on is
                // checked against the store once: this copy may be stale.
                Err(
                    GroupError::FencedMemberEpoch { .. }
                    | GroupError::UnknownMemberId
                    | GroupError::FencedInstanceId,
                ) if !reloaded && !created && self.reload_to_confirm(&group_id, &slot).await? => {
                    reloaded = true;
                    continue;
                }
                Err(error) => return Err(error),
            };
            match self.save(&slot, &before, draft).await? {
                true => return Ok(answer),
                false if !reloaded => {
                    reloaded = true;
                    self.reload_locked(&group_id, &slot).await?;
                }
                false => {
                    return Err(GroupError::StoreUnavailable {
                        reason: "another agent keeps changing the group".into(),
                    });
                }
            }
        }
    }

    /// The group as ConsumerGroupDescribe shows it; `None` when there is
    /// no consumer-protocol group of this id.
    pub(crate) async fn describe(
        &self,
        group_id: &str,
    ) -> Result<Option<DescribedConsumerGroup>, GroupError> {
        let slot = self.slot(group_id);
        if !self.ensure_loaded(group_id, &slot).await? {
            return Ok(None);
        }
        let topics = self.topics().await;
        let held = slot.held.lock();
        let Held::Loaded(group) = &*held else {
            return Ok(None);
        };
        let mut names = group.topic_names();
        for (name, info) in &topics.by_name {
            names.entry(info.id).or_insert_with(|| name.clone());
        }
        let named = |set: &Assignment| -> Vec<(Uuid, String, Vec<i32>)> {
            set.iter()
                .map(|(id, partitions)| {
                    (
                        *id,
                        names.get(id).cloned().unwrap_or_default(),
                        partitions.iter().copied().collect(),
                    )
                })
                .collect()
        };
        Ok(Some(DescribedConsumerGroup {
            state: group.state(),
            group_epoch: group.group_epoch,
            assignment_epoch: group.assignment_epoch,
            assignor: group.preferred_assignor(),
            members: group
                .members
                .values()
                .map(|m| DescribedConsumerMember {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.member_epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_topic_names.clone(),
                    subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                    assignment: named(&m.assigned),
                    target: named(&m.target),
                })
                .collect(),
        }))
    }

    /// The groups held in memory, as operators see them (REST).
    pub(crate) fn summaries(&self) -> Vec<GroupSummary> {
        let slots: Vec<Arc<Slot>> = self.inner.slots.lock().values().cloned().collect();
        let mut summaries: Vec<GroupSummary> = slots
            .iter()
            .filter_map(|slot| match &*slot.held.lock() {
                Held::Loaded(group) => Some(summarize(group)),
                _ => None,
            })
            .collect();
        summaries.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        summaries
    }

    /// One group held in memory, as operators see it (REST).
    pub(crate) fn summary(&self, group_id: &str) -> Option<GroupSummary> {
        let slot = self.inner.slots.lock().get(group_id).cloned()?;
        match &*slot.held.lock() {
            Held::Loaded(group) => Some(summarize(group)),
            _ => None,
        }
    }

    /// Whether an OffsetCommit may commit (KIP-848 rules), or `None` when
    /// the group is not a consumer-protocol group.
    pub(crate) async fn validate_commit(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
        api_version: i16,
        transactional: bool,
    ) -> Result<Option<()>, GroupError> {
        let slot = self.slot(group_id);
        if !self.ensure_loaded(group_id, &slot).await? {
            return Ok(None);
        }
        let held = slot.held.lock();
        let Held::Loaded(group) = &*held else {
            return Ok(None);
        };
        if member_epoch < 0 && group.members.is_empty() {
            return Ok(Some(()));
        }
        let member = group
            .members
            .get(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if !transactional && api_version < 9 {
            return Err(GroupError::UnsupportedVersion {
                reason: "members of consumer-protocol groups commit with OffsetCommit v9 or later",
            });
        }
        if member_epoch != member.member_epoch {
            return Err(if transactional {
                GroupError::IllegalGeneration
            } else {
                GroupError::StaleMemberEpoch {
                    sent: member_epoch,
                    current: member.member_epoch,
                }
            });
        }
        Ok(Some(()))
    }

    /// Whether an OffsetFetch v9 naming a member may read (KIP-848), or
    /// `None` when the group is not a consumer-protocol group.
    pub(crate) async fn validate_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<Option<()>, GroupError> {
        if member_id.is_none() && member_epoch < 0 {
            return Ok(Some(()));
        }
        let slot = self.slot(group_id);
        if !self.ensure_loaded(group_id, &slot).await? {
            return Ok(None);
        }
        let held = slot.held.lock();
        let Held::Loaded(group) = &*held else {
            return Ok(None);
        };
        let member = member_id
            .and_then(|id| group.members.get(id))
            .ok_or(GroupError::UnknownMemberId)?;
        if member.member_epoch != member_epoch {
            return Err(GroupError::StaleMemberEpoch {
                sent: member_epoch,
                current: member.member_epoch,
            });
        }
        Ok(Some(()))
    }

    /// What OffsetDelete may remove, or `None` for a group that is not a
    /// consumer-protocol group.
    pub(crate) async fn offset_delete_scope(
        &self,
        group_id: &str,
    ) -> Result<Option<OffsetDeleteScope>, GroupError> {
        let slot = self.slot(group_id);
        if !self.ensure_loaded(group_id, &slot).await? {
            return Ok(None);
        }
        let held = slot.held.lock();
        let Held::Loaded(group) = &*held else {
            return Ok(None);
        };
        if group.members.is_empty() {
            return Ok(Some(OffsetDeleteScope::Any));
        }
        Ok(Some(OffsetDeleteScope::Unsubscribed(
            group.subscribed.keys().cloned().collect(),
        )))
    }

    /// The stored groups: those with members, and those without.
    pub(crate) async fn stored_groups(
        &self,
    ) -> Result<(BTreeSet<String>, BTreeSet<String>), streamhouse_storage::MetadataError> {
        let listed = self
            .inner
            .engine
            .list_consumer_groups()
            .await
            .map_err(|error| {
                streamhouse_storage::MetadataError::unavailable(
                    "list consumer groups",
                    error.to_string(),
                )
            })?;
        let (busy, empty): (Vec<_>, Vec<_>) = listed.into_iter().partition(|g| g.members > 0);
        Ok((
            busy.into_iter().map(|g| g.group_id).collect(),
            empty.into_iter().map(|g| g.group_id).collect(),
        ))
    }

    /// Deletes a group without members (DeleteGroups); refuses one with
    /// members. Whether there was a group to delete.
    pub(crate) async fn delete_if_empty(&self, group_id: &str) -> Result<bool, GroupError> {
        let slot = self.slot(group_id);
        // Most callers ask of a group that is not a consumer group (a
        // classic JoinGroup): no need to wait for the writer then.
        if !self.ensure_loaded(group_id, &slot).await? {
            return Ok(false);
        }
        let _writer = slot.writer.lock().await;
        if !self.load_locked(group_id, &slot).await? {
            return Ok(false);
        }
        let version = match &*slot.held.lock() {
            Held::Loaded(group) if !group.members.is_empty() => {
                return Err(GroupError::NonEmptyGroup);
            }
            Held::Loaded(group) => group.version,
            _ => return Ok(false),
        };
        if let Some(version) = version {
            let deleted = self
                .inner
                .engine
                .delete_consumer_group(group_id, version)
                .await
                .map_err(|e| GroupError::StoreUnavailable {
                    reason: e.to_string(),
                })?;
            if !deleted {
                *slot.held.lock() = Held::Unloaded;
                return Err(GroupError::StoreUnavailable {
                    reason: "the group changed on another agent".into(),
                });
            }
        }
        *slot.held.lock() = Held::Absent;
        Ok(true)
    }
}

fn summarize(group: &ConsumerGroup) -> GroupSummary {
    let names = group.topic_names();
    GroupSummary {
        group_id: group.group_id.clone(),
        state: group.state().name().to_string(),
        protocol_type: "consumer".into(),
        protocol: group.preferred_assignor().into(),
        members: group
            .members
            .values()
            .map(|m| MemberSummary {
                member_id: m.member_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                assignment: m
                    .assigned
                    .iter()
                    .map(|(id, partitions)| {
                        (
                            names.get(id).cloned().unwrap_or_else(|| id.to_string()),
                            partitions.iter().copied().collect(),
                        )
                    })
                    .collect(),
            })
            .collect(),
    }
}
