//! The groups this coordinator holds and how they follow the metadata
//! store: loading, saving, checking that a held copy is still the stored
//! one, and the timer that fences silent members.
//!
//! Every load and every change of a group happens under its slot's writer
//! lock, so a copy read from the store never replaces a newer one. A held
//! copy is compared with the stored version once per heartbeat interval:
//! an agent that lost the group to another (their views of the cluster
//! differed for a moment) learns it before it answers from memory for
//! long.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::ConsumerGroups;
use super::group::{ConsumerGroup, TopicInfo, TopicSnapshot};
use super::heartbeat::HeartbeatEnv;
use super::member::MayDescribe;
use crate::coordinator::GroupError;

/// How often session and revocation deadlines are checked.
const TICK: Duration = Duration::from_millis(100);
/// How long the topic list used for subscriptions is trusted.
pub(super) const TOPICS_TTL: Duration = Duration::from_secs(2);
/// A slot without a group in use is forgotten after this long unused.
const IDLE_TTL: Duration = Duration::from_secs(60);
/// Slots of groups without a consumer-protocol group (looked up by offset
/// commits and describes of other groups) kept at most, beyond the groups
/// held: past it they are dropped at once rather than after [`IDLE_TTL`],
/// so that requests naming ever new groups cannot grow the map.
pub(super) const MAX_IDLE_SLOTS: usize = 10_000;
/// How often the store is asked for groups with members that this agent
/// coordinates but does not hold (after a restart or a coordinator move),
/// so that their silent members are fenced too.
const STORED_SCAN_INTERVAL: Duration = Duration::from_secs(10);

/// A group as this coordinator holds it.
pub(super) enum Held {
    /// Not read from the store yet.
    Unloaded,
    /// The store has no consumer-protocol group of this id.
    Absent,
    Loaded(Box<ConsumerGroup>),
}

pub(super) struct Slot {
    /// Serialises loads and changes: held while a group is read or a
    /// change is computed and saved.
    pub(super) writer: tokio::sync::Mutex<()>,
    pub(super) held: Mutex<Held>,
    last_used: Mutex<Instant>,
    /// The held copy may be behind the store (a save whose outcome is not
    /// known): it is read again before the next change.
    stale: AtomicBool,
    /// When the held copy was last read or compared with the store.
    checked_at: Mutex<Option<Instant>>,
}

impl Slot {
    fn new(now: Instant) -> Self {
        Self {
            writer: tokio::sync::Mutex::new(()),
            held: Mutex::new(Held::Unloaded),
            last_used: Mutex::new(now),
            stale: AtomicBool::new(false),
            checked_at: Mutex::new(None),
        }
    }

    /// `Some(true)` when a group is held, `Some(false)` when the store has
    /// none, `None` when not read yet.
    fn known(&self) -> Option<bool> {
        match &*self.held.lock() {
            Held::Unloaded => None,
            Held::Absent => Some(false),
            Held::Loaded(_) => Some(true),
        }
    }

    fn checked_within(&self, period: Duration) -> bool {
        self.checked_at
            .lock()
            .is_some_and(|at| at.elapsed() < period)
    }
}

/// Topics and when they were listed.
pub(super) type ListedTopics = (Arc<TopicSnapshot>, Option<Instant>);

impl ConsumerGroups {
    pub(super) fn slot(&self, group_id: &str) -> Arc<Slot> {
        let now = Instant::now();
        let mut slots = self.inner.slots.lock();
        if !slots.contains_key(group_id)
            && slots.len() >= self.inner.limits.max_groups.saturating_add(MAX_IDLE_SLOTS)
        {
            // Drop the slots nobody uses that hold no group with members.
            slots.retain(|_, slot| Arc::strong_count(slot) > 1 || holds_members(slot));
        }
        let slot = slots
            .entry(group_id.to_string())
            .or_insert_with(|| Arc::new(Slot::new(now)))
            .clone();
        drop(slots);
        *slot.last_used.lock() = now;
        slot
    }

