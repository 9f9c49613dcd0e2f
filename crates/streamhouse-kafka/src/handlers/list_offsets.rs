//! ListOffsets: the earliest offset (-2), the latest (-1, the high
//! watermark), or the first offset whose record is at or after a timestamp.
//! Each topic needs Describe.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use streamhouse_storage::security::AclOperation;

use super::access::Access;
use crate::broker::{Broker, RequestContext};
use crate::error::storage_error_code;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

pub(crate) async fn handle(
    broker: &Broker,
    context: &RequestContext,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let access = Access::of(broker, context);
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let describe = access.topic(AclOperation::Describe, &name);
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for wanted in topic.partitions {
            let response = ListOffsetsPartitionResponse::default()
                .with_partition_index(wanted.partition_index)
                .with_leader_epoch(-1);
            if let Err(code) = describe {
                partitions.push(
                    response
                        .with_error_code(code)
                        .with_offset(-1)
                        .with_timestamp(-1),
                );
                continue;
            }
            let found = match wanted.timestamp {
                LATEST => broker
                    .engine
                    .partition_info(&name, wanted.partition_index)
                    .await
                    .map(|info| {
                        // read_committed (1) sees up to the last stable
                        // offset.
                        let latest = if request.isolation_level == 1 {
                            info.last_stable_offset
                        } else {
                            info.high_watermark
                        };
                        (latest, -1)
                    }),
                EARLIEST => broker
                    .engine
                    .partition_info(&name, wanted.partition_index)
                    .await
                    .map(|info| (info.log_start_offset, -1)),
                timestamp => broker
                    .engine
                    .reader(&name, wanted.partition_index)
                    .offset_for_timestamp(timestamp)
                    .await
                    .map(|found| found.unwrap_or((-1, -1))),
            };
            partitions.push(match found {
                Ok((offset, timestamp)) => response
                    .with_error_code(0)
                    .with_offset(offset)
                    .with_timestamp(timestamp),
                Err(error) => response
                    .with_error_code(storage_error_code(&error))
                    .with_offset(-1)
                    .with_timestamp(-1),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}
