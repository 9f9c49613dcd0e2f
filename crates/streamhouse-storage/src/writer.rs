//! The write path's front half: appends are encoded into one open segment
//! per partition ([`PartitionWriter`]) until the flusher takes them.
//!
//! The invariant that matters: an append resolves with offsets only after
//! the flush holding it is uploaded AND committed; if either fails the
//! append fails with a retriable error and none of its records are visible.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use streamhouse_core::{Record, TopicPartition};
use streamhouse_metadata::{ProducerBatch, TransactionBatch};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError, oneshot};

use crate::error::{Result, StorageError};
use crate::segment::{Compression, SegmentWriter};

/// Settings of the write path.
#[derive(Debug, Clone)]
pub struct FlushConfig {
    /// How long appends may wait before their flush starts.
    pub flush_interval: Duration,
    /// A flush starts early once this many bytes are buffered.
    pub flush_bytes: usize,
    /// Flushes uploading at once; commits still happen in order.
    pub max_inflight_flushes: usize,
    /// Upload attempts before the flush fails.
    pub upload_attempts: u32,
    /// Delay before the second attempt; doubled for each further one.
    pub upload_backoff: Duration,
    /// Commit attempts for retriable metadata errors.
    pub commit_attempts: u32,
    /// Codec of the segments the flusher writes.
    pub compression: Compression,
    /// Appends wait once this many bytes are buffered or in flight; while
    /// flushes are failing they are refused at once instead.
    pub max_pending_bytes: usize,
}

impl Default for FlushConfig {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(50),
            flush_bytes: 8 << 20,
            max_inflight_flushes: 4,
            upload_attempts: 3,
            upload_backoff: Duration::from_millis(100),
            commit_attempts: 3,
            compression: Compression::Lz4,
            max_pending_bytes: 64 << 20,
        }
    }
}

/// Offsets assigned to an append: `base_offset..=last_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    pub base_offset: i64,
    pub last_offset: i64,
}

/// An append that is buffered and waits for its flush to commit.
#[must_use = "an append is only acknowledged when awaited"]
pub struct PendingAppend {
    response: oneshot::Receiver<Result<AppendResult>>,
    /// The time the records were stamped with, when their topic stamps
    /// records on append (`message.timestamp.type=LogAppendTime`).
    pub(crate) append_time: Option<i64>,
}

impl PendingAppend {
    /// The append time the records carry, when their topic stamps records
    /// on append rather than keeping the producer's timestamps.
    pub fn log_append_time(&self) -> Option<i64> {
        self.append_time
    }
}

impl std::future::Future for PendingAppend {
    type Output = Result<AppendResult>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.response)
            .poll(cx)
            .map(|received| received.unwrap_or(Err(StorageError::ShuttingDown)))
    }
}

/// One append waiting for its flush.
pub(crate) struct Waiter {
    /// Index of the append's first record within the partition's segment.
    pub(crate) first: i64,
    pub(crate) count: i64,
    pub(crate) reply: oneshot::Sender<Result<AppendResult>>,
    /// Returned to the pending-bytes budget when the append resolves.
    pub(crate) _budget: OwnedSemaphorePermit,
}

impl Waiter {
    pub(crate) fn succeed(self, segment_base: i64) {
        let base_offset = segment_base + self.first;
        // The appender may have gone away; the records are committed anyway.
        let _ = self.reply.send(Ok(AppendResult {
            base_offset,
            last_offset: base_offset + self.count - 1,
        }));
    }

    pub(crate) fn fail(self, error: StorageError) {
        let _ = self.reply.send(Err(error));
    }
}

/// Which open segment an append goes to: one per partition for plain
/// appends, and one per batch of an idempotent producer and per
/// transaction marker, so that the commit can accept or reject each such
/// batch on its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct WriterKey {
    pub(crate) tp: TopicPartition,
    pub(crate) origin: Option<Origin>,
}

/// What the commit must know of a segment's writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Origin {
    /// One batch of an idempotent (or transactional) producer.
    Producer(ProducerBatch),
    /// A COMMIT or ABORT marker of a transaction.
    Marker(TransactionBatch),
}

impl Origin {
    pub(crate) fn producer(self) -> Option<ProducerBatch> {
        match self {
            Origin::Producer(batch) => Some(batch),
            Origin::Marker(_) => None,
        }
    }

    pub(crate) fn marker(self) -> Option<TransactionBatch> {
        match self {
            Origin::Marker(marker) => Some(marker),
            Origin::Producer(_) => None,
        }
    }
}

/// An open segment and the appends waiting on it.
pub(crate) struct PartitionWriter {
    pub(crate) segment: SegmentWriter,
    pub(crate) waiters: Vec<Waiter>,
    /// Order of the first append, to lay segments of one partition out in
    /// the order their appends arrived.
    pub(crate) arrival: u64,
}

impl PartitionWriter {
    fn new(compression: Compression, arrival: u64) -> Self {
        Self {
            segment: SegmentWriter::new(compression),
            waiters: Vec::new(),
            arrival,
        }
    }
}

/// Everything buffered since the last flush.
#[derive(Default)]
pub(crate) struct WriteBuffer {
    pub(crate) partitions: HashMap<WriterKey, PartitionWriter>,
    pub(crate) bytes: usize,
    next_arrival: u64,
}

