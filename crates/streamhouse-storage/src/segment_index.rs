//! The segment index: which segment holds an offset, answered from memory.
//!
//! Per partition a `BTreeMap` from base offset to segment; a lookup is
//! `range(..=offset).next_back()` plus a check that the segment reaches the
//! offset. The invariant that matters: a lookup that hits never queries the
//! metadata store. The map is refreshed from the store when its TTL expires
//! or on a miss, and the total number of segments held is bounded by
//! `max_segments` (least recently used partitions are dropped first).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use streamhouse_metadata::{MetadataError, MetadataStore, SegmentInfo, TransactionBatch};

use crate::clock::{Clock, SystemClock};

/// Where a segment's bytes are and which offsets it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedSegment {
    pub base_offset: i64,
    pub end_offset: i64,
    pub record_count: i64,
    pub object: Arc<str>,
    pub byte_offset: u64,
    pub byte_length: u64,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    /// The transactional batch or marker the segment is, if it is one.
    pub transaction: Option<TransactionBatch>,
}

impl IndexedSegment {
    pub fn contains(&self, offset: i64) -> bool {
        self.base_offset <= offset && offset <= self.end_offset
    }
}

impl From<&SegmentInfo> for IndexedSegment {
    fn from(row: &SegmentInfo) -> Self {
        Self {
            base_offset: row.base_offset,
            end_offset: row.end_offset,
            record_count: row.record_count,
            object: Arc::from(row.key.as_str()),
            byte_offset: u64::try_from(row.byte_offset).unwrap_or(0),
            byte_length: u64::try_from(row.byte_length).unwrap_or(0),
            min_timestamp: row.min_timestamp,
            max_timestamp: row.max_timestamp,
            transaction: row.transaction,
        }
    }
}

/// Where the index loads segment rows from; the metadata store in
/// production.
#[async_trait]
pub trait SegmentSource: Send + Sync + 'static {
    async fn segments_from(
        &self,
        topic: &str,
        partition: i32,
        from_offset: i64,
        limit: usize,
    ) -> Result<Vec<SegmentInfo>, MetadataError>;
}

struct MetadataSource(Arc<dyn MetadataStore>);

#[async_trait]
impl SegmentSource for MetadataSource {
    async fn segments_from(
        &self,
        topic: &str,
        partition: i32,
        from_offset: i64,
        limit: usize,
    ) -> Result<Vec<SegmentInfo>, MetadataError> {
        self.0
            .list_segments(topic, partition, from_offset, limit)
            .await
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SegmentIndexConfig {
    /// How long a partition's segments are trusted before they are
    /// reloaded. Segments committed by this process are added at once;
    /// the TTL bounds how long others' changes (compaction, retention)
    /// take to be seen.
    pub ttl: Duration,
    /// Upper bound on segments held across all partitions.
    pub max_segments: usize,
}

impl Default for SegmentIndexConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30),
            max_segments: 100_000,
        }
    }
}

struct PartitionSegments {
    segments: BTreeMap<i64, Arc<IndexedSegment>>,
    /// Monotonic milliseconds of the clock.
    refreshed_at: u64,
    last_used: u64,
}

impl PartitionSegments {
    fn empty(now: u64) -> Self {
        Self {
            segments: BTreeMap::new(),
            refreshed_at: now,
            last_used: now,
        }
    }
}

/// Partitions by topic, then number, so that a lookup with a borrowed
/// topic name allocates nothing.
#[derive(Default)]
struct State {
    topics: FxHashMap<Arc<str>, FxHashMap<i32, PartitionSegments>>,
    total: usize,
}

impl State {
    fn partition_mut(&mut self, topic: &str, partition: i32) -> Option<&mut PartitionSegments> {
        self.topics.get_mut(topic)?.get_mut(&partition)
    }

    fn partition_entry(&mut self, topic: &str, partition: i32, now: u64) -> &mut PartitionSegments {
        // Allocates the key; only refreshes and inserts come here, never a hit.
        self.topics
            .entry(Arc::from(topic))
            .or_default()
            .entry(partition)
            .or_insert_with(|| PartitionSegments::empty(now))
    }

    fn remove(&mut self, topic: &str, partition: i32) -> Option<PartitionSegments> {
        let partitions = self.topics.get_mut(topic)?;
        let removed = partitions.remove(&partition);
        if partitions.is_empty() {
            self.topics.remove(topic);
        }
        if let Some(removed) = &removed {
            self.total -= removed.segments.len();
        }
        removed
    }
}

pub struct SegmentIndex {
    source: Arc<dyn SegmentSource>,
    config: SegmentIndexConfig,
    clock: Arc<dyn Clock>,
    ttl_ms: u64,
    state: Mutex<State>,
}

impl std::fmt::Debug for SegmentIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentIndex")
            .field("config", &self.config)
            .field("segments", &self.len())
            .finish()
    }
}

impl SegmentIndex {
    pub fn new(store: Arc<dyn MetadataStore>, config: SegmentIndexConfig) -> Self {
        Self::with_source(Arc::new(MetadataSource(store)), config)
    }

