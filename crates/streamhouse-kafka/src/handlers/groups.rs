//! JoinGroup, SyncGroup, Heartbeat, LeaveGroup, ListGroups, DescribeGroups
//! and DeleteGroups: protocol glue around the group coordinator.
//!
//! Joining, syncing, heart-beating and leaving need Read on the group,
//! describing it Describe, deleting it Delete (GROUP_AUTHORIZATION_FAILED
//! otherwise); ListGroups shows every group to a caller that may Describe
//! the cluster, and otherwise the groups it may Describe.

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, ResponseKind,
    SyncGroupRequest, SyncGroupResponse,
};

use streamhouse_storage::security::{AclOperation, CLUSTER_NAME, ResourceType};

use super::Reply;
use super::access::Access;
use super::common::{coordinates, str_bytes};
use crate::broker::{Broker, RequestContext};
use crate::coordinator::{GroupError, JoinParams, JoinRefused, JoinResult, SyncResult, Wait};
use crate::error::{group_error_code, group_result_code, storage_error_code};

const NOT_COORDINATOR: i16 = ResponseError::NotCoordinator.code();

pub(crate) fn join(
    broker: &Arc<Broker>,
    context: &RequestContext,
    request: JoinGroupRequest,
) -> Reply {
    let version = context.version;
    if let Err(code) = Access::of(broker, context).group(AclOperation::Read, &request.group_id.0) {
        return Reply::now(ResponseKind::JoinGroup(join_refused(
            code,
            request.member_id.to_string(),
        )));
    }
    if !coordinates(broker, &request.group_id.0) {
        return Reply::now(ResponseKind::JoinGroup(join_response(Err(
            JoinRefused::new(GroupError::NotCoordinator, request.member_id.to_string()),
        ))));
    }
    let params = JoinParams {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|i| i.to_string()),
        client_id: context.client_id.clone(),
        client_host: context.client_host.clone(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout; Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
        version,
    };
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        if let Err(error) = classic_join_allowed(&broker, &params.group_id).await {
            let refused = JoinRefused::new(error, params.member_id.clone());
            return ResponseKind::JoinGroup(join_response(Err(refused)));
        }
        let outcome = match broker.groups.join(params) {
            Wait::Ready(outcome) => outcome,
            Wait::Later(waiting) => waiting.await.unwrap_or_else(|_| {
                Err(JoinRefused::new(
                    GroupError::CoordinatorNotAvailable,
                    String::new(),
                ))
            }),
        };
        ResponseKind::JoinGroup(join_response(outcome))
    }))
}

/// A classic member may not join a consumer-protocol group with members
/// (INCONSISTENT_GROUP_PROTOCOL); an empty one gives way, as Kafka
/// replaces an empty consumer group with a classic one.
async fn classic_join_allowed(broker: &Broker, group_id: &str) -> Result<(), GroupError> {
    // A classic group held here excludes a consumer group of the same id:
    // its rebalances need no look at the metadata store.
    if broker.groups.is_classic(group_id) {
        return Ok(());
    }
    let Ok(consumer) = broker.groups.consumer() else {
        return Ok(());
    };
    if consumer.has_members(group_id).await? {
        return Err(GroupError::InconsistentGroupProtocol);
    }
    consumer.delete_if_empty(group_id).await?;
    Ok(())
}

fn join_refused(code: i16, member_id: String) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(code)
        .with_generation_id(-1)
        .with_protocol_name(None)
        .with_member_id(str_bytes(member_id))
}

fn join_response(outcome: JoinResult) -> JoinGroupResponse {
    let outcome = match outcome {
        Ok(joined) => joined,
        Err(refused) => {
            return join_refused(group_error_code(&refused.error), refused.member_id);
        }
    };
    JoinGroupResponse::default()
        .with_error_code(0)
        .with_generation_id(outcome.generation_id)
        .with_protocol_type(outcome.protocol_type.map(str_bytes))
        .with_protocol_name(outcome.protocol_name.map(str_bytes))
        .with_leader(str_bytes(outcome.leader))
        .with_skip_assignment(outcome.skip_assignment)
        .with_member_id(str_bytes(outcome.member_id))
        .with_members(
            outcome
                .members
                .into_iter()
                .map(|(member_id, instance, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(member_id))
                        .with_group_instance_id(instance.map(str_bytes))
                        .with_metadata(metadata)
                })
                .collect(),
        )
}

