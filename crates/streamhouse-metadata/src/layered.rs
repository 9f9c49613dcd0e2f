//! A [`MetadataStore`] assembled from one implementation per role.
//!
//! Starts as a view of one store; `with_*` replaces a single role, so a
//! wrapper that changes one concern (a test double failing commits, a
//! metrics layer over offsets) implements only that role and the rest keeps
//! going to the store underneath.

use std::sync::Arc;

use async_trait::async_trait;
use streamhouse_core::TopicConfig;
use streamhouse_core::security::{AclBinding, AclBindingFilter, ScramCredential, ScramMechanism};

use crate::consumer_groups::{ConsumerGroupListing, ConsumerGroupRecord, ConsumerGroupSave};
use crate::error::Result;
use crate::store::{
    AclStore, ClusterRegistry, ConsumerGroupLog, GroupOffsets, JobLeases, LeaderEpochs,
    MetadataStore, ObjectLedger, ProducerRegistry, SegmentLog, StoreHealth, TopicCatalog,
    TransactionLog, TransactionResult, UserCredentials,
};
use crate::transactions::{EndDecision, TransactionInfo};
use crate::types::{
    AbortedTransaction, ActiveProducer, AgentInfo, BumpedEpoch, CommitNotice, CommittedOffset,
    EpochStart, FlushCommit, InitTransaction, LeaderEpochTable, LeaderMove, NewTopic, OffsetCommit,
    PartitionInfo, ScramCredentialInfo, SegmentInfo, SegmentOutcome, SegmentReplacement,
    StorageStats, Topic, TopicDescription,
};

/// Every role of a metadata store, each served by its own implementation.
#[derive(Debug, Clone)]
pub struct LayeredStore {
    health: Arc<dyn StoreHealth>,
    topics: Arc<dyn TopicCatalog>,
    segments: Arc<dyn SegmentLog>,
    producers: Arc<dyn ProducerRegistry>,
    cluster: Arc<dyn ClusterRegistry>,
    leases: Arc<dyn JobLeases>,
    objects: Arc<dyn ObjectLedger>,
    offsets: Arc<dyn GroupOffsets>,
    consumer_groups: Arc<dyn ConsumerGroupLog>,
    users: Arc<dyn UserCredentials>,
    acls: Arc<dyn AclStore>,
    transactions: Arc<dyn TransactionLog>,
    epochs: Arc<dyn LeaderEpochs>,
}

impl LayeredStore {
    /// Every role served by `base`.
    pub fn new(base: Arc<dyn MetadataStore>) -> Self {
        Self {
            health: base.clone(),
            topics: base.clone(),
            segments: base.clone(),
            producers: base.clone(),
            cluster: base.clone(),
            leases: base.clone(),
            objects: base.clone(),
            offsets: base.clone(),
            consumer_groups: base.clone(),
            users: base.clone(),
            acls: base.clone(),
            transactions: base.clone(),
            epochs: base,
        }
    }

    pub fn with_health(mut self, health: Arc<dyn StoreHealth>) -> Self {
        self.health = health;
        self
    }

    pub fn with_topics(mut self, topics: Arc<dyn TopicCatalog>) -> Self {
        self.topics = topics;
        self
    }

    pub fn with_segments(mut self, segments: Arc<dyn SegmentLog>) -> Self {
        self.segments = segments;
        self
    }

    pub fn with_producers(mut self, producers: Arc<dyn ProducerRegistry>) -> Self {
        self.producers = producers;
        self
    }

    pub fn with_cluster(mut self, cluster: Arc<dyn ClusterRegistry>) -> Self {
        self.cluster = cluster;
        self
    }

    pub fn with_leases(mut self, leases: Arc<dyn JobLeases>) -> Self {
        self.leases = leases;
        self
    }

    pub fn with_objects(mut self, objects: Arc<dyn ObjectLedger>) -> Self {
        self.objects = objects;
        self
    }

    pub fn with_offsets(mut self, offsets: Arc<dyn GroupOffsets>) -> Self {
        self.offsets = offsets;
        self
    }

