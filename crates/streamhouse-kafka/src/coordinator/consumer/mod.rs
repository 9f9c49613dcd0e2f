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
//!   `uniform` and `range` assignors; `assignment.rs`: partition sets.
//!
//! The invariant that matters: a change is answered only once saved, and
//! a save names the version it was computed from, so two agents that both
//! believe they coordinate a group never lose each other's changes.

mod assignment;
mod assignor;
mod group;
mod heartbeat;
mod member;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use streamhouse_storage::StorageEngine;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub(crate) use assignment::Assignment;
pub(crate) use group::ConsumerGroupState;
use group::{ConsumerGroup, TopicInfo, TopicSnapshot};
pub(crate) use heartbeat::{HeartbeatAnswer, HeartbeatEnv, HeartbeatRequest};

use super::{GroupError, GroupLimits, GroupSummary, MemberSummary, OffsetDeleteScope};

/// How often session and revocation deadlines are checked.
const TICK: Duration = Duration::from_millis(100);
/// How long the topic list used for subscriptions is trusted.
const TOPICS_TTL: Duration = Duration::from_secs(2);
/// A slot that found no stored group is forgotten after this long unused.
const ABSENT_TTL: Duration = Duration::from_secs(60);
/// Slots of groups without a consumer-protocol group (looked up by offset
/// commits and describes of other groups) kept at most, beyond the groups
/// held: past it they are dropped at once rather than after
/// [`ABSENT_TTL`], so that requests naming ever new groups cannot grow the
/// map.
const MAX_IDLE_SLOTS: usize = 10_000;

/// A group as this coordinator holds it.
enum Held {
    /// Not read from the store yet (or dropped after a conflict).
    Unloaded,
    /// The store has no consumer-protocol group of this id.
    Absent,
    Loaded(Box<ConsumerGroup>),
}

struct Slot {
    /// Serialises changes: held while a change is computed and saved.
    writer: tokio::sync::Mutex<()>,
    held: Mutex<Held>,
    last_used: Mutex<Instant>,
}

impl Slot {
    fn new(now: Instant) -> Self {
        Self {
            writer: tokio::sync::Mutex::new(()),
            held: Mutex::new(Held::Unloaded),
            last_used: Mutex::new(now),
        }
    }
}

