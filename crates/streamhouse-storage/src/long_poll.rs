//! Long polls: waiting until a partition holds data past an offset.
//!
//! A wait wakes when a watched partition's high watermark moves. Commits by
//! this agent move it at once; commits by another agent sharing the
//! metadata store move it when their commit notice arrives (PostgreSQL
//! LISTEN/NOTIFY). Notices can be dropped under load, and SQLite has none
//! across processes, so a waiting poll also re-reads stale watermarks
//! every [`REMOTE_COMMIT_POLL`]: that bounds how late another agent's
//! commit is noticed. Both front-ends wait through here.

use std::time::Duration;

use futures::FutureExt;
use futures::future::select_all;
use streamhouse_core::TopicPartition;
use streamhouse_metadata::PartitionInfo;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::engine::StorageEngine;
use crate::error::Result;
use crate::reader::{Isolation, VisibleRead};

/// Reads of nothing but markers and aborted records one
/// [`StorageEngine::read_or_wait`] skips before it answers with none.
const INVISIBLE_READS: usize = 16;

/// While a long poll waits, how often stale watermarks are re-read from
/// the metadata store (a watermark is re-read only once its cached value
/// is older than the engine's `watermark_ttl`, whoever asks).
pub const REMOTE_COMMIT_POLL: Duration = Duration::from_millis(500);

/// Watermarks one wait re-reads per [`REMOTE_COMMIT_POLL`], in turn: a
/// fetch naming thousands of partitions must not turn into thousands of
/// metadata queries a second.
pub const REFRESHES_PER_POLL: usize = 16;

/// A wait on the high watermarks of some partitions.
pub struct CommitWait {
    engine: StorageEngine,
    watches: Vec<(TopicPartition, watch::Receiver<PartitionInfo>)>,
    /// Where the next refresh starts among `watches`.
    next_refresh: usize,
}

impl std::fmt::Debug for CommitWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitWait")
            .field("partitions", &self.watches.len())
            .finish()
    }
}

impl CommitWait {
    /// Watches the partitions that exist among `partitions`; unknown ones
    /// are left out (a read reports them).
    pub(crate) async fn new(engine: &StorageEngine, partitions: &[(&str, i32)]) -> Self {
        let mut watches = Vec::with_capacity(partitions.len());
        for &(topic, partition) in partitions {
            if let Ok(watch) = engine.watch_partition(topic, partition).await {
                watches.push((TopicPartition::new(topic, partition), watch));
            }
        }
        Self {
            engine: engine.clone(),
            watches,
            next_refresh: 0,
        }
    }

    /// Waits until a watched partition's range changes (true) or the
    /// deadline passes (false). A partition whose topic is deleted counts
    /// as a change, once, and is no longer watched.
    pub async fn changed(&mut self, deadline: Instant) -> bool {
        if self.watches.is_empty() {
            tokio::time::sleep_until(deadline).await;
            return false;
        }
        loop {
            let woke = {
                let waits = self
                    .watches
                    .iter_mut()
                    .map(|(_, watch)| watch.changed().boxed());
                let refresh_at = (Instant::now() + REMOTE_COMMIT_POLL).min(deadline);
                tokio::select! {
                    (result, index, _) = select_all(waits) => Some((result.is_ok(), index)),
                    () = tokio::time::sleep_until(refresh_at) => None,
                }
            };
            match woke {
                Some((true, _)) => return true,
                Some((false, index)) => {
                    self.watches.swap_remove(index);
                    return true;
                }
                None if Instant::now() >= deadline => return false,
                None => self.refresh_some().await,
            }
        }
    }

    /// Re-reads up to [`REFRESHES_PER_POLL`] of the watched watermarks,
    /// taking turns, each only if its cached value is stale; a change is
    /// published to the watches, which the next wait sees.
    async fn refresh_some(&mut self) {
        let count = self.watches.len().min(REFRESHES_PER_POLL);
        for i in 0..count {
            let (tp, _) = &self.watches[(self.next_refresh + i) % self.watches.len()];
            if let Err(error) = self.engine.partition_info(&tp.topic, tp.partition).await {
                tracing::debug!(%error, %tp, "long poll: watermark refresh failed");
            }
        }
        self.next_refresh = (self.next_refresh + count) % self.watches.len().max(1);
    }
}

impl StorageEngine {
    /// A wait on the given partitions' high watermarks. Take it before the
    /// read it follows, so that a commit landing between the read and the
    /// wait still wakes the wait.
    pub async fn commit_wait(&self, partitions: &[(&str, i32)]) -> CommitWait {
        CommitWait::new(self, partitions).await
    }

    /// Reads from `offset` like [`read_visible`](Self::read_visible); when
    /// nothing is readable there yet, waits up to `wait` for records to be
    /// committed (by any agent) and reads again. Markers and (for
    /// read_committed) aborted records are skipped, a bounded number of
    /// reads at a time: the answer may hold no record but a `next_offset`
    /// further on.
    #[allow(clippy::too_many_arguments)]
    pub async fn read_or_wait(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_records: usize,
        max_bytes: usize,
        wait: Duration,
        isolation: Isolation,
    ) -> Result<VisibleRead> {
        let deadline = Instant::now() + wait;
        let mut commits = if wait.is_zero() {
            None
        } else {
            Some(self.commit_wait(&[(topic, partition)]).await)
        };
        let mut from = offset;
        let mut skipped = 0;
        loop {
            let read = self
                .read_visible(topic, partition, from, max_records, max_bytes, isolation)
                .await?;
            if !read.records.is_empty() {
                return Ok(read);
            }
            if read.next_offset > from {
                // Only markers or aborted records: go on past them.
                skipped += 1;
                from = read.next_offset;
                if skipped < INVISIBLE_READS {
                    continue;
                }
                return Ok(read);
            }
            // Below the high watermark a read can still find nothing: key
            // compaction removed every record from `offset` on. Wait for
            // new ones then too, as a Kafka fetch does.
            let woken = match commits.as_mut() {
                Some(commits) => commits.changed(deadline).await,
                None => false,
            };
            if !woken {
                return Ok(read);
            }
        }
    }
}
