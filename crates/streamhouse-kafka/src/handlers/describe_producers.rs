//! DescribeProducers (KIP-664): the producers each partition keeps state
//! for, as `kafka-transactions.sh describe-producers` and admin clients
//! show them to find a transaction that holds a partition's last stable
//! offset back. Needs Read on the topic, as in Kafka.
//!
//! A topic or partition the request names more than once is answered once:
//! the metadata store's work and the answer (each partition's producers)
//! are bounded by the partitions that exist, not by the request's size.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, TopicName};
use streamhouse_storage::security::AclOperation;

use super::access::Access;
use super::common::partition_count_if;
use crate::broker::{Broker, RequestContext};
use crate::error::storage_error_code;

pub(crate) async fn handle(
    broker: &Broker,
    context: &RequestContext,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let access = Access::of(broker, context);
    let mut requested: BTreeMap<TopicName, BTreeSet<i32>> = BTreeMap::new();
    for topic in request.topics {
        requested
            .entry(topic.name)
            .or_default()
            .extend(topic.partition_indexes);
    }
    let mut topics = Vec::with_capacity(requested.len());
    for (topic_name, indexes) in requested {
        let name = topic_name.0.to_string();
        // Partitions the topic does not have cost no query.
        let known = partition_count_if(broker, access, AclOperation::Read, &name).await;
        let mut partitions = Vec::with_capacity(indexes.len());
        for partition in indexes {
            let answer = PartitionResponse::default().with_partition_index(partition);
            match known {
                Err(code) => {
                    partitions.push(answer.with_error_code(code));
                    continue;
                }
                Ok(count) if !(0..count).contains(&partition) => {
                    partitions.push(
                        answer.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                    );
                    continue;
                }
                Ok(_) => {}
            }
            partitions.push(
                match broker.engine.describe_producers(&name, partition).await {
                    Ok(producers) => answer.with_active_producers(
                        producers
                            .into_iter()
                            .map(|p| {
                                ProducerState::default()
                                    .with_producer_id(p.producer_id.into())
                                    .with_producer_epoch(i32::from(p.producer_epoch))
                                    .with_last_sequence(p.last_sequence)
                                    .with_last_timestamp(p.last_timestamp)
                                    // Coordinator epochs do not exist here:
                                    // any agent may write markers.
                                    .with_coordinator_epoch(-1)
                                    .with_current_txn_start_offset(
                                        p.current_txn_start_offset.unwrap_or(-1),
                                    )
                            })
                            .collect(),
                    ),
                    Err(error) => answer.with_error_code(storage_error_code(&error)),
                },
            );
        }
        topics.push(
            TopicResponse::default()
                .with_name(topic_name)
                .with_partitions(partitions),
        );
    }
    DescribeProducersResponse::default().with_topics(topics)
}