struct Inner {
    engine: StorageEngine,
    limits: GroupLimits,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    topics: Mutex<(Arc<TopicSnapshot>, Option<Instant>)>,
    topics_refresh: tokio::sync::Mutex<()>,
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
        Self {
            inner: Arc::new(Inner {
                engine,
                limits,
                slots: Mutex::new(HashMap::new()),
                topics: Mutex::new((Arc::new(TopicSnapshot::default()), None)),
                topics_refresh: tokio::sync::Mutex::new(()),
            }),
        }
    }

    fn slot(&self, group_id: &str) -> Arc<Slot> {
        let now = Instant::now();
        let mut slots = self.inner.slots.lock();
        if !slots.contains_key(group_id)
            && slots.len() >= self.inner.limits.max_groups.saturating_add(MAX_IDLE_SLOTS)
        {
            // Drop the slots nobody uses that hold no group.
            slots.retain(|_, slot| {
                Arc::strong_count(slot) > 1 || matches!(*slot.held.lock(), Held::Loaded(_))
            });
        }
        let slot = slots
            .entry(group_id.to_string())
            .or_insert_with(|| Arc::new(Slot::new(now)))
            .clone();
        drop(slots);
        *slot.last_used.lock() = now;
        slot
    }

    fn env<'a>(&self, topics: &'a TopicSnapshot) -> HeartbeatEnv<'a> {
        HeartbeatEnv {
            now: Instant::now(),
            session_timeout: self.inner.limits.consumer_session_timeout,
            heartbeat_interval_ms: i32::try_from(
                self.inner.limits.consumer_heartbeat_interval.as_millis(),
            )
            .unwrap_or(i32::MAX),
            max_size: self.inner.limits.max_group_size,
            topics,
        }
    }

    /// The cluster's topics, listed at most every [`TOPICS_TTL`]; while
    /// they cannot be listed, the last list.
    async fn topics(&self) -> Arc<TopicSnapshot> {
        let fresh = |held: &(Arc<TopicSnapshot>, Option<Instant>)| {
            held.1.is_some_and(|at| at.elapsed() < TOPICS_TTL)
        };
        {
            let held = self.inner.topics.lock();
            if fresh(&held) {
                return held.0.clone();
            }
        }
        let _refreshing = self.inner.topics_refresh.lock().await;
        {
            let held = self.inner.topics.lock();
            if fresh(&held) {
                return held.0.clone();
            }
        }
        match self.inner.engine.list_topics().await {
            Ok(topics) => {
                let by_name: BTreeMap<String, TopicInfo> = topics
                    .iter()
                    .filter_map(|t| {
                        let id = Uuid::parse_str(&t.topic_id).ok()?;
                        Some((
                            t.name.clone(),
                            TopicInfo {
                                id,
                                partitions: t.partition_count,
                            },
                        ))
                    })
                    .collect();
                let mut held = self.inner.topics.lock();
                if held.0.by_name != by_name || held.1.is_none() {
                    let generation = held.0.generation + 1;
                    held.0 = Arc::new(TopicSnapshot {
                        generation,
                        by_name,
                    });
                }
                held.1 = Some(Instant::now());
                held.0.clone()
            }
            Err(error) => {
                tracing::warn!(%error, "cannot list topics for consumer group subscriptions");
                self.inner.topics.lock().0.clone()
            }
        }
    }

    /// Groups held with members: what `max_groups` bounds.
    fn groups_with_members(&self) -> usize {
        let slots: Vec<Arc<Slot>> = self.inner.slots.lock().values().cloned().collect();
        slots
            .iter()
            .filter(|slot| matches!(&*slot.held.lock(), Held::Loaded(g) if !g.members.is_empty()))
            .count()
    }

    /// Makes the slot hold what the store has; `Ok(false)` when there is
    /// no consumer-protocol group of this id.
    async fn ensure_loaded(&self, group_id: &str, slot: &Slot) -> Result<bool, GroupError> {
        if !matches!(*slot.held.lock(), Held::Unloaded) {
            return Ok(matches!(*slot.held.lock(), Held::Loaded(_)));
        }
        self.reload(group_id, slot).await
    }

    /// Reads the group from the store into the slot.
    async fn reload(&self, group_id: &str, slot: &Slot) -> Result<bool, GroupError> {
        let stored = self
            .inner
            .engine
            .load_consumer_group(group_id)
            .await
            .map_err(|e| GroupError::StoreUnavailable {
                reason: e.to_string(),
            })?;
        let held = match stored {
            None => Held::Absent,
            Some(record) => {
                let group = ConsumerGroup::from_record(
                    &record,
                    Instant::now(),
                    self.inner.limits.consumer_session_timeout,
                )
                .map_err(|detail| {
                    tracing::error!(group = group_id, %detail, "stored consumer group is unreadable");
                    GroupError::StoreUnavailable { reason: detail }
                })?;
                Held::Loaded(Box::new(group))
            }
        };
        let loaded = matches!(held, Held::Loaded(_));
        *slot.held.lock() = held;
        Ok(loaded)
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

    /// A ConsumerGroupHeartbeat. `classic_conflict` tells whether a classic
    /// group with members holds the id (then the heartbeat is refused); a
    /// classic group without members is the caller's to drop.
    pub(crate) async fn heartbeat(
        &self,
        request: HeartbeatRequest,
        classic_has_members: bool,
    ) -> Result<HeartbeatAnswer, GroupError> {
        request.validate()?;
        let group_id = request.group_id.clone();
        let topics = self.topics().await;
        let slot = self.slot(&group_id);
        {
            let env = self.env(&topics);
            if let Held::Loaded(group) = &mut *slot.held.lock()
                && let Some(answer) = group.quick_heartbeat(&request, &env)
            {
                return Ok(answer);
            }
        }
        let _writer = slot.writer.lock().await;
        let mut reloaded = false;
        loop {
            if !self.ensure_loaded(&group_id, &slot).await? {
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
                *slot.held.lock() = Held::Loaded(Box::new(ConsumerGroup::new(group_id.clone())));
            }
            let before = match &*slot.held.lock() {
                Held::Loaded(group) => (**group).clone(),
                _ => ConsumerGroup::new(group_id.clone()),
            };
            let mut draft = before.clone();
            let env = self.env(&topics);
            let outcome = draft.heartbeat(&request, &env);
            let answer = match outcome {
                Ok(answer) => answer,
                // What the member is told to give everything up on is
                // checked against the store once: this copy may be stale.
                Err(
                    GroupError::FencedMemberEpoch { .. }
                    | GroupError::UnknownMemberId
                    | GroupError::FencedInstanceId,
                ) if !reloaded => {
                    reloaded = true;
                    self.reload(&group_id, &slot).await?;
                    continue;
                }
                Err(error) => return Err(error),
            };
            match self.save(&slot, &before, draft).await? {
                true => return Ok(answer),
                false if !reloaded => {
                    reloaded = true;
                    self.reload(&group_id, &slot).await?;
                }
                false => {
                    return Err(GroupError::StoreUnavailable {
                        reason: "another agent keeps changing the group".into(),
                    });
                }
            }
        }
    }

    /// Saves what changed from `before` to `after` and keeps `after`;
    /// `Ok(false)` when another agent changed the group meanwhile.
    async fn save(
        &self,
        slot: &Slot,
        before: &ConsumerGroup,
        mut after: ConsumerGroup,
    ) -> Result<bool, GroupError> {
        if let Some(change) = after.changes_since(before) {
            match self.inner.engine.save_consumer_group(&change).await {
                Ok(Some(version)) => after.version = Some(version),
                Ok(None) => {
                    tracing::info!(group = %after.group_id,
                        "the consumer group changed on another agent; reloading");
                    return Ok(false);
                }
                Err(error) => {
                    // The save may or may not have happened: read it again
                    // next time.
                    *slot.held.lock() = Held::Unloaded;
                    return Err(GroupError::StoreUnavailable {
                        reason: error.to_string(),
                    });
                }
            }
        }
        let mut held = slot.held.lock();
        // Sessions renewed by quick heartbeats meanwhile are kept.
        if let Held::Loaded(current) = &*held {
            for (id, timers) in after.timers.iter_mut() {
                if let Some(newer) = current.timers.get(id)
                    && newer.session > timers.session
                {
                    timers.session = newer.session;
                }
            }
        }
        *held = Held::Loaded(Box::new(after));
        Ok(true)
    }

    /// Fences the members whose deadlines passed, group by group.
    async fn expire_group(&self, group_id: String, slot: Arc<Slot>) {
        let _writer = slot.writer.lock().await;
        let before = match &*slot.held.lock() {
            Held::Loaded(group) => (**group).clone(),
            _ => return,
        };
        let now = Instant::now();
        let expired = before.expired(now);
        if expired.is_empty() {
            return;
        }
        let mut draft = before.clone();
        for (member_id, why) in expired {
            draft.fence(&member_id, why);
        }
        match self.save(&slot, &before, draft).await {
            Ok(true) => {}
            Ok(false) => *slot.held.lock() = Held::Unloaded,
            Err(error) => {
                tracing::warn!(group = %group_id, %error, "cannot save expired members; retrying");
            }
        }
    }

    /// Checks deadlines every [`TICK`] and drops the groups this agent no
    /// longer coordinates, until `stop`.
    pub(crate) fn start(
        &self,
        coordinates: Arc<dyn Fn(&str) -> bool + Send + Sync>,
        stop: CancellationToken,
    ) -> JoinHandle<()> {
        let coordinator = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(TICK);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticker.tick() => coordinator.tick(coordinates.as_ref(), Instant::now()),
                }
            }
        })
    }

    fn tick(&self, coordinates: &(dyn Fn(&str) -> bool + Send + Sync), now: Instant) {
        let slots: Vec<(String, Arc<Slot>)> = {
            let mut slots = self.inner.slots.lock();
            slots.retain(|group_id, slot| {
                if !coordinates(group_id) {
                    return false;
                }
                let absent = matches!(*slot.held.lock(), Held::Absent | Held::Unloaded);
                !(absent && slot.last_used.lock().elapsed() > ABSENT_TTL)
            });
            slots
                .iter()
                .map(|(id, s)| (id.clone(), s.clone()))
                .collect()
        };
        for (group_id, slot) in slots {
            let due = match &*slot.held.lock() {
                Held::Loaded(group) => !group.expired(now).is_empty(),
                _ => false,
            };
            if due {
                let coordinator = self.clone();
                tokio::spawn(async move { coordinator.expire_group(group_id, slot).await });
            }
        }
    }

    /// Forgets a group this agent no longer coordinates.
    pub(crate) fn forget(&self, group_id: &str) {
        self.inner.slots.lock().remove(group_id);
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
        let _writer = slot.writer.lock().await;
        if !self.ensure_loaded(group_id, &slot).await? {
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
