//! OffsetForLeaderEpoch (23): where a leader epoch ended, as Kafka's
//! leader epoch cache answers it (KIP-320). Consumers ask after a leader
//! change, with the epoch of the last record they read, to check that the
//! log they read has not been truncated since.
//!
//! For each partition: the largest epoch at or below the one asked for and
//! its end offset, the start of the next epoch, or the high watermark for
//! the current epoch. The high watermark is read from the metadata store
//! for the answer, so it is never below an offset another agent served.
//! The request's `current_leader_epoch` is checked as Fetch checks it
//! (FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH); an epoch newer than this
//! agent's is UNKNOWN_LEADER_EPOCH too, so that the client asks again
//! rather than concluding the log was truncated.
//!
//! Kafka's authorizer: ClusterAction on the cluster (replicas), or
//! Describe on each topic. Each partition is read once however often the
//! request names it.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderPartition;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use streamhouse_storage::security::AclOperation;
use streamhouse_storage::{EpochEnd, EpochHistory, PartitionInfo};

use super::access::Access;
use super::fetch::epoch_mismatch;
use crate::broker::{Broker, RequestContext};
use crate::error::storage_error_code;

/// A partition as read for this request, or the error code it gets.
type Known = Result<(PartitionInfo, Arc<EpochHistory>), i16>;

pub(crate) async fn handle(
    broker: &Broker,
    context: &RequestContext,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let access = Access::of(broker, context);
    let replica = access.cluster(AclOperation::ClusterAction).is_ok();
    let mut counts: HashMap<String, Result<i32, i16>> = HashMap::new();
    let mut partitions: HashMap<(String, i32), Known> = HashMap::new();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.topic.0.to_string();
        if !counts.contains_key(&name) {
            let allowed = if replica {
                Ok(())
            } else {
                access.topic(AclOperation::Describe, &name)
            };
            let count = match allowed {
                Ok(()) => broker
                    .engine
                    .topic(&name)
                    .await
                    .map(|t| t.partition_count)
                    .map_err(|e| storage_error_code(&e)),
                Err(code) => Err(code),
            };
            counts.insert(name.clone(), count);
        }
        let count = counts.get(&name).copied().unwrap_or(Ok(0));
        let mut answers = Vec::with_capacity(topic.partitions.len());
        for wanted in topic.partitions {
            let answer = EpochEndOffset::default()
                .with_partition(wanted.partition)
                .with_leader_epoch(-1)
                .with_end_offset(-1);
            let known = match count {
                Err(code) => Err(code),
                Ok(count) if !(0..count).contains(&wanted.partition) => {
                    Err(ResponseError::UnknownTopicOrPartition.code())
                }
                Ok(_) => match partitions.get(&(name.clone(), wanted.partition)) {
                    Some(known) => known.clone(),
                    None => {
                        let known = read(broker, &name, wanted.partition).await;
                        partitions.insert((name.clone(), wanted.partition), known.clone());
                        known
                    }
                },
            };
            answers.push(match known {
                Err(code) => answer.with_error_code(code),
                Ok((info, history)) => {
                    let current = broker
                        .engine
                        .leader_epoch(&name, wanted.partition)
                        .max(info.leader_epoch);
                    end_of(&wanted, current, &info, &history, answer)
                }
            });
        }
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(answers),
        );
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

/// The partition as the metadata store has it now, and its epochs.
async fn read(broker: &Broker, topic: &str, partition: i32) -> Known {
    let info = broker
        .engine
        .fresh_partition_info(topic, partition)
        .await
        .map_err(|e| storage_error_code(&e))?;
    let history = broker
        .engine
        .epoch_history(topic, partition, info.leader_epoch)
        .await
        .map_err(|e| storage_error_code(&e))?;
    Ok((info, history))
}

/// The answer for one partition at epoch `current` (as this agent knows
/// it), read as `info` with its `history`.
fn end_of(
    wanted: &OffsetForLeaderPartition,
    current: i32,
    info: &PartitionInfo,
    history: &EpochHistory,
    answer: EpochEndOffset,
) -> EpochEndOffset {
    if let Some(code) = epoch_mismatch(wanted.current_leader_epoch, current) {
        return answer.with_error_code(code);
    }
    match history.end_offset_for(wanted.leader_epoch, info.leader_epoch, info.high_watermark) {
        EpochEnd::Found { epoch, end_offset } => answer
            .with_error_code(0)
            .with_leader_epoch(epoch)
            .with_end_offset(end_offset),
        EpochEnd::Undefined => answer.with_error_code(0),
        EpochEnd::Newer => answer.with_error_code(ResponseError::UnknownLeaderEpoch.code()),
    }
}