pub(crate) fn sync(
    broker: &Arc<Broker>,
    context: &RequestContext,
    request: SyncGroupRequest,
) -> Reply {
    if let Err(code) = Access::of(broker, context).group(AclOperation::Read, &request.group_id.0) {
        return Reply::now(ResponseKind::SyncGroup(
            SyncGroupResponse::default().with_error_code(code),
        ));
    }
    if !coordinates(broker, &request.group_id.0) {
        return Reply::now(ResponseKind::SyncGroup(sync_response(Err(
            GroupError::NotCoordinator,
        ))));
    }
    let assignments = request
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let outcome = broker.groups.sync(
        &request.group_id.0,
        request.generation_id,
        &request.member_id,
        request.protocol_type.as_deref(),
        request.protocol_name.as_deref(),
        assignments,
    );
    match outcome {
        Wait::Ready(outcome) => Reply::now(ResponseKind::SyncGroup(sync_response(outcome))),
        Wait::Later(waiting) => Reply::Later(Box::pin(async move {
            let outcome = waiting
                .await
                .unwrap_or(Err(GroupError::RebalanceInProgress));
            ResponseKind::SyncGroup(sync_response(outcome))
        })),
    }
}

fn sync_response(outcome: SyncResult) -> SyncGroupResponse {
    let outcome = match outcome {
        Ok(synced) => synced,
        Err(error) => {
            return SyncGroupResponse::default().with_error_code(group_error_code(&error));
        }
    };
    SyncGroupResponse::default()
        .with_error_code(0)
        .with_protocol_type(outcome.protocol_type.map(str_bytes))
        .with_protocol_name(outcome.protocol_name.map(str_bytes))
        .with_assignment(outcome.assignment)
}

pub(crate) fn heartbeat(
    broker: &Broker,
    context: &RequestContext,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    if let Err(code) = Access::of(broker, context).group(AclOperation::Read, &request.group_id.0) {
        return HeartbeatResponse::default().with_error_code(code);
    }
    if !coordinates(broker, &request.group_id.0) {
        return HeartbeatResponse::default().with_error_code(NOT_COORDINATOR);
    }
    HeartbeatResponse::default().with_error_code(group_result_code(&broker.groups.heartbeat(
        &request.group_id.0,
        request.generation_id,
        &request.member_id,
    )))
}

