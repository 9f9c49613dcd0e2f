use streamhouse_core::{ErrorKind, ValidationError};
use thiserror::Error;

pub type Result<T, E = MetadataError> = std::result::Result<T, E>;

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
        source: sqlx::Error,
    },
    #[error("metadata query failed during {operation}: {source}")]
    Database {
        operation: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("applying metadata migrations failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("invalid metadata URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("stored {what} is unreadable: {detail}")]
    CorruptRow { what: &'static str, detail: String },
}

impl MetadataError {
    /// Classifies a database error from `operation`: connection trouble and
    /// lock conflicts are retriable, everything else is not.
    pub(crate) fn from_sqlx(operation: &'static str, source: sqlx::Error) -> Self {
        if is_transient(&source) {
            MetadataError::Unavailable { operation, source }
        } else {
            MetadataError::Database { operation, source }
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

fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            matches!(
                code.as_deref(),
                // PostgreSQL: serialization failure, deadlock, connection
                // exceptions (08xxx), admin shutdown, cannot connect now.
                Some("40001" | "40P01" | "57P01" | "57P02" | "57P03")
            ) || code.as_deref().is_some_and(|c| c.starts_with("08"))
                // SQLite: SQLITE_BUSY and SQLITE_LOCKED, with extended codes.
                || code
                    .as_deref()
                    .and_then(|c| c.parse::<i32>().ok())
                    .is_some_and(|c| matches!(c & 0xff, 5 | 6))
        }
        _ => false,
    }
}
