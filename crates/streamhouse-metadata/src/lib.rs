//! The metadata store: topics, partitions, the segment index, producers,
//! the cluster's agents, object tombstones, consumer offsets, users and
//! ACLs, behind one async role trait per concern (united in
//! [`MetadataStore`]) with SQLite and PostgreSQL backends.
//!
//! The invariant that matters: the metadata store is the sequencer. A flush
//! becomes visible, and gets its offsets, only inside
//! [`SegmentLog::commit_flush`]'s single transaction, so any number of
//! agents can write the same partition without leases or leaders.

mod consumer_groups;
mod error;
mod layered;
mod open;
mod sql;
mod store;
#[cfg(feature = "test-util")]
pub mod testing;
mod transactions;
mod types;

pub use consumer_groups::{
    AssignedPartitions, ConsumerGroupListing, ConsumerGroupMemberRecord, ConsumerGroupRecord,
    ConsumerGroupSave, SubscribedTopic,
};
pub use error::{BoxError, MetadataError, Result};
pub use layered::LayeredStore;
pub use open::open;
pub use sql::{PostgresStore, SqliteStore};
pub use store::{
    AclStore, ClusterRegistry, ConsumerGroupLog, GroupOffsets, JobLeases, LeaderEpochs,
    MetadataStore, ObjectLedger, ProducerRegistry, SegmentLog, StoreHealth, TopicCatalog,
    TransactionLog, TransactionResult, UserCredentials,
};
pub use transactions::{EndDecision, TransactionInfo, TransactionRefusal, TransactionState};

/// The role traits, for calling store methods on a concrete backend type
/// (`use streamhouse_metadata::prelude::*;`). Through `dyn MetadataStore`
/// they resolve without it.
pub mod prelude {
    pub use crate::store::{
        AclStore as _, ClusterRegistry as _, ConsumerGroupLog as _, GroupOffsets as _,
        JobLeases as _, LeaderEpochs as _, MetadataStore, ObjectLedger as _, ProducerRegistry as _,
        SegmentLog as _, StoreHealth as _, TopicCatalog as _, TransactionLog as _,
        UserCredentials as _,
    };
}

pub use types::{
    AbortedTransaction, ActiveProducer, AgentInfo, AgentListener, BumpedEpoch, CommitNotice,
    CommittedOffset, EpochStart, FlushCommit, InitTransaction, LeaderEpochTable, LeaderMove,
    NewTopic, OffsetCommit, PartitionEpoch, PartitionInfo, PendingSegment, ProducerBatch,
    ReplacementSegment, ScramCredentialInfo, SegmentInfo, SegmentOutcome, SegmentReplacement,
    StorageStats, Topic, TopicDescription, TransactionBatch, WatermarkNotice,
};
