//! `/api/v1/topics`: list, create, describe and delete topics, and list a
//! partition's segment rows.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use streamhouse_api::{
    CreateTopic, PartitionDetail, SegmentQuery, SegmentRow, TopicDetail, TopicSummary,
};
use streamhouse_core::{TopicConfig, validate_partition_count, validate_topic_name};
use streamhouse_storage::security::{AclOperation, CLUSTER_NAME, ResourceType};
use streamhouse_storage::{NewTopic, SegmentInfo, Topic};

use super::auth::ApiCaller;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{ApiError, SharedState};

/// Configs always shown with their effective value, set or not.
const DESCRIBED_CONFIGS: [&str; 4] = [
    "retention.ms",
    "retention.bytes",
    "cleanup.policy",
    "max.message.bytes",
];
const DEFAULT_SEGMENT_LIMIT: usize = 1000;
const MAX_SEGMENT_LIMIT: usize = 10_000;

fn topic_summary(topic: Topic) -> TopicSummary {
    TopicSummary {
        config: topic.config.overrides().clone(),
        name: topic.name,
        topic_id: topic.topic_id,
        partitions: topic.partition_count,
        created_at: topic.created_at,
    }
}

/// Lists the topics the caller may describe, as Kafka's Metadata does.
pub(crate) async fn list(
    State(state): State<SharedState>,
    caller: ApiCaller,
) -> Result<Json<Vec<TopicSummary>>, ApiError> {
    let topics = state.engine.list_topics().await?;
    Ok(Json(
        topics
            .iter()
            .filter(|topic| {
                caller.may(
                    &state.engine,
                    AclOperation::Describe,
                    ResourceType::Topic,
                    &topic.name,
                )
            })
            .map(|topic| topic_summary(Topic::clone(topic)))
            .collect(),
    ))
}

/// Needs Create on the cluster or on the topic, as CreateTopics does.
pub(crate) async fn create(
    State(state): State<SharedState>,
    caller: ApiCaller,
    ApiJson(request): ApiJson<CreateTopic>,
) -> Result<Response, ApiError> {
    let engine = &state.engine;
    if !caller.may(
        engine,
        AclOperation::Create,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        caller.require(
            engine,
            AclOperation::Create,
            ResourceType::Topic,
            &request.name,
        )?;
    }
    validate_topic_name(&request.name)?;
    validate_partition_count(request.partitions)?;
    let mut pairs = Vec::with_capacity(request.config.len());
    for (key, value) in request.config {
        let value = match value {
            serde_json::Value::String(text) => text,
            serde_json::Value::Number(number) => number.to_string(),
            serde_json::Value::Bool(flag) => flag.to_string(),
            other => {
                return Err(ApiError::invalid_input(format!(
                    "config {key}: expected a string, number or boolean, got {other}"
                )));
            }
        };
        pairs.push((key, value));
    }
    let config = TopicConfig::from_pairs(pairs)?;
    let topic = state
        .engine
        .create_topic(NewTopic::new(request.name, request.partitions).with_config(config))
        .await?;
    tracing::info!(topic = %topic.name, partitions = topic.partition_count, "topic created over http");
    let location = format!("/api/v1/topics/{}", topic.name);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(topic_summary(topic)),
    )
        .into_response())
}

