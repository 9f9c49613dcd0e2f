//! What a request's caller may do, asked of the engine, and the Kafka
//! error each refusal is answered with.
//!
//! Each handler decides which operation on which resource its API needs
//! (Kafka's "Operations and Resources on Protocols"); this module only
//! turns a refusal into the code Kafka uses for that resource type and
//! builds the `*_authorized_operations` bit fields.

use kafka_protocol::ResponseError;
use streamhouse_storage::StorageEngine;
use streamhouse_storage::security::{AclOperation, CLUSTER_NAME, Caller, ResourceType};

use crate::broker::{Broker, RequestContext};

/// Operations Kafka reports in `topic_authorized_operations`.
const TOPIC_OPERATIONS: &[AclOperation] = &[
    AclOperation::Read,
    AclOperation::Write,
    AclOperation::Create,
    AclOperation::Delete,
    AclOperation::Alter,
    AclOperation::Describe,
    AclOperation::DescribeConfigs,
    AclOperation::AlterConfigs,
];
/// Operations Kafka reports in `cluster_authorized_operations`.
const CLUSTER_OPERATIONS: &[AclOperation] = &[
    AclOperation::Create,
    AclOperation::ClusterAction,
    AclOperation::DescribeConfigs,
    AclOperation::AlterConfigs,
    AclOperation::IdempotentWrite,
    AclOperation::Alter,
    AclOperation::Describe,
];
/// Operations Kafka reports in a group's `authorized_operations`.
const GROUP_OPERATIONS: &[AclOperation] = &[
    AclOperation::Read,
    AclOperation::Describe,
    AclOperation::Delete,
];

/// Kafka's "not asked for" value of an authorized-operations field.
pub(crate) const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

pub(crate) const TOPIC_AUTHORIZATION_FAILED: i16 = ResponseError::TopicAuthorizationFailed.code();
pub(crate) const GROUP_AUTHORIZATION_FAILED: i16 = ResponseError::GroupAuthorizationFailed.code();
pub(crate) const CLUSTER_AUTHORIZATION_FAILED: i16 =
    ResponseError::ClusterAuthorizationFailed.code();
pub(crate) const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 =
    ResponseError::TransactionalIdAuthorizationFailed.code();

/// The caller of one request, and the engine that decides for it.
#[derive(Clone, Copy)]
pub(crate) struct Access<'a> {
    engine: &'a StorageEngine,
    caller: &'a Caller,
}

impl<'a> Access<'a> {
    pub(crate) fn of(broker: &'a Broker, context: &'a RequestContext) -> Self {
        Self {
            engine: &broker.engine,
            caller: &context.caller,
        }
    }

    pub(crate) fn allows(self, operation: AclOperation, kind: ResourceType, name: &str) -> bool {
        self.engine.authorize(self.caller, operation, kind, name)
    }

    /// `operation` on the topic, or TOPIC_AUTHORIZATION_FAILED.
    pub(crate) fn topic(self, operation: AclOperation, topic: &str) -> Result<(), i16> {
        self.check(
            operation,
            ResourceType::Topic,
            topic,
            TOPIC_AUTHORIZATION_FAILED,
        )
    }

    /// `operation` on the group, or GROUP_AUTHORIZATION_FAILED.
    pub(crate) fn group(self, operation: AclOperation, group: &str) -> Result<(), i16> {
        self.check(
            operation,
            ResourceType::Group,
            group,
            GROUP_AUTHORIZATION_FAILED,
        )
    }

    /// `operation` on the cluster, or CLUSTER_AUTHORIZATION_FAILED.
    pub(crate) fn cluster(self, operation: AclOperation) -> Result<(), i16> {
        self.check(
            operation,
            ResourceType::Cluster,
            CLUSTER_NAME,
            CLUSTER_AUTHORIZATION_FAILED,
        )
    }

    /// `operation` on the transactional id, or
    /// TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
    pub(crate) fn transactional_id(self, operation: AclOperation, id: &str) -> Result<(), i16> {
        self.check(
            operation,
            ResourceType::TransactionalId,
            id,
            TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        )
    }

    /// Whether the caller may do `operation` on at least one resource of
    /// the type.
    pub(crate) fn allows_any(self, operation: AclOperation, kind: ResourceType) -> bool {
        self.engine.authorize_any(self.caller, operation, kind)
    }

    /// Whether the caller may create `topic`: Create on the cluster or on
    /// the topic.
    pub(crate) fn may_create_topic(self, topic: &str) -> bool {
        self.cluster(AclOperation::Create).is_ok()
            || self.topic(AclOperation::Create, topic).is_ok()
    }

    /// Kafka's bit field of the operations the caller may do on the
    /// resource (bit `code` set for each), for the
    /// `*_authorized_operations` fields.
    pub(crate) fn operations(self, kind: ResourceType, name: &str) -> i32 {
        let supported = match kind {
            ResourceType::Topic => TOPIC_OPERATIONS,
            ResourceType::Cluster => CLUSTER_OPERATIONS,
            ResourceType::Group => GROUP_OPERATIONS,
            _ => &[],
        };
        supported
            .iter()
            .filter(|operation| self.allows(**operation, kind, name))
            .fold(0, |bits, operation| bits | 1 << operation.code())
    }

    /// The authorized-operations field: the bit field if the client asked
    /// for it, Kafka's "not requested" value otherwise.
    pub(crate) fn operations_if(self, wanted: bool, kind: ResourceType, name: &str) -> i32 {
        if wanted {
            self.operations(kind, name)
        } else {
            OPERATIONS_NOT_REQUESTED
        }
    }

    fn check(
        self,
        operation: AclOperation,
        kind: ResourceType,
        name: &str,
        refused: i16,
    ) -> Result<(), i16> {
        if self.allows(operation, kind, name) {
            Ok(())
        } else {
            tracing::debug!(principal = %self.caller.principal, host = %self.caller.host,
                %operation, resource_type = %kind, resource = name, "not authorized");
            Err(refused)
        }
    }
}
