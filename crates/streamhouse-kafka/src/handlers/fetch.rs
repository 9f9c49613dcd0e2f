//! Fetch: read each requested partition from its fetch offset and, when
//! there is less than `min_bytes` of new data, wait up to `max_wait_ms` for a
//! high watermark to move (a notification, not a sleep loop).
//!
//! Byte limits follow Kafka: each partition gets at most its
//! `partition_max_bytes`, the response at most `max_bytes`, except that the
//! first record of the response is returned even when it alone is larger,
//! so a consumer always makes progress. Fetch sessions are not kept: the
//! response's session id is 0, which tells clients to send full requests.
//!
//! Leader epochs (KIP-320): a partition whose epoch here differs from the
//! request's `current_leader_epoch` gets FENCED_LEADER_EPOCH (the client's
//! is older; from v12 the answer names the current leader and epoch, and
//! from v16 its endpoint) or UNKNOWN_LEADER_EPOCH (this agent has not
//! heard of the client's yet), both retriable. Records are sent in batches
//! stamped with the epoch they were written in. A `last_fetched_epoch`
//! that the log diverges from is answered with the diverging epoch and its
//! end offset, as Kafka's leader does; only an epoch whose end is known
//! for certain is ever reported so.
//!
//! From v13 topics are named by id; an id no topic has gets
//! UNKNOWN_TOPIC_ID.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
    PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ResponseKind, TopicName};
use streamhouse_storage::security::AclOperation;
use streamhouse_storage::{EpochEnd, Isolation, ReadResult, StorageError};
use tokio::time::Instant;

use super::Reply;
use super::access::Access;
use super::common::{str_bytes, topic_uuid};
use super::metadata::listed_brokers;
use crate::broker::{Broker, RequestContext};
use crate::error::storage_error_code;
use crate::records::encode_read;

/// Longest wait honoured, whatever the client asks for.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// The first version that names topics by id (KIP-516).
const TOPIC_IDS: i16 = 13;
/// The first version whose answer carries the leaders' endpoints (KIP-951).
const NODE_ENDPOINTS: i16 = 16;
/// The request's "no epoch" value.
const NO_EPOCH: i32 = -1;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    context: &RequestContext,
    request: FetchRequest,
) -> Reply {
    let broker = broker.clone();
    let context = context.clone();
    Reply::Later(Box::pin(async move {
        ResponseKind::Fetch(answer(&broker, &context, request).await)
    }))
}

async fn answer(
    broker: &Broker,
    context: &RequestContext,
    mut request: FetchRequest,
) -> FetchResponse {
    let version = context.version;
    let mut refused = Vec::new();
    if version >= TOPIC_IDS {
        refused.extend(resolve_topic_ids(broker, &mut request.topics).await);
    }
    let access = Access::of(broker, context);
    request.topics.retain(
        |topic| match access.topic(AclOperation::Read, &topic.topic.0) {
            Ok(()) => true,
            Err(code) => {
                refused.push(refused_topic(topic, code));
                false
            }
        },
    );
    let mut response = if request.topics.is_empty() {
        // Nothing the caller may read: nothing to wait for.
        FetchResponse::default()
    } else {
        fetch(broker, &request).await
    };
    response.responses.extend(refused);
    if version >= NODE_ENDPOINTS {
        response.node_endpoints = fenced_leaders(broker, context, &response.responses);
    }
    response.with_error_code(0).with_session_id(0)
}

/// Fills in the name of each topic named by id; the topics no topic's id
/// matches are taken out and answered with UNKNOWN_TOPIC_ID. Every id of
/// the request is looked up at once (one listing of the topics at most).
async fn resolve_topic_ids(
    broker: &Broker,
    topics: &mut Vec<FetchTopic>,
) -> Vec<FetchableTopicResponse> {
    let ids: Vec<String> = topics.iter().map(|t| t.topic_id.to_string()).collect();
    let found = match broker.engine.topics_by_id(&ids).await {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%error, "fetch: cannot look topic ids up");
            HashMap::new()
        }
    };
    let mut unknown = Vec::new();
    topics.retain_mut(|topic| match found.get(&topic.topic_id.to_string()) {
        Some(known) => {
            topic.topic = TopicName(str_bytes(known.name.clone()));
            true
        }
        None => {
            unknown.push(refused_topic(topic, ResponseError::UnknownTopicId.code()));
            false
        }
    });
    unknown
}

