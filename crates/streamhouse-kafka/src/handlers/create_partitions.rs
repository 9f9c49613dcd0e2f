//! CreatePartitions: grow a topic. Existing partitions keep their data.
//! Each topic needs Alter (TOPIC_AUTHORIZATION_FAILED).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use streamhouse_storage::MetadataError;
use streamhouse_storage::StorageError;

use streamhouse_storage::security::AclOperation;

use super::access::Access;
use super::common::str_bytes;
use crate::broker::{Broker, RequestContext};
use crate::error::storage_error_code;

pub(crate) async fn handle(
    broker: &Broker,
    context: &RequestContext,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let access = Access::of(broker, context);
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let outcome = if let Err(code) = access.topic(AclOperation::Alter, &name) {
            Err((code, format!("not authorized to alter topic {name:?}")))
        } else if request.validate_only {
            match broker.engine.load_topic(&name).await {
                Ok(current) if topic.count > current.partition_count => Ok(()),
                Ok(current) => Err((
                    ResponseError::InvalidPartitions.code(),
                    format!(
                        "topic {name} has {} partitions; the new count must be larger",
                        current.partition_count
                    ),
                )),
                Err(error) => Err((storage_error_code(&error), error.to_string())),
            }
        } else {
            match broker
                .engine
                .add_partitions(&name, i64::from(topic.count))
                .await
            {
                Ok(_) => {
                    tracing::info!(topic = %name, count = topic.count, "added partitions");
                    Ok(())
                }
                Err(StorageError::Metadata(error))
                    if matches!(*error, MetadataError::InvalidArgument { .. }) =>
                {
                    Err((ResponseError::InvalidPartitions.code(), error.to_string()))
                }
                Err(error) => Err((storage_error_code(&error), error.to_string())),
            }
        };
        let result = CreatePartitionsTopicResult::default().with_name(topic.name);
        results.push(match outcome {
            Ok(()) => result.with_error_code(0),
            Err((code, message)) => result
                .with_error_code(code)
                .with_error_message(Some(str_bytes(message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