pub(crate) fn leave(
    broker: &Broker,
    context: &RequestContext,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let version = context.version;
    let group_id = request.group_id.0.to_string();
    if let Err(code) = Access::of(broker, context).group(AclOperation::Read, &group_id) {
        return LeaveGroupResponse::default().with_error_code(code);
    }
    if !coordinates(broker, &group_id) {
        return LeaveGroupResponse::default().with_error_code(NOT_COORDINATOR);
    }
    if version < 3 {
        let code = broker
            .groups
            .leave(&group_id, &[request.member_id.to_string()])
            .first()
            .map_or(0, group_result_code);
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let ids: Vec<String> = request
        .members
        .iter()
        .map(|m| m.member_id.to_string())
        .collect();
    let codes: Vec<i16> = broker
        .groups
        .leave(&group_id, &ids)
        .iter()
        .map(group_result_code)
        .collect();
    let members = request
        .members
        .into_iter()
        .zip(codes)
        .map(|(member, code)| {
            MemberResponse::default()
                .with_member_id(member.member_id)
                .with_group_instance_id(member.group_instance_id)
                .with_error_code(code)
        })
        .collect();
    LeaveGroupResponse::default()
        .with_error_code(0)
        .with_members(members)
}

pub(crate) async fn list(
    broker: &Broker,
    context: &RequestContext,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let access = Access::of(broker, context);
    let every_group = access.allows(AclOperation::Describe, ResourceType::Cluster, CLUSTER_NAME);
    let states: BTreeSet<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let wanted_type = |group_type: &str| {
        request.types_filter.is_empty()
            || request
                .types_filter
                .iter()
                .any(|t| t.eq_ignore_ascii_case(group_type))
    };
    // (group id, protocol type, state, group type)
    let mut groups: Vec<(String, String, String, &'static str)> = broker
        .groups
        .list()
        .into_iter()
        .filter(|g| {
            broker
                .groups
                .consumer()
                .map_or(true, |c| c.summary(&g.group_id).is_none())
        })
        .map(|g| (g.group_id, g.protocol_type, g.state, "classic"))
        .collect();
    let mut error_code = 0;
    match broker.engine.list_consumer_groups().await {
        Ok(stored) => groups.extend(
            stored
                .into_iter()
                .filter(|g| {
                    broker
                        .cluster
                        .is_me(&broker.cluster.coordinator(&g.group_id))
                })
                .map(|g| (g.group_id, "consumer".to_string(), g.state, "consumer")),
        ),
        Err(error) => error_code = storage_error_code(&error),
    }
    let known: BTreeSet<String> = groups.iter().map(|(id, _, _, _)| id.clone()).collect();
    match broker.engine.groups_with_offsets().await {
        Ok(with_offsets) => groups.extend(
            with_offsets
                .into_iter()
                .filter(|id| !known.contains(id))
                // Each agent lists the groups it coordinates, so that
                // clients asking every broker see each group once.
                .filter(|id| broker.cluster.is_me(&broker.cluster.coordinator(id)))
                .map(|id| (id, "consumer".to_string(), "Empty".to_string(), "classic")),
        ),
        Err(error) => error_code = storage_error_code(&error),
    }
    groups.sort();
    ListGroupsResponse::default()
        .with_error_code(error_code)
        .with_groups(
            groups
                .into_iter()
                .filter(|(_, _, state, group_type)| {
                    wanted_type(group_type)
                        && (states.is_empty() || states.contains(&state.to_ascii_lowercase()))
                })
                .filter(|(id, _, _, _)| {
                    every_group || access.allows(AclOperation::Describe, ResourceType::Group, id)
                })
                .map(|(id, protocol_type, state, group_type)| {
                    ListedGroup::default()
                        .with_group_id(GroupId(str_bytes(id)))
                        .with_protocol_type(str_bytes(protocol_type))
                        .with_group_state(str_bytes(state))
                        .with_group_type(str_bytes(group_type))
                })
                .collect(),
        )
}

pub(crate) async fn describe(
    broker: &Broker,
    context: &RequestContext,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let access = Access::of(broker, context);
    let mut described = Vec::with_capacity(request.groups.len());
    for group_id in request.groups {
        let result = DescribedGroup::default()
            .with_group_id(group_id.clone())
            .with_error_code(0)
            .with_authorized_operations(super::access::OPERATIONS_NOT_REQUESTED);
        if let Err(code) = access.group(AclOperation::Describe, &group_id.0) {
            described.push(result.with_error_code(code).with_group_state(str_bytes("")));
            continue;
        }
        let result = result.with_authorized_operations(access.operations_if(
            request.include_authorized_operations,
            ResourceType::Group,
            &group_id.0,
        ));
        if !coordinates(broker, &group_id.0) {
            described.push(result.with_error_code(NOT_COORDINATOR));
            continue;
        }
        let result = match broker.groups.describe_members(&group_id.0) {
            Some(state) => result
                .with_group_state(str_bytes(state.state.name()))
                .with_protocol_type(str_bytes(state.protocol_type))
                .with_protocol_data(str_bytes(state.protocol))
                .with_members(
                    state
                        .members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(str_bytes(m.member_id))
                                .with_group_instance_id(m.group_instance_id.map(str_bytes))
                                .with_client_id(str_bytes(m.client_id))
                                .with_client_host(str_bytes(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                ),
            None if is_consumer_group(broker, &group_id.0).await => {
                // A consumer-protocol group is described by
                // ConsumerGroupDescribe; to DescribeGroups it does not
                // exist, as in Kafka.
                result.with_group_state(str_bytes("Dead"))
            }
            None => {
                // Known only by its committed offsets: Empty, like a Kafka
                // group whose members are all gone; otherwise Dead.
                let has_offsets = broker
                    .engine
                    .committed_offsets(&group_id.0)
                    .await
                    .is_ok_and(|offsets| !offsets.is_empty());
                if has_offsets {
                    result
                        .with_group_state(str_bytes("Empty"))
                        .with_protocol_type(str_bytes("consumer"))
                } else {
                    result.with_group_state(str_bytes("Dead"))
                }
            }
        };
        described.push(result);
    }
    DescribeGroupsResponse::default().with_groups(described)
}

pub(crate) async fn delete(
    broker: &Broker,
    context: &RequestContext,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let access = Access::of(broker, context);
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in request.groups_names {
        let removed = if let Err(code) = access.group(AclOperation::Delete, &group_id.0) {
            Err(code)
        } else if coordinates(broker, &group_id.0) {
            remove_if_empty(broker, &group_id.0)
                .await
                .map_err(|e| group_error_code(&e))
        } else {
            Err(NOT_COORDINATOR)
        };
        let code = match removed {
            Err(code) => code,
            Ok(in_memory) => match broker.engine.delete_group_offsets(&group_id.0).await {
                Ok(had_offsets) if had_offsets || in_memory => 0,
                Ok(_) => ResponseError::GroupIdNotFound.code(),
                Err(error) => storage_error_code(&error),
            },
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

/// Whether a consumer-protocol group of this id exists.
async fn is_consumer_group(broker: &Broker, group_id: &str) -> bool {
    match broker.groups.consumer() {
        Ok(consumer) => consumer.exists(group_id).await.unwrap_or(false),
        Err(_) => false,
    }
}

/// Forgets an empty group of either protocol; refuses one with members.
/// Whether there was one.
async fn remove_if_empty(broker: &Broker, group_id: &str) -> Result<bool, GroupError> {
    let classic = broker.groups.remove_if_empty(group_id)?;
    let consumer = match broker.groups.consumer() {
        Ok(consumer) => consumer.delete_if_empty(group_id).await?,
        Err(_) => false,
    };
    Ok(classic || consumer)
}
