//! Cluster membership and placement.
//!
//! Every agent registers in the metadata store and heart-beats; an agent
//! that stops heart-beating for the timeout is no longer live, and a clean
//! shutdown deregisters at once. Placement is rendezvous hashing over the
//! live agents: each partition's "leader" (where clients send its reads, so
//! its segments stay hot in one cache) and each group's coordinator is the
//! live agent with the highest score for that key. When an agent joins or
//! leaves, only the keys it wins or held move.
//!
//! Leadership is advisory: every agent accepts produce and fetch for every
//! partition, since offsets are assigned by the metadata store. Group
//! coordination is not: only the coordinator answers group requests, the
//! others answer NOT_COORDINATOR.
//!
//! Leader epochs (KIP-320) follow placement: when this agent's view of the
//! live agents changes, it records in the metadata store the new leader of
//! every partition whose leader moved between its old and new view, before
//! it answers with the new view; the store bumps a partition's epoch only
//! when the recorded leader differs, so agents noticing the same change
//! bump each epoch once. Every heartbeat also asks the store (one small
//! query) whether any epoch moved, so every agent reports the same epochs
//! within a heartbeat of a change.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use streamhouse_core::clock::{Clock, SystemClock};
use streamhouse_storage::{AgentInfo, AgentListener, ClusterRegistry, LeaderMove, StorageEngine};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::listener::SecurityProtocol;

/// Longest a clean shutdown waits to take the agent out of the cluster.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// A live agent as the protocol layer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Agent {
    pub(crate) agent_id: String,
    pub(crate) node_id: i32,
    pub(crate) host: String,
    pub(crate) port: i32,
    pub(crate) zone: Option<String>,
    /// Every listener's protocol and port.
    pub(crate) listeners: Vec<(SecurityProtocol, i32)>,
}

impl Agent {
    /// The port of the agent's listener for `protocol`, if it has one.
    pub(crate) fn port_for(&self, protocol: SecurityProtocol) -> Option<i32> {
        if self.listeners.is_empty() {
            return (protocol == SecurityProtocol::Plaintext).then_some(self.port);
        }
        self.listeners
            .iter()
            .find(|(p, _)| *p == protocol)
            .map(|&(_, port)| port)
    }
}

impl From<&AgentInfo> for Agent {
    fn from(info: &AgentInfo) -> Self {
        Self {
            agent_id: info.agent_id.clone(),
            node_id: info.node_id,
            host: info.host.clone(),
            port: info.port,
            zone: info.zone.clone(),
            // A protocol this build does not know is not offered.
            listeners: info
                .listeners
                .iter()
                .filter_map(|l| Some((l.protocol.parse().ok()?, l.port)))
                .collect(),
        }
    }
}

struct Inner {
    store: Arc<dyn ClusterRegistry>,
    me: Agent,
    timeout: Duration,
    /// Live agents sorted by id; always contains `me`.
    live: RwLock<Arc<[Agent]>>,
    /// The live agents (ids, sorted) whose placement this agent last
    /// recorded in the metadata store; `None` before its first view.
    recorded: Mutex<Option<Vec<String>>>,
}

/// This agent's view of the cluster.
#[derive(Clone)]
pub(crate) struct Cluster {
    inner: Arc<Inner>,
    /// Heartbeat times and the liveness cutoff.
    clock: Arc<dyn Clock>,
    /// Where leader moves are recorded and epochs read; none in tests of
    /// membership alone.
    engine: Option<StorageEngine>,
}

impl Cluster {
    pub(crate) fn new(store: Arc<dyn ClusterRegistry>, me: Agent, timeout: Duration) -> Self {
        let live: Arc<[Agent]> = Arc::from(vec![me.clone()]);
        Self {
            inner: Arc::new(Inner {
                store,
                me,
                timeout,
                live: RwLock::new(live),
                recorded: Mutex::new(None),
            }),
            clock: Arc::new(SystemClock),
            engine: None,
        }
    }

    /// Records leader moves and follows leader epochs through `engine`.
    pub(crate) fn with_engine(mut self, engine: StorageEngine) -> Self {
        self.engine = Some(engine);
        self
    }

