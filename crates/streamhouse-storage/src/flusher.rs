//! The write path's back half: turn the buffer into ONE object, upload it,
//! commit it in one metadata transaction, then answer the appends.
//!
//! Uploads of successive flushes overlap (up to `max_inflight_flushes`);
//! one committer task commits them strictly in order. When a flush fails,
//! every flush that was already dispatched behind it fails too, so two
//! appends to one partition can never become visible out of order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use object_store::PutPayload;
use streamhouse_core::TopicPartition;
use streamhouse_metadata::{FlushCommit, MetadataStore, PendingSegment, SegmentOutcome};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cache::{SegmentCache, SegmentKey};
use crate::clock::Clock;
use crate::error::StorageError;
use crate::object_storage::{ObjectStorage, backoff_delay, put_with_retry};
use crate::orphans::COMMIT_DEADLINE;
use crate::segment::SegmentReader;
use crate::segment::batch::BatchObjectBuilder;
use crate::segment_index::{IndexedSegment, SegmentIndex};
use crate::watermarks::{Lso, Watermarks};
use crate::writer::{Origin, Waiter, WriteBuffer, WriteShared};

/// Components the flusher publishes committed segments to.
#[derive(Clone)]
pub(crate) struct FlushTargets {
    pub(crate) storage: ObjectStorage,
    pub(crate) metadata: Arc<dyn MetadataStore>,
    pub(crate) cache: SegmentCache,
    pub(crate) index: Arc<SegmentIndex>,
    pub(crate) watermarks: Arc<Watermarks>,
    /// Where commit attempts record their outcome, for readiness.
    pub(crate) commits: Arc<crate::health::OutcomeTracker>,
    /// Stamps the committed objects' creation time.
    pub(crate) clock: Arc<dyn Clock>,
}

/// One partition's part of a flush.
struct FlushPart {
    tp: TopicPartition,
    segment: SegmentReader,
    pending: PendingSegment,
    waiters: Vec<Waiter>,
}

type Upload = JoinHandle<Result<(), StorageError>>;

struct FlushJob {
    seq: u64,
    key: String,
    parts: Vec<FlushPart>,
    bytes: u64,
    started: Instant,
}

/// Starts the flush loop and the committer; both stop after `cancel`
/// fires and everything buffered at that moment is flushed.
pub(crate) fn spawn(
    shared: Arc<WriteShared>,
    targets: FlushTargets,
    cancel: CancellationToken,
) -> (JoinHandle<()>, JoinHandle<()>) {
    let (jobs_tx, jobs_rx) =
        mpsc::channel::<(FlushJob, Upload)>(shared.config.max_inflight_flushes.max(1));
    let dispatched = Arc::new(AtomicU64::new(0));
    let flush_loop = tokio::spawn(flush_loop(
        shared.clone(),
        targets.clone(),
        jobs_tx,
        dispatched.clone(),
        cancel,
    ));
    let committer = tokio::spawn(commit_loop(shared, targets, jobs_rx, dispatched));
    (flush_loop, committer)
}

async fn flush_loop(
    shared: Arc<WriteShared>,
    targets: FlushTargets,
    jobs: mpsc::Sender<(FlushJob, Upload)>,
    dispatched: Arc<AtomicU64>,
    cancel: CancellationToken,
) {
    // The first flush is one interval after start: `interval` alone would
    // tick at once and cut the first appends' flush short.
    let period = shared.config.flush_interval;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0;
    loop {
        let closing = tokio::select! {
            _ = ticker.tick() => false,
            _ = shared.flush_now.notified() => false,
            _ = cancel.cancelled() => true,
        };
        if closing {
            shared.close();
        }
        let buffer = shared.take();
        if !buffer.partitions.is_empty() {
            seq += 1;
            if let Some(job) = build_job(&shared, &targets, buffer, seq) {
                dispatched.store(seq, Ordering::SeqCst);
                if jobs.send(job).await.is_err() {
                    tracing::error!("flush committer stopped; no further flushes");
                    return;
                }
            }
        }
        if closing {
            return;
        }
    }
}

