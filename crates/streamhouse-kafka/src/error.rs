//! Kafka error codes, chosen here and only here from typed errors.

use kafka_protocol::ResponseError;
use streamhouse_core::ValidationError;
use streamhouse_storage::MetadataError;
use streamhouse_storage::StorageError;
use streamhouse_storage::TransactionRefusal;

use crate::coordinator::GroupError;

/// The Kafka error code for a storage error on a partition-level request
/// (Produce, Fetch, ListOffsets).
pub(crate) fn storage_error_code(error: &StorageError) -> i16 {
    let code = match error {
        StorageError::UnknownTopic { .. } | StorageError::UnknownPartition { .. } => {
            ResponseError::UnknownTopicOrPartition
        }
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
        StorageError::KeylessRecord { .. } => ResponseError::InvalidRecord,
        StorageError::Validation(e) => validation_error(e),
        StorageError::InvalidAppend { .. } => ResponseError::InvalidRequest,
        StorageError::Segment(_) | StorageError::SegmentMissing { .. } => {
            ResponseError::KafkaStorageError
        }
        StorageError::Metadata(e) => return metadata_error_code(e),
        // Nothing became visible; the client may retry.
        StorageError::UploadFailed { .. }
        | StorageError::CommitFailed { .. }
        | StorageError::CommitTooLate { .. }
        | StorageError::EarlierFlushFailed { .. }
        | StorageError::ObjectStore { .. } => ResponseError::KafkaStorageError,
        StorageError::Backpressure { .. } => ResponseError::KafkaStorageError,
        StorageError::PolicyViolation { .. } => ResponseError::PolicyViolation,
        StorageError::AppendTimedOut { .. } => ResponseError::RequestTimedOut,
        StorageError::ShuttingDown => ResponseError::NotLeaderOrFollower,
        StorageError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        StorageError::ProducerFenced { .. } => ResponseError::InvalidProducerEpoch,
        StorageError::TransactionRefused { reason, .. } => return refusal_code(*reason, true),
        StorageError::NoConsumerGroup | StorageError::InvalidObjectStoreUrl { .. } => {
            ResponseError::UnknownServerError
        }
    };
    code.code()
}

/// The Kafka error code for a refused transaction request. Produce answers
/// a stale epoch with INVALID_PRODUCER_EPOCH, as Kafka's partition leaders
/// do; the coordinator's APIs answer PRODUCER_FENCED.
pub(crate) fn refusal_code(refusal: TransactionRefusal, produce: bool) -> i16 {
    let error = match refusal {
        TransactionRefusal::ProducerIdMismatch => ResponseError::InvalidProducerIdMapping,
        TransactionRefusal::Fenced if produce => ResponseError::InvalidProducerEpoch,
        TransactionRefusal::Fenced => ResponseError::ProducerFenced,
        TransactionRefusal::Concurrent => ResponseError::ConcurrentTransactions,
        TransactionRefusal::InvalidState => ResponseError::InvalidTxnState,
    };
    error.code()
}

/// The Kafka error for an invalid name, partition count or config.
fn validation_error(error: &ValidationError) -> ResponseError {
    match error {
        ValidationError::InvalidTopicName { .. } => ResponseError::InvalidTopicException,
        ValidationError::InvalidPartitionCount { .. } => ResponseError::InvalidPartitions,
        ValidationError::InvalidConfigValue { .. } | ValidationError::UnknownConfig { .. } => {
            ResponseError::InvalidConfig
        }
        ValidationError::InvalidPrincipal { .. }
        | ValidationError::InvalidAcl { .. }
        | ValidationError::InvalidUserName { .. } => ResponseError::InvalidRequest,
    }
}

/// The Kafka error code for a metadata error.
pub(crate) fn metadata_error_code(error: &MetadataError) -> i16 {
    let code = match error {
        MetadataError::Validation(e) => validation_error(e),
        MetadataError::TopicAlreadyExists { .. } => ResponseError::TopicAlreadyExists,
        MetadataError::TopicNotFound { .. } | MetadataError::PartitionNotFound { .. } => {
            ResponseError::UnknownTopicOrPartition
        }
        MetadataError::InvalidArgument { .. } => ResponseError::InvalidRequest,
        // The metadata store is the cluster's controller: when it is down,
        // tell clients to retry.
        MetadataError::Unavailable { .. } => ResponseError::RequestTimedOut,
        MetadataError::Database { .. }
        | MetadataError::Migration(_)
        | MetadataError::InvalidUrl { .. }
        | MetadataError::CorruptRow { .. } => ResponseError::UnknownServerError,
    };
    code.code()
}

