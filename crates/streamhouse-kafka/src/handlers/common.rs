//! Helpers the request handlers share.

use kafka_protocol::protocol::StrBytes;
use streamhouse_storage::Topic;

use streamhouse_storage::security::AclOperation;

use super::access::Access;
use crate::broker::Broker;
use crate::error::storage_error_code;

/// DescribeConfigs' config source for a value set on the topic.
pub(crate) const SOURCE_TOPIC: i8 = 1;
/// DescribeConfigs' config source for a default value.
pub(crate) const SOURCE_DEFAULT: i8 = 5;

pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// The topic's id as Kafka clients see it (nil if the stored id is not a
/// UUID).
pub(crate) fn topic_uuid(topic: &Topic) -> uuid::Uuid {
    uuid::Uuid::parse_str(&topic.topic_id).unwrap_or_default()
}

/// Whether this agent coordinates `group`. If not, forgets anything it
/// held for the group (it coordinated it before membership changed).
pub(crate) fn coordinates(broker: &Broker, group: &str) -> bool {
    let coordinator = broker.cluster.coordinator(group);
    if broker.cluster.is_me(&coordinator) {
        true
    } else {
        broker.groups.forget(group);
        false
    }
}

/// The partition count of a topic the caller may `operation`, or the error
/// code each of its partitions gets (authorization, unknown topic, store
/// unreachable): one lookup per topic for requests that name partitions.
pub(crate) async fn partition_count_if(
    broker: &Broker,
    access: Access<'_>,
    operation: AclOperation,
    topic: &str,
) -> Result<i32, i16> {
    access.topic(operation, topic)?;
    broker
        .engine
        .topic(topic)
        .await
        .map(|t| t.partition_count)
        .map_err(|e| storage_error_code(&e))
}
