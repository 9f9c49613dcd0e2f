//! The transaction coordinator's APIs (KIP-98): AddPartitionsToTxn (v0–v3,
//! the versions producers send), AddOffsetsToTxn, TxnOffsetCommit and
//! EndTxn, and DescribeTransactions and ListTransactions for operators.
//! InitProducerId with a transactional id is in
//! `init_producer_id.rs`. The engine keeps every step in the metadata
//! store, so any agent answers for any transactional id.
//!
//! Authorization as Kafka documents it: Write on the transactional id for
//! all four; AddPartitionsToTxn also Write on each topic; AddOffsetsToTxn
//! and TxnOffsetCommit Read on the group, TxnOffsetCommit Read on each
//! topic.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, ListTransactionsRequest, ListTransactionsResponse,
    TransactionalId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
    describe_transactions_response, list_transactions_response,
};
use kafka_protocol::protocol::StrBytes;
use streamhouse_storage::security::AclOperation;
use streamhouse_storage::{OffsetCommit, StorageError, TransactionOutcome, TransactionState};

use super::access::Access;
use super::common::{coordinates, str_bytes};
use super::offsets::metadata_too_large;
use crate::broker::{Broker, RequestContext};
use crate::error::{group_error_code, refusal_code, storage_error_code};

/// Per topic of a request, each partition and its refusal, if it has one
/// of its own.
type PartitionCodes = Vec<(String, Vec<(i32, Option<i16>)>)>;

/// The code a coordinator request answers with.
fn outcome_code(outcome: TransactionOutcome<()>) -> i16 {
    match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(refusal)) => refusal_code(refusal, false),
        Err(error) => coordinator_error_code(&error),
    }
}

/// A storage error as a coordinator API reports it: an unknown partition
/// is the client's mistake, anything else is the coordinator failing (the
/// client retries elsewhere).
fn coordinator_error_code(error: &StorageError) -> i16 {
    match error {
        StorageError::Metadata(e)
            if matches!(
                **e,
                streamhouse_storage::MetadataError::PartitionNotFound { .. }
            ) =>
        {
            ResponseError::UnknownTopicOrPartition.code()
        }
        StorageError::UnknownTopic { .. } | StorageError::UnknownPartition { .. } => {
            ResponseError::UnknownTopicOrPartition.code()
        }
        StorageError::Metadata(e) if e.is_retriable() => {
            ResponseError::CoordinatorNotAvailable.code()
        }
        other => storage_error_code(other),
    }
}

