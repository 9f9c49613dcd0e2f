//! The metadata store's roles, one trait per concern, and their union
//! [`MetadataStore`].
//!
//! Code that needs one concern takes that role (`Arc<dyn GroupOffsets>`);
//! code that needs several takes `Arc<dyn MetadataStore>`, which upcasts to
//! any role. Every backend implements all roles, and so is a
//! `MetadataStore` through the blanket impl.

use std::fmt::Debug;

use async_trait::async_trait;
use streamhouse_core::TopicConfig;
use streamhouse_core::security::{AclBinding, AclBindingFilter, ScramCredential, ScramMechanism};

use crate::consumer_groups::{ConsumerGroupListing, ConsumerGroupRecord, ConsumerGroupSave};
use crate::error::{MetadataError, Result};
use crate::transactions::{EndDecision, TransactionInfo, TransactionRefusal};
use crate::types::{
    AbortedTransaction, ActiveProducer, AgentInfo, BumpedEpoch, CommitNotice, CommittedOffset,
    EpochStart, FlushCommit, InitTransaction, LeaderEpochTable, LeaderMove, NewTopic, OffsetCommit,
    PartitionInfo, ScramCredentialInfo, SegmentInfo, SegmentOutcome, SegmentReplacement,
    StorageStats, Topic, TopicDescription,
};

/// Where StreamHouse keeps everything but the event data: every role at
/// once.
///
/// Every backend passes the same contract suite (`tests/contract.rs`).
pub trait MetadataStore:
    StoreHealth
    + TopicCatalog
    + SegmentLog
    + ProducerRegistry
    + ClusterRegistry
    + JobLeases
    + ObjectLedger
    + GroupOffsets
    + ConsumerGroupLog
    + UserCredentials
    + AclStore
    + TransactionLog
    + LeaderEpochs
{
}

impl<T> MetadataStore for T where
    T: StoreHealth
        + TopicCatalog
        + SegmentLog
        + ProducerRegistry
        + ClusterRegistry
        + JobLeases
        + ObjectLedger
        + GroupOffsets
        + ConsumerGroupLog
        + UserCredentials
        + AclStore
        + TransactionLog
        + LeaderEpochs
{
}

/// Which backend this is, and whether it answers.
#[async_trait]
pub trait StoreHealth: Send + Sync + Debug + 'static {
    /// Short backend name for logs and metrics: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Succeeds when the database answers a trivial query.
    async fn ping(&self) -> Result<()>;
}

/// Topics, their partitions and their configuration.
#[async_trait]
pub trait TopicCatalog: Send + Sync + Debug + 'static {
    /// Creates a topic and its partitions, each starting at offset 0.
    async fn create_topic(&self, topic: NewTopic) -> Result<Topic>;

    /// All topics, ordered by name.
    async fn list_topics(&self) -> Result<Vec<Topic>>;

    async fn get_topic(&self, name: &str) -> Result<Topic>;

    /// The topic and the high watermark and log start offset of every
    /// partition, read in one snapshot.
    async fn describe_topic(&self, name: &str) -> Result<TopicDescription>;

    /// Removes the topic, its partitions, its segment rows and the consumer
    /// offsets committed for it. The objects stay until garbage collection:
    /// each one the topic referenced gets a tombstone.
    async fn delete_topic(&self, name: &str) -> Result<()>;

    /// Grows a topic to `total` partitions. Partitions cannot be removed.
    async fn add_partitions(&self, topic: &str, total: i64) -> Result<Topic>;

    async fn get_partition(&self, topic: &str, partition: i32) -> Result<PartitionInfo>;

    /// Replaces a topic's configuration overrides.
    async fn update_topic_config(&self, name: &str, config: TopicConfig) -> Result<Topic>;

    /// Advances a partition's log start offset to `offset` (never back,
    /// never past the high watermark) and, in the same transaction,
    /// deletes the segment rows that lie wholly below it, tombstoning
    /// their objects. Retention and DeleteRecords use it. Returns the
    /// partition's new state.
    async fn truncate_partition(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<PartitionInfo>;
}

