//! Produce: decode each partition's record batches and append them.
//!
//! Every partition's append is queued before this returns, in request
//! order, so requests pipelined on one connection keep their order within
//! a partition and share flushes; the response waits for the commits.
//! acks=1 and acks=all both answer only after the durable commit; acks=0
//! gets no response.
//!
//! A topic whose `cleanup.policy` compacts refuses a batch holding a record
//! without a key, as Kafka does: INVALID_RECORD, and from v8 the message
//! and `record_errors` with each such record's index in the batch (in the
//! request's batches as one, when plain batches are merged).
//!
//! From v13 topics are named by id (KIP-516): an id no topic has gets
//! UNKNOWN_TOPIC_ID, and all of a request's ids are looked up at once.
//! v12 is v11 here: no `transaction.version` feature is finalized, so a
//! producer in a transaction adds its partitions with AddPartitionsToTxn
//! (KIP-890's implicit add is not done), as Kafka's clients do then.
//!
//! Each topic needs Write (TOPIC_AUTHORIZATION_FAILED per partition
//! otherwise). An idempotent producer needs nothing more here: since
//! Kafka 2.8 (KIP-679) Write on the topic is enough, and IdempotentWrite
//! or Write on some topic is checked when it asks for its producer id.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind, TopicName};
use streamhouse_storage::{PendingAppend, StorageError};
use uuid::Uuid;

use streamhouse_storage::security::AclOperation;

use super::Reply;
use super::access::Access;
use super::common::str_bytes;
use crate::broker::{Broker, RequestContext};
use crate::error::storage_error_code;
use crate::records::{BatchError, BatchLimits, decode_produced};

/// Longest a produce waits for buffer space, whatever its `timeout_ms`.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// The first version that names topics by id (KIP-516).
const TOPIC_IDS: i16 = 13;

enum Outcome {
    /// One append per batch of an idempotent producer, or one for all the
    /// plain batches, in request order.
    /// With the append time when the topic stamps records with it
    /// (`message.timestamp.type=LogAppendTime`).
    Pending(Vec<PendingAppend>, Option<i64>),
    Failed(Failure),
}

/// Why a partition's produce failed, as its answer says it.
struct Failure {
    code: i16,
    message: String,
    /// Positions in the batch of the records that made it fail
    /// (ProduceResponse v8+ `record_errors`); each record's message is the
    /// partition's.
    record_errors: Vec<i32>,
}

impl Failure {
    fn new(code: i16, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            record_errors: Vec::new(),
        }
    }

    fn of(error: &StorageError) -> Self {
        let record_errors = match error {
            StorageError::KeylessRecord { indexes, .. } => indexes
                .iter()
                .map(|&index| i32::try_from(index).unwrap_or(i32::MAX))
                .collect(),
            _ => Vec::new(),
        };
        Self {
            record_errors,
            ..Self::new(storage_error_code(error), error.to_string())
        }
    }
}

struct PartitionAppend {
    partition: i32,
    outcome: Outcome,
}

pub(crate) async fn handle(
    broker: &Arc<Broker>,
    context: &RequestContext,
    request: ProduceRequest,
) -> Reply {
    let version = context.version;
    let access = Access::of(broker, context);
    let acks = request.acks;
    // How long the appends may wait for buffer space: half the request's
    // own timeout, so that an append admitted late still has the other
    // half to be flushed and committed before the client gives up on the
    // request (and, without idempotence, sends its records again).
    // A client's 2^31-1 ms is cut to MAX_WAIT: a waiting produce holds its
    // share of the request memory budget.
    let wait =
        Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0) / 2).min(MAX_WAIT);
    let mut topics: Vec<(TopicName, Uuid, Vec<PartitionAppend>)> = Vec::new();
    let by_id = if version >= TOPIC_IDS {
        let ids: Vec<String> = request
            .topic_data
            .iter()
            .map(|t| t.topic_id.to_string())
            .collect();
        broker
            .engine
            .topics_by_id(&ids)
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "produce: cannot look topic ids up");
                Default::default()
            })
    } else {
        Default::default()
    };
    let refuse = if !matches!(acks, -1..=1) {
        Some((
            ResponseError::InvalidRequiredAcks.code(),
            "acks must be -1, 0 or 1",
        ))
    } else if let Some(id) = request
        .transactional_id
        .as_ref()
        .filter(|id| !id.is_empty())
        && access.transactional_id(AclOperation::Write, id).is_err()
    {
        // Whether the batches belong to the id's open transaction is the
        // commit's to check.
        Some((
            ResponseError::TransactionalIdAuthorizationFailed.code(),
            "not authorized to write as this transactional id",
        ))
    } else {
        None
    };
    for topic in request.topic_data {
        let (name, unknown_id) = if version >= TOPIC_IDS {
            match by_id.get(&topic.topic_id.to_string()) {
                Some(found) => (found.name.clone(), None),
                None => (
                    String::new(),
                    Some((ResponseError::UnknownTopicId.code(), "no topic has this id")),
                ),
            }
        } else {
            (topic.name.0.to_string(), None)
        };
        let write = access.topic(AclOperation::Write, &name);
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let outcome = match (refuse.or(unknown_id), write) {
                (Some((code, message)), _) => Outcome::Failed(Failure::new(code, message)),
                (None, Err(code)) => Outcome::Failed(Failure::new(
                    code,
                    format!("not authorized to write to topic {name:?}"),
                )),
                (None, Ok(())) => append(broker, &name, data.index, data.records, wait).await,
            };
            partitions.push(PartitionAppend {
                partition: data.index,
                outcome,
            });
        }
        topics.push((TopicName(str_bytes(name)), topic.topic_id, partitions));
    }

    if acks == 0 {
        tokio::spawn(async move {
            for (topic, _, partitions) in topics {
                for append in partitions {
                    let Outcome::Pending(pending, _) = append.outcome else {
                        continue;
                    };
                    for batch in pending {
                        if let Err(error) = batch.await {
                            tracing::warn!(topic = %topic.0, partition = append.partition, %error,
                                "acks=0 produce failed");
                        }
                    }
                }
            }
        });
        return Reply::Nothing;
    }

    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let responses = join_all(topics.into_iter().map(|(name, id, partitions)| {
            let broker = broker.clone();
            async move {
                let topic = name.0.to_string();
                let partition_responses = join_all(
                    partitions
                        .into_iter()
                        .map(|append| respond(&broker, &topic, append, version)),
                )
                .await;
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_topic_id(id)
                    .with_partition_responses(partition_responses)
            }
        }))
        .await;
        ResponseKind::Produce(ProduceResponse::default().with_responses(responses))
    }))
}

