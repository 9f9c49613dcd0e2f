//! Fetch: read each requested partition from its fetch offset and, when
//! there is less than `min_bytes` of new data, wait up to `max_wait_ms` for a
//! high watermark to move (a notification, not a sleep loop).
//!
//! Byte limits follow Kafka: each partition gets at most its
//! `partition_max_bytes`, the response at most `max_bytes`, except that the
//! first record of the response is returned even when it alone is larger,
//! so a consumer always makes progress. Fetch sessions are not kept: the
//! response's session id is 0, which tells clients to send full requests.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ResponseKind};
use streamhouse_storage::security::AclOperation;
use streamhouse_storage::{Isolation, ReadResult, StorageError};
use tokio::time::Instant;

use super::Reply;
use super::access::Access;
use crate::broker::{Broker, RequestContext};
use crate::error::storage_error_code;
use crate::records::encode_read;

/// Longest wait honoured, whatever the client asks for.
const MAX_WAIT: Duration = Duration::from_secs(30);

pub(crate) fn handle(
    broker: &Arc<Broker>,
    context: &RequestContext,
    mut request: FetchRequest,
) -> Reply {
    let access = Access::of(broker, context);
    let mut refused = Vec::new();
    request.topics.retain(
        |topic| match access.topic(AclOperation::Read, &topic.topic.0) {
            Ok(()) => true,
            Err(code) => {
                refused.push(refused_topic(topic, code));
                false
            }
        },
    );
    if request.topics.is_empty() && !refused.is_empty() {
        // Nothing the caller may read: nothing to wait for.
        return Reply::now(ResponseKind::Fetch(
            FetchResponse::default()
                .with_error_code(0)
                .with_session_id(0)
                .with_responses(refused),
        ));
    }
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let mut response = fetch(&broker, request).await;
        response.responses.extend(refused);
        ResponseKind::Fetch(response)
    }))
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
        .with_partitions(partitions)
}

async fn fetch(broker: &Broker, request: FetchRequest) -> FetchResponse {
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
            return FetchResponse::default()
                .with_error_code(0)
                .with_session_id(0)
                .with_responses(read.responses);
        }
        let changed = match commits.as_mut() {
            Some(commits) => commits.changed(deadline).await,
            None => false,
        };
        if !changed {
            // Nothing to wait on (every partition is unknown) or time is up.
            let read = read_all(broker, &request.topics, max_bytes, isolation).await;
            return FetchResponse::default()
                .with_error_code(0)
                .with_session_id(0)
                .with_responses(read.responses);
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
        let log_append_time = broker
            .engine
            .topic(name)
            .await
            .is_ok_and(|t| t.config.log_append_time());
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for wanted in &topic.partitions {
            let budget = usize::try_from(wanted.partition_max_bytes)
                .unwrap_or(0)
                .min(max_bytes.saturating_sub(read.bytes));
            let data = PartitionData::default()
                .with_partition_index(wanted.partition)
                .with_aborted_transactions(Some(Vec::new()))
                .with_preferred_read_replica((-1).into());
            let data = if budget == 0 && read.bytes > 0 {
                // The response is full; report the partition's range only.
                match broker.engine.partition_info(name, wanted.partition).await {
                    Ok(info) => with_range(
                        data,
                        info.high_watermark,
                        info.last_stable_offset,
                        info.log_start_offset,
                    )
                    .with_records(Some(Default::default())),
                    Err(error) => failure(data, &error, &mut read.errors),
                }
            } else {
                match broker
                    .engine
                    .read_isolated(
                        name,
                        wanted.partition,
                        wanted.fetch_offset,
                        budget.max(1),
                        isolation,
                    )
                    .await
                {
                    Ok(result) => {
                        match encode_read(&result.records, &result.transactions, log_append_time) {
                            Ok(encoded) => {
                                let aborted = match aborted_in(
                                    broker,
                                    name,
                                    wanted.partition,
                                    &result,
                                    isolation,
                                )
                                .await
                                {
                                    Ok(aborted) => aborted,
                                    Err(error) => {
                                        partitions.push(failure(data, &error, &mut read.errors));
                                        continue;
                                    }
                                };
                                read.bytes += encoded.len();
                                read.records += result.records.len();
                                with_range(
                                    data,
                                    result.high_watermark,
                                    result.last_stable_offset,
                                    result.log_start_offset,
                                )
                                .with_aborted_transactions(Some(aborted))
                                .with_records(Some(encoded))
                            }
                            Err(error) => {
                                tracing::error!(topic = name, partition = wanted.partition, %error,
                                "cannot encode fetched records");
                                read.errors = true;
                                data.with_error_code(ResponseError::UnknownServerError.code())
                            }
                        }
                    }
                    Err(error) => failure(data, &error, &mut read.errors),
                }
            };
            partitions.push(data);
        }
        read.responses.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions),
        );
    }
    read
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

fn failure(data: PartitionData, error: &StorageError, errors: &mut bool) -> PartitionData {
    *errors = true;
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