    pub fn with_consumer_groups(mut self, consumer_groups: Arc<dyn ConsumerGroupLog>) -> Self {
        self.consumer_groups = consumer_groups;
        self
    }

    pub fn with_users(mut self, users: Arc<dyn UserCredentials>) -> Self {
        self.users = users;
        self
    }

    pub fn with_acls(mut self, acls: Arc<dyn AclStore>) -> Self {
        self.acls = acls;
        self
    }

    pub fn with_transactions(mut self, transactions: Arc<dyn TransactionLog>) -> Self {
        self.transactions = transactions;
        self
    }

    pub fn with_epochs(mut self, epochs: Arc<dyn LeaderEpochs>) -> Self {
        self.epochs = epochs;
        self
    }
}

#[async_trait]
impl StoreHealth for LayeredStore {
    fn backend(&self) -> &'static str {
        self.health.backend()
    }

    async fn ping(&self) -> Result<()> {
        self.health.ping().await
    }
}

#[async_trait]
impl TopicCatalog for LayeredStore {
    async fn create_topic(&self, topic: NewTopic) -> Result<Topic> {
        self.topics.create_topic(topic).await
    }

    async fn list_topics(&self) -> Result<Vec<Topic>> {
        self.topics.list_topics().await
    }

    async fn get_topic(&self, name: &str) -> Result<Topic> {
        self.topics.get_topic(name).await
    }

    async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        self.topics.describe_topic(name).await
    }

    async fn delete_topic(&self, name: &str) -> Result<()> {
        self.topics.delete_topic(name).await
    }

    async fn add_partitions(&self, topic: &str, total: i64) -> Result<Topic> {
        self.topics.add_partitions(topic, total).await
    }

    async fn get_partition(&self, topic: &str, partition: i32) -> Result<PartitionInfo> {
        self.topics.get_partition(topic, partition).await
    }

    async fn update_topic_config(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        self.topics.update_topic_config(name, config).await
    }

    async fn truncate_partition(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<PartitionInfo> {
        self.topics
            .truncate_partition(topic, partition, offset)
            .await
    }
}

#[async_trait]
impl SegmentLog for LayeredStore {
    async fn commit_flush(&self, flush: &FlushCommit) -> Result<Vec<SegmentOutcome>> {
        self.segments.commit_flush(flush).await
    }

    async fn list_segments(
        &self,
        topic: &str,
        partition: i32,
        from_offset: i64,
        limit: usize,
    ) -> Result<Vec<SegmentInfo>> {
        self.segments
            .list_segments(topic, partition, from_offset, limit)
            .await
    }

    async fn find_segment_by_timestamp(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<Option<SegmentInfo>> {
        self.segments
            .find_segment_by_timestamp(topic, partition, timestamp)
            .await
    }

    async fn replace_segments(&self, replacement: &SegmentReplacement) -> Result<bool> {
        self.segments.replace_segments(replacement).await
    }

    async fn partition_bytes(&self, topic: &str) -> Result<Vec<(i32, i64)>> {
        self.segments.partition_bytes(topic).await
    }

    async fn storage_stats(&self) -> Result<StorageStats> {
        self.segments.storage_stats().await
    }

    fn commit_notices(&self) -> tokio::sync::broadcast::Receiver<CommitNotice> {
        self.segments.commit_notices()
    }
}

#[async_trait]
impl ProducerRegistry for LayeredStore {
    async fn allocate_producer_id(&self) -> Result<i64> {
        self.producers.allocate_producer_id().await
    }

    async fn bump_producer_epoch(&self, producer_id: i64, epoch: i16) -> Result<Option<i16>> {
        self.producers.bump_producer_epoch(producer_id, epoch).await
    }

    async fn describe_producers(&self, topic: &str, partition: i32) -> Result<Vec<ActiveProducer>> {
        self.producers.describe_producers(topic, partition).await
    }
}

#[async_trait]
impl ClusterRegistry for LayeredStore {
    async fn register_agent(&self, agent: &AgentInfo) -> Result<()> {
        self.cluster.register_agent(agent).await
    }

