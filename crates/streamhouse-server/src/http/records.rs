//! `/api/v1/topics/{name}/records` (produce) and
//! `/api/v1/topics/{name}/partitions/{p}/records` (consume, with long poll).
//!
//! The invariant that matters: a produce request is answered with offsets
//! only after every one of its records is durably committed; its records
//! are buffered one append per target partition, all before the first is
//! awaited, so a request normally costs one flush.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use streamhouse_api::{
    ConsumeQuery, ConsumeResponse, ConsumedHeader, ConsumedRecord, IsolationLevel, ProduceRecord,
    ProduceRequest, ProduceResponse, StoredOffset,
};
use streamhouse_core::{Header, Record};
use streamhouse_storage::security::{AclOperation, ResourceType};
use streamhouse_storage::{Isolation, StorageError, Topic, VisibleRead};

use super::auth::ApiCaller;
use super::encoding::{Encoding, EncodingCodec as _, encoding_for};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::topics::check_partition;
use super::{ApiError, AppState, SharedState};

const DEFAULT_MAX_RECORDS: usize = 100;
const MAX_RECORDS: usize = 10_000;
const DEFAULT_MAX_BYTES: usize = 1 << 20;
const MAX_BYTES: usize = 64 << 20;
const MAX_WAIT_MS: u64 = 60_000;

pub(crate) async fn produce(
    State(state): State<SharedState>,
    caller: ApiCaller,
    ApiPath(name): ApiPath<String>,
    ApiJson(request): ApiJson<ProduceRequest>,
) -> Result<Json<ProduceResponse>, ApiError> {
    caller.require(
        &state.engine,
        AclOperation::Write,
        ResourceType::Topic,
        &name,
    )?;
    if request.records.is_empty() {
        return Err(ApiError::invalid_input("records must not be empty"));
    }
    let topic = state.engine.topic(&name).await?;
    let count = request.records.len();
    let plan = plan_appends(&state, &topic, request)?;
    let offsets = append_all(&state, &name, plan, count).await?;
    Ok(Json(ProduceResponse { offsets }))
}

/// One partition's share of a produce request: the request index of each
/// record, and the records, in request order.
type PartitionAppend = (Vec<usize>, Vec<Record>);

/// Decodes and checks every record and chooses its partition. Fails
/// before anything is appended, so a bad record stores nothing.
fn plan_appends(
    state: &AppState,
    topic: &Topic,
    request: ProduceRequest,
) -> Result<BTreeMap<i32, PartitionAppend>, ApiError> {
    let now = state.engine.clock().now_ms();
    let name = &topic.name;
    let max_message_bytes = usize::try_from(topic.config.max_message_bytes()).unwrap_or(usize::MAX);
    let compacts = topic.config.cleanup_policy().compacts();
    let mut plan: BTreeMap<i32, PartitionAppend> = BTreeMap::new();
    for (index, produced) in request.records.into_iter().enumerate() {
        let requested_partition = produced.partition;
        let record = decode_record(index, produced, request.encoding, now)?;
        // The engine checks this too, but only per partition, after the
        // other partitions' records may already be buffered.
        if record.payload_size() > max_message_bytes {
            return Err(ApiError::invalid_input(format!(
                "records[{index}] is {} bytes, more than max.message.bytes ({max_message_bytes}) \
                 of topic {name:?}",
                record.payload_size()
            )));
        }
        let partition = state
            .engine
            .choose_partition(topic, requested_partition, record.key.as_deref())
            .map_err(|_| {
                ApiError::invalid_input(format!(
                    "records[{index}].partition: topic {name:?} has no partition {} \
                     (it has {} partitions)",
                    requested_partition.unwrap_or_default(),
                    topic.partition_count
                ))
            })?;
        // Checked here too, like the size above, so that no partition's
        // records are stored when another's are refused.
        if compacts && record.key.is_none() {
            let refusal = ApiError::from(StorageError::KeylessRecord {
                topic: name.clone(),
                partition,
                indexes: vec![index],
            });
            let message = format!("records[{index}] has no key: {}", refusal.message());
            return Err(refusal.with_message(message));
        }
        let (indexes, records) = plan.entry(partition).or_default();
        indexes.push(index);
        records.push(record);
    }
    Ok(plan)
}

