//! DeleteTopics, by name or (v6) by topic id. Objects are removed later by
//! garbage collection; the topic's metadata goes at once.
//!
//! Each topic needs Delete (TOPIC_AUTHORIZATION_FAILED, before looking
//! whether it exists, as Kafka does); a topic named by id to a caller that
//! may not Describe it is answered without its name.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use streamhouse_storage::security::AclOperation;

use super::access::Access;
use super::common::str_bytes;
use crate::broker::{Broker, RequestContext};
use crate::error::storage_error_code;

pub(crate) async fn handle(
    broker: &Broker,
    context: &RequestContext,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let version = context.version;
    let access = Access::of(broker, context);
    // (name if given, topic id)
    let mut wanted: Vec<(Option<String>, uuid::Uuid)> = request
        .topic_names
        .iter()
        .map(|name| (Some(name.0.to_string()), uuid::Uuid::nil()))
        .collect();
    wanted.extend(
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)),
    );
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, topic_id) in wanted {
        let by_id = name.is_none();
        let name = match name {
            Some(name) => Ok(name),
            None => match broker.engine.list_topics().await {
                Ok(topics) => topics
                    .into_iter()
                    .find(|t| t.topic_id == topic_id.to_string())
                    .map(|t| t.name.clone())
                    .ok_or(ResponseError::UnknownTopicId.code()),
                Err(error) => Err(storage_error_code(&error)),
            },
        };
        let result = DeletableTopicResult::default().with_topic_id(topic_id);
        responses.push(match name {
            Ok(name) if by_id && access.topic(AclOperation::Describe, &name).is_err() => result
                .with_error_code(super::access::TOPIC_AUTHORIZATION_FAILED)
                .with_name(None),
            Ok(name) if access.topic(AclOperation::Delete, &name).is_err() => result
                .with_error_code(super::access::TOPIC_AUTHORIZATION_FAILED)
                .with_name(Some(TopicName(str_bytes(name)))),
            Ok(name) => {
                let outcome = broker.engine.delete_topic(&name).await;
                let result = result.with_name(Some(TopicName(str_bytes(name.clone()))));
                match outcome {
                    Ok(()) => {
                        tracing::info!(topic = %name, "deleted topic");
                        result.with_error_code(0)
                    }
                    Err(error) => result
                        .with_error_code(crate::error::storage_error_code(&error))
                        .with_error_message((version >= 5).then(|| str_bytes(error.to_string()))),
                }
            }
            Err(code) => result.with_error_code(code),
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