/// The segment index: which stored runs of offsets exist, and the commit
/// that makes a flush visible.
#[async_trait]
pub trait SegmentLog: Send + Sync + Debug + 'static {
    /// Makes one flushed object visible: in ONE transaction, assigns each
    /// segment's offsets from its partition's high watermark (segments of
    /// the same partition in the order given), advances the high
    /// watermarks and inserts the segment rows.
    ///
    /// Retrying a commit whose outcome is unknown is safe: if segment rows
    /// for `flush.key` exist, the flush committed before and the original
    /// offsets are returned without assigning new ones.
    ///
    /// Returns one outcome per segment, in order.
    async fn commit_flush(&self, flush: &FlushCommit) -> Result<Vec<SegmentOutcome>>;

    /// Segment rows of a partition whose `end_offset >= from_offset`,
    /// ordered by base offset, at most `limit` of them.
    async fn list_segments(
        &self,
        topic: &str,
        partition: i32,
        from_offset: i64,
        limit: usize,
    ) -> Result<Vec<SegmentInfo>>;

    /// The first segment (lowest offsets) of a partition holding a record
    /// with a timestamp at or after `timestamp`, if any.
    async fn find_segment_by_timestamp(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<Option<SegmentInfo>>;

    /// Compaction's swap: in ONE transaction, deletes the run of rows the
    /// replacement covers, inserts a row per replacement segment and tombstones the
    /// objects the deleted rows referenced. Returns false, changing
    /// nothing, when the run no longer has `replaced_rows` rows or starts
    /// below the log start offset.
    async fn replace_segments(&self, replacement: &SegmentReplacement) -> Result<bool>;

    /// Counts over the segment rows and tombstones.
    async fn storage_stats(&self) -> Result<StorageStats>;

    /// The bytes of object storage each partition of `topic` holds (its
    /// segment rows' byte lengths), by partition; partitions without a row
    /// are left out.
    async fn partition_bytes(&self, topic: &str) -> Result<Vec<(i32, i64)>>;

    /// A stream of the high watermarks each commit produced, by this
    /// process and (on PostgreSQL) by every other agent sharing the
    /// database. Notices may be dropped under load; readers must still
    /// re-read watermarks from time to time.
    fn commit_notices(&self) -> tokio::sync::broadcast::Receiver<CommitNotice>;
}

/// Idempotent producers' ids and epochs.
#[async_trait]
pub trait ProducerRegistry: Send + Sync + Debug + 'static {
    /// Allocates a new producer id (epoch 0) for an idempotent producer;
    /// ids are never reused.
    async fn allocate_producer_id(&self) -> Result<i64>;

    /// Starts a new epoch for an existing producer (Kafka's InitProducerId
    /// with a producer id, KIP-360): `epoch` must be the current one.
    /// Returns the new epoch, or `None` when the producer id is unknown or
    /// the epoch is not its current one.
    async fn bump_producer_epoch(&self, producer_id: i64, epoch: i16) -> Result<Option<i16>>;

    /// The producers whose batches the partition keeps for sequence checks,
    /// by producer id.
    async fn describe_producers(&self, topic: &str, partition: i32) -> Result<Vec<ActiveProducer>>;
}

/// The agents of the cluster and their heartbeats.
#[async_trait]
pub trait ClusterRegistry: Send + Sync + Debug + 'static {
    /// Registers (or re-registers) an agent, marking it alive now.
    async fn register_agent(&self, agent: &AgentInfo) -> Result<()>;

    /// The Kafka node id of `agent_id`: the one it held before, or the
    /// smallest free one. An id is free once its holder is not registered
    /// and has not asked since `reusable_before` (ms since the epoch).
    async fn node_id(&self, agent_id: &str, now: i64, reusable_before: i64) -> Result<i32>;

    /// Records that an agent is alive at `now` (ms since the epoch).
    /// Returns false when the agent is not registered.
    async fn heartbeat_agent(&self, agent_id: &str, now: i64) -> Result<bool>;

    /// Removes an agent, as a clean shutdown does.
    async fn deregister_agent(&self, agent_id: &str) -> Result<()>;

    /// Agents whose last heartbeat is at or after `alive_since`, ordered by
    /// agent id.
    async fn list_agents(&self, alive_since: i64) -> Result<Vec<AgentInfo>>;
}