/// Appends each partition's records and waits until all are committed;
/// returns each record's partition and offset in request order.
async fn append_all(
    state: &AppState,
    topic: &str,
    plan: BTreeMap<i32, PartitionAppend>,
    count: usize,
) -> Result<Vec<StoredOffset>, ApiError> {
    // Buffer every partition's append before awaiting any, so that they
    // all land in the same flush.
    let mut pending = Vec::with_capacity(plan.len());
    for (partition, (indexes, records)) in plan {
        let started = state.engine.start_append(topic, partition, records).await;
        pending.push((partition, indexes, started));
    }
    let unset = StoredOffset {
        partition: 0,
        offset: -1,
    };
    let mut offsets = vec![unset; count];
    let mut stored_partitions = Vec::new();
    let mut first_error: Option<StorageError> = None;
    for (partition, indexes, started) in pending {
        let result = match started {
            Ok(append) => append.await,
            Err(error) => Err(error),
        };
        match result {
            Ok(appended) => {
                stored_partitions.push(partition);
                for (i, index) in indexes.into_iter().enumerate() {
                    offsets[index] = StoredOffset {
                        partition,
                        offset: appended.base_offset + i as i64,
                    };
                }
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    let Some(error) = first_error else {
        return Ok(offsets);
    };
    let api = ApiError::from(error);
    if stored_partitions.is_empty() {
        return Err(api);
    }
    // As with Kafka, a failed request may have been partly stored; say
    // which part, so a client that cares can avoid duplicates.
    let message = format!(
        "{} (records for partitions {stored_partitions:?} were stored)",
        api.message()
    );
    Err(api.with_message(message))
}

fn decode_record(
    index: usize,
    produced: ProduceRecord,
    encoding: Encoding,
    now: i64,
) -> Result<Record, ApiError> {
    let ProduceRecord {
        key,
        value,
        headers,
        timestamp,
        partition: _,
    } = produced;
    let timestamp = match timestamp {
        Some(t) if t < 0 => {
            return Err(ApiError::invalid_input(format!(
                "records[{index}].timestamp must be milliseconds since the epoch (>= 0)"
            )));
        }
        Some(t) => t,
        None => now,
    };
    let key = match key {
        Some(key) => Some(encoding.decode(key, || format!("records[{index}].key"))?),
        None => None,
    };
    let value = match value {
        Some(value) => Some(encoding.decode(value, || format!("records[{index}].value"))?),
        None => None,
    };
    let mut decoded_headers = Vec::with_capacity(headers.len());
    for (h, header) in headers.into_iter().enumerate() {
        let value = match header.value {
            Some(v) => Some(encoding.decode(v, || format!("records[{index}].headers[{h}].value"))?),
            None => None,
        };
        decoded_headers.push(Header::new(header.key, value));
    }
    Ok(Record {
        offset: 0,
        timestamp,
        key,
        value,
        headers: decoded_headers,
    })
}

pub(crate) async fn consume(
    State(state): State<SharedState>,
    caller: ApiCaller,
    ApiPath((name, partition)): ApiPath<(String, i32)>,
    ApiQuery(query): ApiQuery<ConsumeQuery>,
) -> Result<Json<ConsumeResponse>, ApiError> {
    caller.require(
        &state.engine,
        AclOperation::Read,
        ResourceType::Topic,
        &name,
    )?;
    let max_records = bounded(
        "max_records",
        query.max_records,
        DEFAULT_MAX_RECORDS,
        MAX_RECORDS,
    )?;
    let max_bytes = bounded("max_bytes", query.max_bytes, DEFAULT_MAX_BYTES, MAX_BYTES)?;
    let wait_ms = query.wait_ms.unwrap_or(0);
    if wait_ms > MAX_WAIT_MS {
        return Err(ApiError::invalid_input(format!(
            "wait_ms must be between 0 and {MAX_WAIT_MS}"
        )));
    }
    let topic = state.engine.topic(&name).await?;
    check_partition(&topic, partition)?;
    let engine = &state.engine;
    let offset = match query.offset {
        Some(offset) => offset,
        None => {
            engine
                .partition_info(&name, partition)
                .await?
                .log_start_offset
        }
    };
    let wait = Duration::from_millis(wait_ms);
    let isolation = match query.isolation_level {
        IsolationLevel::ReadUncommitted => Isolation::Uncommitted,
        IsolationLevel::ReadCommitted => Isolation::Committed,
    };
    let read = |wait| {
        engine.read_or_wait(
            &name,
            partition,
            offset,
            max_records,
            max_bytes,
            wait,
            isolation,
        )
    };
    let result = tokio::select! {
        result = read(wait) => result?,
        // Shutting down: answer now with what is readable.
        () = state.shutdown.cancelled() => read(Duration::ZERO).await?,
    };
    Ok(Json(render(result, query.encoding)))
}

fn bounded(
    name: &str,
    value: Option<usize>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match value {
        None => Ok(default),
        Some(v) if (1..=max).contains(&v) => Ok(v),
        Some(_) => Err(ApiError::invalid_input(format!(
            "{name} must be between 1 and {max}"
        ))),
    }
}

fn render(result: VisibleRead, requested: Encoding) -> ConsumeResponse {
    let records = result
        .records
        .into_iter()
        .map(|record| {
            let encoding = encoding_for(&record, requested);
            ConsumedRecord {
                offset: record.offset,
                timestamp: record.timestamp,
                key: record.key.as_deref().map(|k| encoding.encode(k)),
                value: record.value.as_deref().map(|v| encoding.encode(v)),
                headers: record
                    .headers
                    .iter()
                    .map(|h| ConsumedHeader {
                        key: h.key.clone(),
                        value: h.value.as_deref().map(|v| encoding.encode(v)),
                    })
                    .collect(),
                encoding,
            }
        })
        .collect();
    ConsumeResponse {
        records,
        high_watermark: result.high_watermark,
        log_start_offset: result.log_start_offset,
        last_stable_offset: result.last_stable_offset,
        next_offset: result.next_offset,
    }
}
