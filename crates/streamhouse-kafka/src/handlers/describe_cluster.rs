//! DescribeCluster (60): the cluster id, the brokers (the live agents, at
//! their port for the client's listener) and a controller id, as admin
//! clients' `describe_cluster` show them. Like Metadata it needs no ACL;
//! the cluster's authorized operations are given when asked for. Agents
//! have no controllers to list: asking for them (endpoint type 2) gets
//! UNSUPPORTED_ENDPOINT_TYPE, as from a Kafka broker.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};
use streamhouse_storage::security::{CLUSTER_NAME, ResourceType};

use super::access::Access;
use super::common::str_bytes;
use super::metadata::listed_brokers;
use crate::broker::{Broker, RequestContext};

const BROKERS: i8 = 1;
const UNSUPPORTED_ENDPOINT_TYPE: i16 = 119;

pub(crate) fn handle(
    broker: &Broker,
    context: &RequestContext,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(broker.config.cluster_id.clone()))
        .with_controller_id(broker.config.node_id.into());
    if request.endpoint_type != BROKERS {
        return response
            .with_error_code(UNSUPPORTED_ENDPOINT_TYPE)
            .with_error_message(Some(str_bytes(
                "only brokers can be described: the agents have no controllers".to_string(),
            )));
    }
    let operations = Access::of(broker, context).operations_if(
        request.include_cluster_authorized_operations,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    response
        .with_cluster_authorized_operations(operations)
        .with_brokers(
            listed_brokers(broker, context.listener)
                .into_iter()
                .map(|listed| {
                    DescribeClusterBroker::default()
                        .with_broker_id(listed.node_id.into())
                        .with_host(str_bytes(listed.host))
                        .with_port(listed.port)
                        .with_rack(listed.rack.map(str_bytes))
                })
                .collect(),
        )
}
