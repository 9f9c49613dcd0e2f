use std::sync::Arc;

use streamhouse_core::{ErrorKind, ValidationError};
use streamhouse_metadata::MetadataError;
use thiserror::Error;

use crate::segment::SegmentError;

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Errors of the storage engine.
///
/// Cloneable, because one failed flush fails every append that was waiting
/// on it; sources that are not `Clone` are shared behind an `Arc`.
#[derive(Debug, Clone, Error)]
pub enum StorageError {
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error(transparent)]
    Metadata(Arc<MetadataError>),
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("object store {operation} of {key:?} failed: {source}")]
    ObjectStore {
        operation: &'static str,
        key: String,
        #[source]
        source: Arc<object_store::Error>,
    },
    /// The flush could not be uploaded; nothing of it became visible.
    #[error("upload of {key:?} failed after {attempts} attempts: {source}")]
    UploadFailed {
        key: String,
        attempts: u32,
        #[source]
        source: Arc<object_store::Error>,
    },
    /// The flush was uploaded but its metadata transaction failed; nothing
    /// of it became visible and the object is garbage.
    #[error("commit of flush {key:?} failed after {attempts} attempts: {source}")]
    CommitFailed {
        key: String,
        attempts: u32,
        #[source]
        source: Arc<MetadataError>,
    },
    /// The flush was uploaded too long ago to be committed safely: garbage
    /// collection may treat an object this old as an orphan. Nothing of it
    /// became visible.
    #[error("flush {key:?} not committed: its upload started {elapsed_ms} ms ago")]
    CommitTooLate { key: String, elapsed_ms: u64 },
    /// An earlier flush failed while this one was in flight; it is failed
    /// too so that a producer's writes to a partition never commit out of
    /// order.
    #[error("flush {key:?} abandoned because an earlier flush failed")]
    EarlierFlushFailed { key: String },
    #[error(
        "offset {offset} is out of range for {topic}-{partition}: readable offsets are \
         {log_start_offset}..{high_watermark}"
    )]
    OffsetOutOfRange {
        topic: String,
        partition: i32,
        offset: i64,
        log_start_offset: i64,
        high_watermark: i64,
    },
    #[error("record of {size} bytes exceeds the maximum of {max} bytes for topic {topic}")]
    RecordTooLarge {
        topic: String,
        size: usize,
        max: usize,
    },
    /// Records without a key sent to a topic whose `cleanup.policy`
    /// compacts: compaction keeps the latest record of each key, so Kafka
    /// refuses them (INVALID_RECORD) and nothing of the append is stored.
    /// `indexes` are the keyless records' positions in the append.
    #[error(
        "Compacted topic cannot accept message without key in topic partition {topic}-{partition}."
    )]
    KeylessRecord {
        topic: String,
        partition: i32,
        indexes: Vec<usize>,
    },
    #[error("invalid append: {reason}")]
    InvalidAppend { reason: &'static str },
    /// A request the agent's policy refuses (a limit operators set).
    #[error("{reason}")]
    PolicyViolation { reason: String },
    /// The agent already holds its limit of unflushed bytes while flushes
    /// are failing; nothing was buffered and the client may retry.
    #[error(
        "{max} bytes of appends are waiting for storage that is failing; retry later \
         (--max-unflushed-bytes)"
    )]
    Backpressure { max: usize },
    /// The append waited for buffer space longer than its caller allowed;
    /// nothing was buffered.
    #[error("no buffer space within {waited_ms} ms (--max-unflushed-bytes is full)")]
    AppendTimedOut { waited_ms: u64 },
    /// An idempotent producer's batch does not follow its last sequence on
    /// the partition.
    #[error("out-of-order sequence from an idempotent producer on {topic}-{partition}")]
    OutOfOrderSequence { topic: String, partition: i32 },
    /// An idempotent producer's batch carries an epoch older than its
    /// current one: another instance of the producer took over.
    #[error("producer fenced by a newer epoch on {topic}-{partition}")]
    ProducerFenced { topic: String, partition: i32 },
    /// A transactional batch its producer's transaction does not allow (no
    /// transaction open, the partition not added to it, an epoch that is
    /// not the current one, a producer id never issued to a transactional
    /// id); nothing was stored.
    #[error("transactional batch refused on {topic}-{partition}: {reason:?}")]
    TransactionRefused {
        topic: String,
        partition: i32,
        reason: streamhouse_metadata::TransactionRefusal,
    },
    #[error("this consumer has no group, so it has no offsets to commit")]
    NoConsumerGroup,
    #[error("topic {topic:?} does not exist")]
    UnknownTopic { topic: String },
    #[error("partition {partition} of topic {topic:?} does not exist")]
    UnknownPartition { topic: String, partition: i32 },
    /// The index says an offset exists but no segment row holds it: data
    /// was removed underneath a reader (retention) or metadata is damaged.
    #[error("no segment holds offset {offset} of {topic}-{partition}")]
    SegmentMissing {
        topic: String,
        partition: i32,
        offset: i64,
    },
    #[error("invalid object store URL {url:?}: {reason}")]
    InvalidObjectStoreUrl { url: String, reason: String },
    #[error("the storage engine is shutting down")]
    ShuttingDown,
}