    pub(super) fn env<'a>(
        &self,
        topics: &'a TopicSnapshot,
        may_describe: &'a MayDescribe,
    ) -> HeartbeatEnv<'a> {
        HeartbeatEnv {
            now: Instant::now(),
            session_timeout: self.inner.limits.consumer_session_timeout,
            heartbeat_interval_ms: i32::try_from(
                self.inner.limits.consumer_heartbeat_interval.as_millis(),
            )
            .unwrap_or(i32::MAX),
            max_size: self.inner.limits.max_group_size,
            max_rebalance_timeout: self.inner.limits.max_rebalance_timeout,
            topics,
            may_describe,
        }
    }

    /// The cluster's topics, listed at most every [`TOPICS_TTL`]; while
    /// they cannot be listed, the last list.
    pub(super) async fn topics(&self) -> Arc<TopicSnapshot> {
        let fresh = |held: &ListedTopics| held.1.is_some_and(|at| at.elapsed() < TOPICS_TTL);
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
    pub(super) fn groups_with_members(&self) -> usize {
        let slots: Vec<Arc<Slot>> = self.inner.slots.lock().values().cloned().collect();
        slots.iter().filter(|slot| holds_members(slot)).count()
    }

    /// Makes the slot hold what the store has; `Ok(false)` when there is
    /// no consumer-protocol group of this id.
    pub(super) async fn ensure_loaded(
        &self,
        group_id: &str,
        slot: &Slot,
    ) -> Result<bool, GroupError> {
        if let Some(known) = slot.known() {
            return Ok(known);
        }
        let _writer = slot.writer.lock().await;
        self.load_locked(group_id, slot).await
    }

    /// As [`Self::ensure_loaded`], for a caller holding the writer lock;
    /// reads the group again when a failed save left the held copy in
    /// doubt.
    pub(super) async fn load_locked(
        &self,
        group_id: &str,
        slot: &Slot,
    ) -> Result<bool, GroupError> {
        match slot.known() {
            Some(known) if !slot.stale.load(Ordering::Acquire) => Ok(known),
            _ => self.reload_locked(group_id, slot).await,
        }
    }

    /// Reads the group from the store into the slot, for a caller holding
    /// the writer lock. Members the held copy knows keep their deadlines;
    /// the others get a full session from now.
    pub(super) async fn reload_locked(
        &self,
        group_id: &str,
        slot: &Slot,
    ) -> Result<bool, GroupError> {
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
                let previous = match &*slot.held.lock() {
                    Held::Loaded(group) => Some((**group).clone()),
                    _ => None,
                };
                let group = ConsumerGroup::from_record(
                    &record,
                    Instant::now(),
                    self.inner.limits.consumer_session_timeout,
                    self.inner.limits.max_rebalance_timeout,
                    previous.as_ref(),
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
        slot.stale.store(false, Ordering::Release);
        *slot.checked_at.lock() = Some(Instant::now());
        Ok(loaded)
    }

    /// After a refusal that would send a member back to join: reads the
    /// group again if the stored version moved since it was read (another
    /// agent changed it), and tells whether it did. A cheap query when the
    /// copy is current, so that requests naming unknown members cost
    /// little.
    pub(super) async fn reload_to_confirm(
        &self,
        group_id: &str,
        slot: &Slot,
    ) -> Result<bool, GroupError> {
        let held_version = match &*slot.held.lock() {
            Held::Loaded(group) => group.version,
            _ => None,
        };
        let stored = self
            .inner
            .engine
            .consumer_group_version(group_id)
            .await
            .map_err(|e| GroupError::StoreUnavailable {
                reason: e.to_string(),
            })?;
        if stored == held_version {
            *slot.checked_at.lock() = Some(Instant::now());
            return Ok(false);
        }
        self.reload_locked(group_id, slot).await?;
        Ok(true)
    }

    /// Once per heartbeat interval, compares the held copy's version with
    /// the store's and reads the group again when it moved. Fails, without
    /// an answer from memory, when the store cannot tell.
    pub(super) async fn verify(&self, group_id: &str, slot: &Slot) -> Result<(), GroupError> {
        let interval = self.inner.limits.consumer_heartbeat_interval;
        if slot.checked_within(interval) {
            return Ok(());
        }
        let _writer = slot.writer.lock().await;
        if slot.checked_within(interval) {
            return Ok(());
        }
        let held_version = match &*slot.held.lock() {
            Held::Loaded(group) => group.version,
            // Nothing answered from memory.
            _ => return Ok(()),
        };
        let stored = self
            .inner
            .engine
            .consumer_group_version(group_id)
            .await
            .map_err(|e| GroupError::StoreUnavailable {
                reason: e.to_string(),
            })?;
        if stored == held_version {
            *slot.checked_at.lock() = Some(Instant::now());
            return Ok(());
        }
        tracing::info!(group = group_id, held = ?held_version, ?stored,
            "the consumer group changed elsewhere; reading it again");
        self.reload_locked(group_id, slot).await.map(drop)
    }

    /// Saves what changed from `before` to `after` and keeps `after`;
    /// `Ok(false)` when another agent changed the group meanwhile. The
    /// caller holds the writer lock.
    pub(super) async fn save(
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
                        "the consumer group changed on another agent; reading it again");
                    return Ok(false);
                }
                Err(error) => {
                    // The save may or may not have happened. What is held
                    // keeps answering members that change nothing; the
                    // next change reads the group again first.
                    slot.stale.store(true, Ordering::Release);
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

    /// Fences the members of one group whose deadlines passed.
    async fn expire_group(&self, group_id: String, slot: Arc<Slot>) {
        let _writer = slot.writer.lock().await;
        if let Err(error) = self.load_locked(&group_id, &slot).await {
            tracing::warn!(group = %group_id, %error, "cannot read the group to expire members; retrying");
            return;
        }
        let before = match &*slot.held.lock() {
            Held::Loaded(group) => (**group).clone(),
            _ => return,
        };
        let expired = before.expired(Instant::now());
        if expired.is_empty() {
            return;
        }
        let may_describe = self.may_describe();
        let mut draft = before.clone();
        for (member_id, why) in expired {
            draft.fence(&member_id, why, may_describe.as_ref());
        }
        match self.save(&slot, &before, draft).await {
            Ok(true) => {}
            // Changed elsewhere: read it again at the next tick.
            Ok(false) => slot.stale.store(true, Ordering::Release),
            Err(error) => {
                tracing::warn!(group = %group_id, %error, "cannot save expired members; retrying");
            }
        }
    }

    /// Checks deadlines every [`TICK`], drops the groups this agent no
    /// longer coordinates, and every [`STORED_SCAN_INTERVAL`] loads the
    /// stored groups with members it coordinates but does not hold, until
    /// `stop`.
    pub(crate) fn start(
        &self,
        coordinates: Arc<dyn Fn(&str) -> bool + Send + Sync>,
        stop: CancellationToken,
    ) -> JoinHandle<()> {
        let coordinator = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(TICK);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_scan: Option<Instant> = None;
            let scanning = Arc::new(AtomicBool::new(false));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                coordinator.tick(coordinates.as_ref(), Instant::now());
                if last_scan.is_none_or(|at| at.elapsed() >= STORED_SCAN_INTERVAL)
                    && !scanning.swap(true, Ordering::AcqRel)
                {
                    last_scan = Some(Instant::now());
                    let coordinator = coordinator.clone();
                    let coordinates = coordinates.clone();
                    let scanning = scanning.clone();
                    tokio::spawn(async move {
                        coordinator.load_stored(coordinates.as_ref()).await;
                        scanning.store(false, Ordering::Release);
                    });
                }
            }
        })
    }

    pub(super) fn tick(&self, coordinates: &(dyn Fn(&str) -> bool + Send + Sync), now: Instant) {
        let slots: Vec<(String, Arc<Slot>)> = {
            let mut slots = self.inner.slots.lock();
            slots.retain(|group_id, slot| {
                if !coordinates(group_id) {
                    return false;
                }
                // What is not in use and has no members is read again
                // from the store when asked for.
                let idle = Arc::strong_count(slot) == 1
                    && !holds_members(slot)
                    && slot.last_used.lock().elapsed() > IDLE_TTL;
                !idle
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

    /// Loads the stored groups with members that this agent coordinates
    /// and does not hold, so that their deadlines run here.
    pub(super) async fn load_stored(&self, coordinates: &(dyn Fn(&str) -> bool + Send + Sync)) {
        let stored = match self.inner.engine.list_consumer_groups().await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::debug!(%error, "cannot list stored consumer groups");
                return;
            }
        };
        for listed in stored {
            if listed.members == 0 || !coordinates(&listed.group_id) {
                continue;
            }
            let unloaded = self
                .inner
                .slots
                .lock()
                .get(&listed.group_id)
                .is_none_or(|slot| slot.known() != Some(true));
            if !unloaded {
                continue;
            }
            let slot = self.slot(&listed.group_id);
            if let Err(error) = self.ensure_loaded(&listed.group_id, &slot).await {
                tracing::debug!(group = %listed.group_id, %error, "cannot load a stored consumer group");
            }
        }
    }

    /// Forgets a group this agent no longer coordinates.
    pub(crate) fn forget(&self, group_id: &str) {
        self.inner.slots.lock().remove(group_id);
    }
}

fn holds_members(slot: &Slot) -> bool {
    matches!(&*slot.held.lock(), Held::Loaded(g) if !g.members.is_empty())
}
