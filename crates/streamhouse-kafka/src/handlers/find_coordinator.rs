//! FindCoordinator: the live agent that rendezvous hashing picks for the
//! group (or transactional id). Any agent answers the same.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};

use super::common::str_bytes;
use crate::broker::Broker;

pub(crate) fn handle(
    broker: &Broker,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let agent = broker.cluster.coordinator(&key);
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(agent.node_id.into())
                    .with_host(str_bytes(agent.host))
                    .with_port(agent.port)
                    .with_error_code(0)
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let agent = broker.cluster.coordinator(&request.key);
        FindCoordinatorResponse::default()
            .with_error_code(0)
            .with_node_id(agent.node_id.into())
            .with_host(str_bytes(agent.host))
            .with_port(agent.port)
    }
}