    /// Reads heartbeat times from `clock` (the engine's) instead of the
    /// system's clock.
    pub(crate) fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Live agents, sorted by id.
    pub(crate) fn live(&self) -> Arc<[Agent]> {
        self.inner.live.read().clone()
    }

    /// The agent that leads `topic`-`partition`.
    pub(crate) fn leader(&self, topic: &str, partition: i32) -> Agent {
        self.owner(b"partition", &partition_key(topic, partition))
    }

    /// The agent that coordinates `group`.
    pub(crate) fn coordinator(&self, group: &str) -> Agent {
        self.owner(b"group", group.as_bytes())
    }

    pub(crate) fn is_me(&self, agent: &Agent) -> bool {
        agent.agent_id == self.inner.me.agent_id
    }

    fn owner(&self, kind: &[u8], key: &[u8]) -> Agent {
        let live = self.live();
        live.iter()
            .max_by_key(|agent| score(&agent.agent_id, kind, key))
            .cloned()
            .unwrap_or_else(|| self.inner.me.clone())
    }

    /// Records in the metadata store the leaders that moved when the live
    /// agents (ids) went from `before` to `after`; on this agent's first
    /// view (`before` is `None`), those that differ from the leader last
    /// recorded, if one was (the cluster changed while this agent was
    /// away). Returns false if that failed.
    async fn record_moves(&self, before: Option<&[String]>, after: &[String]) -> bool {
        let Some(engine) = &self.engine else {
            return true;
        };
        if before.is_none()
            && let Err(error) = engine.refresh_leader_epochs().await
        {
            tracing::warn!(%error, "cannot read the recorded leaders; retrying");
            return false;
        }
        let topics = match engine.list_topics().await {
            Ok(topics) => topics,
            Err(error) => {
                tracing::warn!(%error, "cannot list topics to record leader moves; retrying");
                return false;
            }
        };
        let place = |ids: &[String], key: &[u8]| -> Option<String> {
            ids.iter()
                .max_by_key(|id| score(id, b"partition", key))
                .cloned()
        };
        let mut moves = Vec::new();
        for topic in &topics {
            for partition in 0..topic.partition_count {
                let key = partition_key(&topic.name, partition);
                let Some(leader) = place(after, &key) else {
                    continue;
                };
                let moved = match before {
                    Some(before) => place(before, &key).is_some_and(|old| old != leader),
                    None => engine
                        .recorded_leader(&topic.name, partition)
                        .is_some_and(|recorded| *recorded != *leader),
                };
                if moved {
                    moves.push(LeaderMove {
                        topic: topic.name.clone(),
                        partition,
                        leader,
                    });
                }
            }
        }
        match engine.move_leaders(&moves).await {
            Ok(bumped) => {
                if !bumped.is_empty() {
                    tracing::info!(
                        moved = moves.len(),
                        bumped = bumped.len(),
                        "partition leaders moved; leader epochs bumped"
                    );
                }
                true
            }
            Err(error) => {
                tracing::warn!(%error, "cannot record leader moves; retrying");
                false
            }
        }
    }

