//! ListOffsets: the earliest offset (-2), the latest (-1, the high
//! watermark), or the first offset whose record is at or after a timestamp.
//! Each topic needs Describe.
//!
//! Each offset comes with the leader epoch it belongs to (v4+): the epoch
//! of the record at the earliest offset or at the timestamp's, and for the
//! latest offset the epoch the high watermark was read with. A request's
//! `current_leader_epoch` is checked as Fetch checks it.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use streamhouse_storage::StorageError;
use streamhouse_storage::security::AclOperation;

use super::access::Access;
use super::fetch::epoch_mismatch;
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
    // Answers carry the leader epoch from v4; below, the field must stay
    // at its default to be encoded.
    let with_epoch = context.version >= 4;
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let describe = access.topic(AclOperation::Describe, &name);
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for wanted in topic.partitions {
            let response = ListOffsetsPartitionResponse::default()
                .with_partition_index(wanted.partition_index)
                .with_leader_epoch(-1);
            let refused = |code: i16| {
                response
                    .clone()
                    .with_error_code(code)
                    .with_offset(-1)
                    .with_timestamp(-1)
            };
            if let Err(code) = describe {
                partitions.push(refused(code));
                continue;
            }
            let epoch = broker.engine.leader_epoch(&name, wanted.partition_index);
            if let Some(code) = epoch_mismatch(wanted.current_leader_epoch, epoch) {
                partitions.push(refused(code));
                continue;
            }
            let found = offset_of(
                broker,
                &name,
                wanted.partition_index,
                wanted.timestamp,
                request.isolation_level,
            )
            .await;
            partitions.push(match found {
                Ok((offset, timestamp, leader_epoch)) => response
                    .with_error_code(0)
                    .with_offset(offset)
                    .with_timestamp(timestamp)
                    .with_leader_epoch(if with_epoch { leader_epoch } else { -1 }),
                Err(error) => refused(storage_error_code(&error)),
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

/// The offset `timestamp` asks for, the timestamp of its record (-1 when
/// not asked by time) and the leader epoch it belongs to.
async fn offset_of(
    broker: &Broker,
    topic: &str,
    partition: i32,
    timestamp: i64,
    isolation_level: i8,
) -> Result<(i64, i64, i32), StorageError> {
    let engine = &broker.engine;
    match timestamp {
        LATEST => {
            let info = engine.partition_info(topic, partition).await?;
            // read_committed (1) sees up to the last stable offset.
            let latest = if isolation_level == 1 {
                info.last_stable_offset
            } else {
                info.high_watermark
            };
            Ok((latest, -1, info.leader_epoch))
        }
        EARLIEST => {
            let info = engine.partition_info(topic, partition).await?;
            let history = engine
                .epoch_history(topic, partition, info.leader_epoch)
                .await?;
            Ok((
                info.log_start_offset,
                -1,
                history.epoch_at(info.log_start_offset),
            ))
        }
        timestamp => {
            let found = engine
                .reader(topic, partition)
                .offset_for_timestamp(timestamp)
                .await?;
            let Some((offset, timestamp)) = found else {
                return Ok((-1, -1, -1));
            };
            // The record found may be newer than what this agent has read;
            // the partition read after it was found holds it below its
            // high watermark, so its epoch is known.
            let info = engine.fresh_partition_info(topic, partition).await?;
            let history = engine
                .epoch_history(topic, partition, info.leader_epoch)
                .await?;
            Ok((offset, timestamp, history.epoch_at(offset)))
        }
    }
}
