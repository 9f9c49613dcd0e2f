//! ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe (69): the
//! consumer group protocol of KIP-848, glue around the coordinator's
//! consumer-protocol groups.
//!
//! A heartbeat needs Read on the group and Describe on every topic it
//! subscribes to by name (TOPIC_AUTHORIZATION_FAILED otherwise); describing
//! needs Describe on the group. A group of the classic protocol is not
//! found by ConsumerGroupDescribe (GROUP_ID_NOT_FOUND), which tells admin
//! clients to describe it with DescribeGroups, as Kafka does.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    self, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    self as heartbeat_response, Assignment as WireAssignment,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, TopicName,
};
use streamhouse_storage::security::{AclOperation, ResourceType};

use super::access::Access;
use super::common::{coordinates, str_bytes};
use crate::broker::{Broker, RequestContext};
use crate::coordinator::GroupError;
use crate::coordinator::consumer::{Assignment, HeartbeatRequest};
use crate::error::group_error_code;

/// Consumer-protocol members of this kind in ConsumerGroupDescribe v1.
const CONSUMER_MEMBER_TYPE: i8 = 1;

pub(crate) async fn heartbeat(
    broker: &Broker,
    context: &RequestContext,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let refused = |code: i16, message: Option<String>| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code)
            .with_error_message(message.map(str_bytes))
            .with_member_epoch(-1)
    };
    let access = Access::of(broker, context);
    let group_id = request.group_id.0.to_string();
    if let Err(code) = access.group(AclOperation::Read, &group_id) {
        return refused(code, None);
    }
    if let Some(names) = &request.subscribed_topic_names
        && let Some(denied) = names
            .iter()
            .find(|name| access.topic(AclOperation::Describe, &name.0).is_err())
    {
        return refused(
            ResponseError::TopicAuthorizationFailed.code(),
            Some(format!(
                "not authorized to describe topic {:?}",
                denied.0.as_str()
            )),
        );
    }
    if !coordinates(broker, &group_id) {
        return refused(ResponseError::NotCoordinator.code(), None);
    }
    let mut member_id = request.member_id.to_string();
    if member_id.is_empty() && request.member_epoch == 0 {
        if context.version >= 1 {
            return refused(
                ResponseError::InvalidRequest.code(),
                Some("MemberId can't be empty.".into()),
            );
        }
        // Version 0: the coordinator names new members.
        member_id = uuid::Uuid::new_v4().to_string();
    }
    let owned: Option<Assignment> = request.topic_partitions.map(|topics| {
        let mut owned = Assignment::new();
        for topic in topics {
            owned
                .entry(topic.topic_id)
                .or_default()
                .extend(topic.partitions);
        }
        owned.retain(|_, partitions| !partitions.is_empty());
        owned
    });
    let params = HeartbeatRequest {
        group_id: group_id.clone(),
        member_id,
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.map(|i| i.to_string()),
        rack_id: request.rack_id.map(|r| r.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.to_string()).collect()),
        subscribed_topic_regex: request.subscribed_topic_regex.map(|r| r.to_string()),
        server_assignor: request.server_assignor.map(|a| a.to_string()),
        owned,
        client_id: context.client_id.clone(),
        client_host: context.client_host.clone(),
        principal: Some(context.caller.principal.to_string()),
    };
    let outcome = match broker.groups.consumer() {
        Ok(consumer) => {
            let classic = broker.groups.classic_has_members(&group_id);
            consumer.heartbeat(params, classic).await
        }
        Err(error) => Err(error),
    };
    match outcome {
        Ok(answer) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(0)
            .with_member_id(Some(str_bytes(answer.member_id)))
            .with_member_epoch(answer.member_epoch)
            .with_heartbeat_interval_ms(answer.heartbeat_interval_ms)
            .with_assignment(answer.assignment.map(|assigned| {
                WireAssignment::default().with_topic_partitions(
                    assigned
                        .into_iter()
                        .map(|(topic_id, partitions)| {
                            heartbeat_response::TopicPartitions::default()
                                .with_topic_id(topic_id)
                                .with_partitions(partitions.into_iter().collect())
                        })
                        .collect(),
                )
            })),
        Err(error) => {
            log_refusal(&group_id, &error);
            refused(group_error_code(&error), Some(error.to_string()))
        }
    }
}

