//! The engine's door to consumer group offsets and producer ids.

use streamhouse_metadata::{CommittedOffset, OffsetCommit};

use super::StorageEngine;
use crate::error::Result;

impl StorageEngine {
    /// Stores a consumer group's offsets, replacing earlier commits; fails,
    /// committing nothing, when any partition is unknown.
    pub async fn commit_offsets(&self, group: &str, offsets: &[OffsetCommit]) -> Result<()> {
        Ok(self.inner.metadata.commit_offsets(group, offsets).await?)
    }

    /// Every offset a group has committed, ordered by topic and partition.
    pub async fn committed_offsets(&self, group: &str) -> Result<Vec<CommittedOffset>> {
        Ok(self.inner.metadata.fetch_offsets(group).await?)
    }

    /// Groups that have committed offsets, ordered by name.
    pub async fn groups_with_offsets(&self) -> Result<Vec<String>> {
        Ok(self.inner.metadata.list_groups().await?)
    }

    /// Removes every offset of a group; returns whether it had any.
    pub async fn delete_group_offsets(&self, group: &str) -> Result<bool> {
        Ok(self.inner.metadata.delete_group(group).await?)
    }

    /// Removes a group's offsets of some partitions (Kafka's OffsetDelete).
    pub async fn delete_partition_offsets(
        &self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<()> {
        Ok(self
            .inner
            .metadata
            .delete_offsets(group, partitions)
            .await?)
    }

    /// Allocates a new idempotent producer id (epoch 0); ids are never
    /// reused.
    pub async fn allocate_producer_id(&self) -> Result<i64> {
        Ok(self.inner.metadata.allocate_producer_id().await?)
    }

    /// Starts a new epoch for an existing producer (KIP-360), fencing the
    /// current one; `None` when the producer id is unknown or `epoch` is
    /// not its current epoch.
    pub async fn bump_producer_epoch(&self, producer_id: i64, epoch: i16) -> Result<Option<i16>> {
        Ok(self
            .inner
            .metadata
            .bump_producer_epoch(producer_id, epoch)
            .await?)
    }

    /// The producers a partition keeps state for (Kafka's
    /// DescribeProducers); `UnknownTopicOrPartition` errors as for reads.
    pub async fn describe_producers(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<streamhouse_metadata::ActiveProducer>> {
        self.inner.metadata.get_partition(topic, partition).await?;
        Ok(self
            .inner
            .metadata
            .describe_producers(topic, partition)
            .await?)
    }
}
