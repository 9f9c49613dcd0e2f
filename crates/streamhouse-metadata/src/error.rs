use streamhouse_core::{ErrorKind, ValidationError};
use thiserror::Error;

pub type Result<T, E = MetadataError> = std::result::Result<T, E>;

/// The cause of a database failure, whatever the backend's own error type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of the metadata store.
#[derive(Debug, Error)]
pub enum MetadataError {
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("topic {topic:?} already exists")]
    TopicAlreadyExists { topic: String },
    #[error("topic {topic:?} does not exist")]
    TopicNotFound { topic: String },
    #[error("partition {partition} of topic {topic:?} does not exist")]
    PartitionNotFound { topic: String, partition: i32 },
    #[error("invalid {what}: {reason}")]
    InvalidArgument { what: &'static str, reason: String },
    /// The database could not be reached or the operation may succeed if
    /// retried (connection loss, pool timeout, lock conflict, serialization
    /// failure). The transaction did not commit.
    #[error("metadata store unavailable during {operation}: {source}")]
    Unavailable {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("metadata query failed during {operation}: {source}")]
    Database {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("applying metadata migrations failed: {0}")]
    Migration(#[source] BoxError),
    #[error("invalid metadata URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("stored {what} is unreadable: {detail}")]
    CorruptRow { what: &'static str, detail: String },
}

impl MetadataError {
    /// A retriable failure of `operation`: the store did not answer, or
    /// answered that the operation may succeed if tried again.
    pub fn unavailable(operation: &'static str, source: impl Into<BoxError>) -> Self {
        MetadataError::Unavailable {
            operation,
            source: source.into(),
        }
    }

    /// A failure of `operation` that retrying will not cure.
    pub fn database(operation: &'static str, source: impl Into<BoxError>) -> Self {
        MetadataError::Database {
            operation,
            source: source.into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            MetadataError::Validation(_) | MetadataError::InvalidArgument { .. } => {
                ErrorKind::InvalidInput
            }
            MetadataError::InvalidUrl { .. } => ErrorKind::InvalidInput,
            MetadataError::TopicAlreadyExists { .. } => ErrorKind::AlreadyExists,
            MetadataError::TopicNotFound { .. } | MetadataError::PartitionNotFound { .. } => {
                ErrorKind::NotFound
            }
            MetadataError::Unavailable { .. } => ErrorKind::Retriable,
            MetadataError::CorruptRow { .. } => ErrorKind::Corrupt,
            MetadataError::Database { .. } | MetadataError::Migration(_) => ErrorKind::Internal,
        }
    }

    pub fn is_retriable(&self) -> bool {
        self.kind().is_retriable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_is_retriable_and_keeps_its_source() {
        let error = MetadataError::unavailable("commit flush", "pool timed out");
        assert!(error.is_retriable());
        assert_eq!(error.kind(), ErrorKind::Retriable);
        assert_eq!(
            error.to_string(),
            "metadata store unavailable during commit flush: pool timed out"
        );
        let source = std::error::Error::source(&error).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("pool timed out"));
        let database = MetadataError::database("list topics", "syntax error");
        assert!(!database.is_retriable());
        assert_eq!(database.kind(), ErrorKind::Internal);
    }
}
