//! The metadata store: topics, partitions, the segment index and consumer
//! offsets, behind one async trait with SQLite and PostgreSQL backends.
//!
//! The invariant that matters: the metadata store is the sequencer. A flush
//! becomes visible, and gets its offsets, only inside
//! [`MetadataStore::commit_flush`]'s single transaction, so any number of
//! agents can write the same partition without leases or leaders.

mod error;
mod open;
mod sql;
mod store;
pub mod testing;
mod types;

pub use error::{BoxError, MetadataError, Result};
pub use open::open;
pub use sql::{PostgresStore, SqliteStore};
pub use store::MetadataStore;
pub use types::{
    AgentInfo, CommitNotice, CommittedOffset, FlushCommit, NewTopic, OffsetCommit, PartitionInfo,
    PendingSegment, ProducerBatch, ReplacementSegment, SegmentInfo, SegmentOutcome,
    SegmentReplacement, StorageStats, Topic, TopicDescription,
};
