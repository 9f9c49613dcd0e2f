//! FindCoordinator: this agent coordinates every group.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};

use super::str_bytes;
use crate::server::Broker;

pub(crate) fn handle(
    broker: &Broker,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let node_id = broker.config.node_id;
    let host = str_bytes(broker.config.advertised_host.clone());
    let port = i32::from(broker.config.advertised_port);
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(node_id.into())
                    .with_host(host.clone())
                    .with_port(port)
                    .with_error_code(0)
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        FindCoordinatorResponse::default()
            .with_error_code(0)
            .with_node_id(node_id.into())
            .with_host(host)
            .with_port(port)
    }
}
