//! The in-process consumer: reads assigned partitions from positions that
//! come from a group's committed offsets, a reset policy, or `seek`.

use std::collections::BTreeMap;
use std::sync::Arc;

use streamhouse_core::{Record, TopicPartition};
use streamhouse_metadata::OffsetCommit;

use crate::engine::StorageEngine;
use crate::error::{Result, StorageError};
use crate::reader::Isolation;

/// Where to start when there is no committed offset, or when the position
/// fell out of the readable range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
}

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The group whose committed offsets are used and updated.
    pub group: Option<String>,
    pub auto_offset_reset: OffsetReset,
    pub max_poll_records: usize,
    pub max_poll_bytes: usize,
    /// Kafka's `isolation.level`; read_uncommitted by default, as Kafka's.
    pub isolation: Isolation,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            group: None,
            auto_offset_reset: OffsetReset::Earliest,
            max_poll_records: 500,
            max_poll_bytes: 4 << 20,
            isolation: Isolation::Uncommitted,
        }
    }
}

impl ConsumerConfig {
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    pub fn reset(mut self, reset: OffsetReset) -> Self {
        self.auto_offset_reset = reset;
        self
    }

    pub fn isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self
    }
}

/// A record and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub topic: Arc<str>,
    pub partition: i32,
    pub record: Record,
}

pub struct Consumer {
    engine: StorageEngine,
    config: ConsumerConfig,
    positions: BTreeMap<TopicPartition, i64>,
    /// Rotates which partition a poll starts with, so that one busy
    /// partition cannot starve the others.
    next_start: usize,
}

impl Consumer {
    pub(crate) fn new(engine: StorageEngine, config: ConsumerConfig) -> Self {
        Self {
            engine,
            config,
            positions: BTreeMap::new(),
            next_start: 0,
        }
    }

    /// Consumes every partition of `topic`.
    pub async fn subscribe(&mut self, topic: &str) -> Result<()> {
        let partitions: Vec<i32> = (0..self.engine.topic(topic).await?.partition_count).collect();
        self.assign(topic, &partitions).await
    }

    /// Consumes the given partitions, starting from the group's committed
    /// offsets or else the reset policy.
    pub async fn assign(&mut self, topic: &str, partitions: &[i32]) -> Result<()> {
        let committed: BTreeMap<i32, i64> = match &self.config.group {
            Some(group) => self
                .engine
                .metadata()
                .fetch_offsets(group)
                .await?
                .into_iter()
                .filter(|o| o.topic == topic)
                .map(|o| (o.partition, o.offset))
                .collect(),
            None => BTreeMap::new(),
        };
        for &partition in partitions {
            let position = match committed.get(&partition) {
                Some(&offset) => offset,
                None => self.reset_position(topic, partition).await?,
            };
            self.positions
                .insert(TopicPartition::new(topic, partition), position);
        }
        Ok(())
    }

    /// Moves the next read of a partition to `offset`.
    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) {
        self.positions
            .insert(TopicPartition::new(topic, partition), offset);
    }

    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions
            .get(&TopicPartition::new(topic, partition))
            .copied()
    }

    /// Reads what is available now from the assigned partitions, up to
    /// the configured record and byte limits. Returns an empty batch when
    /// every partition is caught up.
    pub async fn poll(&mut self) -> Result<Vec<ConsumedRecord>> {
        let assigned: Vec<TopicPartition> = self.positions.keys().cloned().collect();
        let mut out = Vec::new();
        let mut bytes = 0;
        if assigned.is_empty() {
            return Ok(out);
        }
        let start = self.next_start % assigned.len();
        self.next_start = self.next_start.wrapping_add(1);
        for tp in assigned.iter().cycle().skip(start).take(assigned.len()) {
            let remaining_records = self.config.max_poll_records.saturating_sub(out.len());
            let remaining_bytes = self.config.max_poll_bytes.saturating_sub(bytes);
            if remaining_records == 0 || remaining_bytes == 0 {
                break;
            }
            let position = self.positions.get(tp).copied().unwrap_or(0);
            let read = match self
                .engine
                .read_or_wait(
                    &tp.topic,
                    tp.partition,
                    position,
                    remaining_records,
                    remaining_bytes,
                    std::time::Duration::ZERO,
                    self.config.isolation,
                )
                .await
            {
                Ok(read) => read,
                Err(StorageError::OffsetOutOfRange { .. }) => {
                    let reset = self.reset_position(&tp.topic, tp.partition).await?;
                    tracing::info!(%tp, position, reset, "position out of range; reset");
                    self.positions.insert(tp.clone(), reset);
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.positions.insert(tp.clone(), read.next_offset);
            for record in read.records {
                bytes += record.payload_size();
                out.push(ConsumedRecord {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    record,
                });
            }
        }
        Ok(out)
    }

    /// Commits the current positions for the consumer's group.
    pub async fn commit(&self) -> Result<()> {
        let Some(group) = &self.config.group else {
            return Err(StorageError::NoConsumerGroup);
        };
        let offsets: Vec<OffsetCommit> = self
            .positions
            .iter()
            .map(|(tp, &offset)| OffsetCommit {
                topic: tp.topic.to_string(),
                partition: tp.partition,
                offset,
                metadata: None,
                leader_epoch: -1,
            })
            .collect();
        self.engine
            .metadata()
            .commit_offsets(group, &offsets)
            .await?;
        Ok(())
    }

    async fn reset_position(&self, topic: &str, partition: i32) -> Result<i64> {
        let info = self.engine.partition_info(topic, partition).await?;
        Ok(match self.config.auto_offset_reset {
            OffsetReset::Earliest => info.log_start_offset,
            OffsetReset::Latest => info.high_watermark,
        })
    }
}