fn refused_topic(topic: &FetchTopic, code: i16) -> FetchableTopicResponse {
    let partitions = topic
        .partitions
        .iter()
        .map(|wanted| {
            PartitionData::default()
                .with_partition_index(wanted.partition)
                .with_error_code(code)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_records(Some(Default::default()))
        })
        .collect();
    FetchableTopicResponse::default()
        .with_topic(topic.topic.clone())
        .with_topic_id(topic.topic_id)
        .with_partitions(partitions)
}

/// The endpoints of the leaders named in FENCED_LEADER_EPOCH answers, so
/// that a client can go on without asking for metadata (KIP-951).
fn fenced_leaders(
    broker: &Broker,
    context: &RequestContext,
    responses: &[FetchableTopicResponse],
) -> Vec<NodeEndpoint> {
    let fenced = ResponseError::FencedLeaderEpoch.code();
    let mut named: Vec<i32> = responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter(|p| p.error_code == fenced && p.current_leader.leader_id.0 >= 0)
        .map(|p| p.current_leader.leader_id.0)
        .collect();
    if named.is_empty() {
        return Vec::new();
    }
    named.sort_unstable();
    named.dedup();
    listed_brokers(broker, context.listener)
        .into_iter()
        .filter(|listed| named.binary_search(&listed.node_id).is_ok())
        .map(|listed| {
            NodeEndpoint::default()
                .with_node_id(listed.node_id.into())
                .with_host(str_bytes(listed.host))
                .with_port(listed.port)
                .with_rack(listed.rack.map(str_bytes))
        })
        .collect()
}

async fn fetch(broker: &Broker, request: &FetchRequest) -> FetchResponse {
    let wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0)).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let max_bytes = usize::try_from(request.max_bytes).unwrap_or(0);
    // Kafka's READ_COMMITTED is 1; anything else reads uncommitted.
    let isolation = if request.isolation_level == 1 {
        Isolation::Committed
    } else {
        Isolation::Uncommitted
    };

    // Taken before the first read, so that a commit landing between the
    // read and the wait is not missed.
    let mut commits = if wait.is_zero() {
        None
    } else {
        let mut partitions = Vec::new();
        for topic in &request.topics {
            for partition in &topic.partitions {
                partitions.push((topic.topic.0.as_str(), partition.partition));
            }
        }
        Some(broker.engine.commit_wait(&partitions).await)
    };
    loop {
        let read = read_all(broker, &request.topics, max_bytes, isolation).await;
        if read.bytes >= min_bytes || read.errors || Instant::now() >= deadline {
            if read.bytes > 0 {
                metrics::counter!("streamhouse_kafka_fetch_bytes_total")
                    .increment(read.bytes as u64);
                metrics::counter!("streamhouse_kafka_fetch_records_total")
                    .increment(read.records as u64);
            }
            return FetchResponse::default().with_responses(read.responses);
        }
        let changed = match commits.as_mut() {
            Some(commits) => commits.changed(deadline).await,
            None => false,
        };
        if !changed {
            // Nothing to wait on (every partition is unknown) or time is up.
            let read = read_all(broker, &request.topics, max_bytes, isolation).await;
            return FetchResponse::default().with_responses(read.responses);
        }
    }
}

struct Read {
    responses: Vec<FetchableTopicResponse>,
    bytes: usize,
    records: usize,
    errors: bool,
}