/// State shared by appenders and the flusher.
pub(crate) struct WriteShared {
    pub(crate) config: FlushConfig,
    pub(crate) buffer: Mutex<WriteBuffer>,
    pub(crate) closed: AtomicBool,
    pub(crate) flush_now: Notify,
    budget: Arc<Semaphore>,
    budget_size: usize,
    pub(crate) buffered_records: AtomicU64,
    /// Set when a flush fails, cleared when one commits: while it is set a
    /// full budget refuses appends instead of queueing them, so clients'
    /// retries are not buffered behind storage that does not answer.
    pub(crate) flush_failing: AtomicBool,
}

impl WriteShared {
    pub(crate) fn new(config: FlushConfig) -> Self {
        let budget_size = config
            .max_pending_bytes
            .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Self {
            config,
            buffer: Mutex::new(WriteBuffer::default()),
            closed: AtomicBool::new(false),
            flush_now: Notify::new(),
            budget: Arc::new(Semaphore::new(budget_size)),
            budget_size,
            buffered_records: AtomicU64::new(0),
            flush_failing: AtomicBool::new(false),
        }
    }

    /// Buffers `records` for `tp`; the returned append resolves once they
    /// are committed. Appends enqueued one after another keep that order
    /// within their partition. The records' `offset` fields are ignored.
    ///
    /// When the pending-bytes budget is used up the append waits for room
    /// for at most `wait`, or fails at once while flushes are failing;
    /// either way nothing is buffered.
    pub(crate) async fn enqueue(
        &self,
        tp: TopicPartition,
        mut records: Vec<Record>,
        origin: Option<Origin>,
        wait: Duration,
    ) -> Result<PendingAppend> {
        if records.is_empty() {
            return Err(StorageError::InvalidAppend {
                reason: "an append needs at least one record",
            });
        }
        let bytes: usize = records.iter().map(|r| r.payload_size() + 16).sum();
        let permits = u32::try_from(bytes.clamp(1, self.budget_size)).unwrap_or(u32::MAX);
        let budget = match self.budget.clone().try_acquire_many_owned(permits) {
            Ok(budget) => budget,
            Err(TryAcquireError::Closed) => return Err(StorageError::ShuttingDown),
            Err(TryAcquireError::NoPermits) if self.flush_failing.load(Ordering::SeqCst) => {
                metrics::counter!("streamhouse_limit_rejections_total", "limit" => "unflushed_bytes")
                    .increment(1);
                return Err(StorageError::Backpressure {
                    max: self.budget_size,
                });
            }
            Err(TryAcquireError::NoPermits) => {
                let acquire = self.budget.clone().acquire_many_owned(permits);
                match tokio::time::timeout(wait, acquire).await {
                    Ok(Ok(budget)) => budget,
                    Ok(Err(_)) => return Err(StorageError::ShuttingDown),
                    Err(_) => {
                        metrics::counter!("streamhouse_limit_rejections_total", "limit" => "unflushed_bytes")
                            .increment(1);
                        return Err(StorageError::AppendTimedOut {
                            waited_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        });
                    }
                }
            }
        };

        let (reply, response) = oneshot::channel();
        {
            let mut buffer = self.buffer.lock();
            if self.closed.load(Ordering::SeqCst) {
                return Err(StorageError::ShuttingDown);
            }
            let compression = self.config.compression;
            let key = WriterKey { tp, origin };
            if origin.is_some()
                && let Some(writer) = buffer.partitions.get_mut(&key)
            {
                // A retry of an idempotent batch that is still buffered, or
                // the same marker written twice: answer it with the
                // original's offsets.
                let count = i64::try_from(writer.segment.record_count()).unwrap_or(i64::MAX);
                writer.waiters.push(Waiter {
                    first: 0,
                    count,
                    reply,
                    _budget: budget,
                });
                return Ok(PendingAppend {
                    response,
                    append_time: None,
                });
            }
            let arrival = buffer.next_arrival;
            buffer.next_arrival += 1;
            let writer = buffer
                .partitions
                .entry(key)
                .or_insert_with(|| PartitionWriter::new(compression, arrival));
            // Offsets inside a flushed segment are relative to its first
            // record; the commit assigns the real ones.
            let first = i64::try_from(writer.segment.record_count()).unwrap_or(i64::MAX);
            for (i, record) in records.iter_mut().enumerate() {
                record.offset = first + i as i64;
                writer.segment.append(record)?;
            }
            let count = records.len() as i64;
            writer.waiters.push(Waiter {
                first,
                count,
                reply,
                _budget: budget,
            });
            buffer.bytes += bytes;
            self.buffered_records
                .fetch_add(count as u64, Ordering::Relaxed);
            if buffer.bytes >= self.config.flush_bytes {
                self.flush_now.notify_one();
            }
        }
        Ok(PendingAppend {
            response,
            append_time: None,
        })
    }

    /// Takes everything buffered, leaving an empty buffer.
    pub(crate) fn take(&self) -> WriteBuffer {
        let taken = std::mem::take(&mut *self.buffer.lock());
        self.buffered_records.store(0, Ordering::Relaxed);
        taken
    }

    /// Refuses new appends; what is buffered is still flushed.
    pub(crate) fn close(&self) {
        let _buffer = self.buffer.lock();
        self.closed.store(true, Ordering::SeqCst);
    }
}
