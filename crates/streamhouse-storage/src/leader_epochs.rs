//! Partitions' leader epochs as this agent knows them (Kafka's KIP-320),
//! and each partition's epoch history (Kafka's leader epoch cache).
//!
//! The metadata store holds the truth: a partition's epoch grows by one
//! when its leader moves, bumped under the partition's row lock, and the
//! history records the high watermark each epoch started at. This agent
//! keeps every partition's epoch in memory, read again only when the
//! store's epoch version moves (one cheap query per heartbeat), and the
//! history of the partitions it serves, read again only when it learns of
//! an epoch the history does not hold yet. No read, Fetch or Metadata
//! request queries the store for epochs.
//!
//! The invariant that matters: a record is stamped with the epoch the
//! history places its offset in, and only with a history holding the epoch
//! the record's high watermark was read with; since every offset below a
//! high watermark belongs to that epoch or an earlier one, the stamp is
//! the epoch the record was committed in, on every agent, however stale
//! its view of the cluster.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use streamhouse_core::TopicPartition;
use streamhouse_metadata::{BumpedEpoch, EpochStart, MetadataStore};

use crate::error::Result;

/// A partition's leader epochs and the offset each started at, ordered by
/// epoch; offsets below the first entry belong to epoch 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochHistory {
    starts: Vec<EpochStart>,
}

/// Kafka's answer for the end of an epoch (OffsetForLeaderEpoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochEnd {
    /// The largest epoch at or below the one asked for, and the offset it
    /// ended at (the start of the next epoch, or the high watermark for
    /// the current one).
    Found { epoch: i32, end_offset: i64 },
    /// No epoch was asked for (-1): Kafka answers -1 and -1.
    Undefined,
    /// An epoch newer than the current one: known somewhere else in the
    /// cluster already, not here yet.
    Newer,
}

impl EpochHistory {
    pub fn new(mut starts: Vec<EpochStart>) -> Self {
        starts.sort();
        Self { starts }
    }

    /// Every entry, ordered by epoch (and so by start offset).
    pub fn starts(&self) -> &[EpochStart] {
        &self.starts
    }

    /// The newest epoch the history holds (0 when it holds none).
    pub fn latest(&self) -> i32 {
        self.starts.last().map_or(0, |start| start.epoch)
    }

    /// The epoch `offset` was written in.
    pub fn epoch_at(&self, offset: i64) -> i32 {
        let index = self.starts.partition_point(|s| s.start_offset <= offset);
        index
            .checked_sub(1)
            .and_then(|i| self.starts.get(i))
            .map_or(0, |s| s.epoch)
    }

    /// Where epoch `requested` ended, as Kafka's leader epoch cache answers
    /// it (`endOffsetFor`), when the partition is at epoch `current` with
    /// `high_watermark`; entries newer than `current` are not looked at.
    pub fn end_offset_for(&self, requested: i32, current: i32, high_watermark: i64) -> EpochEnd {
        if requested < 0 {
            return EpochEnd::Undefined;
        }
        if requested > current {
            return EpochEnd::Newer;
        }
        if requested == current {
            return EpochEnd::Found {
                epoch: current,
                end_offset: high_watermark,
            };
        }
        let mut known = self.starts.iter().filter(|s| s.epoch <= current);
        let Some(higher) = known.clone().find(|s| s.epoch > requested) else {
            // The history lacks the current epoch: it is out of date.
            return EpochEnd::Newer;
        };
        let epoch = known
            .rfind(|s| s.epoch <= requested)
            .map_or(requested, |floor| floor.epoch);
        EpochEnd::Found {
            epoch,
            end_offset: higher.start_offset,
        }
    }
}

/// A partition's epoch and recorded leader, as last read or bumped here.
#[derive(Clone)]
struct Held {
    epoch: i32,
    leader: Option<Arc<str>>,
}

/// Every partition that has a recorded leader or an epoch above 0, by
/// topic (looked up without allocating).
#[derive(Default)]
struct Table {
    version: Option<i64>,
    topics: HashMap<String, HashMap<i32, Held>>,
}

impl Table {
    fn get(&self, topic: &str, partition: i32) -> Option<&Held> {
        self.topics.get(topic)?.get(&partition)
    }
}

pub(crate) struct LeaderEpochCache {
    store: Arc<dyn MetadataStore>,
    table: RwLock<Table>,
    histories: Mutex<HashMap<TopicPartition, Arc<EpochHistory>>>,
}

