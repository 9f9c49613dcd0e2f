//! Shared vocabulary of StreamHouse: records, topic names and configuration,
//! the error kinds every crate maps its own errors onto, and the [`clock`]
//! every crate reads time from.
//!
//! This crate does no I/O. Everything here is plain data and validation, so
//! the metadata store, the storage engine and the protocol servers agree on
//! what a valid topic or record is.

pub mod clock;
mod error;
mod record;
pub mod security;
mod topic;

pub use error::{ErrorKind, ValidationError};
pub use record::{Header, Record};
pub use topic::{
    CleanupPolicy, ConfigEntry, ConfigType, DEFAULT_DELETE_RETENTION_MS, DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MIN_CLEANABLE_DIRTY_RATIO, DEFAULT_RETENTION_MS, MAX_PARTITIONS, MAX_TOPIC_NAME_LEN,
    TopicConfig, TopicPartition, validate_partition_count, validate_topic_name,
};
