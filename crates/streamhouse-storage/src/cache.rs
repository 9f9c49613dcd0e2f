//! The segment cache: verified segments kept in memory, bounded by bytes.
//!
//! Entries are parsed [`SegmentReader`]s, so a cached segment's CRC is
//! checked once, when it enters the cache, not on every read. Concurrent
//! misses on the same segment share one load (one GET), which matters when
//! many consumers start reading the same old data at once.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use moka::future::Cache;
use moka::policy::EvictionPolicy;

use crate::error::{Result, StorageError};
use crate::segment::SegmentReader;

/// Identifies a segment: the object holding it and where it starts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SegmentKey {
    pub object: Arc<str>,
    pub byte_offset: u64,
}

impl SegmentKey {
    pub(crate) fn new(object: impl Into<Arc<str>>, byte_offset: u64) -> Self {
        Self {
            object: object.into(),
            byte_offset,
        }
    }
}

/// Hit and miss counts and the current size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
    pub bytes: u64,
}

impl CacheStats {
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// A byte-bounded cache of segments (moka, least recently used first).
///
/// LRU rather than moka's default TinyLFU: TinyLFU admits a new entry only
/// if it looks more popular than the one it would evict, so a consumer
/// catching up on old data, whose next segment has been seen once while
/// the ones it finished were read several times, would have every new
/// segment refused and fetch it again for each read. Tailing readers are
/// unaffected: they read a flushed segment moments after the flusher
/// inserts it.
#[derive(Clone)]
pub(crate) struct SegmentCache {
    cache: Cache<SegmentKey, SegmentReader>,
    hits: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
}

impl std::fmt::Debug for SegmentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentCache")
            .field("stats", &self.stats())
            .finish()
    }
}

impl SegmentCache {
    /// A cache holding at most `capacity_bytes` of segment data. Zero
    /// disables caching.
    pub(crate) fn new(capacity_bytes: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity_bytes)
            .eviction_policy(EvictionPolicy::lru())
            .weigher(|_key: &SegmentKey, segment: &SegmentReader| {
                u32::try_from(segment.len()).unwrap_or(u32::MAX)
            })
            .build();
        Self {
            cache,
            hits: Arc::new(AtomicU64::new(0)),
            misses: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The cached segment, or the result of `load` (inserted on success).
    pub(crate) async fn get_or_load<F>(&self, key: SegmentKey, load: F) -> Result<SegmentReader>
    where
        F: Future<Output = Result<SegmentReader>>,
    {
        let entry = self
            .cache
            .entry(key)
            .or_try_insert_with(load)
            .await
            .map_err(|e: Arc<StorageError>| StorageError::clone(&e))?;
        if entry.is_fresh() {
            self.misses.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("streamhouse_segment_cache_misses_total").increment(1);
        } else {
            self.hits.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("streamhouse_segment_cache_hits_total").increment(1);
        }
        Ok(entry.into_value())
    }

    /// Looks a segment up without loading it.
    pub(crate) async fn get(&self, key: &SegmentKey) -> Option<SegmentReader> {
        self.cache.get(key).await
    }

    pub(crate) async fn insert(&self, key: SegmentKey, segment: SegmentReader) {
        self.cache.insert(key, segment).await;
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.cache.entry_count(),
            bytes: self.cache.weighted_size(),
        }
    }

    /// Applies pending evictions so that `stats` is exact (for tests).
    #[cfg(test)]
    pub(crate) async fn sync(&self) {
        self.cache.run_pending_tasks().await;
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use streamhouse_core::Record;

    use super::*;
    use crate::segment::{Compression, SegmentWriter};

    fn segment(records: usize, value_len: usize) -> SegmentReader {
        let mut writer = SegmentWriter::new(Compression::None);
        for i in 0..records {
            let record =
                Record::new(i as i64, Bytes::from(vec![b'x'; value_len])).with_offset(i as i64);
            writer.append(&record).expect("append");
        }
        SegmentReader::new(writer.finish().expect("finish")).expect("valid segment")
    }

    #[tokio::test]
    async fn counts_hits_and_misses_and_loads_once() {
        let cache = SegmentCache::new(1 << 20);
        let key = SegmentKey::new("objects/a", 0);
        let loads = AtomicU64::new(0);
        for _ in 0..3 {
            let found = cache
                .get_or_load(key.clone(), async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok(segment(3, 10))
                })
                .await
                .expect("load");
            assert_eq!(found.read_all().expect("records").len(), 3);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (2, 1));
        assert!((stats.hit_ratio() - 2.0 / 3.0).abs() < 1e-9);
    }

    #[tokio::test]
    async fn failed_loads_are_not_cached() {
        let cache = SegmentCache::new(1 << 20);
        let key = SegmentKey::new("objects/a", 0);
        let failed = cache
            .get_or_load(key.clone(), async { Err(StorageError::ShuttingDown) })
            .await;
        assert!(matches!(failed, Err(StorageError::ShuttingDown)));
        assert!(cache.get(&key).await.is_none());
        let loaded = cache
            .get_or_load(key.clone(), async { Ok(segment(1, 1)) })
            .await;
        assert!(loaded.is_ok());
    }

    /// A consumer reading old data fetches each segment once and then reads
    /// it in several fetches: the segment it just loaded must stay, even
    /// though older segments were read more often.
    #[tokio::test]
    async fn a_sequential_reader_loads_each_segment_once() {
        let one = segment(4, 2_000).len() as u64;
        let cache = SegmentCache::new(one * 4 + one / 2);
        let loads = AtomicU64::new(0);
        for i in 0..40 {
            let key = SegmentKey::new("objects/a", i * 10_000);
            for _ in 0..4 {
                cache
                    .get_or_load(key.clone(), async {
                        loads.fetch_add(1, Ordering::SeqCst);
                        Ok(segment(4, 2_000))
                    })
                    .await
                    .expect("load");
                cache.sync().await;
            }
        }
        assert_eq!(loads.load(Ordering::SeqCst), 40);
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (120, 40));
        assert!(stats.bytes <= one * 4 + one / 2);
    }

    #[tokio::test]
    async fn stays_within_its_byte_budget() {
        let budget = 64 * 1024;
        let cache = SegmentCache::new(budget);
        for i in 0..50 {
            cache
                .insert(SegmentKey::new("objects/a", i * 10_000), segment(4, 2_000))
                .await;
        }
        cache.sync().await;
        let stats = cache.stats();
        assert!(stats.bytes <= budget, "{} > {budget}", stats.bytes);
        assert!(stats.entries > 0 && stats.entries < 50);
    }
}