    /// Registers, then heart-beats and refreshes the live set every
    /// `interval` until `stop`; deregisters on the way out.
    pub(crate) fn start(&self, interval: Duration, stop: CancellationToken) -> JoinHandle<()> {
        let cluster = self.clone();
        tokio::spawn(async move {
            let mut registered = false;
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // A heartbeat stuck on a metadata store that does not answer
            // neither holds up shutdown nor stops the next heartbeats.
            let beat_timeout = cluster.inner.timeout.max(interval);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    beat = tokio::time::timeout(beat_timeout, cluster.beat(registered)) => match beat {
                        Ok(now_registered) => registered = now_registered,
                        Err(_) => tracing::warn!(
                            timeout_ms = beat_timeout.as_millis() as u64,
                            "heartbeat did not finish; keeping the last known cluster"
                        ),
                    },
                }
            }
            let deregistered = tokio::time::timeout(
                DEREGISTER_TIMEOUT,
                cluster
                    .inner
                    .store
                    .deregister_agent(&cluster.inner.me.agent_id),
            )
            .await;
            match deregistered {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, "could not deregister; others will time this agent out")
                }
                Err(_) => tracing::warn!(
                    "the metadata store did not answer the deregistration; others will time \
                     this agent out"
                ),
            }
        })
    }

    /// One heartbeat; returns whether the agent is registered afterwards.
    async fn beat(&self, registered: bool) -> bool {
        let store = &self.inner.store;
        let me = &self.inner.me;
        let now = self.clock.now_ms();
        let alive = if registered {
            store.heartbeat_agent(&me.agent_id, now).await
        } else {
            Ok(false)
        };
        let registered = match alive {
            Ok(true) => true,
            Ok(false) => {
                let info = AgentInfo {
                    agent_id: me.agent_id.clone(),
                    node_id: me.node_id,
                    host: me.host.clone(),
                    port: me.port,
                    zone: me.zone.clone(),
                    started_at: now,
                    last_heartbeat: now,
                    listeners: me
                        .listeners
                        .iter()
                        .map(|&(protocol, port)| AgentListener {
                            protocol: protocol.name().to_string(),
                            port,
                        })
                        .collect(),
                };
                match store.register_agent(&info).await {
                    Ok(()) => {
                        tracing::info!(agent = %me.agent_id, node = me.node_id, "registered in the cluster");
                        true
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot register in the cluster; retrying");
                        false
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "heartbeat failed; keeping the last known cluster");
                return registered;
            }
        };
        let since = now - i64::try_from(self.inner.timeout.as_millis()).unwrap_or(i64::MAX);
        match store.list_agents(since).await {
            Ok(agents) => {
                let agents = self.with_me(agents.iter().map(Agent::from).collect());
                self.follow_placement(&agents).await;
                self.set_live(agents);
            }
            Err(error) => {
                tracing::warn!(%error, "cannot list agents; keeping the last known cluster")
            }
        }
        if let Some(engine) = &self.engine
            && let Err(error) = engine.refresh_leader_epochs().await
        {
            tracing::warn!(%error, "cannot read leader epochs; keeping the last known ones");
        }
        registered
    }

    /// Records the leader moves between the live agents last recorded and
    /// `agents` (sorted, with this agent), before they are answered with.
    /// A failure is retried at the next heartbeat.
    async fn follow_placement(&self, agents: &[Agent]) {
        let ids: Vec<String> = agents.iter().map(|a| a.agent_id.clone()).collect();
        let recorded = self.inner.recorded.lock().clone();
        let done = match recorded {
            Some(before) if before == ids => return,
            before => self.record_moves(before.as_deref(), &ids).await,
        };
        if done {
            *self.inner.recorded.lock() = Some(ids);
        }
    }

    /// `agents` with this agent among them, sorted by id.
    fn with_me(&self, mut agents: Vec<Agent>) -> Vec<Agent> {
        if !agents.iter().any(|a| a.agent_id == self.inner.me.agent_id) {
            agents.push(self.inner.me.clone());
        }
        agents.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        agents
    }

    fn set_live(&self, agents: Vec<Agent>) {
        let agents = self.with_me(agents);
        let mut live = self.inner.live.write();
        if live
            .iter()
            .map(|a| &a.agent_id)
            .ne(agents.iter().map(|a| &a.agent_id))
        {
            tracing::info!(
                agents = ?agents.iter().map(|a| a.agent_id.as_str()).collect::<Vec<_>>(),
                "cluster membership changed"
            );
            metrics::gauge!("streamhouse_cluster_agents").set(agents.len() as f64);
        }
        *live = Arc::from(agents);
    }
}

