use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A segment source backed by a map, counting the queries it answers.
#[derive(Default)]
struct FakeSource {
    segments: Mutex<BTreeMap<(String, i32), Vec<SegmentInfo>>>,
    queries: AtomicUsize,
}

impl FakeSource {
    fn add(&self, topic: &str, partition: i32, base_offset: i64, end_offset: i64) {
        let mut segments = self.segments.lock();
        let rows = segments.entry((topic.to_string(), partition)).or_default();
        rows.push(SegmentInfo {
            id: rows.len() as i64 + 1,
            topic: topic.to_string(),
            partition,
            base_offset,
            end_offset,
            record_count: end_offset - base_offset + 1,
            size_bytes: 100,
            bucket: "b".into(),
            key: format!("batches/{topic}-{partition}-{base_offset}.bin"),
            byte_offset: 0,
            byte_length: 100,
            min_timestamp: 0,
            max_timestamp: 0,
            created_at: 0,
            cleaned_at: None,
            tombstones: 0,
            transaction: None,
        });
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl SegmentSource for FakeSource {
    async fn segments_from(
        &self,
        topic: &str,
        partition: i32,
        from_offset: i64,
        limit: usize,
    ) -> Result<Vec<SegmentInfo>, MetadataError> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        let segments = self.segments.lock();
        Ok(segments
            .get(&(topic.to_string(), partition))
            .map(|rows| {
                rows.iter()
                    .filter(|r| r.end_offset >= from_offset)
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }
}

fn index_with(source: &Arc<FakeSource>, max_segments: usize) -> SegmentIndex {
    SegmentIndex::with_source(
        source.clone(),
        SegmentIndexConfig {
            ttl: Duration::from_secs(30),
            max_segments,
        },
    )
}

/// Three segments of ten records each: 0-9, 10-19, 20-29.
fn three_segments() -> Arc<FakeSource> {
    let source = Arc::new(FakeSource::default());
    for base in [0, 10, 20] {
        source.add("t", 0, base, base + 9);
    }
    source
}

async fn base_of(index: &SegmentIndex, offset: i64) -> Option<i64> {
    index
        .lookup("t", 0, offset)
        .await
        .expect("lookup")
        .map(|s| s.base_offset)
}

#[tokio::test]
async fn test_segment_index_lookup() {
    let source = three_segments();
    let index = index_with(&source, 1000);
    assert_eq!(base_of(&index, 15).await, Some(10));
    assert_eq!(source.queries(), 1, "the first lookup loads the partition");
    let segment = index
        .lookup("t", 0, 15)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(segment.end_offset, 19);
    assert_eq!(&*segment.object, "batches/t-0-10.bin");
    assert_eq!(base_of(&index, 12).await, Some(10));
    assert_eq!(base_of(&index, 27).await, Some(20));
    assert_eq!(source.queries(), 1, "hits never query the metadata store");
}

#[tokio::test]
async fn test_segment_index_boundaries() {
    let source = three_segments();
    let index = index_with(&source, 1000);
    assert_eq!(base_of(&index, 0).await, Some(0));
    assert_eq!(base_of(&index, 9).await, Some(0));
    assert_eq!(base_of(&index, 10).await, Some(10));
    assert_eq!(base_of(&index, 19).await, Some(10));
    assert_eq!(base_of(&index, 20).await, Some(20));
    assert_eq!(base_of(&index, 29).await, Some(20));
    assert_eq!(source.queries(), 1);
    assert_eq!(base_of(&index, 30).await, None, "one past the last segment");
    assert_eq!(base_of(&index, -1).await, None);
}

#[tokio::test]
async fn test_segment_index_miss() {
    let source = Arc::new(FakeSource::default());
    source.add("t", 0, 0, 9);
    source.add("t", 0, 20, 29); // 10-19 removed, e.g. by retention
    let index = index_with(&source, 1000);
    assert_eq!(base_of(&index, 5).await, Some(0));
    let before = source.queries();
    assert_eq!(base_of(&index, 15).await, None, "a gap is a miss");
    assert_eq!(
        source.queries(),
        before + 1,
        "a miss refreshes from the store"
    );
    assert_eq!(base_of(&index, 1_000).await, None);
    assert_eq!(
        index.lookup("other", 3, 0).await.expect("lookup"),
        None,
        "an unknown partition has no segments"
    );
}

#[tokio::test]
async fn test_segment_index_refresh_on_new_segment() {
    let source = three_segments();
    let index = index_with(&source, 1000);
    assert_eq!(base_of(&index, 5).await, Some(0));
    source.add("t", 0, 30, 39);
    assert_eq!(
        base_of(&index, 35).await,
        Some(30),
        "a segment committed after the index loaded is found on the miss"
    );
    assert_eq!(source.queries(), 2);
    assert_eq!(base_of(&index, 31).await, Some(30));
    assert_eq!(base_of(&index, 25).await, Some(20));
    assert_eq!(base_of(&index, 5).await, Some(0));
    assert_eq!(
        source.queries(),
        2,
        "the refresh kept the segments already known"
    );

    // A locally committed segment is visible without any query.
    index.insert(
        "t",
        0,
        IndexedSegment {
            base_offset: 40,
            end_offset: 49,
            record_count: 10,
            object: Arc::from("batches/local.bin"),
            byte_offset: 0,
            byte_length: 10,
            min_timestamp: 0,
            max_timestamp: 0,
            transaction: None,
        },
    );
    assert_eq!(base_of(&index, 45).await, Some(40));
    assert_eq!(source.queries(), 2);
}

#[tokio::test]
async fn test_segment_index_ttl_expiry_refreshes() {
    let source = three_segments();
    let clock = Arc::new(crate::clock::ManualClock::default());
    let index = index_with(&source, 1000).with_clock(clock.clone());
    assert_eq!(base_of(&index, 5).await, Some(0));
    clock.advance(Duration::from_secs(29));
    assert_eq!(base_of(&index, 5).await, Some(0));
    assert_eq!(source.queries(), 1, "within the TTL");
    clock.advance(Duration::from_secs(2));
    assert_eq!(base_of(&index, 5).await, Some(0));
    assert_eq!(
        source.queries(),
        2,
        "after the TTL the partition is reloaded"
    );
}

#[tokio::test]
async fn test_segment_index_max_segments() {
    let source = Arc::new(FakeSource::default());
    for base in (0..100).step_by(10) {
        source.add("a", 0, base, base + 9);
        source.add("b", 0, base, base + 9);
    }
    let index = index_with(&source, 4);
    let lookup = |topic: &'static str, offset| {
        let index = &index;
        async move {
            index
                .lookup(topic, 0, offset)
                .await
                .expect("lookup")
                .map(|s| s.base_offset)
        }
    };
    assert_eq!(lookup("a", 0).await, Some(0));
    assert_eq!(index.len(), 4, "a refresh loads at most max_segments");
    assert_eq!(lookup("a", 35).await, Some(30));
    assert_eq!(index.len(), 4);
    assert_eq!(lookup("a", 95).await, Some(90), "beyond the loaded window");
    assert!(index.len() <= 4);
    assert_eq!(lookup("b", 15).await, Some(10));
    assert!(
        index.len() <= 4,
        "other partitions are evicted to stay bounded"
    );
    for i in 0..10 {
        index.insert(
            "b",
            0,
            IndexedSegment {
                base_offset: 100 + i * 10,
                end_offset: 109 + i * 10,
                record_count: 10,
                object: Arc::from("batches/x.bin"),
                byte_offset: 0,
                byte_length: 10,
                min_timestamp: 0,
                max_timestamp: 0,
                transaction: None,
            },
        );
        assert!(index.len() <= 4);
    }
    assert_eq!(
        lookup("b", 195).await,
        Some(190),
        "the newest segments are kept"
    );
}

#[tokio::test]
async fn invalidation_forgets_segments() {
    let source = three_segments();
    let index = index_with(&source, 1000);
    assert_eq!(base_of(&index, 5).await, Some(0));
    assert_eq!(index.len(), 3);
    index.invalidate_topic("t");
    assert!(index.is_empty());
    assert_eq!(base_of(&index, 5).await, Some(0));
    assert_eq!(source.queries(), 2);
    index.invalidate("t", 0);
    assert!(index.is_empty());
}