pub(crate) async fn add_partitions(
    broker: &Broker,
    context: &RequestContext,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let access = Access::of(broker, context);
    let id = request.v3_and_below_transactional_id.0.to_string();
    let (producer_id, epoch) = (
        request.v3_and_below_producer_id.0,
        request.v3_and_below_producer_epoch,
    );
    let id_refused = access.transactional_id(AclOperation::Write, &id).err();
    // Kafka checks every partition first; if any fails, the others are
    // answered OPERATION_NOT_ATTEMPTED and nothing is added.
    let mut checked: PartitionCodes = Vec::new();
    for topic in &request.v3_and_below_topics {
        let name = topic.name.0.to_string();
        let topic_refused = match id_refused {
            Some(code) => Some(code),
            None => access.topic(AclOperation::Write, &name).err(),
        };
        let partition_count = match topic_refused {
            Some(_) => None,
            None => broker
                .engine
                .topic(&name)
                .await
                .ok()
                .map(|t| t.partition_count),
        };
        let partitions = topic
            .partitions
            .iter()
            .map(|&partition| {
                let code = match (topic_refused, partition_count) {
                    (Some(code), _) => Some(code),
                    (None, Some(count)) if (0..count).contains(&partition) => None,
                    (None, _) => Some(ResponseError::UnknownTopicOrPartition.code()),
                };
                (partition, code)
            })
            .collect();
        checked.push((name, partitions));
    }
    let any_failed = checked
        .iter()
        .any(|(_, partitions)| partitions.iter().any(|(_, code)| code.is_some()));
    let code_for_all = if any_failed {
        None
    } else {
        // Each partition once, however often the request names it.
        let partitions: Vec<(String, i32)> = checked
            .iter()
            .flat_map(|(topic, partitions)| partitions.iter().map(|(p, _)| (topic.clone(), *p)))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        Some(outcome_code(
            broker
                .engine
                .add_transaction_partitions(&id, producer_id, epoch, &partitions)
                .await,
        ))
    };
    let not_attempted = ResponseError::OperationNotAttempted.code();
    let results = checked
        .into_iter()
        .map(|(name, partitions)| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(str_bytes(name).into())
                .with_results_by_partition(
                    partitions
                        .into_iter()
                        .map(|(partition, code)| {
                            let code = code_for_all.or(code).unwrap_or(not_attempted);
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(partition)
                                .with_partition_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

pub(crate) async fn add_offsets(
    broker: &Broker,
    context: &RequestContext,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let access = Access::of(broker, context);
    let id = request.transactional_id.0.to_string();
    let group = request.group_id.0.to_string();
    let refused = access
        .transactional_id(AclOperation::Write, &id)
        .and_then(|()| access.group(AclOperation::Read, &group));
    let code = match refused {
        Err(code) => code,
        Ok(()) => outcome_code(
            broker
                .engine
                .add_transaction_group(&id, request.producer_id.0, request.producer_epoch, &group)
                .await,
        ),
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}

pub(crate) async fn txn_offset_commit(
    broker: &Broker,
    context: &RequestContext,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let access = Access::of(broker, context);
    let id = request.transactional_id.0.to_string();
    let group = request.group_id.0.to_string();
    let instance = request.group_instance_id.as_ref().map(|i| i.to_string());
    let names_member =
        request.generation_id >= 0 || !request.member_id.is_empty() || instance.is_some();
    let refused = match access
        .transactional_id(AclOperation::Write, &id)
        .and_then(|()| access.group(AclOperation::Read, &group))
    {
        Err(code) => Some(code),
        Ok(()) => txn_commit_member_check(
            broker,
            &group,
            request.generation_id,
            &request.member_id,
            instance.as_deref(),
            names_member,
        )
        .await
        .err(),
    };
    // Topics the caller may not read are answered on their own; the rest
    // are staged together.
    // The last offset the request gives for each partition.
    let mut staged = BTreeMap::new();
    let mut codes: PartitionCodes = Vec::new();
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        let topic_refused = refused.or_else(|| access.topic(AclOperation::Read, &name).err());
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in &topic.partitions {
            let refused = topic_refused.or_else(|| {
                metadata_too_large(partition.committed_metadata.as_ref())
                    .then_some(ResponseError::OffsetMetadataTooLarge.code())
            });
            if refused.is_none() {
                staged.insert(
                    (name.clone(), partition.partition_index),
                    OffsetCommit {
                        topic: name.clone(),
                        partition: partition.partition_index,
                        offset: partition.committed_offset,
                        metadata: partition.committed_metadata.as_ref().map(|m| m.to_string()),
                        // -1 below v2, as the codec reads it.
                        leader_epoch: partition.committed_leader_epoch,
                    },
                );
            }
            partitions.push((partition.partition_index, refused));
        }
        codes.push((name, partitions));
    }
    let staged_code = if staged.is_empty() {
        0
    } else {
        outcome_code(
            broker
                .engine
                .stage_transaction_offsets(
                    &id,
                    request.producer_id.0,
                    request.producer_epoch,
                    &group,
                    &staged.into_values().collect::<Vec<_>>(),
                )
                .await,
        )
    };
    let topics = codes
        .into_iter()
        .map(|(name, partitions)| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(str_bytes(name).into())
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(partition, code)| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(partition)
                                .with_error_code(code.unwrap_or(staged_code))
                        })
                        .collect(),
                )
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

pub(crate) async fn end(
    broker: &Broker,
    context: &RequestContext,
    request: EndTxnRequest,
) -> EndTxnResponse {
    let access = Access::of(broker, context);
    let id = request.transactional_id.0.to_string();
    let code = match access.transactional_id(AclOperation::Write, &id) {
        Err(code) => code,
        Ok(()) => outcome_code(
            broker
                .engine
                .end_transaction(
                    &id,
                    request.producer_id.0,
                    request.producer_epoch,
                    request.committed,
                )
                .await,
        ),
    };
    EndTxnResponse::default().with_error_code(code)
}

/// DescribeTransactions: each id's state, as Kafka's coordinator reports
/// it; Describe on the id is needed.
pub(crate) async fn describe(
    broker: &Broker,
    context: &RequestContext,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let access = Access::of(broker, context);
    let mut states = Vec::with_capacity(request.transactional_ids.len());
    for id in request.transactional_ids {
        let name = id.0.to_string();
        let answer = describe_transactions_response::TransactionState::default()
            .with_transactional_id(id)
            .with_transaction_state(StrBytes::from_static_str(""))
            .with_producer_id((-1).into())
            .with_producer_epoch(-1)
            .with_transaction_start_time_ms(-1);
        if let Err(code) = access.transactional_id(AclOperation::Describe, &name) {
            states.push(answer.with_error_code(code));
            continue;
        }
        states.push(match broker.engine.describe_transaction(&name).await {
            Ok(Some(info)) => {
                let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for (topic, partition) in info.partitions {
                    topics.entry(topic).or_default().push(partition);
                }
                answer
                    .with_error_code(0)
                    .with_transaction_state(StrBytes::from_static_str(info.state.name()))
                    .with_transaction_timeout_ms(info.timeout_ms)
                    .with_transaction_start_time_ms(info.started_at)
                    .with_producer_id(info.producer_id.into())
                    .with_producer_epoch(info.producer_epoch)
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(topic, partitions)| {
                                describe_transactions_response::TopicData::default()
                                    .with_topic(str_bytes(topic).into())
                                    .with_partitions(partitions)
                            })
                            .collect(),
                    )
            }
            Ok(None) => answer.with_error_code(ResponseError::TransactionalIdNotFound.code()),
            Err(error) => answer.with_error_code(coordinator_error_code(&error)),
        });
    }
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// ListTransactions: the ids the caller may Describe, filtered by state,
/// producer id and (v1) how long they have been running.
pub(crate) async fn list(
    broker: &Broker,
    context: &RequestContext,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let access = Access::of(broker, context);
    let mut states = Vec::new();
    let mut unknown = Vec::new();
    for filter in &request.state_filters {
        match TransactionState::from_name(filter) {
            Some(state) => states.push(state),
            None => unknown.push(filter.clone()),
        }
    }
    let response = ListTransactionsResponse::default().with_unknown_state_filters(unknown);
    let all = match broker.engine.list_transactions().await {
        Ok(all) => all,
        Err(error) => return response.with_error_code(coordinator_error_code(&error)),
    };
    let now = broker.engine.clock().now_ms();
    let listed = all
        .into_iter()
        .filter(|info| states.is_empty() || states.contains(&info.state))
        .filter(|info| {
            request.producer_id_filters.is_empty()
                || request
                    .producer_id_filters
                    .iter()
                    .any(|id| id.0 == info.producer_id)
        })
        .filter(|info| {
            // Running for longer than the filter (-1: any).
            request.duration_filter < 0
                || (info.started_at >= 0
                    && now.saturating_sub(info.started_at) > request.duration_filter)
        })
        .filter(|info| {
            access
                .transactional_id(AclOperation::Describe, &info.transactional_id)
                .is_ok()
        })
        .map(|info| {
            list_transactions_response::TransactionState::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(
                    info.transactional_id,
                )))
                .with_producer_id(info.producer_id.into())
                .with_transaction_state(StrBytes::from_static_str(info.state.name()))
        })
        .collect();
    response.with_error_code(0).with_transaction_states(listed)
}

/// KIP-447: whether the group member a TxnOffsetCommit names may stage
/// offsets, checked by the group's coordinator (a member of a
/// consumer-protocol group at its member epoch, of a classic group at its
/// generation). Requests naming no member are not checked.
async fn txn_commit_member_check(
    broker: &Broker,
    group: &str,
    generation: i32,
    member_id: &str,
    instance: Option<&str>,
    names_member: bool,
) -> Result<(), i16> {
    if !coordinates(broker, group) {
        // The group's members are known to its coordinator only.
        return if names_member {
            Err(ResponseError::NotCoordinator.code())
        } else {
            Ok(())
        };
    }
    // A consumer-protocol group checks every commit: one naming no member
    // is accepted only while the group is empty (Kafka's rule).
    if !broker.groups.is_classic(group)
        && let Ok(consumer) = broker.groups.consumer()
    {
        match consumer
            .validate_commit(group, member_id, generation, 3, true)
            .await
        {
            Ok(Some(())) => return Ok(()),
            Ok(None) => {}
            Err(error) => return Err(group_error_code(&error)),
        }
    }
    broker
        .groups
        .validate_txn_commit(group, generation, member_id, instance)
        .map_err(|e| group_error_code(&e))
}
