//! The consumer group coordinator: Kafka's classic group protocol.
//!
//! A group moves Empty → PreparingRebalance (members join) →
//! CompletingRebalance (the leader computes the assignment with its
//! assignor: range, roundrobin, cooperative-sticky…) → Stable (everyone
//! has its assignment), and back to PreparingRebalance whenever a member
//! joins, leaves, or stops heart-beating for its session timeout.
//! Group membership lives in memory; committed offsets live in the metadata
//! store, so a restarted coordinator re-forms groups from them.
//!
//! All state is behind one lock and every transition happens inside it;
//! waiting JoinGroup and SyncGroup requests are answered through oneshot
//! channels when the transition that completes them happens, either on a
//! request or on the coordinator's timer.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::Decodable;
use parking_lot::Mutex;
use streamhouse_storage::MetadataStore;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;

/// How often deadlines (rebalance, session, pending member) are checked.
const TICK: Duration = Duration::from_millis(100);

/// Bounds on what clients can make the coordinator hold, named after
/// Kafka's broker settings where Kafka has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLimits {
    /// Shortest session timeout a member may ask for
    /// (`group.min.session.timeout.ms`, 6 s).
    pub min_session_timeout: Duration,
    /// Longest session timeout a member may ask for
    /// (`group.max.session.timeout.ms`, 30 min).
    pub max_session_timeout: Duration,
    /// Longest the coordinator waits for members to rejoin, whatever
    /// rebalance timeout (`max.poll.interval.ms`) they ask for; members
    /// that have not rejoined by then are left out of the generation.
    /// Kafka has no such bound; 30 min by default, like the session bound.
    pub max_rebalance_timeout: Duration,
    /// Members (including member ids handed out and not yet used) of one
    /// group (`group.max.size`, 1000).
    pub max_group_size: usize,
    /// Groups with members held by this coordinator (100 000).
    pub max_groups: usize,
    /// How long a group's committed offsets outlive its last member
    /// (`offsets.retention.minutes`, 7 days).
    pub offsets_retention: Duration,
    /// How often offsets are checked for expiry
    /// (`offsets.retention.check.interval.ms`, 10 min).
    pub offsets_retention_check_interval: Duration,
}

impl Default for GroupLimits {
    fn default() -> Self {
        Self {
            min_session_timeout: Duration::from_millis(6_000),
            max_session_timeout: Duration::from_millis(1_800_000),
            max_rebalance_timeout: Duration::from_millis(1_800_000),
            max_group_size: 1_000,
            max_groups: 100_000,
            offsets_retention: Duration::from_secs(10_080 * 60),
            offsets_retention_check_interval: Duration::from_millis(600_000),
        }
    }
}

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

/// A JoinGroup answer.
#[derive(Debug, Clone, Default)]
pub(crate) struct JoinOutcome {
    pub(crate) error_code: i16,
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

impl JoinOutcome {
    fn error(code: ResponseError, member_id: String) -> Self {
        Self {
            error_code: code.code(),
            generation_id: -1,
            member_id,
            ..Default::default()
        }
    }
}

/// A SyncGroup answer.
#[derive(Debug, Clone, Default)]
pub(crate) struct SyncOutcome {
    pub(crate) error_code: i16,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) assignment: Bytes,
}

impl SyncOutcome {
    fn error(code: ResponseError) -> Self {
        Self {
            error_code: code.code(),
            ..Default::default()
        }
    }
}

/// An answer that is ready, or one that comes when the group moves on.
pub(crate) enum Wait<T> {
    Ready(T),
    Later(oneshot::Receiver<T>),
}

struct Member {
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_heartbeat: Instant,
    awaiting_join: Option<oneshot::Sender<JoinOutcome>>,
    awaiting_sync: Option<oneshot::Sender<SyncOutcome>>,
}

struct Group {
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    /// In join order, so the first member to join leads.
    members: BTreeMap<u64, String>,
    by_id: HashMap<String, (u64, Member)>,
    next_join_order: u64,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they expire.
    pending: HashMap<String, Instant>,
    rebalance_deadline: Option<Instant>,
}

