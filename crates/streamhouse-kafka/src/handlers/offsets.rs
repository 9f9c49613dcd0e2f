//! OffsetCommit and OffsetFetch: consumer group offsets in the metadata
//! store, checked against the group's generation by the coordinator.

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
use streamhouse_storage::OffsetCommit;

use super::common::{coordinates, str_bytes};
use crate::broker::Broker;
use crate::error::{group_error_code, storage_error_code};

/// Each partition of a commit: the offset to store, or an error code.
type PartitionCommits = Vec<(i32, Result<OffsetCommit, i16>)>;
/// Partitions to report: (partition, committed offset, metadata).
type Reported = Vec<(i32, i64, Option<String>)>;

pub(crate) async fn commit(
    broker: &Broker,
    request: OffsetCommitRequest,
    _version: i16,
) -> OffsetCommitResponse {
    let group_id = request.group_id.0.to_string();
    let allowed = if coordinates(broker, &group_id) {
        broker
            .groups
            .validate_commit(
                &group_id,
                request.generation_id_or_member_epoch,
                &request.member_id,
            )
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
            Ok(()) => Some(broker.engine.topic(&name).await),
        };
        let partitions = topic
            .partitions
            .into_iter()
            .map(|p| {
                let outcome = match (&allowed, &known) {
                    (Err(code), _) => Err(*code),
                    (Ok(()), Some(Err(error))) => Err(storage_error_code(error)),
                    (Ok(()), Some(Ok(found)))
                        if !(0..found.partition_count).contains(&p.partition_index) =>
                    {
                        Err(ResponseError::UnknownTopicOrPartition.code())
                    }
                    _ => Ok(OffsetCommit {
                        topic: name.clone(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        metadata: p.committed_metadata.map(|m| m.to_string()),
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

/// Committed offsets of one group: topic → partition → (offset, metadata).
type Committed = BTreeMap<String, BTreeMap<i32, (i64, Option<String>)>>;

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
        by_topic
            .entry(offset.topic)
            .or_default()
            .insert(offset.partition, (offset.offset, offset.metadata));
    }
    Ok(by_topic)
}

/// The requested partitions (all committed ones when `None`), with -1 for
/// partitions that have no committed offset.
fn select(
    committed: &Committed,
    wanted: Option<Vec<(String, Vec<i32>)>>,
) -> Vec<(String, Reported)> {
    let lookup = |topic: &str, partition: i32| {
        committed
            .get(topic)
            .and_then(|p| p.get(&partition))
            .cloned()
            .unwrap_or((-1, None))
    };
    match wanted {
        Some(wanted) => wanted
            .into_iter()
            .map(|(topic, partitions)| {
                let rows = partitions
                    .into_iter()
                    .map(|p| {
                        let (offset, metadata) = lookup(&topic, p);
                        (p, offset, metadata)
                    })
                    .collect();
                (topic, rows)
            })
            .collect(),
        None => committed
            .iter()
            .map(|(topic, partitions)| {
                let rows = partitions
                    .iter()
                    .map(|(p, (offset, metadata))| (*p, *offset, metadata.clone()))
                    .collect();
                (topic.clone(), rows)
            })
            .collect(),
    }
}

pub(crate) async fn fetch(
    broker: &Broker,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
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
            groups.push(match committed(broker, &group.group_id.0).await {
                Ok(committed) => response.with_error_code(0).with_topics(
                    select(&committed, wanted)
                        .into_iter()
                        .map(|(topic, rows)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(str_bytes(topic)))
                                .with_partitions(
                                    rows.into_iter()
                                        .map(|(p, offset, metadata)| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(-1)
                                                .with_metadata(Some(str_bytes(
                                                    metadata.unwrap_or_default(),
                                                )))
                                                .with_error_code(0)
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
    match committed(broker, &request.group_id.0).await {
        Ok(committed) => OffsetFetchResponse::default()
            .with_error_code(0)
            .with_topics(
                select(&committed, wanted)
                    .into_iter()
                    .map(|(topic, rows)| {
                        OffsetFetchResponseTopic::default()
                            .with_name(TopicName(str_bytes(topic)))
                            .with_partitions(
                                rows.into_iter()
                                    .map(|(p, offset, metadata)| {
                                        OffsetFetchResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(offset)
                                            .with_committed_leader_epoch(-1)
                                            .with_metadata(Some(str_bytes(
                                                metadata.unwrap_or_default(),
                                            )))
                                            .with_error_code(0)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        Err(code) => OffsetFetchResponse::default().with_error_code(code),
    }
}