pub(crate) async fn describe(
    State(state): State<SharedState>,
    caller: ApiCaller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<TopicDetail>, ApiError> {
    caller.require(
        &state.engine,
        AclOperation::Describe,
        ResourceType::Topic,
        &name,
    )?;
    let description = state.engine.describe_topic(&name).await?;
    let topic = description.topic;
    let mut config = topic.config.overrides().clone();
    for key in DESCRIBED_CONFIGS {
        if let Some(value) = topic.config.effective(key) {
            config.insert(key.to_string(), value);
        }
    }
    Ok(Json(TopicDetail {
        name: topic.name,
        topic_id: topic.topic_id,
        created_at: topic.created_at,
        config,
        partitions: description
            .partitions
            .into_iter()
            .map(|p| PartitionDetail {
                partition: p.partition,
                high_watermark: p.high_watermark,
                log_start_offset: p.log_start_offset,
                last_stable_offset: p.last_stable_offset,
            })
            .collect(),
    }))
}

/// `PATCH /topics/{name}/config`: sets the configs given (Kafka names and
/// string values) and removes those given as `null`; the others stay.
pub(crate) async fn update_config(
    State(state): State<SharedState>,
    caller: ApiCaller,
    ApiPath(name): ApiPath<String>,
    ApiJson(changes): ApiJson<BTreeMap<String, Option<String>>>,
) -> Result<Json<TopicSummary>, ApiError> {
    caller.require(
        &state.engine,
        AclOperation::AlterConfigs,
        ResourceType::Topic,
        &name,
    )?;
    let topic = state.engine.load_topic(&name).await?;
    let mut config = topic.config.clone();
    for (key, value) in changes {
        match value {
            Some(value) => config
                .set(key, value)
                .map_err(|e| ApiError::invalid_input(e.to_string()))?,
            None => {
                config.remove(&key);
            }
        }
    }
    let updated = state.engine.update_topic_config(&name, config).await?;
    tracing::info!(topic = %name, "topic config changed over http");
    Ok(Json(topic_summary(updated)))
}

pub(crate) async fn delete(
    State(state): State<SharedState>,
    caller: ApiCaller,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(
        &state.engine,
        AclOperation::Delete,
        ResourceType::Topic,
        &name,
    )?;
    state.engine.delete_topic(&name).await?;
    tracing::info!(topic = %name, "topic deleted over http");
    Ok(StatusCode::NO_CONTENT)
}

/// One row of the `segments` table, with the kind of object it lies in.
fn segment_row(s: SegmentInfo) -> SegmentRow {
    let kind = if s.cleaned_at.is_some() {
        "key-compacted"
    } else if streamhouse_storage::jobs::is_compacted_key(&s.key) {
        "compacted"
    } else {
        "flushed"
    };
    SegmentRow {
        kind: Some(kind.to_owned()),
        cleaned_at: s.cleaned_at,
        tombstones: s.cleaned_at.map(|_| s.tombstones),
        id: s.id,
        topic: s.topic,
        partition: s.partition,
        base_offset: s.base_offset,
        end_offset: s.end_offset,
        record_count: s.record_count,
        size_bytes: s.size_bytes,
        bucket: s.bucket,
        key: s.key,
        byte_offset: s.byte_offset,
        byte_length: s.byte_length,
        min_timestamp: s.min_timestamp,
        max_timestamp: s.max_timestamp,
        created_at: s.created_at,
    }
}

pub(crate) async fn segments(
    State(state): State<SharedState>,
    caller: ApiCaller,
    ApiPath((name, partition)): ApiPath<(String, i32)>,
    ApiQuery(query): ApiQuery<SegmentQuery>,
) -> Result<Json<Vec<SegmentRow>>, ApiError> {
    caller.require(
        &state.engine,
        AclOperation::Describe,
        ResourceType::Topic,
        &name,
    )?;
    let limit = query.limit.unwrap_or(DEFAULT_SEGMENT_LIMIT);
    if !(1..=MAX_SEGMENT_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_input(format!(
            "limit must be between 1 and {MAX_SEGMENT_LIMIT}"
        )));
    }
    // Uncached: this is an inspection endpoint and must not show a deleted
    // topic as existing.
    let topic = state.engine.load_topic(&name).await?;
    check_partition(&topic, partition)?;
    let rows = state
        .engine
        .segments(&name, partition, query.from_offset, limit)
        .await?;
    Ok(Json(rows.into_iter().map(segment_row).collect()))
}

/// 404 unless `partition` is one of the topic's partitions.
pub(crate) fn check_partition(topic: &Topic, partition: i32) -> Result<(), ApiError> {
    if (0..topic.partition_count).contains(&partition) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "partition {partition} of topic {:?} does not exist (it has {} partitions)",
            topic.name, topic.partition_count
        )))
    }
}
