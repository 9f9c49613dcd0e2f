//! What every request handler shares: the engine, the group coordinator,
//! the cluster view and the request and response budgets. The server loop
//! builds one [`Broker`] and hands it to the handlers; handlers never see
//! the loop.

use std::sync::Arc;

use streamhouse_storage::StorageEngine;
use streamhouse_storage::security::Caller;
use tokio::sync::Semaphore;

use crate::cluster::{Agent, Cluster};
use crate::config::KafkaConfig;
use crate::coordinator::GroupCoordinator;
use crate::listener::SecurityProtocol;

/// What a response other than a Fetch answer is assumed to hold.
pub(crate) const SMALL_RESPONSE_BYTES: usize = 1 << 20;
/// Semaphores count at most this many permits.
const MAX_PERMITS: usize = u32::MAX as usize >> 3;

/// What the handlers share.
pub(crate) struct Broker {
    pub(crate) engine: StorageEngine,
    pub(crate) config: KafkaConfig,
    pub(crate) groups: GroupCoordinator,
    pub(crate) cluster: Cluster,
    /// Request bytes being read or waiting (`queued.max.request.bytes`).
    pub(crate) request_budget: Arc<Semaphore>,
    /// Fetch answers being built or written, across connections.
    pub(crate) response_budget: Arc<Semaphore>,
    pub(crate) response_budget_size: u32,
    /// Derives the fake SCRAM credential of unknown users, the same for
    /// the same name while this process runs.
    pub(crate) sasl_secret: [u8; 32],
}

/// Who sent a request.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) version: i16,
    /// The protocol of the listener the client connected through.
    pub(crate) listener: SecurityProtocol,
    /// The connection's principal and the client's address, for
    /// authorization.
    pub(crate) caller: Caller,
}

impl Broker {
    pub(crate) fn new(engine: StorageEngine, config: KafkaConfig) -> Self {
        let groups =
            GroupCoordinator::with_consumer_protocol(config.group_limits.clone(), engine.clone());
        let me = Agent {
            agent_id: config.agent_id.clone(),
            node_id: config.node_id,
            host: config.advertised_host.clone(),
            port: i32::from(config.advertised_port),
            zone: config.zone.clone(),
            listeners: config
                .listeners()
                .into_iter()
                .map(|(protocol, port)| (protocol, i32::from(port)))
                .collect(),
        };
        let cluster = Cluster::new(engine.cluster_registry(), me, config.agent_timeout)
            .with_clock(engine.clock().clone())
            .with_engine(engine.clone());
        // The same amount again for answers as for requests, and never less
        // than one full Fetch answer.
        let budget = config.queued_max_request_bytes.clamp(1, MAX_PERMITS);
        let response_budget_size = budget.max(connection_budget_size(&config)) as u32;
        Self {
            engine,
            groups,
            cluster,
            request_budget: Arc::new(Semaphore::new(budget)),
            response_budget: Arc::new(Semaphore::new(response_budget_size as usize)),
            response_budget_size,
            sasl_secret: rand::random(),
            config,
        }
    }
}

/// The response bytes one connection may hold: one full Fetch answer and
/// the small answers around it.
pub(crate) fn connection_budget_size(config: &KafkaConfig) -> usize {
    config
        .fetch_max_bytes
        .saturating_add(SMALL_RESPONSE_BYTES)
        .min(MAX_PERMITS)
}