/// Finishes one segment per partition, lays them out in one object and
/// starts its upload.
fn build_job(
    shared: &WriteShared,
    targets: &FlushTargets,
    buffer: WriteBuffer,
    seq: u64,
) -> Option<(FlushJob, Upload)> {
    let started = Instant::now();
    let mut partitions: Vec<_> = buffer.partitions.into_iter().collect();
    partitions.sort_by(|a, b| (&a.0.tp, a.1.arrival).cmp(&(&b.0.tp, b.1.arrival)));
    let mut builder = BatchObjectBuilder::new();
    let mut parts = Vec::with_capacity(partitions.len());
    for (key, writer) in partitions {
        let tp = key.tp;
        let record_count = writer.segment.record_count();
        let size_bytes = writer.segment.uncompressed_bytes();
        let (min_timestamp, max_timestamp) = (
            writer.segment.min_timestamp().unwrap_or(-1),
            writer.segment.max_timestamp().unwrap_or(-1),
        );
        let finished = writer
            .segment
            .finish()
            .and_then(|bytes| Ok((SegmentReader::new(bytes.clone())?, bytes)))
            .map_err(StorageError::from);
        let (segment, bytes) = match finished {
            Ok(finished) => finished,
            Err(error) => {
                tracing::error!(%tp, %error, "cannot finish segment; failing its appends");
                for waiter in writer.waiters {
                    waiter.fail(error.clone());
                }
                continue;
            }
        };
        let entry = builder.add_segment(&tp.topic, tp.partition, bytes, record_count);
        let pending = PendingSegment {
            topic: tp.topic.to_string(),
            partition: tp.partition,
            record_count: i64::try_from(record_count).unwrap_or(i64::MAX),
            size_bytes: i64::try_from(size_bytes).unwrap_or(i64::MAX),
            byte_offset: i64::try_from(entry.byte_offset).unwrap_or(i64::MAX),
            byte_length: i64::try_from(entry.byte_length).unwrap_or(i64::MAX),
            min_timestamp,
            max_timestamp,
            producer: key.origin.and_then(Origin::producer),
            marker: key.origin.and_then(Origin::marker),
        };
        parts.push(FlushPart {
            tp,
            segment,
            pending,
            waiters: writer.waiters,
        });
    }
    if parts.is_empty() {
        return None;
    }
    let (chunks, _entries) = builder.finish();
    let payload: PutPayload = chunks.into_iter().collect();
    let bytes = payload.content_length() as u64;
    let key = targets
        .storage
        .key(&format!("batches/{}.bin", ulid::Ulid::generate()));
    let upload = tokio::spawn({
        let (store, key) = (targets.storage.store(), key.clone());
        let (attempts, backoff) = (
            shared.config.upload_attempts.max(1),
            shared.config.upload_backoff,
        );
        async move {
            let started = Instant::now();
            put_with_retry(store, key, payload, attempts, backoff).await?;
            metrics::histogram!("streamhouse_flush_upload_seconds")
                .record(started.elapsed().as_secs_f64());
            Ok(())
        }
    });
    Some((
        FlushJob {
            seq,
            key,
            parts,
            bytes,
            started,
        },
        upload,
    ))
}

async fn commit_loop(
    shared: Arc<WriteShared>,
    targets: FlushTargets,
    mut jobs: mpsc::Receiver<(FlushJob, Upload)>,
    dispatched: Arc<AtomicU64>,
) {
    // Flushes with a sequence number up to this one were dispatched before
    // an earlier flush failed, and must fail as well.
    let mut failed_through = 0;
    while let Some((job, upload)) = jobs.recv().await {
        let upload = match upload.await {
            Ok(result) => result,
            Err(join) => Err(StorageError::UploadFailed {
                key: job.key.clone(),
                attempts: 0,
                source: Arc::new(object_store::Error::from(join)),
            }),
        };
        if job.seq <= failed_through {
            let error = StorageError::EarlierFlushFailed {
                key: job.key.clone(),
            };
            fail_job(job, &error);
            continue;
        }
        let result = match upload {
            Ok(()) => commit(&shared, &targets, &job).await,
            Err(error) => Err(error),
        };
        match result {
            Ok(outcomes) => {
                shared.flush_failing.store(false, Ordering::SeqCst);
                publish(&targets, job, outcomes).await
            }
            Err(error) => {
                shared.flush_failing.store(true, Ordering::SeqCst);
                failed_through = dispatched.load(Ordering::SeqCst);
                metrics::counter!("streamhouse_flush_failures_total").increment(1);
                fail_job(job, &error);
            }
        }
    }
}

