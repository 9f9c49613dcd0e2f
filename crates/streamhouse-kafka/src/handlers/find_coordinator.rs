//! FindCoordinator: the live agent that rendezvous hashing picks for the
//! group (or transactional id). Any agent answers the same.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};

use super::common::str_bytes;
use crate::broker::Broker;
use crate::listener::SecurityProtocol;

pub(crate) fn handle(
    broker: &Broker,
    request: FindCoordinatorRequest,
    version: i16,
    listener: SecurityProtocol,
) -> FindCoordinatorResponse {
    // The coordinator at its port for the client's listener; one without
    // that listener cannot be reached by this client.
    let unreachable = ResponseError::CoordinatorNotAvailable.code();
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let agent = broker.cluster.coordinator(&key);
                match agent.port_for(listener) {
                    Some(port) => Coordinator::default()
                        .with_key(key)
                        .with_node_id(agent.node_id.into())
                        .with_host(str_bytes(agent.host))
                        .with_port(port)
                        .with_error_code(0),
                    None => Coordinator::default()
                        .with_key(key)
                        .with_node_id((-1).into())
                        .with_port(-1)
                        .with_error_code(unreachable),
                }
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let agent = broker.cluster.coordinator(&request.key);
        match agent.port_for(listener) {
            Some(port) => FindCoordinatorResponse::default()
                .with_error_code(0)
                .with_node_id(agent.node_id.into())
                .with_host(str_bytes(agent.host))
                .with_port(port),
            None => FindCoordinatorResponse::default()
                .with_error_code(unreachable)
                .with_node_id((-1).into())
                .with_port(-1),
        }
    }
}
