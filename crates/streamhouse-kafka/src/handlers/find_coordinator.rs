//! FindCoordinator: the live agent that rendezvous hashing picks for the
//! group (or transactional id). Any agent answers the same. A group key
//! needs Describe on the group, a transactional id Describe on it.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};

use kafka_protocol::protocol::StrBytes;
use streamhouse_storage::security::AclOperation;

use super::access::Access;
use super::common::str_bytes;
use crate::broker::{Broker, RequestContext};

/// FindCoordinator's key type of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;

pub(crate) fn handle(
    broker: &Broker,
    context: &RequestContext,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let access = Access::of(broker, context);
    let describe = |key: &StrBytes| {
        if request.key_type == KEY_TYPE_TRANSACTION {
            access.transactional_id(AclOperation::Describe, key)
        } else {
            access.group(AclOperation::Describe, key)
        }
    };
    // The coordinator at its port for the client's listener; one without
    // that listener cannot be reached by this client.
    let listener = context.listener;
    let unreachable = ResponseError::CoordinatorNotAvailable.code();
    if context.version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                if let Err(code) = describe(key) {
                    return Coordinator::default()
                        .with_key(key.clone())
                        .with_node_id((-1).into())
                        .with_port(-1)
                        .with_error_code(code);
                }
                let agent = broker.cluster.coordinator(key);
                match agent.port_for(listener) {
                    Some(port) => Coordinator::default()
                        .with_key(key.clone())
                        .with_node_id(agent.node_id.into())
                        .with_host(str_bytes(agent.host))
                        .with_port(port)
                        .with_error_code(0),
                    None => Coordinator::default()
                        .with_key(key.clone())
                        .with_node_id((-1).into())
                        .with_port(-1)
                        .with_error_code(unreachable),
                }
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else if let Err(code) = describe(&request.key) {
        FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_node_id((-1).into())
            .with_port(-1)
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