async fn commit(
    shared: &WriteShared,
    targets: &FlushTargets,
    job: &FlushJob,
) -> Result<Vec<SegmentOutcome>, StorageError> {
    let flush = FlushCommit {
        bucket: targets.storage.bucket().to_string(),
        key: job.key.clone(),
        created_at: targets.clock.now_ms(),
        segments: job.parts.iter().map(|p| p.pending.clone()).collect(),
    };
    let attempts = shared.config.commit_attempts.max(1);
    let mut attempt = 1;
    loop {
        // Past the deadline, garbage collection may already count the
        // object as an orphan: committing it could point rows at nothing.
        if job.started.elapsed() > COMMIT_DEADLINE {
            return Err(StorageError::CommitTooLate {
                key: job.key.clone(),
                elapsed_ms: u64::try_from(job.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
        }
        let started = Instant::now();
        let committed = targets.metadata.commit_flush(&flush).await;
        targets.commits.record(&committed);
        match committed {
            Ok(outcomes) => {
                metrics::histogram!("streamhouse_metadata_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                return Ok(outcomes);
            }
            // A commit is idempotent by object key, so retrying one whose
            // outcome is unknown cannot assign offsets twice.
            Err(error) if error.is_retriable() && attempt < attempts => {
                tracing::warn!(key = %job.key, attempt, %error, "commit failed; retrying");
                tokio::time::sleep(backoff_delay(shared.config.upload_backoff, attempt)).await;
                attempt += 1;
            }
            Err(error) => {
                tracing::error!(key = %job.key, attempt, %error, "commit failed; flush is garbage");
                return Err(StorageError::CommitFailed {
                    key: job.key.clone(),
                    attempts: attempt,
                    source: Arc::new(error),
                });
            }
        }
    }
}

/// Makes a committed flush readable from memory, then answers its appends.
async fn publish(targets: &FlushTargets, job: FlushJob, outcomes: Vec<SegmentOutcome>) {
    let object: Arc<str> = Arc::from(job.key.as_str());
    let mut records = 0;
    for (part, outcome) in job.parts.into_iter().zip(outcomes) {
        match outcome {
            SegmentOutcome::Committed {
                base_offset,
                end_offset,
                leader_epoch,
            } => {
                let byte_offset = u64::try_from(part.pending.byte_offset).unwrap_or(0);
                targets
                    .cache
                    .insert(
                        SegmentKey::new(object.clone(), byte_offset),
                        part.segment.clone(),
                    )
                    .await;
                targets.index.insert(
                    &part.tp.topic,
                    part.tp.partition,
                    IndexedSegment {
                        base_offset,
                        end_offset,
                        record_count: part.pending.record_count,
                        object: object.clone(),
                        byte_offset,
                        byte_length: u64::try_from(part.pending.byte_length).unwrap_or(0),
                        min_timestamp: part.pending.min_timestamp,
                        max_timestamp: part.pending.max_timestamp,
                        transaction: part.pending.transaction(),
                    },
                );
                // The store's notice of this commit carries the last
                // stable offset; a transactional part makes it unknown
                // until then.
                let lso = if part.pending.transaction().is_some() {
                    Lso::Unknown
                } else {
                    Lso::Unchanged
                };
                targets.watermarks.advance(
                    &part.tp.topic,
                    part.tp.partition,
                    end_offset + 1,
                    lso,
                    Some(leader_epoch),
                );
                records += part.pending.record_count;
                for waiter in part.waiters {
                    waiter.succeed(base_offset);
                }
            }
            // A retried batch stored before: answer with its offsets.
            SegmentOutcome::Duplicate { base_offset, .. } => {
                for waiter in part.waiters {
                    waiter.succeed(base_offset);
                }
            }
            rejected => {
                let topic = part.tp.topic.to_string();
                let partition = part.tp.partition;
                let error = match rejected {
                    SegmentOutcome::OutOfOrderSequence => {
                        StorageError::OutOfOrderSequence { topic, partition }
                    }
                    SegmentOutcome::ProducerFenced => {
                        StorageError::ProducerFenced { topic, partition }
                    }
                    SegmentOutcome::TransactionRefused(reason) => {
                        StorageError::TransactionRefused {
                            topic,
                            partition,
                            reason,
                        }
                    }
                    _ => StorageError::UnknownPartition { topic, partition },
                };
                for waiter in part.waiters {
                    waiter.fail(error.clone());
                }
            }
        }
    }
    metrics::counter!("streamhouse_flushes_total").increment(1);
    metrics::counter!("streamhouse_flush_records_total").increment(records as u64);
    metrics::histogram!("streamhouse_flush_bytes").record(job.bytes as f64);
    metrics::histogram!("streamhouse_flush_seconds").record(job.started.elapsed().as_secs_f64());
}

fn fail_job(job: FlushJob, error: &StorageError) {
    for part in job.parts {
        for waiter in part.waiters {
            waiter.fail(error.clone());
        }
    }
}