impl From<MetadataError> for StorageError {
    fn from(error: MetadataError) -> Self {
        match error {
            MetadataError::TopicNotFound { topic } => StorageError::UnknownTopic { topic },
            MetadataError::PartitionNotFound { topic, partition } => {
                StorageError::UnknownPartition { topic, partition }
            }
            MetadataError::Validation(e) => StorageError::Validation(e),
            other => StorageError::Metadata(Arc::new(other)),
        }
    }
}

impl StorageError {
    pub(crate) fn object_store(
        operation: &'static str,
        key: impl Into<String>,
        source: object_store::Error,
    ) -> Self {
        StorageError::ObjectStore {
            operation,
            key: key.into(),
            source: Arc::new(source),
        }
    }

    /// True when an object a segment row pointed at does not exist.
    pub fn is_object_not_found(&self) -> bool {
        matches!(self, StorageError::ObjectStore { source, .. }
            if matches!(**source, object_store::Error::NotFound { .. }))
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            StorageError::Segment(_) | StorageError::SegmentMissing { .. } => ErrorKind::Corrupt,
            StorageError::Metadata(e) => e.kind(),
            StorageError::Validation(_)
            | StorageError::RecordTooLarge { .. }
            | StorageError::KeylessRecord { .. }
            | StorageError::InvalidAppend { .. }
            | StorageError::PolicyViolation { .. }
            | StorageError::NoConsumerGroup
            | StorageError::OutOfOrderSequence { .. }
            | StorageError::ProducerFenced { .. }
            | StorageError::TransactionRefused { .. }
            | StorageError::InvalidObjectStoreUrl { .. } => ErrorKind::InvalidInput,
            StorageError::ObjectStore { source, .. } => match source.as_ref() {
                object_store::Error::NotFound { .. } => ErrorKind::Corrupt,
                _ => ErrorKind::Retriable,
            },
            StorageError::UploadFailed { .. }
            | StorageError::CommitFailed { .. }
            | StorageError::CommitTooLate { .. }
            | StorageError::EarlierFlushFailed { .. }
            | StorageError::Backpressure { .. }
            | StorageError::AppendTimedOut { .. } => ErrorKind::Retriable,
            StorageError::OffsetOutOfRange { .. } => ErrorKind::OffsetOutOfRange,
            StorageError::UnknownTopic { .. } | StorageError::UnknownPartition { .. } => {
                ErrorKind::NotFound
            }
            StorageError::ShuttingDown => ErrorKind::ShuttingDown,
        }
    }

    pub fn is_retriable(&self) -> bool {
        self.kind().is_retriable()
    }
}