/// The Kafka error code for a refusal by the group coordinator.
pub(crate) fn group_error_code(error: &GroupError) -> i16 {
    let code = match error {
        GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
        GroupError::InvalidSessionTimeout { .. } => ResponseError::InvalidSessionTimeout,
        GroupError::InvalidRebalanceTimeout { .. } => ResponseError::InvalidRequest,
        GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
        GroupError::MemberIdRequired => ResponseError::MemberIdRequired,
        GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        GroupError::GroupMaxSizeReached { .. } => ResponseError::GroupMaxSizeReached,
        // Retriable: clients back off and find the coordinator again.
        GroupError::TooManyGroups { .. } | GroupError::CoordinatorNotAvailable => {
            ResponseError::CoordinatorNotAvailable
        }
        GroupError::NotCoordinator => ResponseError::NotCoordinator,
        GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
        GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
        GroupError::FencedMemberEpoch { .. } => ResponseError::FencedMemberEpoch,
        GroupError::StaleMemberEpoch { .. } => ResponseError::StaleMemberEpoch,
        GroupError::UnreleasedInstanceId { .. } => ResponseError::UnreleasedInstanceId,
        GroupError::UnsupportedAssignor { .. } => ResponseError::UnsupportedAssignor,
        GroupError::InvalidRegularExpression { .. } => ResponseError::InvalidRegularExpression,
        GroupError::GroupIdNotFound { .. } => ResponseError::GroupIdNotFound,
        GroupError::InvalidRequest { .. } => ResponseError::InvalidRequest,
        GroupError::UnsupportedVersion { .. } => ResponseError::UnsupportedVersion,
        GroupError::StoreUnavailable { .. } => ResponseError::CoordinatorNotAvailable,
    };
    code.code()
}

/// The Kafka error code for the outcome of a group request (0 when the
/// coordinator took it).
pub(crate) fn group_result_code(result: &Result<(), GroupError>) -> i16 {
    result.as_ref().map_or_else(group_error_code, |()| 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retriable_storage_failures_map_to_retriable_kafka_errors() {
        let upload = StorageError::EarlierFlushFailed { key: "k".into() };
        let code = storage_error_code(&upload);
        assert!(
            ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable()),
            "{code}"
        );
        let metadata_down =
            StorageError::from(MetadataError::unavailable("commit", "pool timed out"));
        let code = storage_error_code(&metadata_down);
        assert!(ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable()));
    }

    #[test]
    fn unknown_partitions_and_ranges() {
        assert_eq!(
            storage_error_code(&StorageError::UnknownTopic { topic: "t".into() }),
            3
        );
        assert_eq!(
            storage_error_code(&StorageError::OffsetOutOfRange {
                topic: "t".into(),
                partition: 0,
                offset: 9,
                log_start_offset: 0,
                high_watermark: 1,
            }),
            1
        );
        assert_eq!(
            storage_error_code(&StorageError::RecordTooLarge {
                topic: "t".into(),
                size: 2,
                max: 1,
            }),
            10
        );
    }

    #[test]
    fn group_refusals_get_kafka_group_codes() {
        let cases = [
            (GroupError::InvalidGroupId, 24),
            (
                GroupError::InvalidSessionTimeout {
                    session_timeout_ms: 1,
                },
                26,
            ),
            (
                GroupError::InvalidRebalanceTimeout {
                    rebalance_timeout_ms: -1,
                },
                42,
            ),
            (GroupError::UnknownMemberId, 25),
            (GroupError::MemberIdRequired, 79),
            (GroupError::IllegalGeneration, 22),
            (GroupError::RebalanceInProgress, 27),
            (GroupError::InconsistentGroupProtocol, 23),
            (GroupError::GroupMaxSizeReached { max_size: 2 }, 81),
            (GroupError::TooManyGroups { max_groups: 2 }, 15),
            (GroupError::CoordinatorNotAvailable, 15),
            (GroupError::NotCoordinator, 16),
            (GroupError::FencedInstanceId, 82),
            (GroupError::NonEmptyGroup, 68),
            (
                GroupError::FencedMemberEpoch {
                    sent: 2,
                    current: 3,
                },
                110,
            ),
            (
                GroupError::UnreleasedInstanceId {
                    instance_id: "i".into(),
                    holder: "m".into(),
                },
                111,
            ),
            (GroupError::UnsupportedAssignor { name: "x".into() }, 112),
            (
                GroupError::StaleMemberEpoch {
                    sent: 2,
                    current: 3,
                },
                113,
            ),
            (
                GroupError::InvalidRegularExpression { reason: "(".into() },
                128,
            ),
            (
                GroupError::GroupIdNotFound {
                    group_id: "g".into(),
                    reason: "is not a consumer group",
                },
                69,
            ),
            (GroupError::InvalidRequest { reason: "r".into() }, 42),
            (GroupError::StoreUnavailable { reason: "r".into() }, 15),
        ];
        for (error, code) in cases {
            assert_eq!(group_error_code(&error), code, "{error:?}");
        }
        assert_eq!(group_result_code(&Ok(())), 0);
        assert_eq!(group_result_code(&Err(GroupError::IllegalGeneration)), 22);
        for retriable in [
            GroupError::TooManyGroups { max_groups: 2 },
            GroupError::CoordinatorNotAvailable,
            GroupError::NotCoordinator,
            GroupError::StoreUnavailable { reason: "r".into() },
        ] {
            let code = group_error_code(&retriable);
            assert!(
                ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable()),
                "{retriable:?}"
            );
        }
    }
}