/// A partition's placement key.
fn partition_key(topic: &str, partition: i32) -> Vec<u8> {
    let mut key = topic.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

/// Rendezvous score of `agent` for a key: FNV-1a over the three parts,
/// then a 64-bit finalizer so that similar keys spread. A fixed algorithm,
/// so agents of different builds agree.
fn score(agent: &str, kind: &[u8], key: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [agent.as_bytes(), kind, key] {
        for &byte in part {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn agent(id: &str) -> Agent {
        Agent {
            agent_id: id.into(),
            node_id: id.len() as i32,
            host: "127.0.0.1".into(),
            port: 9092,
            zone: None,
            listeners: vec![(SecurityProtocol::Plaintext, 9092)],
        }
    }

    async fn cluster(ids: &[&str]) -> Cluster {
        let store = streamhouse_metadata::testing::temp_sqlite()
            .await
            .expect("sqlite");
        let cluster = Cluster::new(
            Arc::new(store.store.clone()),
            agent(ids[0]),
            Duration::from_secs(10),
        );
        cluster.set_live(ids.iter().map(|id| agent(id)).collect());
        cluster
    }

    #[test]
    fn an_agent_is_reached_through_the_listener_of_the_same_protocol() {
        let info = AgentInfo {
            agent_id: "a".into(),
            node_id: 1,
            host: "h".into(),
            port: 9092,
            zone: None,
            started_at: 0,
            last_heartbeat: 0,
            listeners: vec![
                AgentListener {
                    protocol: "PLAINTEXT".into(),
                    port: 9092,
                },
                AgentListener {
                    protocol: "SASL_SSL".into(),
                    port: 9094,
                },
                AgentListener {
                    protocol: "FUTURE_PROTOCOL".into(),
                    port: 9099,
                },
            ],
        };
        let agent = Agent::from(&info);
        assert_eq!(agent.port_for(SecurityProtocol::Plaintext), Some(9092));
        assert_eq!(agent.port_for(SecurityProtocol::SaslSsl), Some(9094));
        assert_eq!(agent.port_for(SecurityProtocol::Ssl), None);
        // An agent registered before listeners were recorded.
        let old = Agent::from(&AgentInfo {
            listeners: Vec::new(),
            ..info
        });
        assert_eq!(old.port_for(SecurityProtocol::Plaintext), Some(9092));
        assert_eq!(old.port_for(SecurityProtocol::SaslPlaintext), None);
    }

    #[tokio::test]
    async fn placement_spreads_and_moves_little() {
        let three = cluster(&["a", "b", "c"]).await;
        let mut counts: HashMap<String, usize> = HashMap::new();
        let before: Vec<String> = (0..3000)
            .map(|p| three.leader("orders", p).agent_id)
            .collect();
        for owner in &before {
            *counts.entry(owner.clone()).or_default() += 1;
        }
        for (agent, count) in &counts {
            assert!((800..1200).contains(count), "{agent} leads {count} of 3000");
        }
        // Dropping "c" moves only c's partitions.
        let two = cluster(&["a", "b"]).await;
        for (p, owner) in before.iter().enumerate() {
            let now = two.leader("orders", p as i32).agent_id;
            if owner != "c" {
                assert_eq!(&now, owner, "partition {p} moved needlessly");
            }
        }
        // Agents agree whatever order they list each other in.
        let other_view = cluster(&["c", "b", "a"]).await;
        assert_eq!(other_view.coordinator("g1"), three.coordinator("g1"));
    }

    #[tokio::test]
    async fn membership_follows_the_store() {
        let temp = streamhouse_metadata::testing::temp_sqlite()
            .await
            .expect("sqlite");
        let store: Arc<dyn ClusterRegistry> = Arc::new(temp.store.clone());
        let a = Cluster::new(store.clone(), agent("a"), Duration::from_secs(10));
        let b = Cluster::new(store.clone(), agent("bb"), Duration::from_secs(10));
        assert!(a.beat(false).await);
        assert!(b.beat(false).await);
        assert!(a.beat(true).await);
        let ids: Vec<String> = a.live().iter().map(|x| x.agent_id.clone()).collect();
        assert_eq!(ids, ["a", "bb"]);
        store.deregister_agent("bb").await.expect("leave");
        a.beat(true).await;
        assert_eq!(a.live().len(), 1, "a deregistered agent is gone at once");
        // A silent agent drops out after the timeout.
        let stale = AgentInfo {
            agent_id: "old".into(),
            node_id: 1,
            host: "h".into(),
            port: 1,
            zone: None,
            started_at: 0,
            last_heartbeat: SystemClock.now_ms() - 60_000,
            listeners: Vec::new(),
        };
        store.register_agent(&stale).await.expect("register");
        a.beat(true).await;
        assert!(a.live().iter().all(|x| x.agent_id != "old"));
    }

    #[tokio::test]
    async fn a_partition_whose_leader_moves_gets_a_new_epoch_once() {
        let temp = streamhouse_metadata::testing::temp_sqlite()
            .await
            .expect("sqlite");
        let objects = tempfile::tempdir().expect("tempdir");
        let engine = StorageEngine::start(
            Arc::new(temp.store.clone()),
            streamhouse_storage::ObjectStorage::local(objects.path()).expect("local"),
            streamhouse_storage::StorageConfig::default(),
        );
        engine
            .create_topic(streamhouse_storage::NewTopic::new("orders", 30))
            .await
            .expect("create");
        let store = engine.cluster_registry();
        let timeout = Duration::from_secs(10);
        let a = Cluster::new(store.clone(), agent("a"), timeout).with_engine(engine.clone());
        let b = Cluster::new(store.clone(), agent("bb"), timeout).with_engine(engine.clone());
        let epochs = || {
            (0..30)
                .map(|p| engine.leader_epoch("orders", p))
                .collect::<Vec<i32>>()
        };
        assert!(a.beat(false).await);
        assert!(b.beat(false).await, "bb's first view records nothing");
        assert_eq!(epochs(), [0; 30]);

        // "a" sees "bb" join: the partitions bb now leads get epoch 1.
        assert!(a.beat(true).await);
        let joined = epochs();
        let led_by_b: Vec<i32> = (0..30)
            .filter(|&p| a.leader("orders", p).agent_id == "bb")
            .collect();
        assert!(!led_by_b.is_empty() && led_by_b.len() < 30);
        for p in 0..30 {
            let expected = i32::from(led_by_b.contains(&p));
            assert_eq!(joined[p as usize], expected, "partition {p}");
        }
        // bb's next heartbeats change nothing: it recorded its own view.
        assert!(b.beat(true).await);
        assert!(a.beat(true).await);
        assert_eq!(epochs(), joined);

        // bb leaves: its partitions come back to "a" with epoch 2.
        store.deregister_agent("bb").await.expect("leave");
        assert!(a.beat(true).await);
        for (p, epoch) in epochs().into_iter().enumerate() {
            let expected = if led_by_b.contains(&(p as i32)) { 2 } else { 0 };
            assert_eq!(epoch, expected, "partition {p}");
        }

        // A newcomer's first view differs from the leaders recorded: it
        // records the partitions it now leads itself, once.
        let c = Cluster::new(store.clone(), agent("ccc"), timeout).with_engine(engine.clone());
        let before_c = epochs();
        assert!(c.beat(false).await);
        let led_by_c: Vec<i32> = (0..30)
            .filter(|&p| c.leader("orders", p).agent_id == "ccc")
            .collect();
        assert!(!led_by_c.is_empty());
        assert!(a.beat(true).await, "a sees ccc join: nothing left to bump");
        for (p, epoch) in epochs().into_iter().enumerate() {
            let expected = before_c[p] + i32::from(led_by_c.contains(&(p as i32)));
            assert_eq!(epoch, expected, "partition {p}");
        }
        engine.shutdown().await;
    }

    #[tokio::test]
    async fn liveness_follows_the_cluster_clock() {
        let temp = streamhouse_metadata::testing::temp_sqlite()
            .await
            .expect("sqlite");
        let store: Arc<dyn ClusterRegistry> = Arc::new(temp.store.clone());
        let clock = Arc::new(streamhouse_core::clock::ManualClock::starting_at(
            1_700_000_000_000,
        ));
        let timeout = Duration::from_secs(10);
        let a = Cluster::new(store.clone(), agent("a"), timeout).with_clock(clock.clone());
        let b = Cluster::new(store.clone(), agent("bb"), timeout).with_clock(clock.clone());
        assert!(a.beat(false).await);
        assert!(b.beat(false).await);
        let agents = store.list_agents(0).await.expect("list");
        assert!(
            agents
                .iter()
                .all(|agent| agent.last_heartbeat == 1_700_000_000_000),
            "heartbeats carry the clock's time: {agents:?}"
        );
        assert!(a.beat(true).await);
        assert_eq!(a.live().len(), 2);

        // "bb" stays silent while the clock passes the timeout.
        clock.advance(timeout + Duration::from_secs(1));
        assert!(a.beat(true).await);
        let ids: Vec<String> = a.live().iter().map(|x| x.agent_id.clone()).collect();
        assert_eq!(ids, ["a"], "a silent agent drops out once the clock passes");
        assert!(b.beat(true).await);
        assert!(a.beat(true).await);
        assert_eq!(a.live().len(), 2, "it is back after its next heartbeat");
    }
}
