//! The engine's door to leader epochs (KIP-320): recording where
//! partitions are led, each partition's current epoch, and the history
//! OffsetForLeaderEpoch, ListOffsets and Fetch answer from.

use std::sync::Arc;

use streamhouse_metadata::{BumpedEpoch, LeaderMove, PartitionInfo};

use super::StorageEngine;
use crate::error::Result;
use crate::leader_epochs::EpochHistory;

impl StorageEngine {
    /// Records where partitions are led now, as this agent places them:
    /// each whose recorded leader differs gets its epoch bumped, starting
    /// at its high watermark. Returns the partitions bumped.
    pub async fn move_leaders(&self, moves: &[LeaderMove]) -> Result<Vec<BumpedEpoch>> {
        let bumped = self.inner.metadata.move_leaders(moves).await?;
        self.inner.epochs.record(&bumped);
        Ok(bumped)
    }

    /// Reads every partition's epoch again if any changed (by any agent)
    /// since the last read: one small query when nothing did. Returns
    /// whether they were read again.
    pub async fn refresh_leader_epochs(&self) -> Result<bool> {
        self.inner.epochs.refresh().await
    }

    /// The partition's leader epoch as this agent knows it, from memory:
    /// the newer of the epochs last read for every partition and the one
    /// learned with the partition's high watermark.
    pub fn leader_epoch(&self, topic: &str, partition: i32) -> i32 {
        let table = self.inner.epochs.epoch(topic, partition);
        self.inner
            .watermarks
            .peek(topic, partition)
            .map_or(table, |info| info.leader_epoch.max(table))
    }

    /// The agent id last recorded (by any agent) as the partition's leader,
    /// as of the last read of the epochs; `None` while none was.
    pub fn recorded_leader(&self, topic: &str, partition: i32) -> Option<Arc<str>> {
        self.inner.epochs.recorded_leader(topic, partition)
    }

    /// The partition's epoch history, holding at least epoch `at_least`
    /// (the epoch a read's high watermark came with): from memory unless
    /// the partition's epoch moved since it was read.
    pub async fn epoch_history(
        &self,
        topic: &str,
        partition: i32,
        at_least: i32,
    ) -> Result<Arc<EpochHistory>> {
        self.inner.epochs.history(topic, partition, at_least).await
    }

    /// The partition's range and epoch as the metadata store has them now
    /// (one query), for answers that must not lag any agent's reads.
    pub async fn fresh_partition_info(&self, topic: &str, partition: i32) -> Result<PartitionInfo> {
        Ok(self.inner.watermarks.refresh(topic, partition).await?)
    }
}
