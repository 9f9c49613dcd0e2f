//! High watermark and log start offset of each partition, held in memory.
//!
//! Commits made by this process advance the watermark at once; values
//! learned from the metadata store are trusted for a short TTL, which
//! bounds how stale another agent's commits can look. Long-poll readers
//! subscribe to a partition and wake when its watermark moves.
//!
//! Each entry keeps the leader epoch learned with its high watermark (from
//! the same row, or the same commit), both only ever growing: every offset
//! below the high watermark belongs to that epoch or an earlier one, so a
//! reader stamping records with their epochs needs no newer knowledge than
//! the entry it read them under. A high watermark never moves without an
//! epoch to go with it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use streamhouse_core::TopicPartition;
use streamhouse_metadata::{MetadataError, MetadataStore, PartitionInfo};
use tokio::sync::watch;
use tokio::time::Instant;

struct Entry {
    sender: watch::Sender<PartitionInfo>,
    /// When the value was last read from the metadata store; `None` if it
    /// only ever came from local commits.
    fetched_at: Option<Instant>,
}

/// What a commit says of a partition's last stable offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lso {
    /// It is this now.
    Exact(i64),
    /// The commit opened or closed a transaction: read it from the store.
    Unknown,
    /// Nothing: another announcement of the same commit says.
    Unchanged,
}

pub(crate) struct Watermarks {
    store: Arc<dyn MetadataStore>,
    ttl: Duration,
    entries: Mutex<HashMap<TopicPartition, Entry>>,
}

impl std::fmt::Debug for Watermarks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watermarks")
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl Watermarks {
    pub(crate) fn new(store: Arc<dyn MetadataStore>, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The partition's readable range, from memory when fresh. When the
    /// metadata store cannot be reached, the last known range is served
    /// instead: it only ever lags, so reads stay correct, and data this
    /// agent has cached stays readable through a database outage.
    pub(crate) async fn get(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<PartitionInfo, MetadataError> {
        let tp = TopicPartition::new(topic, partition);
        if let Some(info) = self.fresh(&tp) {
            return Ok(info);
        }
        match self.refresh(topic, partition).await {
            Err(error) if error.is_retriable() => match self.last_known(&tp) {
                Some(info) => {
                    tracing::debug!(%tp, %error, "metadata store unavailable; serving the last known watermark");
                    Ok(info)
                }
                None => Err(error),
            },
            other => other,
        }
    }

    fn last_known(&self, tp: &TopicPartition) -> Option<PartitionInfo> {
        let entries = self.entries.lock();
        let entry = entries.get(tp)?;
        entry.fetched_at?;
        Some(*entry.sender.borrow())
    }

    /// Reads the partition from the metadata store and publishes it.
    pub(crate) async fn refresh(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<PartitionInfo, MetadataError> {
        let tp = TopicPartition::new(topic, partition);
        let fetched = match self.store.get_partition(topic, partition).await {
            Ok(info) => info,
            Err(e @ MetadataError::PartitionNotFound { .. }) => {
                self.entries.lock().remove(&tp);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let mut entries = self.entries.lock();
        let entry = entries.entry(tp).or_insert_with(|| Entry {
            sender: watch::Sender::new(fetched),
            fetched_at: None,
        });
        entry.fetched_at = Some(Instant::now());
        // A commit by this process may have landed after the query read
        // the row; never move a watermark backwards because of that.
        entry.sender.send_if_modified(|current| {
            let next = PartitionInfo {
                partition,
                high_watermark: fetched.high_watermark.max(current.high_watermark),
                log_start_offset: fetched.log_start_offset.max(current.log_start_offset),
                last_stable_offset: fetched.last_stable_offset.max(current.last_stable_offset),
                leader_epoch: fetched.leader_epoch.max(current.leader_epoch),
            };
            let changed = next != *current;
            *current = next;
            changed
        });
        Ok(*entry.sender.borrow())
    }

    /// Records a commit: the partition's new high watermark, what is known
    /// of its last stable offset, and the leader epoch it committed in
    /// (`None` when the notice did not say: the entry is then read again
    /// rather than moved without one).
    pub(crate) fn advance(
        &self,
        topic: &str,
        partition: i32,
        high_watermark: i64,
        lso: Lso,
        leader_epoch: Option<i32>,
    ) {
        let mut entries = self.entries.lock();
        let tp = TopicPartition::new(topic, partition);
        let Some(leader_epoch) = leader_epoch else {
            if let Some(entry) = entries.get_mut(&tp) {
                entry.fetched_at = None;
            }
            return;
        };
        match entries.get_mut(&tp) {
            Some(entry) => {
                if lso == Lso::Unknown {
                    // Read again at the next look.
                    entry.fetched_at = None;
                }
                entry.sender.send_if_modified(|current| {
                    let mut changed = false;
                    if leader_epoch > current.leader_epoch {
                        current.leader_epoch = leader_epoch;
                        changed = true;
                    }
                    if high_watermark > current.high_watermark {
                        current.high_watermark = high_watermark;
                        changed = true;
                    }
                    if let Lso::Exact(lso) = lso
                        && lso > current.last_stable_offset
                    {
                        current.last_stable_offset = lso;
                        changed = true;
                    }
                    changed
                });
            }
            None => {
                let last_stable_offset = match lso {
                    Lso::Exact(lso) => lso,
                    // Unknown until read from the store: nothing is
                    // stable yet.
                    Lso::Unknown | Lso::Unchanged => 0,
                };
                entries.insert(
                    tp,
                    Entry {
                        sender: watch::Sender::new(PartitionInfo {
                            partition,
                            high_watermark,
                            log_start_offset: 0,
                            last_stable_offset,
                            leader_epoch,
                        }),
                        fetched_at: None,
                    },
                );
            }
        }
    }

    pub(crate) async fn subscribe(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<watch::Receiver<PartitionInfo>, MetadataError> {
        let tp = TopicPartition::new(topic, partition);
        if self.fresh(&tp).is_none() {
            self.refresh(topic, partition).await?;
        }
        let entries = self.entries.lock();
        match entries.get(&tp) {
            Some(entry) => Ok(entry.sender.subscribe()),
            None => Err(MetadataError::PartitionNotFound {
                topic: topic.to_string(),
                partition,
            }),
        }
    }

    /// The partition's entry as held, however old, without asking the
    /// store.
    pub(crate) fn peek(&self, topic: &str, partition: i32) -> Option<PartitionInfo> {
        let tp = TopicPartition::new(topic, partition);
        self.entries
            .lock()
            .get(&tp)
            .map(|entry| *entry.sender.borrow())
    }

    /// Forgets every partition of a topic (deleted or recreated).
    pub(crate) fn invalidate_topic(&self, topic: &str) {
        self.entries.lock().retain(|tp, _| &*tp.topic != topic);
    }

    fn fresh(&self, tp: &TopicPartition) -> Option<PartitionInfo> {
        let entries = self.entries.lock();
        let entry = entries.get(tp)?;
        let fetched_at = entry.fetched_at?;
        (fetched_at.elapsed() <= self.ttl).then(|| *entry.sender.borrow())
    }
}