impl Group {
    fn new() -> Self {
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

    fn member(&self, member_id: &str) -> Option<&Member> {
        self.by_id.get(member_id).map(|(_, m)| m)
    }

    /// No member and no member id handed out: nothing to keep in memory
    /// (committed offsets, if any, live in the metadata store).
    fn is_unused(&self) -> bool {
        self.by_id.is_empty() && self.pending.is_empty()
    }

    /// Whether one more member (or member id handed out) would exceed
    /// `max_size`.
    fn is_full(&self, max_size: usize) -> bool {
        self.by_id.len() + self.pending.len() >= max_size
    }

    fn member_mut(&mut self, member_id: &str) -> Option<&mut Member> {
        self.by_id.get_mut(member_id).map(|(_, m)| m)
    }

    fn add_member(&mut self, member_id: String, member: Member) {
        let order = self.next_join_order;
        self.next_join_order += 1;
        self.members.insert(order, member_id.clone());
        self.by_id.insert(member_id, (order, member));
    }

    /// The member that holds a static instance id, if any.
    fn instance_member(&self, instance: &str) -> Option<String> {
        self.by_id
            .iter()
            .find(|(_, (_, m))| m.group_instance_id.as_deref() == Some(instance))
            .map(|(id, _)| id.clone())
    }

    /// Moves a member to a new id, keeping its place, assignment and
    /// leadership; requests still waiting under the old id are fenced.
    fn rename_member(&mut self, old_id: &str, new_id: &str) {
        let Some((order, mut member)) = self.by_id.remove(old_id) else {
            return;
        };
        if let Some(join) = member.awaiting_join.take() {
            let _ = join.send(JoinOutcome::error(
                ResponseError::FencedInstanceId,
                old_id.to_string(),
            ));
        }
        if let Some(sync) = member.awaiting_sync.take() {
            let _ = sync.send(SyncOutcome::error(ResponseError::FencedInstanceId));
        }
        self.members.insert(order, new_id.to_string());
        self.by_id.insert(new_id.to_string(), (order, member));
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.to_string());
        }
    }

    /// Every member with its metadata for the selected protocol, in join
    /// order: what the leader assigns from.
    fn member_metadata(&self) -> Vec<(String, Option<String>, Bytes)> {
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .values()
            .filter_map(|id| {
                self.member(id).map(|m| {
                    let metadata = m
                        .protocols
                        .iter()
                        .find(|(n, _)| *n == protocol)
                        .map(|(_, meta)| meta.clone())
                        .unwrap_or_default();
                    (id.clone(), m.group_instance_id.clone(), metadata)
                })
            })
            .collect()
    }

    fn remove_member(&mut self, member_id: &str) -> Option<Member> {
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
    fn accepts_first(params: &JoinParams) -> bool {
        !params.protocol_type.is_empty() && !params.protocols.is_empty()
    }

    /// Whether the join's protocol type is the group's and every member
    /// supports one of its protocols.
    fn accepts(&self, params: &JoinParams) -> bool {
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

    fn all_rejoined(&self) -> bool {
        self.by_id.values().all(|(_, m)| m.awaiting_join.is_some())
    }

    /// Starts a rebalance: members must rejoin within the longest rebalance
    /// timeout; a pending SyncGroup learns that the group moved on.
    fn prepare_rebalance(&mut self, now: Instant) {
        for (_, member) in self.by_id.values_mut() {
            if let Some(sync) = member.awaiting_sync.take() {
                let _ = sync.send(SyncOutcome::error(ResponseError::RebalanceInProgress));
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
    fn complete_join(&mut self) {
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
            self.state = GroupState::Empty;
            self.protocol = None;
            self.protocol_type = None;
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
                let _ = waiter.send(JoinOutcome {
                    error_code: 0,
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
                });
            }
        }
    }
}

/// Timeouts of a join, within the coordinator's limits.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    session: Duration,
    rebalance: Duration,
}

/// A timeout from the wire; `None` when negative.
fn millis(ms: i32) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

/// Milliseconds since the epoch, the clock of `CommittedOffset::committed_at`.
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn limit_rejected(limit: &'static str) {
    metrics::counter!("streamhouse_limit_rejections_total", "limit" => limit).increment(1);
}

struct Inner {
    limits: GroupLimits,
    /// Groups with a member or a member id handed out; a group is removed
    /// as soon as it has neither. Locked before `idle_since`.
    groups: Mutex<HashMap<String, Group>>,
    /// Groups with committed offsets that this coordinator has seen
    /// without members, and since when (see `expire_offsets`).
    idle_since: Mutex<HashMap<String, Instant>>,
}

/// Handle to the groups this agent coordinates.
#[derive(Clone)]
pub struct GroupCoordinator {
    inner: Arc<Inner>,
}

impl GroupCoordinator {
    pub(crate) fn new(limits: GroupLimits) -> Self {
        Self {
            inner: Arc::new(Inner {
                limits,
                groups: Mutex::new(HashMap::new()),
                idle_since: Mutex::new(HashMap::new()),
            }),
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
                        coordinator.answer_waiting(ResponseError::NotCoordinator);
                        return;
                    }
                    _ = ticker.tick() => coordinator.expire(Instant::now()),
                }
            }
        })
    }

    /// Starts expiring committed offsets of the groups this agent
    /// coordinates (see `expire_offsets`) every
    /// `offsets_retention_check_interval`, until `stop`.
    pub(crate) fn start_offset_expiry(
        &self,
        store: Arc<dyn MetadataStore>,
        cluster: Cluster,
        stop: CancellationToken,
    ) -> JoinHandle<()> {
        self.run_offset_expiry(
            store,
            move |group| cluster.is_me(&cluster.coordinator(group)),
            stop,
        )
    }

    /// The offset expiry loop; `coordinates` tells whether this agent
    /// coordinates a group: only a group's coordinator knows whether it has
    /// members.
    fn run_offset_expiry(
        &self,
        store: Arc<dyn MetadataStore>,
        coordinates: impl Fn(&str) -> bool + Send + Sync + 'static,
        stop: CancellationToken,
    ) -> JoinHandle<()> {
        let coordinator = self.clone();
        let every = self
            .inner
            .limits
            .offsets_retention_check_interval
            .max(Duration::from_millis(1));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                let pass = coordinator.expire_offsets(
                    store.as_ref(),
                    &coordinates,
                    Instant::now(),
                    wall_clock_ms(),
                );
                tokio::select! {
                    _ = stop.cancelled() => return,
                    result = pass => if let Err(error) = result {
                        tracing::warn!(%error, "offset expiry failed; retrying at the next check");
                    },
                }
            }
        })
    }

    /// Kafka's offset expiry for the groups this agent coordinates: an
    /// offset is removed from the metadata store once it was committed at
    /// least `offsets_retention` ago and its group has been without members
    /// for at least as long. How long a group has been empty is what this
    /// coordinator saw itself: a group it finds without members starts
    /// counting then, so an agent restart or a coordinator move delays
    /// expiry, never hastens it. Returns how many offsets expired.
    pub(crate) async fn expire_offsets(
        &self,
        store: &dyn MetadataStore,
        coordinates: &(dyn Fn(&str) -> bool + Send + Sync),
        now: Instant,
        wall_clock_ms: i64,
    ) -> Result<u64, streamhouse_storage::MetadataError> {
        let retention = self.inner.limits.offsets_retention;
        let with_offsets = store.list_groups().await?;
        let due: Vec<String> = {
            let groups = self.inner.groups.lock();
            let mut idle_since = self.inner.idle_since.lock();
            // Groups that have members, are not ours or have no offsets
            // any more drop out; the others keep counting.
            let idle: HashMap<String, Instant> = with_offsets
                .into_iter()
                .filter(|id| !groups.contains_key(id) && coordinates(id))
                .map(|id| {
                    let since = idle_since.get(&id).copied().unwrap_or(now);
                    (id, since)
                })
                .collect();
            *idle_since = idle;
            idle_since
                .iter()
                .filter(|(_, since)| now.saturating_duration_since(**since) >= retention)
                .map(|(id, _)| id.clone())
                .collect()
        };
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let committed_before = wall_clock_ms.saturating_sub(retention_ms);
        let mut expired = 0;
        for group_id in due {
            // A member may have joined while the store answered.
            if self.inner.groups.lock().contains_key(&group_id) {
                continue;
            }
            let removed = store.expire_offsets(&group_id, committed_before).await?;
            if removed > 0 {
                tracing::info!(group = %group_id, offsets = removed,
                    "committed offsets expired (group empty for offsets.retention.minutes)");
                expired += removed;
            }
        }
        metrics::counter!("streamhouse_kafka_offsets_expired_total").increment(expired);
        Ok(expired)
    }

    /// A JoinGroup. A request that is refused, for whatever reason, leaves
    /// no group behind: a group exists only while it has a member or a
    /// member id handed out.
    pub(crate) fn join(&self, params: JoinParams) -> Wait<JoinOutcome> {
        let limits = &self.inner.limits;
        let refuse = |code: ResponseError, member_id: String| {
            Wait::Ready(JoinOutcome::error(code, member_id))
        };
        if params.group_id.is_empty() {
            return refuse(ResponseError::InvalidGroupId, params.member_id);
        }
        let Some(session_timeout) = millis(params.session_timeout_ms)
            .filter(|t| (limits.min_session_timeout..=limits.max_session_timeout).contains(t))
        else {
            limit_rejected("group_session_timeout");
            tracing::debug!(group = %params.group_id, session_timeout_ms = params.session_timeout_ms,
                "session timeout out of bounds");
            return refuse(ResponseError::InvalidSessionTimeout, params.member_id);
        };
        // A rebalance timeout is the member's max.poll.interval.ms; a long
        // one is legitimate (Kafka Streams used i32::MAX) but only ever
        // waited for up to the bound. A negative one is a malformed request.
        let Some(rebalance_timeout) = millis(params.rebalance_timeout_ms) else {
            limit_rejected("group_rebalance_timeout");
            return refuse(ResponseError::InvalidRequest, params.member_id);
        };
        let timeouts = Timeouts {
            session: session_timeout,
            rebalance: rebalance_timeout.min(limits.max_rebalance_timeout),
        };
        let now = Instant::now();
        let mut groups = self.inner.groups.lock();
        if !groups.contains_key(&params.group_id) {
            // Only a member without an id starts a group (Kafka answers
            // UNKNOWN_MEMBER_ID to a member id the group never had).
            if !params.member_id.is_empty() {
                return refuse(ResponseError::UnknownMemberId, params.member_id);
            }
            if !Group::accepts_first(&params) {
                return refuse(ResponseError::InconsistentGroupProtocol, params.member_id);
            }
            // Retriable: clients back off and retry, and room comes back as
            // groups empty (they are forgotten at once) or sessions expire.
            if groups.len() >= limits.max_groups {
                limit_rejected("group_count");
                tracing::debug!(group = %params.group_id, groups = groups.len(),
                    "group limit reached");
                return refuse(ResponseError::CoordinatorNotAvailable, params.member_id);
            }
            self.inner.idle_since.lock().remove(&params.group_id);
        }
        let group_id = params.group_id.clone();
        let group = groups.entry(group_id.clone()).or_insert_with(Group::new);
        let outcome = Self::join_group(group, params, timeouts, limits.max_group_size, now);
        if group.is_unused() {
            groups.remove(&group_id);
        }
        outcome
    }

    fn join_group(
        group: &mut Group,
        mut params: JoinParams,
        timeouts: Timeouts,
        max_group_size: usize,
        now: Instant,
    ) -> Wait<JoinOutcome> {
        if !group.accepts(&params) {
            return Wait::Ready(JoinOutcome::error(
                ResponseError::InconsistentGroupProtocol,
                params.member_id,
            ));
        }
        // A static member (group.instance.id) that restarts joins without a
        // member id: it takes its old place under a new id and keeps its
        // assignment, so a stable group does not rebalance (KIP-345).
        if let Some(instance) = params.group_instance_id.clone()
            && let Some(old_id) = group.instance_member(&instance)
        {
            if !params.member_id.is_empty() && params.member_id != old_id {
                return Wait::Ready(JoinOutcome::error(
                    ResponseError::FencedInstanceId,
                    params.member_id,
                ));
            }
            if params.member_id.is_empty() {
                let new_id = new_member_id(&params.client_id);
                group.rename_member(&old_id, &new_id);
                tracing::info!(group = %params.group_id, %instance, member = %new_id,
                    "static member rejoined");
                let unchanged = group
                    .member(&new_id)
                    .is_some_and(|m| m.protocols == params.protocols);
                let leads = group.leader.as_deref() == Some(new_id.as_str());
                if group.state == GroupState::Stable && unchanged && (!leads || params.version >= 9)
                {
                    let outcome = JoinOutcome {
                        error_code: 0,
                        generation_id: group.generation,
                        protocol_type: group.protocol_type.clone(),
                        protocol_name: group.protocol.clone(),
                        leader: group.leader.clone().unwrap_or_default(),
                        member_id: new_id.clone(),
                        members: if leads {
                            group.member_metadata()
                        } else {
                            Vec::new()
                        },
                        skip_assignment: leads,
                    };
                    if let Some(member) = group.member_mut(&new_id) {
                        member.last_heartbeat = now;
                    }
                    return Wait::Ready(outcome);
                }
                params.member_id = new_id;
            }
        }
        let member_id = if params.member_id.is_empty() {
            if group.is_full(max_group_size) {
                limit_rejected("group_max_size");
                tracing::debug!(group = %params.group_id, members = group.by_id.len(),
                    pending = group.pending.len(), "group is full");
                return Wait::Ready(JoinOutcome::error(
                    ResponseError::GroupMaxSizeReached,
                    String::new(),
                ));
            }
            let member_id = new_member_id(&params.client_id);
            if params.require_known_member_id && params.group_instance_id.is_none() {
                group
                    .pending
                    .insert(member_id.clone(), now + timeouts.session);
                return Wait::Ready(JoinOutcome::error(
                    ResponseError::MemberIdRequired,
                    member_id,
                ));
            }
            member_id
        } else {
            let known = group.by_id.contains_key(&params.member_id)
                || group.pending.remove(&params.member_id).is_some();
            if !known {
                return Wait::Ready(JoinOutcome::error(
                    ResponseError::UnknownMemberId,
                    params.member_id,
                ));
            }
            params.member_id.clone()
        };

        // A known member rejoining a stable group with the same metadata,
        // and not the leader, gets the current generation without making
        // everyone rebalance.
        if group.state == GroupState::Stable
            && group.leader.as_deref() != Some(member_id.as_str())
            && group
                .member(&member_id)
                .is_some_and(|m| m.protocols == params.protocols)
        {
            let protocol = group.protocol.clone();
            let outcome = JoinOutcome {
                error_code: 0,
                generation_id: group.generation,
                protocol_type: group.protocol_type.clone(),
                protocol_name: protocol,
                leader: group.leader.clone().unwrap_or_default(),
                member_id: member_id.clone(),
                members: Vec::new(),
                skip_assignment: false,
            };
            if let Some(member) = group.member_mut(&member_id) {
                member.last_heartbeat = now;
            }
            return Wait::Ready(outcome);
        }

        let (reply, waiting) = oneshot::channel();
        match group.member_mut(&member_id) {
            Some(member) => {
                member.protocols = params.protocols;
                member.session_timeout = timeouts.session;
                member.rebalance_timeout = timeouts.rebalance;
                member.last_heartbeat = now;
                if let Some(previous) = member.awaiting_join.replace(reply) {
                    let _ = previous.send(JoinOutcome::error(
                        ResponseError::UnknownMemberId,
                        member_id.clone(),
                    ));
                }
            }
            None => group.add_member(
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
        group.protocol_type = Some(params.protocol_type);
        if group.state != GroupState::PreparingRebalance {
            group.prepare_rebalance(now);
        }
        if group.all_rejoined() {
            group.complete_join();
        }
        tracing::debug!(group = %params.group_id, member = %member_id, "member joining");
        Wait::Later(waiting)
    }

    pub(crate) fn sync(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> Wait<SyncOutcome> {
        let mut groups = self.inner.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Wait::Ready(SyncOutcome::error(ResponseError::UnknownMemberId));
        };
        if group.member(member_id).is_none() {
            return Wait::Ready(SyncOutcome::error(ResponseError::UnknownMemberId));
        }
        if generation != group.generation {
            return Wait::Ready(SyncOutcome::error(ResponseError::IllegalGeneration));
        }
        if protocol_type.is_some_and(|t| Some(t) != group.protocol_type.as_deref())
            || protocol_name.is_some_and(|p| Some(p) != group.protocol.as_deref())
        {
            return Wait::Ready(SyncOutcome::error(ResponseError::InconsistentGroupProtocol));
        }
        let answer = |group: &Group, assignment: Bytes| SyncOutcome {
            error_code: 0,
            protocol_type: group.protocol_type.clone(),
            protocol_name: group.protocol.clone(),
            assignment,
        };
        match group.state {
            GroupState::Empty | GroupState::PreparingRebalance => {
                Wait::Ready(SyncOutcome::error(ResponseError::RebalanceInProgress))
            }
            GroupState::Stable => {
                let assignment = group
                    .member(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                Wait::Ready(answer(group, assignment))
            }
            GroupState::CompletingRebalance => {
                let (reply, waiting) = oneshot::channel();
                if let Some(member) = group.member_mut(member_id) {
                    member.awaiting_sync = Some(reply);
                    member.last_heartbeat = Instant::now();
                }
                if group.leader.as_deref() == Some(member_id) {
                    let mut assigned: HashMap<String, Bytes> = assignments.into_iter().collect();
                    let ids: Vec<String> = group.by_id.keys().cloned().collect();
                    for id in ids {
                        let assignment = assigned.remove(&id).unwrap_or_default();
                        let outcome = answer(group, assignment.clone());
                        if let Some(member) = group.member_mut(&id) {
                            member.assignment = assignment;
                            if let Some(waiter) = member.awaiting_sync.take() {
                                let _ = waiter.send(outcome);
                            }
                        }
                    }
                    group.state = GroupState::Stable;
                    tracing::info!(
                        group = group_id,
                        generation = group.generation,
                        members = group.by_id.len(),
                        protocol = group.protocol.as_deref().unwrap_or(""),
                        "group stable"
                    );
                }
                Wait::Later(waiting)
            }
        }
    }

    pub(crate) fn heartbeat(&self, group_id: &str, generation: i32, member_id: &str) -> i16 {
        let mut groups = self.inner.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return ResponseError::UnknownMemberId.code();
        };
        let state = group.state;
        let current = group.generation;
        let Some(member) = group.member_mut(member_id) else {
            return ResponseError::UnknownMemberId.code();
        };
        member.last_heartbeat = Instant::now();
        match state {
            GroupState::PreparingRebalance => ResponseError::RebalanceInProgress.code(),
            _ if generation != current => ResponseError::IllegalGeneration.code(),
            _ => 0,
        }
    }

    /// Removes members; returns each member's error code.
    pub(crate) fn leave(&self, group_id: &str, member_ids: &[String]) -> Vec<i16> {
        let mut groups = self.inner.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return vec![ResponseError::UnknownMemberId.code(); member_ids.len()];
        };
        let now = Instant::now();
        let mut codes = Vec::with_capacity(member_ids.len());
        let mut left = false;
        for member_id in member_ids {
            match group.remove_member(member_id) {
                Some(member) => {
                    if let Some(join) = member.awaiting_join {
                        let _ = join.send(JoinOutcome::error(
                            ResponseError::UnknownMemberId,
                            member_id.clone(),
                        ));
                    }
                    tracing::debug!(group = group_id, member = %member_id, "member left");
                    left = true;
                    codes.push(0);
                }
                None => codes.push(ResponseError::UnknownMemberId.code()),
            }
        }
        if left {
            Self::after_departure(group, now);
            if group.is_unused() {
                groups.remove(group_id);
            }
        }
        codes
    }

    /// Whether an OffsetCommit from `member_id` at `generation` may commit.
    pub(crate) fn validate_commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
    ) -> Result<(), i16> {
        let groups = self.inner.groups.lock();
        let Some(group) = groups.get(group_id) else {
            // Not managed here: a standalone consumer may commit; a member
            // of a generation this coordinator never saw must rejoin.
            return if generation < 0 {
                Ok(())
            } else {
                Err(ResponseError::IllegalGeneration.code())
            };
        };
        if generation < 0 && group.state == GroupState::Empty {
            return Ok(());
        }
        if group.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress.code());
        }
        if group.member(member_id).is_none() {
            return Err(ResponseError::UnknownMemberId.code());
        }
        if generation != group.generation {
            return Err(ResponseError::IllegalGeneration.code());
        }
        Ok(())
    }

    /// Every group with state on this agent.
    pub fn list(&self) -> Vec<GroupSummary> {
        let groups = self.inner.groups.lock();
        let mut list: Vec<GroupSummary> = groups
            .iter()
            .map(|(id, group)| summarize(id, group))
            .collect();
        list.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        list
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupSummary> {
        let groups = self.inner.groups.lock();
        groups.get(group_id).map(|group| summarize(group_id, group))
    }

    /// Members with their raw metadata and assignment, for DescribeGroups.
    pub(crate) fn describe_members(&self, group_id: &str) -> Option<DescribedGroupState> {
        let groups = self.inner.groups.lock();
        let group = groups.get(group_id)?;
        let protocol = group.protocol.clone().unwrap_or_default();
        Some(DescribedGroupState {
            state: group.state,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol,
            members: group
                .members
                .values()
                .filter_map(|id| {
                    let member = group.member(id)?;
                    Some(DescribedMember {
                        member_id: id.clone(),
                        group_instance_id: member.group_instance_id.clone(),
                        client_id: member.client_id.clone(),
                        client_host: member.client_host.clone(),
                        metadata: member
                            .protocols
                            .iter()
                            .find(|(n, _)| Some(n) == group.protocol.as_ref())
                            .map(|(_, m)| m.clone())
                            .unwrap_or_default(),
                        assignment: member.assignment.clone(),
                    })
                })
                .collect(),
        })
    }

    /// Forgets an empty group (DeleteGroups); refuses one with members.
    pub(crate) fn remove_if_empty(&self, group_id: &str) -> Result<bool, i16> {
        let mut groups = self.inner.groups.lock();
        match groups.get(group_id) {
            None => Ok(false),
            Some(group) if group.by_id.is_empty() => {
                groups.remove(group_id);
                Ok(true)
            }
            Some(_) => Err(ResponseError::NonEmptyGroup.code()),
        }
    }

    /// Drops a group this agent no longer coordinates; its members learn
    /// with NOT_COORDINATOR and rejoin at the new coordinator.
    pub(crate) fn forget(&self, group_id: &str) {
        let removed = self.inner.groups.lock().remove(group_id);
        if let Some(group) = removed {
            tracing::info!(
                group = group_id,
                "no longer the coordinator; dropping the group"
            );
            for (_, (_, member)) in group.by_id {
                if let Some(join) = member.awaiting_join {
                    let _ = join.send(JoinOutcome::error(
                        ResponseError::NotCoordinator,
                        String::new(),
                    ));
                }
                if let Some(sync) = member.awaiting_sync {
                    let _ = sync.send(SyncOutcome::error(ResponseError::NotCoordinator));
                }
            }
        }
    }

    /// A deleted topic needs no group changes: clients notice through
    /// metadata and rejoin with a new subscription.
    pub(crate) fn forget_topic(&self, _topic: &str) {}

    fn after_departure(group: &mut Group, now: Instant) {
        match group.state {
            GroupState::PreparingRebalance => {
                if group.all_rejoined() {
                    group.complete_join();
                }
            }
            GroupState::Stable | GroupState::CompletingRebalance => {
                group.prepare_rebalance(now);
                if group.all_rejoined() {
                    group.complete_join();
                }
            }
            GroupState::Empty => {}
        }
    }

    /// Expires sessions, pending member ids and rebalance deadlines.
    fn expire(&self, now: Instant) {
        let mut groups = self.inner.groups.lock();
        for (group_id, group) in groups.iter_mut() {
            group.pending.retain(|_, deadline| *deadline > now);
            // Sessions run in every state: a member that neither heart-beats
            // nor waits in a JoinGroup or SyncGroup is gone, also in the
            // middle of a rebalance (it must not hold the others up until
            // the rebalance timeout).
            let expired: Vec<String> = group
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
                group.remove_member(member_id);
            }
            if group.state == GroupState::PreparingRebalance
                && group.rebalance_deadline.is_some_and(|d| d <= now)
            {
                tracing::info!(
                    group = %group_id,
                    "rebalance timeout; completing without the members that did not rejoin"
                );
                group.complete_join();
            } else if !expired.is_empty() {
                Self::after_departure(group, now);
            }
        }
        groups.retain(|_, group| !group.is_unused());
    }

    /// Answers every waiting JoinGroup and SyncGroup with `code`, so that
    /// a shutting-down agent does not hold requests it will never finish;
    /// the clients find the next coordinator.
    fn answer_waiting(&self, code: ResponseError) {
        let mut groups = self.inner.groups.lock();
        for group in groups.values_mut() {
            for (member_id, (_, member)) in group.by_id.iter_mut() {
                if let Some(join) = member.awaiting_join.take() {
                    let _ = join.send(JoinOutcome::error(code, member_id.clone()));
                }
                if let Some(sync) = member.awaiting_sync.take() {
                    let _ = sync.send(SyncOutcome::error(code));
                }
            }
        }
    }
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
            .members
            .values()
            .filter_map(|id| {
                let member = group.member(id)?;
                Some(MemberSummary {
                    member_id: id.clone(),
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    assignment: if is_consumer {
                        decode_assignment(&member.assignment)
                    } else {
                        Vec::new()
                    },
                })
            })
            .collect(),
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