    async fn node_id(&self, agent_id: &str, now: i64, reusable_before: i64) -> Result<i32> {
        self.cluster.node_id(agent_id, now, reusable_before).await
    }

    async fn heartbeat_agent(&self, agent_id: &str, now: i64) -> Result<bool> {
        self.cluster.heartbeat_agent(agent_id, now).await
    }

    async fn deregister_agent(&self, agent_id: &str) -> Result<()> {
        self.cluster.deregister_agent(agent_id).await
    }

    async fn list_agents(&self, alive_since: i64) -> Result<Vec<AgentInfo>> {
        self.cluster.list_agents(alive_since).await
    }
}

#[async_trait]
impl JobLeases for LayeredStore {
    async fn acquire_lease(
        &self,
        job: &str,
        holder: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool> {
        self.leases
            .acquire_lease(job, holder, now, expires_at)
            .await
    }

    async fn release_lease(&self, job: &str, holder: &str) -> Result<()> {
        self.leases.release_lease(job, holder).await
    }
}

#[async_trait]
impl ObjectLedger for LayeredStore {
    async fn referenced_objects(&self, bucket: &str, keys: &[String]) -> Result<Vec<String>> {
        self.objects.referenced_objects(bucket, keys).await
    }

    async fn expired_tombstones(
        &self,
        bucket: &str,
        before: i64,
        limit: usize,
    ) -> Result<Vec<String>> {
        self.objects.expired_tombstones(bucket, before, limit).await
    }

    async fn tombstoned_objects(&self, bucket: &str, keys: &[String]) -> Result<Vec<String>> {
        self.objects.tombstoned_objects(bucket, keys).await
    }

    async fn remove_tombstones(&self, bucket: &str, keys: &[String]) -> Result<()> {
        self.objects.remove_tombstones(bucket, keys).await
    }
}

#[async_trait]
impl GroupOffsets for LayeredStore {
    async fn commit_offsets(&self, group: &str, offsets: &[OffsetCommit]) -> Result<()> {
        self.offsets.commit_offsets(group, offsets).await
    }

    async fn fetch_offsets(&self, group: &str) -> Result<Vec<CommittedOffset>> {
        self.offsets.fetch_offsets(group).await
    }

    async fn list_groups(&self) -> Result<Vec<String>> {
        self.offsets.list_groups().await
    }

    async fn delete_group(&self, group: &str) -> Result<bool> {
        self.offsets.delete_group(group).await
    }

    async fn delete_offsets(&self, group: &str, partitions: &[(String, i32)]) -> Result<()> {
        self.offsets.delete_offsets(group, partitions).await
    }

    async fn expire_offsets(&self, group: &str, committed_before: i64) -> Result<u64> {
        self.offsets.expire_offsets(group, committed_before).await
    }
}

#[async_trait]
impl ConsumerGroupLog for LayeredStore {
    async fn load_consumer_group(&self, group_id: &str) -> Result<Option<ConsumerGroupRecord>> {
        self.consumer_groups.load_consumer_group(group_id).await
    }

    async fn save_consumer_group(&self, save: &ConsumerGroupSave) -> Result<Option<i64>> {
        self.consumer_groups.save_consumer_group(save).await
    }

    async fn delete_consumer_group(&self, group_id: &str, expected_version: i64) -> Result<bool> {
        self.consumer_groups
            .delete_consumer_group(group_id, expected_version)
            .await
    }

    async fn list_consumer_groups(&self) -> Result<Vec<ConsumerGroupListing>> {
        self.consumer_groups.list_consumer_groups().await
    }

    async fn consumer_group_version(&self, group_id: &str) -> Result<Option<i64>> {
        self.consumer_groups.consumer_group_version(group_id).await
    }
}

#[async_trait]
impl UserCredentials for LayeredStore {
    async fn scram_credentials(&self, user: &str) -> Result<Vec<ScramCredential>> {
        self.users.scram_credentials(user).await
    }

    async fn upsert_scram_credential(
        &self,
        user: &str,
        credential: &ScramCredential,
    ) -> Result<()> {
        self.users.upsert_scram_credential(user, credential).await
    }

