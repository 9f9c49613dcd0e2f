//! CreateTopics. The replication factor is accepted and reported but has no
//! effect: durability comes from the object store, not from replicas.
//!
//! Each topic needs Create on the cluster or on the topic
//! (TOPIC_AUTHORIZATION_FAILED); its configs are in the answer only for a
//! caller that may DescribeConfigs it.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use streamhouse_core::{TopicConfig, validate_partition_count, validate_topic_name};
use streamhouse_storage::{NewTopic, StorageError, Topic};

use streamhouse_storage::security::AclOperation;

use super::access::{Access, TOPIC_AUTHORIZATION_FAILED};
use super::common::str_bytes;
use super::common::{SOURCE_DEFAULT, SOURCE_TOPIC, topic_uuid};
use crate::broker::{Broker, RequestContext};
use crate::error::storage_error_code;

pub(crate) async fn handle(
    broker: &Broker,
    context: &RequestContext,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let version = context.version;
    let access = Access::of(broker, context);
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let result = CreatableTopicResult::default().with_name(topic.name.clone());
        let replication_factor = topic.replication_factor;
        let outcome = if access.may_create_topic(&topic.name.0) {
            create(broker, topic, request.validate_only).await
        } else {
            Err((
                TOPIC_AUTHORIZATION_FAILED,
                format!("not authorized to create topic {:?}", topic.name.0.as_str()),
            ))
        };
        results.push(match outcome {
            Ok(created) => {
                let result = result
                    .with_error_code(0)
                    .with_topic_id(topic_uuid(&created))
                    .with_num_partitions(created.partition_count)
                    .with_replication_factor(replication_factor.max(1));
                if version < 5 {
                    result
                } else if let Err(code) = access.topic(AclOperation::DescribeConfigs, &created.name)
                {
                    result.with_topic_config_error_code(code)
                } else {
                    result.with_configs(Some(config_entries(&created.config)))
                }
            }
            Err((code, message)) => result
                .with_error_code(code)
                .with_error_message(Some(str_bytes(message)))
                .with_num_partitions(-1)
                .with_replication_factor(-1),
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}

async fn create(
    broker: &Broker,
    topic: CreatableTopic,
    validate_only: bool,
) -> Result<Topic, (i16, String)> {
    let name = topic.name.0.to_string();
    let invalid = |code: ResponseError, message: String| Err((code.code(), message));
    if let Err(error) = validate_topic_name(&name) {
        return invalid(ResponseError::InvalidTopicException, error.to_string());
    }
    let partitions = match (topic.num_partitions, topic.assignments.len()) {
        (-1, 0) => i64::from(broker.config.default_partitions),
        (-1, assigned) => assigned as i64,
        (requested, _) => i64::from(requested),
    };
    if let Err(error) = validate_partition_count(partitions) {
        return invalid(ResponseError::InvalidPartitions, error.to_string());
    }
    if topic.replication_factor == 0 || topic.replication_factor < -1 {
        return invalid(
            ResponseError::InvalidReplicationFactor,
            format!("replication factor {} is invalid", topic.replication_factor),
        );
    }
    let config = TopicConfig::from_pairs(
        topic
            .configs
            .into_iter()
            .filter_map(|c| c.value.map(|v| (c.name.to_string(), v.to_string()))),
    )
    .map_err(|e| (ResponseError::InvalidConfig.code(), e.to_string()))?;
    let new_topic = NewTopic::new(name.clone(), partitions).with_config(config);
    if validate_only {
        return match broker.engine.load_topic(&name).await {
            Ok(_) => invalid(
                ResponseError::TopicAlreadyExists,
                format!("topic {name:?} already exists"),
            ),
            Err(StorageError::UnknownTopic { .. }) => Ok(Topic {
                name,
                topic_id: uuid::Uuid::nil().to_string(),
                partition_count: partitions as i32,
                config: new_topic.config,
                created_at: 0,
            }),
            Err(error) => Err((storage_error_code(&error), error.to_string())),
        };
    }
    match broker.engine.create_topic(new_topic).await {
        Ok(created) => {
            tracing::info!(topic = %name, partitions, "created topic");
            Ok(created)
        }
        Err(error) => Err((storage_error_code(&error), error.to_string())),
    }
}

fn config_entries(config: &TopicConfig) -> Vec<CreatableTopicConfigs> {
    config
        .entries()
        .into_iter()
        .map(|entry| {
            CreatableTopicConfigs::default()
                .with_name(str_bytes(entry.name))
                .with_value(Some(str_bytes(entry.value)))
                .with_read_only(false)
                .with_config_source(if entry.is_default {
                    SOURCE_DEFAULT
                } else {
                    SOURCE_TOPIC
                })
                .with_is_sensitive(false)
        })
        .collect()
}
