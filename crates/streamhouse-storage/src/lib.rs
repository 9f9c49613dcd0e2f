//! StreamHouse's storage engine: segments in object storage, indexed by
//! the metadata store.
//!
//! Write path: appends are encoded into one open segment per partition;
//! the flusher uploads ONE object holding every partition's segment, then
//! commits it in ONE metadata transaction that assigns the offsets, and
//! only then answers the appends. Read path: segment index → segment cache
//! → ranged GET of just one segment → segment reader.
//!
//! The invariant that matters: nothing is acknowledged before its bytes are
//! in object storage and its metadata transaction has committed, and
//! nothing uncommitted is ever read.

mod authorizer;
mod cache;
pub mod clock;
mod consumer;
mod engine;
mod error;
mod flusher;
mod health;
pub mod jobs;
mod leader_epochs;
mod long_poll;
mod object_storage;
mod orphans;
mod partitioner;
mod producer;
mod reader;
pub mod segment;
pub mod segment_index;
#[cfg(feature = "test-util")]
pub mod testing;
mod topics;
mod watermarks;
mod writer;

pub use cache::CacheStats;
pub use consumer::{ConsumedRecord, Consumer, ConsumerConfig, OffsetReset};
pub use engine::{
    DEFAULT_SCRAM_ITERATIONS, MAX_USER_NAME_BYTES, ScramUser, SecurityConfig, StorageConfig,
    StorageEngine, TransactionOutcome, validate_user_name,
};
pub use error::{Result, StorageError};
pub use health::{WriteHealth, WriteOutcomes};
pub use leader_epochs::{EpochEnd, EpochHistory};
pub use long_poll::{CommitWait, REFRESHES_PER_POLL, REMOTE_COMMIT_POLL};
pub use object_storage::{ObjectStorage, ObjectStoreStats};
pub use partitioner::{murmur2, partition_for_key};
pub use producer::{Producer, ProducerRecord, RecordMetadata};
pub use reader::{Isolation, PartitionReader, ReadResult, TransactionRun, VisibleRead};
pub use segment::{Compression, SegmentError, SegmentReader, SegmentWriter};
pub use segment_index::{IndexedSegment, SegmentIndex, SegmentIndexConfig};
pub use writer::{AppendResult, FlushConfig, PendingAppend};

/// The metadata values the engine's callers see, so that front-ends depend
/// on the engine alone.
pub use streamhouse_core::security;
pub use streamhouse_metadata::{
    AbortedTransaction, AgentInfo, AgentListener, AssignedPartitions, BumpedEpoch, ClusterRegistry,
    CommittedOffset, ConsumerGroupListing, ConsumerGroupMemberRecord, ConsumerGroupRecord,
    ConsumerGroupSave, EpochStart, GroupOffsets, LeaderMove, MetadataError, NewTopic, OffsetCommit,
    PartitionInfo, ProducerBatch, SegmentInfo, StorageStats, SubscribedTopic, Topic,
    TopicDescription, TransactionBatch, TransactionInfo, TransactionRefusal, TransactionState,
};