    async fn delete_scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Result<bool> {
        self.users.delete_scram_credential(user, mechanism).await
    }

    async fn list_scram_credentials(&self) -> Result<Vec<ScramCredentialInfo>> {
        self.users.list_scram_credentials().await
    }
}

#[async_trait]
impl AclStore for LayeredStore {
    async fn create_acls(&self, bindings: &[AclBinding]) -> Result<u64> {
        self.acls.create_acls(bindings).await
    }

    async fn list_acls(&self, filter: &AclBindingFilter) -> Result<Vec<AclBinding>> {
        self.acls.list_acls(filter).await
    }

    async fn delete_acls(&self, filters: &[AclBindingFilter]) -> Result<Vec<Vec<AclBinding>>> {
        self.acls.delete_acls(filters).await
    }

    async fn security_version(&self) -> Result<i64> {
        self.acls.security_version().await
    }
}

#[async_trait]
impl TransactionLog for LayeredStore {
    async fn init_transaction(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> TransactionResult<InitTransaction> {
        self.transactions
            .init_transaction(transactional_id, timeout_ms, expected)
            .await
    }

    async fn add_transaction_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> TransactionResult<()> {
        self.transactions
            .add_transaction_partitions(transactional_id, producer_id, producer_epoch, partitions)
            .await
    }

    async fn add_transaction_group(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group: &str,
    ) -> TransactionResult<()> {
        self.transactions
            .add_transaction_group(transactional_id, producer_id, producer_epoch, group)
            .await
    }

    async fn stage_transaction_offsets(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group: &str,
        offsets: &[OffsetCommit],
    ) -> TransactionResult<()> {
        self.transactions
            .stage_transaction_offsets(
                transactional_id,
                producer_id,
                producer_epoch,
                group,
                offsets,
            )
            .await
    }

    async fn end_transaction(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> TransactionResult<(EndDecision, TransactionInfo)> {
        self.transactions
            .end_transaction(transactional_id, producer_id, producer_epoch, commit)
            .await
    }

    async fn abort_open_transaction(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<Option<TransactionInfo>> {
        self.transactions
            .abort_open_transaction(transactional_id, producer_id, producer_epoch)
            .await
    }

    async fn forget_transactional_id(
        &self,
        transactional_id: &str,
        idle_since: i64,
    ) -> Result<bool> {
        self.transactions
            .forget_transactional_id(transactional_id, idle_since)
            .await
    }

    async fn complete_transaction(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<bool> {
        self.transactions
            .complete_transaction(transactional_id, producer_id, producer_epoch)
            .await
    }

    async fn open_transaction_partitions(&self, producer_id: i64) -> Result<Vec<(String, i32)>> {
        self.transactions
            .open_transaction_partitions(producer_id)
            .await
    }

    async fn describe_transaction(
        &self,
        transactional_id: &str,
    ) -> Result<Option<TransactionInfo>> {
        self.transactions
            .describe_transaction(transactional_id)
            .await
    }

    async fn list_transactions(&self) -> Result<Vec<TransactionInfo>> {
        self.transactions.list_transactions().await
    }

    async fn aborted_transactions(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        to: i64,
    ) -> Result<Vec<AbortedTransaction>> {
        self.transactions
            .aborted_transactions(topic, partition, from, to)
            .await
    }
}

#[async_trait]
impl LeaderEpochs for LayeredStore {
    async fn move_leaders(&self, moves: &[LeaderMove]) -> Result<Vec<BumpedEpoch>> {
        self.epochs.move_leaders(moves).await
    }

    async fn leader_epochs_version(&self) -> Result<i64> {
        self.epochs.leader_epochs_version().await
    }

    async fn leader_epochs(&self) -> Result<LeaderEpochTable> {
        self.epochs.leader_epochs().await
    }

    async fn epoch_history(&self, topic: &str, partition: i32) -> Result<Vec<EpochStart>> {
        self.epochs.epoch_history(topic, partition).await
    }
}