/// Refusals that end a member's membership are worth a line; the others
/// are routine.
fn log_refusal(group_id: &str, error: &GroupError) {
    match error {
        GroupError::FencedMemberEpoch { .. }
        | GroupError::UnreleasedInstanceId { .. }
        | GroupError::StoreUnavailable { .. } => {
            tracing::info!(group = group_id, %error, "consumer group heartbeat refused");
        }
        _ => tracing::debug!(group = group_id, %error, "consumer group heartbeat refused"),
    }
}

pub(crate) async fn describe(
    broker: &Broker,
    context: &RequestContext,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let access = Access::of(broker, context);
    let mut described = Vec::with_capacity(request.group_ids.len());
    for group_id in request.group_ids {
        let result = DescribedGroup::default()
            .with_group_id(group_id.clone())
            .with_authorized_operations(super::access::OPERATIONS_NOT_REQUESTED);
        if let Err(code) = access.group(AclOperation::Describe, &group_id.0) {
            described.push(result.with_error_code(code));
            continue;
        }
        let result = result.with_authorized_operations(access.operations_if(
            request.include_authorized_operations,
            ResourceType::Group,
            &group_id.0,
        ));
        if !coordinates(broker, &group_id.0) {
            described.push(result.with_error_code(ResponseError::NotCoordinator.code()));
            continue;
        }
        let found = match broker.groups.consumer() {
            Ok(consumer) => consumer.describe(&group_id.0).await,
            Err(error) => Err(error),
        };
        let group = match found {
            Ok(Some(group)) => group,
            Ok(None) => {
                described.push(
                    result
                        .with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(str_bytes(format!(
                            "group {:?} is not a consumer group",
                            group_id.0.as_str()
                        )))),
                );
                continue;
            }
            Err(error) => {
                described.push(
                    result
                        .with_error_code(group_error_code(&error))
                        .with_error_message(Some(str_bytes(error.to_string()))),
                );
                continue;
            }
        };
        let wire = |set: Vec<(uuid::Uuid, String, Vec<i32>)>| {
            consumer_group_describe_response::Assignment::default().with_topic_partitions(
                set.into_iter()
                    .map(|(id, name, partitions)| {
                        TopicPartitions::default()
                            .with_topic_id(id)
                            .with_topic_name(TopicName(str_bytes(name)))
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
        };
        described.push(
            result
                .with_error_code(0)
                .with_group_state(str_bytes(group.state.name()))
                .with_group_epoch(group.group_epoch)
                .with_assignment_epoch(group.assignment_epoch)
                .with_assignor_name(str_bytes(group.assignor))
                .with_members(
                    group
                        .members
                        .into_iter()
                        .map(|m| {
                            Member::default()
                                .with_member_id(str_bytes(m.member_id))
                                .with_instance_id(m.instance_id.map(str_bytes))
                                .with_rack_id(m.rack_id.map(str_bytes))
                                .with_member_epoch(m.member_epoch)
                                .with_client_id(str_bytes(m.client_id))
                                .with_client_host(str_bytes(m.client_host))
                                .with_subscribed_topic_names(
                                    m.subscribed_topic_names
                                        .into_iter()
                                        .map(|n| TopicName(str_bytes(n)))
                                        .collect(),
                                )
                                .with_subscribed_topic_regex(
                                    m.subscribed_topic_regex.map(str_bytes),
                                )
                                .with_assignment(wire(m.assignment))
                                .with_target_assignment(wire(m.target))
                                .with_member_type(CONSUMER_MEMBER_TYPE)
                        })
                        .collect(),
                ),
        );
    }
    ConsumerGroupDescribeResponse::default().with_groups(described)
}