impl LeaderEpochCache {
    pub(crate) fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self {
            store,
            table: RwLock::new(Table::default()),
            histories: Mutex::new(HashMap::new()),
        }
    }

    /// The partition's epoch in the table (0 when it has none).
    pub(crate) fn epoch(&self, topic: &str, partition: i32) -> i32 {
        self.table
            .read()
            .get(topic, partition)
            .map_or(0, |held| held.epoch)
    }

    /// The agent id recorded as the partition's leader, if any.
    pub(crate) fn recorded_leader(&self, topic: &str, partition: i32) -> Option<Arc<str>> {
        self.table.read().get(topic, partition)?.leader.clone()
    }

    /// Reads every epoch again if the store's version moved since the last
    /// read. Returns whether it did.
    pub(crate) async fn refresh(&self) -> Result<bool> {
        let version = self.store.leader_epochs_version().await?;
        if self.table.read().version == Some(version) {
            return Ok(false);
        }
        let loaded = self.store.leader_epochs().await?;
        let mut topics: HashMap<String, HashMap<i32, Held>> = HashMap::new();
        for row in loaded.epochs {
            topics.entry(row.topic).or_default().insert(
                row.partition,
                Held {
                    epoch: row.leader_epoch,
                    leader: row.leader.map(Arc::from),
                },
            );
        }
        let mut table = self.table.write();
        // A slower read that started earlier must not undo a newer one.
        if table.version.is_some_and(|held| held > loaded.version) {
            return Ok(false);
        }
        *table = Table {
            version: Some(loaded.version),
            topics,
        };
        Ok(true)
    }

    /// Takes in epochs this agent bumped itself.
    pub(crate) fn record(&self, bumped: &[BumpedEpoch]) {
        let mut table = self.table.write();
        let mut histories = self.histories.lock();
        for change in bumped {
            let held = table
                .topics
                .entry(change.topic.clone())
                .or_default()
                .entry(change.partition)
                .or_insert(Held {
                    epoch: 0,
                    leader: None,
                });
            held.epoch = held.epoch.max(change.epoch.epoch);
            held.leader = Some(Arc::from(change.leader.as_str()));
            histories.remove(&TopicPartition::new(
                change.topic.as_str(),
                change.partition,
            ));
        }
    }

    /// The partition's history, holding at least epoch `at_least` unless
    /// the store has no such epoch (the topic was deleted and created
    /// again): read from the store only when the cached one is older.
    pub(crate) async fn history(
        &self,
        topic: &str,
        partition: i32,
        at_least: i32,
    ) -> Result<Arc<EpochHistory>> {
        let tp = TopicPartition::new(topic, partition);
        if let Some(history) = self.histories.lock().get(&tp)
            && history.latest() >= at_least
        {
            return Ok(history.clone());
        }
        let history = Arc::new(EpochHistory::new(
            self.store.epoch_history(topic, partition).await?,
        ));
        let mut histories = self.histories.lock();
        let keep = match histories.get(&tp) {
            Some(held) if held.latest() > history.latest() => held.clone(),
            _ => history,
        };
        histories.insert(tp, keep.clone());
        Ok(keep)
    }

    /// Forgets what is held about a topic (deleted or created again).
    pub(crate) fn forget_topic(&self, topic: &str) {
        self.table.write().topics.remove(topic);
        self.histories.lock().retain(|tp, _| &*tp.topic != topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(entries: &[(i32, i64)]) -> EpochHistory {
        EpochHistory::new(
            entries
                .iter()
                .map(|&(epoch, start_offset)| EpochStart {
                    epoch,
                    start_offset,
                })
                .collect(),
        )
    }

    #[test]
    fn offsets_belong_to_the_last_epoch_started_at_or_before_them() {
        let h = history(&[(2, 10), (5, 20)]);
        assert_eq!(h.epoch_at(0), 0);
        assert_eq!(h.epoch_at(9), 0);
        assert_eq!(h.epoch_at(10), 2);
        assert_eq!(h.epoch_at(19), 2);
        assert_eq!(h.epoch_at(20), 5);
        assert_eq!(h.epoch_at(i64::MAX), 5);
        assert_eq!(h.latest(), 5);
        assert_eq!(EpochHistory::default().epoch_at(7), 0);
        assert_eq!(EpochHistory::default().latest(), 0);
    }

    #[test]
    fn epoch_ends_are_answered_as_kafkas_leader_epoch_cache_does() {
        let h = history(&[(2, 10), (5, 20)]);
        let found = |epoch, end_offset| EpochEnd::Found { epoch, end_offset };
        // The current epoch ends at the high watermark.
        assert_eq!(h.end_offset_for(5, 5, 33), found(5, 33));
        // An earlier epoch ends where the next one starts.
        assert_eq!(h.end_offset_for(2, 5, 33), found(2, 20));
        // An epoch the partition skipped: the one before it, ending where
        // the next one starts.
        assert_eq!(h.end_offset_for(3, 5, 33), found(2, 20));
        assert_eq!(h.end_offset_for(4, 5, 33), found(2, 20));
        // Epoch 0, before the first entry.
        assert_eq!(h.end_offset_for(0, 5, 33), found(0, 10));
        assert_eq!(h.end_offset_for(1, 5, 33), found(1, 10));
        assert_eq!(h.end_offset_for(-1, 5, 33), EpochEnd::Undefined);
        assert_eq!(h.end_offset_for(6, 5, 33), EpochEnd::Newer);
        // Entries newer than the current epoch are not looked at.
        assert_eq!(h.end_offset_for(2, 2, 15), found(2, 15));
        assert_eq!(h.end_offset_for(0, 2, 15), found(0, 10));
        // A history that lacks the current epoch cannot answer.
        assert_eq!(h.end_offset_for(5, 7, 40), EpochEnd::Newer);
        // A partition still at epoch 0.
        assert_eq!(EpochHistory::default().end_offset_for(0, 0, 4), found(0, 4));
    }
}