async fn read_all(
    broker: &Broker,
    topics: &[FetchTopic],
    max_bytes: usize,
    isolation: Isolation,
) -> Read {
    let mut read = Read {
        responses: Vec::with_capacity(topics.len()),
        bytes: 0,
        records: 0,
        errors: false,
    };
    for topic in topics {
        let name = topic.topic.0.as_str();
        let found = broker.engine.topic(name).await.ok();
        let log_append_time = found.as_ref().is_some_and(|t| t.config.log_append_time());
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for wanted in &topic.partitions {
            let budget = usize::try_from(wanted.partition_max_bytes)
                .unwrap_or(0)
                .min(max_bytes.saturating_sub(read.bytes));
            let data = PartitionData::default()
                .with_partition_index(wanted.partition)
                .with_aborted_transactions(Some(Vec::new()))
                .with_preferred_read_replica((-1).into());
            let data = match check_epochs(broker, name, wanted).await {
                Err(refused) => {
                    read.errors = true;
                    refused
                }
                Ok(Some(diverging)) => diverging,
                Ok(None) if budget == 0 && read.bytes > 0 => {
                    // The response is full; report the partition's range only.
                    match broker.engine.partition_info(name, wanted.partition).await {
                        Ok(info) => with_range(
                            data,
                            info.high_watermark,
                            info.last_stable_offset,
                            info.log_start_offset,
                        )
                        .with_records(Some(Default::default())),
                        Err(error) => {
                            read.errors = true;
                            failure(data, &error)
                        }
                    }
                }
                Ok(None) => {
                    let partition = ReadPartition {
                        topic: name,
                        wanted,
                        budget: budget.max(1),
                        isolation,
                        log_append_time,
                    };
                    match read_partition(broker, &partition, data, &mut read).await {
                        Ok(data) => data,
                        Err(data) => {
                            read.errors = true;
                            data
                        }
                    }
                }
            };
            partitions.push(data);
        }
        read.responses.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_topic_id(found.as_deref().map(topic_uuid).unwrap_or_default())
                .with_partitions(partitions),
        );
    }
    read
}

/// The request's `current_leader_epoch` against this agent's, and its
/// `last_fetched_epoch` against the log: `Err` with the answer when the
/// partition is refused, `Ok(Some)` with the diverging epoch when the log
/// diverges, `Ok(None)` to read.
async fn check_epochs(
    broker: &Broker,
    topic: &str,
    wanted: &FetchPartition,
) -> Result<Option<PartitionData>, PartitionData> {
    let partition = wanted.partition;
    let refused = |code: i16| {
        PartitionData::default()
            .with_partition_index(partition)
            .with_error_code(code)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1)
            .with_records(Some(Default::default()))
    };
    let epoch = broker.engine.leader_epoch(topic, partition);
    if let Some(code) = epoch_mismatch(wanted.current_leader_epoch, epoch) {
        return Err(fenced(broker, topic, partition, epoch, refused(code)));
    }
    if wanted.last_fetched_epoch < 0 {
        return Ok(None);
    }
    let info = broker
        .engine
        .partition_info(topic, partition)
        .await
        .map_err(|e| refused(storage_error_code(&e)))?;
    let history = broker
        .engine
        .epoch_history(topic, partition, info.leader_epoch)
        .await
        .map_err(|e| refused(storage_error_code(&e)))?;
    match history.end_offset_for(
        wanted.last_fetched_epoch,
        info.leader_epoch,
        info.high_watermark,
    ) {
        // The client has an epoch this agent has not heard of yet.
        EpochEnd::Newer | EpochEnd::Undefined => {
            Err(refused(ResponseError::UnknownLeaderEpoch.code()))
        }
        EpochEnd::Found { epoch, end_offset }
            if epoch < wanted.last_fetched_epoch || end_offset < wanted.fetch_offset =>
        {
            Ok(Some(
                with_range(
                    PartitionData::default().with_partition_index(partition),
                    info.high_watermark,
                    info.last_stable_offset,
                    info.log_start_offset,
                )
                .with_diverging_epoch(
                    EpochEndOffset::default()
                        .with_epoch(epoch)
                        .with_end_offset(end_offset),
                )
                .with_records(Some(Default::default())),
            ))
        }
        EpochEnd::Found { .. } => Ok(None),
    }
}

/// Kafka's check of a request's current leader epoch against the
/// partition's: FENCED_LEADER_EPOCH when the request's is older,
/// UNKNOWN_LEADER_EPOCH when it is newer, nothing when it is -1.
pub(crate) fn epoch_mismatch(requested: i32, current: i32) -> Option<i16> {
    if requested == NO_EPOCH {
        None
    } else if requested < current {
        Some(ResponseError::FencedLeaderEpoch.code())
    } else if requested > current {
        Some(ResponseError::UnknownLeaderEpoch.code())
    } else {
        None
    }
}