/// Leases that give one agent at a time a background job.
#[async_trait]
pub trait JobLeases: Send + Sync + Debug + 'static {
    /// Takes or renews the lease on a background job for `holder` until
    /// `expires_at`: succeeds when nobody holds it, `holder` already does,
    /// or the current lease expired before `now` (ms since the epoch).
    async fn acquire_lease(
        &self,
        job: &str,
        holder: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool>;

    /// Gives a lease up, if `holder` has it.
    async fn release_lease(&self, job: &str, holder: &str) -> Result<()>;
}

/// Which objects segment rows reference, and the tombstones of those that
/// lost their last reference.
#[async_trait]
pub trait ObjectLedger: Send + Sync + Debug + 'static {
    /// Which of `keys` (object keys in `bucket`) some segment row
    /// references. Used to find objects no row points at.
    async fn referenced_objects(&self, bucket: &str, keys: &[String]) -> Result<Vec<String>>;

    /// Objects of `bucket` that lost their last segment row before
    /// `before` (ms since the epoch), oldest first, at most `limit`.
    async fn expired_tombstones(
        &self,
        bucket: &str,
        before: i64,
        limit: usize,
    ) -> Result<Vec<String>>;

    /// Which of `keys` have a tombstone, whatever its age.
    async fn tombstoned_objects(&self, bucket: &str, keys: &[String]) -> Result<Vec<String>>;

    /// Forgets tombstones (the objects were deleted, or are referenced
    /// again and will be tombstoned anew when they lose that reference).
    async fn remove_tombstones(&self, bucket: &str, keys: &[String]) -> Result<()>;
}

/// Consumer groups' committed offsets.
#[async_trait]
pub trait GroupOffsets: Send + Sync + Debug + 'static {
    /// Stores a consumer group's offsets, replacing earlier commits. Fails
    /// with `PartitionNotFound` (committing nothing) if any partition is
    /// unknown.
    async fn commit_offsets(&self, group: &str, offsets: &[OffsetCommit]) -> Result<()>;

    /// All offsets committed by a group, ordered by topic and partition.
    async fn fetch_offsets(&self, group: &str) -> Result<Vec<CommittedOffset>>;

    /// Groups that have committed offsets, ordered by name.
    async fn list_groups(&self) -> Result<Vec<String>>;

    /// Removes every offset of a group; returns whether it had any.
    async fn delete_group(&self, group: &str) -> Result<bool>;

    /// Removes a group's offsets of the given partitions (Kafka's
    /// OffsetDelete), in one transaction; partitions without one are
    /// skipped.
    async fn delete_offsets(&self, group: &str, partitions: &[(String, i32)]) -> Result<()>;

    /// Removes the offsets of `group` committed before `committed_before`
    /// (milliseconds since the epoch, like `CommittedOffset::committed_at`):
    /// Kafka's offset expiry. Returns how many were removed. Whether the
    /// group may lose its offsets (it has been empty long enough) is the
    /// group coordinator's decision. Backends must implement it; a store
    /// that does not refuses, so nothing is removed by accident.
    async fn expire_offsets(&self, group: &str, committed_before: i64) -> Result<u64> {
        let _ = (group, committed_before);
        Err(MetadataError::InvalidArgument {
            what: "operation",
            reason: "this store does not expire offsets".into(),
        })
    }
}

/// Consumer groups of Kafka's consumer protocol (KIP-848): their epochs,
/// members and assignments, so that any agent can take a group over.
#[async_trait]
pub trait ConsumerGroupLog: Send + Sync + Debug + 'static {
    /// The group with its members (ordered by member id), if stored.
    async fn load_consumer_group(&self, group_id: &str) -> Result<Option<ConsumerGroupRecord>>;

    /// Saves one change in one transaction: the group's row, the members
    /// it adds or changes and the ones it removes. Returns the group's new
    /// version, or `None` (saving nothing) when the stored version is not
    /// `save.expected_version` (or the group exists when `None` was
    /// expected): another coordinator changed it since it was read.
    async fn save_consumer_group(&self, save: &ConsumerGroupSave) -> Result<Option<i64>>;

    /// Removes the group and its members if its version is still
    /// `expected_version`; returns whether it did.
    async fn delete_consumer_group(&self, group_id: &str, expected_version: i64) -> Result<bool>;

    /// Every stored group with its state and member count, ordered by id.
    async fn list_consumer_groups(&self) -> Result<Vec<ConsumerGroupListing>>;

    /// The stored group's version, if it is stored: a cheap check of
    /// whether a copy held in memory is still the latest.
    async fn consumer_group_version(&self, group_id: &str) -> Result<Option<i64>>;
}

