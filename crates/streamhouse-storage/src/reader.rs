//! The read path: offset → segment (index) → bytes (cache, else one ranged
//! GET of just that segment) → records (segment reader, rebased).
//!
//! The invariant that matters: a reader never returns a record at or above
//! the high watermark it reports, so nothing uncommitted is ever visible.

use std::sync::Arc;

use object_store::ObjectStoreExt;
use object_store::path::Path;
use streamhouse_core::Record;
use streamhouse_metadata::{AbortedTransaction, MetadataStore, TransactionBatch};

use crate::cache::{SegmentCache, SegmentKey};
use crate::error::{Result, StorageError};
use crate::object_storage::ObjectStorage;
use crate::segment::{SegmentError, SegmentReader};
use crate::segment_index::{IndexedSegment, SegmentIndex};
use crate::watermarks::Watermarks;

/// Records read from a partition, with its readable range at read time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    pub records: Vec<Record>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// The first offset of the oldest open transaction, or the high
    /// watermark.
    pub last_stable_offset: i64,
    /// The returned records that are a transactional producer's batch or
    /// a transaction marker, as runs in offset order: a Kafka front-end
    /// sends each as a batch of its own, with its producer and, for a
    /// marker, as a control batch.
    pub transactions: Vec<TransactionRun>,
    /// The partition's leader epoch as known with `high_watermark`: every
    /// returned record was written in this epoch or an earlier one.
    pub leader_epoch: i32,
}

/// A read as an application sees it (the HTTP API, the in-process
/// consumer): no transaction markers, and for read_committed no records of
/// aborted transactions.
#[derive(Debug, Clone, PartialEq)]
pub struct VisibleRead {
    pub records: Vec<Record>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub last_stable_offset: i64,
    /// Where to read next: past the last record read, shown or not.
    pub next_offset: i64,
}

impl VisibleRead {
    /// `result` read from `offset`, without its markers and without the
    /// records of the `aborted` transactions (those a read_committed
    /// reader drops; empty for read_uncommitted).
    pub fn new(result: ReadResult, offset: i64, aborted: &[AbortedTransaction]) -> Self {
        let next_offset = result.records.last().map_or(offset, |r| r.offset + 1);
        let mut runs = result.transactions.iter().peekable();
        let records = result
            .records
            .into_iter()
            .filter(|record| {
                while runs
                    .next_if(|run| run.last_offset < record.offset)
                    .is_some()
                {}
                let Some(run) = runs.peek().filter(|run| run.first_offset <= record.offset) else {
                    return true;
                };
                if run.batch.commit.is_some() {
                    return false;
                }
                !aborted.iter().any(|a| {
                    a.producer_id == run.batch.producer_id
                        && a.first_offset <= record.offset
                        && record.offset < a.marker_offset
                })
            })
            .collect();
        Self {
            records,
            high_watermark: result.high_watermark,
            log_start_offset: result.log_start_offset,
            last_stable_offset: result.last_stable_offset,
            next_offset,
        }
    }
}

/// Returned records `first_offset..=last_offset`, all from one
/// transactional batch or marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionRun {
    pub first_offset: i64,
    pub last_offset: i64,
    pub batch: TransactionBatch,
}

/// Collects the run of records a read returned from one segment, if the
/// segment is a transactional batch or a marker.
struct TransactionRunBuilder {
    batch: Option<TransactionBatch>,
    /// Index of the segment's first returned record.
    start: usize,
}

impl TransactionRunBuilder {
    fn new(batch: Option<TransactionBatch>, start: usize) -> Self {
        Self { batch, start }
    }

    /// Records the run; later calls add nothing.
    fn finish(&mut self, records: &[Record], runs: &mut Vec<TransactionRun>) {
        if let (Some(batch), Some(first), Some(last)) = (
            self.batch.take(),
            records.get(self.start),
            records.last().filter(|_| records.len() > self.start),
        ) {
            runs.push(TransactionRun {
                first_offset: first.offset,
                last_offset: last.offset,
                batch,
            });
        }
    }
}

/// How far a read may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Up to the high watermark (Kafka's read_uncommitted).
    #[default]
    Uncommitted,
    /// Up to the last stable offset (read_committed): no record of a
    /// transaction still open.
    Committed,
}