/// Names the partition's current leader and epoch in a FENCED_LEADER_EPOCH
/// answer (KIP-951).
fn fenced(
    broker: &Broker,
    topic: &str,
    partition: i32,
    epoch: i32,
    data: PartitionData,
) -> PartitionData {
    if data.error_code != ResponseError::FencedLeaderEpoch.code() {
        return data;
    }
    let leader = broker.cluster.leader(topic, partition);
    data.with_current_leader(
        LeaderIdAndEpoch::default()
            .with_leader_id(leader.node_id.into())
            .with_leader_epoch(epoch),
    )
}

struct ReadPartition<'a> {
    topic: &'a str,
    wanted: &'a FetchPartition,
    budget: usize,
    isolation: Isolation,
    log_append_time: bool,
}

/// Reads one partition into `data`; `Err` with the answer when it failed.
async fn read_partition(
    broker: &Broker,
    partition: &ReadPartition<'_>,
    data: PartitionData,
    read: &mut Read,
) -> Result<PartitionData, PartitionData> {
    let (topic, index) = (partition.topic, partition.wanted.partition);
    let result = broker
        .engine
        .read_isolated(
            topic,
            index,
            partition.wanted.fetch_offset,
            partition.budget,
            partition.isolation,
        )
        .await
        .map_err(|e| failure(data.clone(), &e))?;
    // The read may have learned of a newer epoch than the check saw: the
    // records it returned are then newer than the client's epoch.
    if let Some(code) = epoch_mismatch(
        partition.wanted.current_leader_epoch,
        result
            .leader_epoch
            .max(broker.engine.leader_epoch(topic, index)),
    ) {
        let refused = data
            .with_error_code(code)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1)
            .with_records(Some(Default::default()));
        return Err(fenced(broker, topic, index, result.leader_epoch, refused));
    }
    let history = if result.records.is_empty() {
        None
    } else {
        Some(
            broker
                .engine
                .epoch_history(topic, index, result.leader_epoch)
                .await
                .map_err(|e| failure(data.clone(), &e))?,
        )
    };
    let encoded = encode_read(
        &result.records,
        &result.transactions,
        partition.log_append_time,
        |offset| history.as_ref().map_or(0, |h| h.epoch_at(offset)),
    )
    .map_err(|error| {
        tracing::error!(topic, partition = index, %error, "cannot encode fetched records");
        data.clone()
            .with_error_code(ResponseError::UnknownServerError.code())
    })?;
    let aborted = aborted_in(broker, topic, index, &result, partition.isolation)
        .await
        .map_err(|e| failure(data.clone(), &e))?;
    read.bytes += encoded.len();
    read.records += result.records.len();
    Ok(with_range(
        data,
        result.high_watermark,
        result.last_stable_offset,
        result.log_start_offset,
    )
    .with_aborted_transactions(Some(aborted))
    .with_records(Some(encoded)))
}

fn with_range(
    data: PartitionData,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
) -> PartitionData {
    data.with_error_code(0)
        .with_high_watermark(high_watermark)
        .with_last_stable_offset(last_stable_offset)
        .with_log_start_offset(log_start_offset)
}

/// The aborted transactions a read_committed reader needs for what it got:
/// those whose records reach into the returned range. Only asked of the
/// store when the range holds transactional records at all.
async fn aborted_in(
    broker: &Broker,
    topic: &str,
    partition: i32,
    result: &ReadResult,
    isolation: Isolation,
) -> Result<Vec<AbortedTransaction>, StorageError> {
    let (Isolation::Committed, Some(first), Some(last)) =
        (isolation, result.records.first(), result.records.last())
    else {
        return Ok(Vec::new());
    };
    if result.transactions.is_empty() {
        return Ok(Vec::new());
    }
    Ok(broker
        .engine
        .aborted_transactions(topic, partition, first.offset, last.offset)
        .await?
        .into_iter()
        .map(|aborted| {
            AbortedTransaction::default()
                .with_producer_id(aborted.producer_id.into())
                .with_first_offset(aborted.first_offset)
        })
        .collect())
}

fn failure(data: PartitionData, error: &StorageError) -> PartitionData {
    let data = data
        .with_error_code(storage_error_code(error))
        .with_records(Some(Default::default()));
    match error {
        StorageError::OffsetOutOfRange {
            log_start_offset,
            high_watermark,
            ..
        } => data
            .with_high_watermark(*high_watermark)
            .with_last_stable_offset(*high_watermark)
            .with_log_start_offset(*log_start_offset),
        _ => data.with_high_watermark(-1).with_log_start_offset(-1),
    }
}