/// Users: SCRAM credentials, one per user and mechanism. Every change bumps
/// [`AclStore::security_version`] in the same transaction.
#[async_trait]
pub trait UserCredentials: Send + Sync + Debug + 'static {
    /// Every credential of `user`, ordered by mechanism; empty for an
    /// unknown user.
    async fn scram_credentials(&self, user: &str) -> Result<Vec<ScramCredential>>;

    /// Creates or replaces `user`'s credential for `credential.mechanism`.
    async fn upsert_scram_credential(&self, user: &str, credential: &ScramCredential)
    -> Result<()>;

    /// Deletes `user`'s credential for `mechanism`; false if there was none.
    async fn delete_scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Result<bool>;

    /// Every stored credential without its keys, ordered by user and
    /// mechanism.
    async fn list_scram_credentials(&self) -> Result<Vec<ScramCredentialInfo>>;
}

/// Kafka ACL bindings, and the counter that tells agents users or ACLs
/// changed.
#[async_trait]
pub trait AclStore: Send + Sync + Debug + 'static {
    /// Stores `bindings` (each must pass [`AclBinding::validate`]) in one
    /// transaction; a binding already stored is kept once. Returns how many
    /// were new.
    async fn create_acls(&self, bindings: &[AclBinding]) -> Result<u64>;

    /// The stored bindings `filter` selects, in a stable order.
    async fn list_acls(&self, filter: &AclBindingFilter) -> Result<Vec<AclBinding>>;

    /// Deletes, in one transaction, every binding some filter selects.
    /// Returns, per filter, the bindings it selected that this call
    /// deleted (a binding two filters select is listed under both, as
    /// Kafka's DeleteAcls reports it).
    async fn delete_acls(&self, filters: &[AclBindingFilter]) -> Result<Vec<Vec<AclBinding>>>;

    /// A number that changes (grows) with every change to users or ACLs,
    /// by any agent sharing the store.
    async fn security_version(&self) -> Result<i64>;
}

/// What a refusable transaction operation answers: done, or Kafka's reason
/// for refusing it (the store's own failures are the outer `Err`).
pub type TransactionResult<T> = Result<std::result::Result<T, TransactionRefusal>>;

