//! DeleteRecords: moves partitions' log start offsets forward; segments
//! wholly below them are dropped, and their objects garbage collected.
//! Each topic needs Delete (TOPIC_AUTHORIZATION_FAILED per partition).

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use streamhouse_storage::security::AclOperation;

use super::access::Access;
use crate::broker::{Broker, RequestContext};
use crate::error::storage_error_code;

pub(crate) async fn handle(
    broker: &Broker,
    context: &RequestContext,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let access = Access::of(broker, context);
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let delete = access.topic(AclOperation::Delete, &topic.name.0);
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in topic.partitions {
            let result = DeleteRecordsPartitionResult::default()
                .with_partition_index(partition.partition_index);
            if let Err(code) = delete {
                partitions.push(result.with_low_watermark(-1).with_error_code(code));
                continue;
            }
            partitions.push(
                match broker
                    .engine
                    .delete_records(&topic.name, partition.partition_index, partition.offset)
                    .await
                {
                    Ok(low_watermark) => result.with_low_watermark(low_watermark).with_error_code(0),
                    Err(error) => {
                        tracing::debug!(topic = %topic.name.0, partition = partition.partition_index,
                            %error, "delete records failed");
                        result
                            .with_low_watermark(-1)
                            .with_error_code(storage_error_code(&error))
                    }
                },
            );
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