/// Framing overhead counted per record against a read's byte budget.
const RECORD_OVERHEAD: usize = 16;

#[derive(Clone)]
pub(crate) struct ReadContext {
    pub(crate) metadata: Arc<dyn MetadataStore>,
    pub(crate) storage: ObjectStorage,
    pub(crate) cache: SegmentCache,
    pub(crate) index: Arc<SegmentIndex>,
    pub(crate) watermarks: Arc<Watermarks>,
}

/// Reads one partition.
#[derive(Clone)]
pub struct PartitionReader {
    topic: String,
    partition: i32,
    context: ReadContext,
}

impl std::fmt::Debug for PartitionReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PartitionReader({}-{})", self.topic, self.partition)
    }
}

impl PartitionReader {
    pub(crate) fn new(topic: &str, partition: i32, context: ReadContext) -> Self {
        Self {
            topic: topic.to_string(),
            partition,
            context,
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Reads records from `offset` on: at most `max_records`, and at most
    /// `max_bytes` unless the first record alone is larger (it is returned
    /// anyway, so a reader can always make progress).
    ///
    /// `offset == high_watermark` returns no records; an offset below the
    /// log start offset or above the high watermark is `OffsetOutOfRange`.
    pub async fn read(
        &self,
        offset: i64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<ReadResult> {
        self.read_isolated(offset, max_records, max_bytes, Isolation::Uncommitted)
            .await
    }

    /// Like [`read`](Self::read), stopping at the last stable offset for
    /// [`Isolation::Committed`].
    pub async fn read_isolated(
        &self,
        offset: i64,
        max_records: usize,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<ReadResult> {
        let mut watermarks = self
            .context
            .watermarks
            .get(&self.topic, self.partition)
            .await?;
        if offset > watermarks.high_watermark {
            // Another agent may have served the reader up to a commit this
            // one has not heard of yet: look before calling it out of
            // range, which makes a client reset its position.
            watermarks = self
                .context
                .watermarks
                .refresh(&self.topic, self.partition)
                .await?;
        }
        let (log_start_offset, high_watermark) =
            (watermarks.log_start_offset, watermarks.high_watermark);
        let last_stable_offset = watermarks
            .last_stable_offset
            .max(log_start_offset)
            .min(high_watermark);
        let mut result = ReadResult {
            records: Vec::new(),
            high_watermark,
            log_start_offset,
            last_stable_offset,
            transactions: Vec::new(),
            leader_epoch: watermarks.leader_epoch,
        };
        // Nothing at or past `end` is returned.
        let end = match isolation {
            Isolation::Uncommitted => high_watermark,
            Isolation::Committed => last_stable_offset,
        };
        if offset < log_start_offset || offset > high_watermark {
            return Err(StorageError::OffsetOutOfRange {
                topic: self.topic.clone(),
                partition: self.partition,
                offset,
                log_start_offset,
                high_watermark,
            });
        }
        let mut next = offset;
        let mut bytes = 0;
        let mut reloaded = false;
        let mut last_segment_end = None;
        'segments: while next < end && result.records.len() < max_records {
            let segment = self.segment_for(next).await?;
            let returned_before = result.records.len();
            last_segment_end = Some(segment.end_offset);
            let reader = match self.load(&segment).await {
                Ok(reader) => reader.placed_at(segment.base_offset),
                // The row was replaced (compaction) or dropped (retention)
                // and its object collected after this agent last looked:
                // reload the partition's rows and log start once.
                Err(error) if error.is_object_not_found() && !reloaded => {
                    reloaded = true;
                    self.context.index.invalidate(&self.topic, self.partition);
                    let fresh = self
                        .context
                        .watermarks
                        .refresh(&self.topic, self.partition)
                        .await?;
                    result.log_start_offset = fresh.log_start_offset;
                    if next < fresh.log_start_offset {
                        if result.records.is_empty() {
                            return Err(StorageError::OffsetOutOfRange {
                                topic: self.topic.clone(),
                                partition: self.partition,
                                offset: next,
                                log_start_offset: fresh.log_start_offset,
                                high_watermark: fresh.high_watermark,
                            });
                        }
                        break 'segments;
                    }
                    continue 'segments;
                }
                Err(error) => return Err(error),
            };
            let mut run = TransactionRunBuilder::new(segment.transaction, returned_before);
            for record in reader.iter_from(next) {
                let record = record?;
                if record.offset >= end {
                    run.finish(&result.records, &mut result.transactions);
                    break 'segments;
                }
                let size = record.payload_size() + RECORD_OVERHEAD;
                if !result.records.is_empty() && bytes + size > max_bytes {
                    run.finish(&result.records, &mut result.transactions);
                    break 'segments;
                }
                bytes += size;
                next = record.offset + 1;
                result.records.push(record);
                if result.records.len() >= max_records {
                    run.finish(&result.records, &mut result.transactions);
                    break 'segments;
                }
            }
            run.finish(&result.records, &mut result.transactions);
            next = next.max(segment.end_offset + 1);
        }
        // Read ahead: a reader going through old data will want the next
        // segment soon; fetch it now so that its next read finds it cached.
        if let Some(end) = last_segment_end
            && end + 1 < high_watermark
            && !result.records.is_empty()
        {
            let reader = self.clone();
            tokio::spawn(async move { reader.read_ahead(end + 1).await });
        }
        metrics::counter!("streamhouse_read_records_total").increment(result.records.len() as u64);
        metrics::counter!("streamhouse_read_bytes_total").increment(bytes as u64);
        Ok(result)
    }

    /// Loads the segment holding `offset` into the cache unless it is
    /// there already. The caller knows `offset` is below the high
    /// watermark; failures (the segment dropped meanwhile, storage down)
    /// are left for the read that needs it to report.
    async fn read_ahead(&self, offset: i64) {
        if let Ok(segment) = self.segment_for(offset).await {
            let key = SegmentKey::new(segment.object.clone(), segment.byte_offset);
            if self.context.cache.get(&key).await.is_none() {
                let _ = self.load(&segment).await;
            }
        }
    }

    /// The earliest offset whose record has a timestamp at or after
    /// `timestamp`, with that record's timestamp; `None` when every record
    /// is older (Kafka's ListOffsets by timestamp).
    pub async fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        let watermarks = self
            .context
            .watermarks
            .get(&self.topic, self.partition)
            .await?;
        let Some(row) = self
            .context
            .metadata
            .find_segment_by_timestamp(&self.topic, self.partition, timestamp)
            .await?
        else {
            return Ok(None);
        };
        let segment = IndexedSegment::from(&row);
        let reader = self.load(&segment).await?.placed_at(segment.base_offset);
        let from = watermarks.log_start_offset.max(segment.base_offset);
        for record in reader.iter_from(from) {
            let record = record?;
            if record.timestamp >= timestamp {
                return Ok(Some((record.offset, record.timestamp)));
            }
        }
        Ok(None)
    }

    async fn segment_for(&self, offset: i64) -> Result<Arc<IndexedSegment>> {
        self.context
            .index
            .lookup(&self.topic, self.partition, offset)
            .await?
            .ok_or_else(|| StorageError::SegmentMissing {
                topic: self.topic.clone(),
                partition: self.partition,
                offset,
            })
    }

    /// The segment's bytes from the cache, or one ranged GET.
    async fn load(&self, segment: &IndexedSegment) -> Result<SegmentReader> {
        let key = SegmentKey::new(segment.object.clone(), segment.byte_offset);
        let store = self.context.storage.store();
        let object = segment.object.clone();
        let range = segment.byte_offset..segment.byte_offset + segment.byte_length;
        let expected_records = segment.record_count;
        self.context
            .cache
            .get_or_load(key, async move {
                let path = Path::parse(&*object).map_err(|e| {
                    StorageError::object_store("get", &*object, object_store::Error::from(e))
                })?;
                let bytes = store
                    .get_range(&path, range)
                    .await
                    .map_err(|e| StorageError::object_store("get", &*object, e))?;
                let reader = SegmentReader::new(bytes)?;
                if i64::try_from(reader.header().record_count).ok() != Some(expected_records) {
                    return Err(StorageError::Segment(SegmentError::Corrupt {
                        what: "segment record count differs from its metadata row",
                        position: 0,
                    }));
                }
                Ok(reader)
            })
            .await
    }
}
