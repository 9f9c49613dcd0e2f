use thiserror::Error;

/// What a caller can do about an error, independent of where it came from.
///
/// Every crate's error type maps onto one of these, so the protocol layers
/// can choose a response (retry, reject, report) without matching on the
/// internals of the storage or metadata crates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request was malformed or violates a limit; retrying will not help.
    InvalidInput,
    /// The named topic, partition or group does not exist.
    NotFound,
    /// The thing being created exists already.
    AlreadyExists,
    /// The requested offset is outside the readable range.
    OffsetOutOfRange,
    /// Stored data failed an integrity check.
    Corrupt,
    /// A dependency (object store, metadata store) failed in a way that may
    /// succeed if retried. Nothing was made visible.
    Retriable,
    /// The component is shutting down.
    ShuttingDown,
    /// A bug or an unexpected state.
    Internal,
}

impl ErrorKind {
    /// Whether the same request may succeed if it is sent again.
    pub fn is_retriable(self) -> bool {
        matches!(self, ErrorKind::Retriable | ErrorKind::ShuttingDown)
    }
}

/// Input that breaks one of StreamHouse's (Kafka-compatible) rules.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ValidationError {
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: &'static str },
    #[error("invalid partition count {count}: must be between 1 and {max}")]
    InvalidPartitionCount { count: i64, max: i32 },
    #[error("invalid value {value:?} for topic config {key}: {reason}")]
    InvalidConfigValue {
        key: String,
        value: String,
        reason: &'static str,
    },
    #[error("unknown topic config {key}")]
    UnknownConfig { key: String },
    #[error("invalid principal {text:?}: expected TYPE:NAME, e.g. User:alice")]
    InvalidPrincipal { text: String },
    #[error("invalid ACL binding: {reason}")]
    InvalidAcl { reason: String },
    #[error("invalid user name {name:?}: {reason}")]
    InvalidUserName { name: String, reason: &'static str },
}
