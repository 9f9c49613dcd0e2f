//! `/api/v1/groups`: consumer groups as an operator sees them — the live
//! membership this agent's coordinator knows, joined with the offsets
//! committed in the metadata store, and the lag behind each partition's
//! high watermark.
//!
//! A group exists if either side knows it: a group whose consumers are all
//! gone still has offsets (state `Empty`), and a group that has joined but
//! never committed has only members.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use streamhouse_api::{Assignment, GroupDetail, GroupListing, GroupMember as Member, GroupOffset};
use streamhouse_kafka::GroupSummary;
use streamhouse_storage::security::{AclOperation, CLUSTER_NAME, ResourceType};

use super::auth::ApiCaller;
use super::extract::ApiPath;
use super::{ApiError, SharedState};

/// Lists the groups the caller may describe; Describe on the cluster
/// shows them all, as in Kafka's ListGroups.
pub(crate) async fn list(
    State(state): State<SharedState>,
    caller: ApiCaller,
) -> Result<Json<Vec<GroupListing>>, ApiError> {
    let mut groups: BTreeMap<String, GroupListing> = state
        .engine
        .groups_with_offsets()
        .await?
        .into_iter()
        .map(|group| {
            let listing = GroupListing {
                group: group.clone(),
                state: "Empty".into(),
                members: 0,
            };
            (group, listing)
        })
        .collect();
    for live in state.groups.list() {
        groups.insert(
            live.group_id.clone(),
            GroupListing {
                group: live.group_id,
                state: live.state,
                members: live.members.len(),
            },
        );
    }
    let everything = caller.may(
        &state.engine,
        AclOperation::Describe,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    Ok(Json(
        groups
            .into_values()
            .filter(|listing| {
                everything
                    || caller.may(
                        &state.engine,
                        AclOperation::Describe,
                        ResourceType::Group,
                        &listing.group,
                    )
            })
            .collect(),
    ))
}

/// Needs Describe on the group; offsets of topics the caller may not
/// describe are left out, as Kafka's OffsetFetch leaves them out.
pub(crate) async fn describe(
    State(state): State<SharedState>,
    caller: ApiCaller,
    ApiPath(group): ApiPath<String>,
) -> Result<Json<GroupDetail>, ApiError> {
    caller.require(
        &state.engine,
        AclOperation::Describe,
        ResourceType::Group,
        &group,
    )?;
    let live = state.groups.describe(&group);
    let mut committed = state.engine.committed_offsets(&group).await?;
    let had_offsets = !committed.is_empty();
    committed.retain(|c| {
        caller.may(
            &state.engine,
            AclOperation::Describe,
            ResourceType::Topic,
            &c.topic,
        )
    });
    if live.is_none() && !had_offsets {
        return Err(unknown_group(&group));
    }
    let watermarks = futures::future::join_all(
        committed
            .iter()
            .map(|c| state.engine.partition_info(&c.topic, c.partition)),
    )
    .await;
    let offsets: Vec<GroupOffset> = committed
        .into_iter()
        .zip(watermarks)
        .map(|(c, info)| {
            let high_watermark = match info {
                Ok(info) => Some(info.high_watermark),
                Err(error) => {
                    tracing::debug!(%error, topic = %c.topic, partition = c.partition, "no watermark for group lag");
                    None
                }
            };
            // A negative commit (Kafka's "no offset") has no meaningful lag.
            let lag = high_watermark
                .filter(|_| c.offset >= 0)
                .map(|hw| (hw - c.offset).max(0));
            GroupOffset {
                topic: c.topic,
                partition: c.partition,
                committed_offset: c.offset,
                high_watermark,
                lag,
                metadata: c.metadata,
            }
        })
        .collect();
    let total_lag = offsets.iter().filter_map(|o| o.lag).sum();
    let summary = live.unwrap_or_else(|| GroupSummary {
        group_id: group.clone(),
        state: "Empty".into(),
        protocol_type: String::new(),
        protocol: String::new(),
        members: Vec::new(),
    });
    Ok(Json(GroupDetail {
        group: summary.group_id,
        state: summary.state,
        protocol_type: summary.protocol_type,
        protocol: summary.protocol,
        members: summary
            .members
            .into_iter()
            .map(|m| Member {
                member_id: m.member_id,
                client_id: m.client_id,
                client_host: m.client_host,
                assignment: m
                    .assignment
                    .into_iter()
                    .map(|(topic, partitions)| Assignment { topic, partitions })
                    .collect(),
            })
            .collect(),
        offsets,
        total_lag,
    }))
}

/// Deletes a group's committed offsets. Refused while the coordinator has
/// live members: they would commit again and the deletion would not stick.
pub(crate) async fn delete(
    State(state): State<SharedState>,
    caller: ApiCaller,
    ApiPath(group): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(
        &state.engine,
        AclOperation::Delete,
        ResourceType::Group,
        &group,
    )?;
    let live = state.groups.describe(&group);
    if let Some(live) = &live
        && !live.members.is_empty()
    {
        return Err(ApiError::conflict(format!(
            "group {group:?} has {} live members (state {}); stop its consumers first",
            live.members.len(),
            live.state
        )));
    }
    let had_offsets = state.engine.delete_group_offsets(&group).await?;
    if !had_offsets && live.is_none() {
        return Err(unknown_group(&group));
    }
    tracing::info!(group = %group, "consumer group offsets deleted over http");
    Ok(StatusCode::NO_CONTENT)
}

fn unknown_group(group: &str) -> ApiError {
    ApiError::not_found(format!(
        "group {group:?} has no live members on this agent and no committed offsets"
    ))
}
