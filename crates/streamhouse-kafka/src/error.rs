//! Kafka error codes, chosen here and only here from typed errors.

use kafka_protocol::ResponseError;
use streamhouse_core::ValidationError;
use streamhouse_metadata::MetadataError;
use streamhouse_storage::StorageError;

/// The Kafka error code for a storage error on a partition-level request
/// (Produce, Fetch, ListOffsets).
pub(crate) fn storage_error_code(error: &StorageError) -> i16 {
    let code = match error {
        StorageError::UnknownTopic { .. } | StorageError::UnknownPartition { .. } => {
            ResponseError::UnknownTopicOrPartition
        }
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
        StorageError::Validation(ValidationError::InvalidTopicName { .. }) => {
            ResponseError::InvalidTopicException
        }
        StorageError::Validation(_) | StorageError::InvalidAppend { .. } => {
            ResponseError::InvalidRequest
        }
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
        StorageError::NoConsumerGroup | StorageError::InvalidObjectStoreUrl { .. } => {
            ResponseError::UnknownServerError
        }
    };
    code.code()
}

/// The Kafka error code for a metadata error.
pub(crate) fn metadata_error_code(error: &MetadataError) -> i16 {
    let code = match error {
        MetadataError::Validation(ValidationError::InvalidTopicName { .. }) => {
            ResponseError::InvalidTopicException
        }
        MetadataError::Validation(ValidationError::InvalidPartitionCount { .. }) => {
            ResponseError::InvalidPartitions
        }
        MetadataError::Validation(
            ValidationError::InvalidConfigValue { .. } | ValidationError::UnknownConfig { .. },
        ) => ResponseError::InvalidConfig,
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
}
