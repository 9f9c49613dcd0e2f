//! DescribeTopicPartitions (75): topics and their partitions a page at a
//! time, as Kafka 3.8+ admin clients' `describeTopics` ask for them
//! (KIP-966): topics in name order from the request's cursor, at most
//! `response_partition_limit` partitions (between 1 and 2000, Kafka's
//! `max.request.partition.size.limit`), and a next cursor where the page
//! ends. Each partition has its leader (the agent placement puts it on),
//! its leader epoch, and that agent as its only replica.
//!
//! As Kafka: no topics named means every topic, those the caller may not
//! Describe left out; a named topic the caller may not Describe gets
//! TOPIC_AUTHORIZATION_FAILED (after the others, no id; those past the
//! page's end in a later page), one that does not
//! exist UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION for an invalid
//! name); a cursor naming a topic the request does not, or a negative
//! partition, gets INVALID_REQUEST for every topic. A topic named more than
//! once is answered once, and topics are found in one listing, so the work
//! is bounded by the topics that exist.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use streamhouse_storage::Topic;
use streamhouse_storage::security::{AclOperation, ResourceType};

use super::access::{Access, TOPIC_AUTHORIZATION_FAILED};
use super::common::{str_bytes, topic_uuid};
use crate::broker::{Broker, RequestContext};
use crate::error::storage_error_code;

/// Kafka's `max.request.partition.size.limit` default: the most partitions
/// one answer holds.
const MAX_PARTITIONS: i32 = 2000;

pub(crate) async fn handle(
    broker: &Broker,
    context: &RequestContext,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let access = Access::of(broker, context);
    let every_topic = request.topics.is_empty();
    let (cursor_topic, cursor_partition) = match &request.cursor {
        Some(cursor) => (cursor.topic_name.0.to_string(), cursor.partition_index),
        None => (String::new(), 0),
    };
    let named: BTreeSet<String> = request
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .filter(|name| *name >= cursor_topic)
        .collect();
    let invalid_cursor = request.cursor.is_some()
        && ((!every_topic && !named.contains(&cursor_topic)) || cursor_partition < 0);
    if invalid_cursor {
        return refuse_all(&request, ResponseError::InvalidRequest.code());
    }
    let listed: HashMap<String, Arc<Topic>> = match broker.engine.list_topics().await {
        Ok(topics) => topics.into_iter().map(|t| (t.name.clone(), t)).collect(),
        Err(error) => return refuse_all(&request, storage_error_code(&error)),
    };
    let candidates: BTreeSet<String> = if every_topic {
        listed
            .keys()
            .filter(|name| **name >= cursor_topic)
            .cloned()
            .collect()
    } else {
        named
    };
    let mut refused = Vec::new();
    let mut topics = Vec::new();
    let mut next_cursor = None;
    let mut remaining = request.response_partition_limit.clamp(1, MAX_PARTITIONS);
    for name in candidates {
        if !access.allows(AclOperation::Describe, ResourceType::Topic, &name) {
            if !every_topic {
                refused.push(
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_error_code(TOPIC_AUTHORIZATION_FAILED)
                        .with_name(Some(TopicName(str_bytes(name)))),
                );
            }
            continue;
        }
        if remaining == 0 {
            // The page is full: the next one starts with this topic.
            next_cursor = Some(cursor(&name, 0));
            break;
        }
        let Some(topic) = listed.get(&name) else {
            let code = match streamhouse_core::validate_topic_name(&name) {
                Ok(()) => ResponseError::UnknownTopicOrPartition.code(),
                Err(_) => ResponseError::InvalidTopicException.code(),
            };
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(code)
                    .with_name(Some(TopicName(str_bytes(name)))),
            );
            continue;
        };
        let first = if name == cursor_topic {
            cursor_partition
        } else {
            0
        };
        let end = topic.partition_count.min(first.saturating_add(remaining));
        let partitions: Vec<_> = (first..end)
            .map(|partition| describe_partition(broker, &name, partition))
            .collect();
        remaining -= i32::try_from(partitions.len()).unwrap_or(remaining);
        let operations = access.operations(ResourceType::Topic, &name);
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_error_code(0)
                .with_name(Some(TopicName(str_bytes(name.clone()))))
                .with_topic_id(topic_uuid(topic))
                .with_is_internal(false)
                .with_partitions(partitions)
                .with_topic_authorized_operations(operations),
        );
        if end < topic.partition_count {
            // The rest of this topic's partitions make the next page.
            next_cursor = Some(cursor(&name, end));
            break;
        }
    }
    topics.extend(refused);
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(str_bytes(topic)))
        .with_partition_index(partition)
}

fn describe_partition(
    broker: &Broker,
    topic: &str,
    partition: i32,
) -> DescribeTopicPartitionsResponsePartition {
    let node = broker.cluster.leader(topic, partition).node_id;
    DescribeTopicPartitionsResponsePartition::default()
        .with_error_code(0)
        .with_partition_index(partition)
        .with_leader_id(node.into())
        .with_leader_epoch(broker.engine.leader_epoch(topic, partition))
        .with_replica_nodes(vec![node.into()])
        .with_isr_nodes(vec![node.into()])
        .with_eligible_leader_replicas(Some(Vec::new()))
        .with_last_known_elr(Some(Vec::new()))
        .with_offline_replicas(Vec::new())
}

/// Every named topic with `code`, as Kafka answers a request it refuses
/// as a whole.
fn refuse_all(
    request: &DescribeTopicPartitionsRequest,
    code: i16,
) -> DescribeTopicPartitionsResponse {
    DescribeTopicPartitionsResponse::default().with_topics(
        request
            .topics
            .iter()
            .map(|topic| {
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(code)
                    .with_name(Some(topic.name.clone()))
            })
            .collect(),
    )
}
