//! OffsetCommit and OffsetFetch: consumer group offsets in the metadata
//! store, checked against the group's generation by the coordinator.
//!
//! A commit needs Read on the group (GROUP_AUTHORIZATION_FAILED for every
//! partition otherwise) and Read on each topic; a fetch needs Describe on
//! the group, and shows only topics the caller may Describe (naming one it
//! may not gets TOPIC_AUTHORIZATION_FAILED for its partitions).

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use streamhouse_storage::OffsetCommit;
use streamhouse_storage::security::{AclOperation, ResourceType};

use super::access::Access;
use super::common::{coordinates, str_bytes};
use crate::broker::{Broker, RequestContext};
use crate::coordinator::GroupError;
use crate::error::{group_error_code, storage_error_code};

/// Each partition of a commit: the offset to store, or an error code.
type PartitionCommits = Vec<(i32, Result<OffsetCommit, i16>)>;
/// A partition to report: its committed offset, leader epoch and metadata,
/// and the error code.
struct Reported {
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: Option<String>,
    error_code: i16,
}

impl Reported {
    fn refused(partition: i32, error_code: i16) -> Self {
        Self {
            partition,
            offset: -1,
            leader_epoch: -1,
            metadata: None,
            error_code,
        }
    }
}

pub(crate) async fn commit(
    broker: &Broker,
    context: &RequestContext,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let access = Access::of(broker, context);
    let group_id = request.group_id.0.to_string();
    let allowed = if let Err(code) = access.group(AclOperation::Read, &group_id) {
        Err(code)
    } else if coordinates(broker, &group_id) {
        commit_allowed(
            broker,
            &group_id,
            request.generation_id_or_member_epoch,
            &request.member_id,
            context.version,
        )
        .await
        .map_err(|e| group_error_code(&e))
    } else {
        Err(ResponseError::NotCoordinator.code())
    };
    // Per partition: Ok(commit) or Err(error code).
    let mut outcomes: Vec<(TopicName, PartitionCommits)> = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let known = match &allowed {
            Err(_) => None,
            Ok(()) => Some(match access.topic(AclOperation::Read, &name) {
                Ok(()) => broker
                    .engine
                    .topic(&name)
                    .await
                    .map_err(|e| storage_error_code(&e)),
                Err(code) => Err(code),
            }),
        };
        let partitions = topic
            .partitions
            .into_iter()
            .map(|p| {
                let outcome = match (&allowed, &known) {
                    (Err(code), _) => Err(*code),
                    (Ok(()), Some(Err(code))) => Err(*code),
                    (Ok(()), Some(Ok(found)))
                        if !(0..found.partition_count).contains(&p.partition_index) =>
                    {
                        Err(ResponseError::UnknownTopicOrPartition.code())
                    }
                    _ if metadata_too_large(p.committed_metadata.as_ref()) => {
                        Err(ResponseError::OffsetMetadataTooLarge.code())
                    }
                    _ => Ok(OffsetCommit {
                        topic: name.clone(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        metadata: p.committed_metadata.map(|m| m.to_string()),
                        // -1 below v6, as the codec reads it.
                        leader_epoch: p.committed_leader_epoch,
                    }),
                };
                (p.partition_index, outcome)
            })
            .collect();
        outcomes.push((topic.name, partitions));
    }
    let commits: Vec<OffsetCommit> = outcomes
        .iter()
        .flat_map(|(_, ps)| ps.iter().filter_map(|(_, o)| o.as_ref().ok().cloned()))
        .collect();
    let stored = if commits.is_empty() {
        Ok(())
    } else {
        broker
            .engine
            .commit_offsets(&group_id, &commits)
            .await
            .map_err(|e| storage_error_code(&e))
    };
    let topics = outcomes
        .into_iter()
        .map(|(name, partitions)| {
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, outcome)| {
                            let code = match (outcome, &stored) {
                                (Err(code), _) => code,
                                (Ok(_), Err(code)) => *code,
                                (Ok(_), Ok(())) => 0,
                            };
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// Whether an OffsetCommit at this generation or member epoch may commit:
/// a consumer-protocol group checks member epochs (KIP-848), any other
/// group generations.
async fn commit_allowed(
    broker: &Broker,
    group_id: &str,
    generation_or_epoch: i32,
    member_id: &str,
    version: i16,
) -> Result<(), GroupError> {
    if !broker.groups.is_classic(group_id)
        && let Ok(consumer) = broker.groups.consumer()
        && let Some(()) = consumer
            .validate_commit(group_id, member_id, generation_or_epoch, version, false)
            .await?
    {
        return Ok(());
    }
    broker
        .groups
        .validate_commit(group_id, generation_or_epoch, member_id)
}

/// The most bytes of metadata an offset may carry (Kafka's
/// `offset.metadata.max.bytes`); more gets OFFSET_METADATA_TOO_LARGE.
const OFFSET_METADATA_MAX_BYTES: usize = 4096;

/// Whether a committed offset's metadata is over the limit, for
/// OffsetCommit and TxnOffsetCommit alike.
pub(super) fn metadata_too_large(metadata: Option<&StrBytes>) -> bool {
    metadata.is_some_and(|m| m.len() > OFFSET_METADATA_MAX_BYTES)
}

/// Committed offsets of one group: topic → partition → (offset, leader
/// epoch, metadata).
type Committed = BTreeMap<String, BTreeMap<i32, (i64, i32, Option<String>)>>;

async fn committed(broker: &Broker, group_id: &str) -> Result<Committed, i16> {
    if !coordinates(broker, group_id) {
        return Err(ResponseError::NotCoordinator.code());
    }
    let offsets = broker
        .engine
        .committed_offsets(group_id)
        .await
        .map_err(|e| storage_error_code(&e))?;
    let mut by_topic: Committed = BTreeMap::new();
    for offset in offsets {
        by_topic.entry(offset.topic).or_default().insert(
            offset.partition,
            (offset.offset, offset.leader_epoch, offset.metadata),
        );
    }
    Ok(by_topic)
}

/// The requested partitions (all committed ones when `None`), with -1 for
/// partitions that have no committed offset.
fn select(
    access: Access<'_>,
    committed: &Committed,
    wanted: Option<Vec<(String, Vec<i32>)>>,
) -> Vec<(String, Vec<Reported>)> {
    let describe = |topic: &str| access.topic(AclOperation::Describe, topic);
    let lookup = |topic: &str, partition: i32| {
        let (offset, leader_epoch, metadata) = committed
            .get(topic)
            .and_then(|p| p.get(&partition))
            .cloned()
            .unwrap_or((-1, -1, None));
        Reported {
            partition,
            offset,
            leader_epoch,
            metadata,
            error_code: 0,
        }
    };
    match wanted {
        Some(wanted) => wanted
            .into_iter()
            .map(|(topic, partitions)| {
                let refused = describe(&topic).err();
                let rows = partitions
                    .into_iter()
                    .map(|p| match refused {
                        Some(code) => Reported::refused(p, code),
                        None => lookup(&topic, p),
                    })
                    .collect();
                (topic, rows)
            })
            .collect(),
        None => committed
            .iter()
            .filter(|(topic, _)| access.allows(AclOperation::Describe, ResourceType::Topic, topic))
            .map(|(topic, partitions)| {
                let rows = partitions.keys().map(|&p| lookup(topic, p)).collect();
                (topic.clone(), rows)
            })
            .collect(),
    }
}

/// OffsetFetch v9 from a member of a consumer-protocol group: the member
/// must be in the group at the epoch it names (STALE_MEMBER_EPOCH).
async fn fetch_allowed(
    broker: &Broker,
    group_id: &str,
    member_id: Option<&str>,
    member_epoch: i32,
) -> Result<(), i16> {
    if member_id.is_none() && member_epoch < 0 {
        return Ok(());
    }
    if !coordinates(broker, group_id) {
        return Err(ResponseError::NotCoordinator.code());
    }
    match broker.groups.consumer() {
        Ok(consumer) => consumer
            .validate_fetch(group_id, member_id, member_epoch)
            .await
            .map(|_| ())
            .map_err(|e| group_error_code(&e)),
        Err(_) => Ok(()),
    }
}

pub(crate) async fn fetch(
    broker: &Broker,
    context: &RequestContext,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let version = context.version;
    let access = Access::of(broker, context);
    let group_offsets = |group_id: String| async move {
        access.group(AclOperation::Describe, &group_id)?;
        committed(broker, &group_id).await
    };
    if version >= 8 {
        let mut groups = Vec::with_capacity(request.groups.len());
        for group in request.groups {
            let wanted = group.topics.map(|topics| {
                topics
                    .into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes))
                    .collect()
            });
            let response =
                OffsetFetchResponseGroup::default().with_group_id(group.group_id.clone());
            let member_check = match access.group(AclOperation::Describe, &group.group_id.0) {
                Err(code) => Err(code),
                Ok(()) => {
                    fetch_allowed(
                        broker,
                        &group.group_id.0,
                        group.member_id.as_deref(),
                        group.member_epoch,
                    )
                    .await
                }
            };
            if let Err(code) = member_check {
                groups.push(response.with_error_code(code));
                continue;
            }
            groups.push(match group_offsets(group.group_id.0.to_string()).await {
                Ok(committed) => response.with_error_code(0).with_topics(
                    select(access, &committed, wanted)
                        .into_iter()
                        .map(|(topic, rows)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(str_bytes(topic)))
                                .with_partitions(
                                    rows.into_iter()
                                        .map(|row| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(row.partition)
                                                .with_committed_offset(row.offset)
                                                .with_committed_leader_epoch(row.leader_epoch)
                                                .with_metadata(Some(str_bytes(
                                                    row.metadata.unwrap_or_default(),
                                                )))
                                                .with_error_code(row.error_code)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
                Err(code) => response.with_error_code(code),
            });
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    match group_offsets(request.group_id.0.to_string()).await {
        Ok(committed) => OffsetFetchResponse::default()
            .with_error_code(0)
            .with_topics(
                select(access, &committed, wanted)
                    .into_iter()
                    .map(|(topic, rows)| {
                        OffsetFetchResponseTopic::default()
                            .with_name(TopicName(str_bytes(topic)))
                            .with_partitions(
                                rows.into_iter()
                                    .map(|row| {
                                        OffsetFetchResponsePartition::default()
                                            .with_partition_index(row.partition)
                                            .with_committed_offset(row.offset)
                                            .with_committed_leader_epoch(row.leader_epoch)
                                            .with_metadata(Some(str_bytes(
                                                row.metadata.unwrap_or_default(),
                                            )))
                                            .with_error_code(row.error_code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        Err(code) => OffsetFetchResponse::default().with_error_code(code),
    }
}