async fn append(
    broker: &Broker,
    topic: &str,
    partition: i32,
    records: Option<bytes::Bytes>,
    wait: Duration,
) -> Outcome {
    let config = match broker.engine.topic(topic).await {
        Ok(found) => found.config.clone(),
        Err(error) => return Outcome::Failed(Failure::of(&error)),
    };
    let max_batch_bytes = usize::try_from(config.max_message_bytes()).unwrap_or(0);
    let limits = BatchLimits {
        max_batch_bytes,
        max_uncompressed_bytes: max_batch_bytes
            .saturating_mul(broker.config.max_uncompressed_batch_factor)
            .min(broker.config.queued_max_request_bytes),
    };
    let decoded = match records.map(|r| decode_produced(r, &limits)) {
        Some(Ok(decoded)) if decoded.record_count() > 0 => decoded,
        Some(Ok(_)) | None => {
            return Outcome::Failed(Failure::new(
                ResponseError::InvalidRecord.code(),
                "the request holds no records",
            ));
        }
        Some(Err(error)) => {
            tracing::debug!(topic, partition, %error, "rejecting a record batch");
            let (code, limit) = match error {
                BatchError::TooLarge { .. } => {
                    (ResponseError::MessageTooLarge, "max_message_bytes")
                }
                BatchError::UncompressedTooLarge { .. } => {
                    (ResponseError::InvalidRecord, "uncompressed_batch_bytes")
                }
                BatchError::Corrupt(_) => (ResponseError::CorruptMessage, ""),
            };
            if !limit.is_empty() {
                metrics::counter!("streamhouse_limit_rejections_total", "limit" => limit)
                    .increment(1);
            }
            return Outcome::Failed(Failure::new(code.code(), error.to_string()));
        }
    };
    let count = decoded.record_count() as u64;
    let mut pending = Vec::with_capacity(decoded.batches.len());
    for batch in decoded.batches {
        match broker
            .engine
            .start_producer_append(topic, partition, batch.records, batch.producer, wait)
            .await
        {
            Ok(append) => pending.push(append),
            Err(error) => {
                // Batches already queued still commit; the client learns of
                // the failure and retries, and an idempotent producer's
                // retry of them is recognised as a duplicate.
                return Outcome::Failed(Failure::of(&error));
            }
        }
    }
    metrics::counter!("streamhouse_kafka_produce_records_total").increment(count);
    metrics::counter!("streamhouse_kafka_produce_bytes_total").increment(decoded.wire_bytes as u64);
    // The engine stamps the records of a LogAppendTime topic; the answer
    // carries the time of the first batch, as Kafka's does.
    let append_time = pending.first().and_then(PendingAppend::log_append_time);
    Outcome::Pending(pending, append_time)
}

async fn respond(
    broker: &Broker,
    topic: &str,
    append: PartitionAppend,
    version: i16,
) -> PartitionProduceResponse {
    let mut append_time = None;
    let outcome = match append.outcome {
        Outcome::Pending(pending, time) => {
            append_time = time;
            let mut base_offset = None;
            let mut failure = None;
            for append in pending {
                match append.await {
                    Ok(result) => {
                        base_offset.get_or_insert(result.base_offset);
                    }
                    Err(error) => {
                        failure.get_or_insert_with(|| Failure::of(&error));
                    }
                }
            }
            match (failure, base_offset) {
                (Some(failure), _) => Err(failure),
                (None, Some(base_offset)) => Ok(base_offset),
                (None, None) => Err(Failure::new(ResponseError::InvalidRecord.code(), "")),
            }
        }
        Outcome::Failed(failure) => Err(failure),
    };
    let response = PartitionProduceResponse::default()
        .with_index(append.partition)
        .with_log_append_time_ms(append_time.unwrap_or(-1));
    match outcome {
        Ok(base_offset) => {
            let log_start_offset = if version >= 5 {
                broker
                    .engine
                    .partition_info(topic, append.partition)
                    .await
                    .map_or(-1, |info| info.log_start_offset)
            } else {
                -1
            };
            response
                .with_error_code(0)
                .with_base_offset(base_offset)
                .with_log_start_offset(log_start_offset)
        }
        Err(failure) if version >= 8 => response
            .with_error_code(failure.code)
            .with_base_offset(-1)
            .with_log_start_offset(-1)
            .with_error_message(Some(str_bytes(failure.message)))
            .with_record_errors(
                failure
                    .record_errors
                    .into_iter()
                    .map(|index| BatchIndexAndErrorMessage::default().with_batch_index(index))
                    .collect(),
            ),
        Err(failure) => response
            .with_error_code(failure.code)
            .with_base_offset(-1)
            .with_log_start_offset(-1),
    }
}
