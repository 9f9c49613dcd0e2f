//! OffsetDelete (47): removes a group's committed offsets of some
//! partitions, as `kafka-consumer-groups.sh --delete-offsets` and admin
//! clients' `delete_consumer_group_offsets` do. As in Kafka: Delete on the
//! group and Read on each topic; an empty group (or one known only by its
//! offsets) loses any of them, a consumer group with members only those of
//! topics none of its members subscribes to (GROUP_SUBSCRIBED_TO_TOPIC for
//! the others), a group of another protocol with members none
//! (NON_EMPTY_GROUP).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use streamhouse_storage::security::AclOperation;

use super::access::Access;
use super::common::{coordinates, partition_count_if};
use crate::broker::{Broker, RequestContext};
use crate::coordinator::OffsetDeleteScope;
use crate::error::{group_error_code, storage_error_code};

pub(crate) async fn handle(
    broker: &Broker,
    context: &RequestContext,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let access = Access::of(broker, context);
    let group = request.group_id.0.to_string();
    let scope = match top_level(broker, &access, &group).await {
        Ok(scope) => scope,
        Err(code) => return OffsetDeleteResponse::default().with_error_code(code),
    };
    let mut deleted = Vec::new();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let known = partition_count_if(broker, access, AclOperation::Read, &name).await;
        let subscribed = match &scope {
            OffsetDeleteScope::Unsubscribed(subscribed) => subscribed.contains(&name),
            _ => false,
        };
        let partitions = topic
            .partitions
            .into_iter()
            .map(|p| {
                let code = match known {
                    Err(code) => code,
                    Ok(count) if !(0..count).contains(&p.partition_index) => {
                        ResponseError::UnknownTopicOrPartition.code()
                    }
                    Ok(_) if subscribed => ResponseError::GroupSubscribedToTopic.code(),
                    Ok(_) => {
                        deleted.push((name.clone(), p.partition_index));
                        0
                    }
                };
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code)
            })
            .collect();
        topics.push(
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    // A partition named twice is deleted once.
    deleted.sort();
    deleted.dedup();
    if !deleted.is_empty()
        && let Err(error) = broker
            .engine
            .delete_partition_offsets(&group, &deleted)
            .await
    {
        return OffsetDeleteResponse::default().with_error_code(storage_error_code(&error));
    }
    OffsetDeleteResponse::default().with_topics(topics)
}

/// The group-level checks: authorization, coordination, and whether the
/// group exists and may lose offsets at all.
async fn top_level(
    broker: &Broker,
    access: &Access<'_>,
    group: &str,
) -> Result<OffsetDeleteScope, i16> {
    access.group(AclOperation::Delete, group)?;
    if !coordinates(broker, group) {
        return Err(ResponseError::NotCoordinator.code());
    }
    match broker.groups.offset_delete_scope(group) {
        Some(OffsetDeleteScope::NonEmpty) => Err(ResponseError::NonEmptyGroup.code()),
        Some(scope) => Ok(scope),
        None => {
            if let Ok(consumer) = broker.groups.consumer()
                && let Some(scope) = consumer
                    .offset_delete_scope(group)
                    .await
                    .map_err(|e| group_error_code(&e))?
            {
                return Ok(scope);
            }
            let offsets = broker
                .engine
                .committed_offsets(group)
                .await
                .map_err(|e| storage_error_code(&e))?;
            if offsets.is_empty() {
                Err(ResponseError::GroupIdNotFound.code())
            } else {
                Ok(OffsetDeleteScope::Any)
            }
        }
    }
}