/// Transaction coordinators' state for each `transactional.id` (Kafka's
/// `__transaction_state`), and each partition's transactions (the flush
/// commit opens one at a transaction's first batch in the partition and
/// closes it at its marker).
///
/// Every method is one database transaction, so agents racing on an id are
/// serialised, and any agent can carry on from what a dead one left.
#[async_trait]
pub trait TransactionLog: Send + Sync + Debug + 'static {
    /// InitProducerId with a `transactional.id`: creates its state with a
    /// new producer id at epoch 0, or moves it to a new epoch (state
    /// Empty). `expected` is the producer id and epoch a client that had
    /// one sends (KIP-360). An open transaction is fenced at the new epoch
    /// and prepared to abort: the answer is then
    /// [`InitTransaction::Aborting`], and the caller completes the abort
    /// and asks again.
    async fn init_transaction(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> TransactionResult<InitTransaction>;

    /// AddPartitionsToTxn: starts the transaction unless it is open and
    /// adds the partitions (which must exist: `PartitionNotFound`
    /// otherwise, adding none).
    async fn add_transaction_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> TransactionResult<()>;

    /// AddOffsetsToTxn: starts the transaction unless it is open and adds
    /// the consumer group.
    async fn add_transaction_group(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group: &str,
    ) -> TransactionResult<()>;

    /// TxnOffsetCommit: keeps offsets for the group until the transaction
    /// ends; they become the group's committed offsets if it commits. The
    /// transaction must be open with the group added.
    async fn stage_transaction_offsets(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group: &str,
        offsets: &[OffsetCommit],
    ) -> TransactionResult<()>;

    /// EndTxn's first step: prepares the open transaction to commit or
    /// abort. Returns what to do next with the state as now stored.
    async fn end_transaction(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> TransactionResult<(EndDecision, TransactionInfo)>;

    /// Fences and prepares to abort the transaction of `producer_id` at
    /// `producer_epoch`, if it is still open with them (a timeout):
    /// the epoch is bumped so the producer's next request fails. Returns
    /// the state as now stored, or `None` if it moved on.
    async fn abort_open_transaction(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<Option<TransactionInfo>>;

    /// Forgets a transactional id with no transaction in progress (Empty,
    /// CompleteCommit or CompleteAbort) whose state last changed at or
    /// before `idle_since` (Kafka's `transactional.id.expiration.ms`).
    /// Returns whether it did; a producer using the id again starts with a
    /// new producer id.
    async fn forget_transactional_id(
        &self,
        transactional_id: &str,
        idle_since: i64,
    ) -> Result<bool>;

    /// The last step, once every marker is durable: a prepared transaction
    /// completes; on commit its staged offsets become committed offsets,
    /// on abort they are dropped. Returns false when it was not prepared
    /// at this producer id and epoch (another agent completed it).
    async fn complete_transaction(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<bool>;

    /// Partitions in which `producer_id` has an open transaction: where
    /// completing it must write a marker. Ordered.
    async fn open_transaction_partitions(&self, producer_id: i64) -> Result<Vec<(String, i32)>>;

    async fn describe_transaction(&self, transactional_id: &str)
    -> Result<Option<TransactionInfo>>;

    /// Every `transactional.id`'s state, ordered by id.
    async fn list_transactions(&self) -> Result<Vec<TransactionInfo>>;

    /// The aborted transactions of a partition whose records reach into
    /// `from..=to`, ordered by first offset: what a read_committed Fetch
    /// of that range carries.
    async fn aborted_transactions(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        to: i64,
    ) -> Result<Vec<AbortedTransaction>>;
}

/// Partitions' leader epochs (Kafka's KIP-320) and where each epoch
/// started. Placement is decided by the agents (rendezvous hashing over the
/// live ones); the store records, per partition, the leader an epoch was
/// bumped for, so that agents noticing the same change bump it once.
///
/// The invariant that matters: an epoch is bumped under the partition's
/// row lock, as flush commits advance the high watermark, so the offset at
/// which it starts (the high watermark then) divides the partition's
/// offsets exactly: every offset below it was committed in an earlier
/// epoch, every offset from it on in this one or a later one.
#[async_trait]
pub trait LeaderEpochs: Send + Sync + Debug + 'static {
    /// Records new leaders: in ONE transaction, each partition whose stored
    /// leader is not `leader` (or is unset) gets its leader epoch bumped by
    /// one, starting at its high watermark, and `leader` recorded; an
    /// epoch left holding no record is replaced, and epochs wholly below
    /// the log start offset are forgotten. Partitions that do not exist
    /// are skipped. Returns the partitions bumped, with their new epoch.
    async fn move_leaders(&self, moves: &[LeaderMove]) -> Result<Vec<BumpedEpoch>>;

    /// A number that grows whenever some partition's leader epoch changes
    /// or a topic is deleted, by any agent sharing the store.
    async fn leader_epochs_version(&self) -> Result<i64>;

    /// Every partition that has a recorded leader or an epoch above 0,
    /// with the version the epochs are at least as new as.
    async fn leader_epochs(&self) -> Result<LeaderEpochTable>;

    /// The epochs of a partition that still hold records, and its current
    /// one, each with the offset it started at, ordered by epoch; empty
    /// while the partition is at epoch 0 (which starts at offset 0).
    async fn epoch_history(&self, topic: &str, partition: i32) -> Result<Vec<EpochStart>>;
}