    pub fn with_source(source: Arc<dyn SegmentSource>, config: SegmentIndexConfig) -> Self {
        Self {
            source,
            config: SegmentIndexConfig {
                max_segments: config.max_segments.max(1),
                ..config
            },
            clock: Arc::new(SystemClock),
            ttl_ms: u64::try_from(config.ttl.as_millis()).unwrap_or(u64::MAX),
            state: Mutex::new(State::default()),
        }
    }

    /// Uses `clock` for TTLs (tests pass a manual clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The segment holding `offset`, or `None` when no committed segment
    /// holds it (beyond the high watermark, or removed by retention).
    pub async fn lookup(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Option<Arc<IndexedSegment>>, MetadataError> {
        if let Some(hit) = self.lookup_cached(topic, partition, offset) {
            metrics::counter!("streamhouse_segment_index_hits_total").increment(1);
            return Ok(Some(hit));
        }
        metrics::counter!("streamhouse_segment_index_misses_total").increment(1);
        let rows = self
            .source
            .segments_from(topic, partition, offset, self.config.max_segments)
            .await?;
        let mut state = self.state.lock();
        let now = self.clock.monotonic_ms();
        let loaded = rows
            .iter()
            .map(|row| (row.base_offset, Arc::new(IndexedSegment::from(row))));
        let ttl = self.ttl_ms;
        let entry = state.partition_entry(topic, partition, now);
        let before = entry.segments.len();
        if now.saturating_sub(entry.refreshed_at) > ttl || entry.segments.is_empty() {
            // Stale: start over, so nothing outlives the TTL.
            entry.segments = loaded.collect();
            entry.refreshed_at = now;
        } else {
            // Fresh: the rows from `offset` on replace what was known about
            // that range, and the older segments stay. The entry keeps its
            // refresh time, so the merged rows are reloaded with the rest.
            entry.segments.split_off(&offset);
            if let Some((_, last)) = entry.segments.last_key_value()
                && last.end_offset >= offset
            {
                entry.segments.pop_last();
            }
            entry.segments.extend(loaded);
        }
        entry.last_used = now;
        let after = entry.segments.len();
        let found = find(&entry.segments, offset);
        state.total = state.total - before + after;
        self.evict(&mut state, topic, partition);
        Ok(found)
    }

    /// The segment holding `offset` if it is held in memory and fresh;
    /// never queries the metadata store.
    pub fn lookup_cached(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Option<Arc<IndexedSegment>> {
        let mut state = self.state.lock();
        let entry = state.partition_mut(topic, partition)?;
        let now = self.clock.monotonic_ms();
        if now.saturating_sub(entry.refreshed_at) > self.ttl_ms {
            return None;
        }
        let hit = find(&entry.segments, offset)?;
        entry.last_used = now;
        Some(hit)
    }

    /// Adds a segment this process just committed, so tailing reads find it
    /// without a query.
    pub fn insert(&self, topic: &str, partition: i32, segment: IndexedSegment) {
        let mut state = self.state.lock();
        let entry = state.partition_entry(topic, partition, self.clock.monotonic_ms());
        let added = entry
            .segments
            .insert(segment.base_offset, Arc::new(segment))
            .is_none();
        if added {
            state.total += 1;
        }
        self.evict(&mut state, topic, partition);
    }

    /// Forgets a partition (topic deleted, segments rewritten).
    pub fn invalidate(&self, topic: &str, partition: i32) {
        self.state.lock().remove(topic, partition);
    }

    /// Forgets every partition of a topic.
    pub fn invalidate_topic(&self, topic: &str) {
        let mut state = self.state.lock();
        if let Some(partitions) = state.topics.remove(topic) {
            state.total -= partitions.values().map(|p| p.segments.len()).sum::<usize>();
        }
    }

    /// Segments currently held.
    pub fn len(&self) -> usize {
        self.state.lock().total
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops least recently used partitions, then the oldest segments of
    /// the partition being used, until at most `max_segments` remain.
    fn evict(&self, state: &mut State, keep_topic: &str, keep_partition: i32) {
        while state.total > self.config.max_segments {
            let victim = state
                .topics
                .iter()
                .flat_map(|(topic, partitions)| {
                    partitions
                        .iter()
                        .map(move |(partition, p)| (topic, *partition, p.last_used))
                })
                .filter(|(topic, partition, _)| {
                    !(&***topic == keep_topic && *partition == keep_partition)
                })
                .min_by_key(|(_, _, last_used)| *last_used)
                .map(|(topic, partition, _)| (topic.clone(), partition));
            match victim {
                Some((topic, partition)) => {
                    state.remove(&topic, partition);
                }
                None => {
                    let Some(entry) = state.partition_mut(keep_topic, keep_partition) else {
                        return;
                    };
                    if entry.segments.pop_first().is_none() {
                        return;
                    }
                    state.total -= 1;
                }
            }
        }
    }
}

fn find(segments: &BTreeMap<i64, Arc<IndexedSegment>>, offset: i64) -> Option<Arc<IndexedSegment>> {
    segments
        .range(..=offset)
        .next_back()
        .map(|(_, segment)| segment)
        .filter(|segment| segment.contains(offset))
        .cloned()
}

#[cfg(test)]
mod tests;
