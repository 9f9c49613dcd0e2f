//! Compaction output: records become consecutive segments of one object,
//! each closed at about [`CompactionConfig::segment_bytes`], and the
//! object is streamed to the object store as segments close, so that
//! rewriting a run holds one open segment and a few upload parts in
//! memory, never the whole object.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload};
use streamhouse_core::Record;
use streamhouse_metadata::ReplacementSegment;
use tokio::task::JoinSet;

use super::CompactionConfig;
use crate::error::{Result, StorageError};
use crate::segment::{Compression, SegmentWriter};

/// Bytes of one upload part: S3's smallest part (5 MiB) plus room, since
/// every part but the last must reach it.
const PART_BYTES: usize = 6 << 20;
/// Parts uploading at once; with the part being filled, the upload holds
/// about `(PARTS_IN_FLIGHT + 1) * PART_BYTES` (plus a segment).
const PARTS_IN_FLIGHT: usize = 1;
const PUT_ATTEMPTS: u32 = 3;
const PUT_BACKOFF: Duration = Duration::from_millis(100);

/// What a record written by key compaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kept {
    /// Part of a range every record of which is kept (size compaction, or
    /// the part of a key-compaction run past what its key map covered).
    Whole,
    /// Kept by key compaction, first compacted at `cleaned_at`.
    Cleaned { cleaned_at: i64 },
}

/// How the open segment was written.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Whole,
    Cleaned {
        /// When the tombstones in the segment were first compacted: a
        /// segment never mixes tombstones of two compactions, so that none
        /// outlives its `delete.retention.ms` because of another.
        tombstones_at: Option<i64>,
        /// The latest `cleaned_at` of its records.
        latest: i64,
    },
}

struct OpenSegment {
    writer: SegmentWriter,
    kind: Kind,
    tombstones: i64,
}

/// The segments of one output object, tiling the offsets of the run they
/// replace. Closed segments wait in [`Self::take_ready`] for the upload.
pub(crate) struct SegmentedOutput {
    compression: Compression,
    segment_bytes: usize,
    /// Bytes of the segments closed so far: where the next one starts.
    written: u64,
    segments: Vec<ReplacementSegment>,
    ready: Vec<Bytes>,
    open: Option<OpenSegment>,
    /// Where the open segment's offset range starts: right after the
    /// previous segment, so that the segments tile the run.
    open_base: i64,
    /// The `cleaned_at` of an empty key-compacted segment, should the run
    /// keep no record at all.
    empty_cleaned_at: Option<i64>,
}

impl SegmentedOutput {
    pub(crate) fn new(config: &CompactionConfig, base_offset: i64) -> Self {
        let segment_bytes = usize::try_from(config.segment_bytes.max(1))
            .unwrap_or(usize::MAX)
            .min(usize::try_from(config.target_bytes).unwrap_or(usize::MAX));
        Self {
            compression: config.compression,
            segment_bytes,
            written: 0,
            segments: Vec::new(),
            ready: Vec::new(),
            open: None,
            open_base: base_offset,
            empty_cleaned_at: None,
        }
    }

    /// For key compaction: should nothing be kept, the run becomes one
    /// empty segment compacted at `cleaned_at`.
    pub(crate) fn with_empty_cleaned_at(mut self, cleaned_at: i64) -> Self {
        self.empty_cleaned_at = Some(cleaned_at);
        self
    }

    /// Appends a record; offsets increase from call to call.
    pub(crate) fn append(&mut self, record: &Record, kept: Kept) -> Result<()> {
        let tombstone = record.value.is_none();
        if let Some(open) = &self.open {
            let fits = match (open.kind, kept) {
                (Kind::Whole, Kept::Whole) => true,
                (Kind::Cleaned { tombstones_at, .. }, Kept::Cleaned { cleaned_at }) => {
                    !tombstone || tombstones_at.is_none_or(|at| at == cleaned_at)
                }
                _ => false,
            };
            if !fits {
                self.close(record.offset - 1)?;
            }
        }
        // A whole segment holds every offset of its range: offsets that key
        // compaction emptied before it get an empty key-compacted segment.
        if self.open.is_none()
            && kept == Kept::Whole
            && self.open_base < record.offset
            && let Some(cleaned_at) = self.empty_cleaned_at
        {
            self.push(
                SegmentWriter::new(self.compression),
                record.offset - 1,
                Some(cleaned_at),
                0,
            )?;
        }
        let open = self.open.get_or_insert_with(|| {
            // Room for a whole segment, so its buffer never grows.
            let mut writer = SegmentWriter::new(self.compression);
            writer.reserve(
                self.segment_bytes
                    .saturating_add(crate::segment::DEFAULT_BLOCK_SIZE),
            );
            let kind = match kept {
                Kept::Whole => Kind::Whole,
                Kept::Cleaned { cleaned_at } => Kind::Cleaned {
                    tombstones_at: None,
                    latest: cleaned_at,
                },
            };
            OpenSegment {
                writer,
                kind,
                tombstones: 0,
            }
        });
        open.writer.append(record)?;
        if let (
            Kind::Cleaned {
                tombstones_at,
                latest,
            },
            Kept::Cleaned { cleaned_at },
        ) = (&mut open.kind, kept)
        {
            *latest = (*latest).max(cleaned_at);
            if tombstone {
                *tombstones_at = Some(cleaned_at);
                open.tombstones += 1;
            }
        }
        if open.writer.estimated_size() >= self.segment_bytes {
            self.close(record.offset)?;
        }
        Ok(())
    }

    /// Closes the open segment, which ends at `end_offset`.
    fn close(&mut self, end_offset: i64) -> Result<()> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let cleaned_at = match open.kind {
            Kind::Whole => None,
            Kind::Cleaned {
                tombstones_at,
                latest,
            } => Some(tombstones_at.unwrap_or(latest)),
        };
        self.push(open.writer, end_offset, cleaned_at, open.tombstones)
    }

    fn push(
        &mut self,
        writer: SegmentWriter,
        end_offset: i64,
        cleaned_at: Option<i64>,
        tombstones: i64,
    ) -> Result<()> {
        let record_count = i64::try_from(writer.record_count()).unwrap_or(i64::MAX);
        let size_bytes = i64::try_from(writer.uncompressed_bytes()).unwrap_or(i64::MAX);
        let (min_timestamp, max_timestamp) = (
            writer.min_timestamp().unwrap_or(-1),
            writer.max_timestamp().unwrap_or(-1),
        );
        let bytes = writer.finish()?;
        self.segments.push(ReplacementSegment {
            base_offset: self.open_base,
            end_offset,
            record_count,
            size_bytes,
            byte_offset: i64::try_from(self.written).unwrap_or(i64::MAX),
            byte_length: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
            min_timestamp,
            max_timestamp,
            cleaned_at,
            tombstones,
        });
        self.written += bytes.len() as u64;
        self.ready.push(bytes);
        self.open_base = end_offset + 1;
        Ok(())
    }

    /// The bytes of the segments closed since the last call, in order.
    pub(crate) fn take_ready(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.ready)
    }

    /// Closes the last segment at `end_offset`, the run's end, and returns
    /// the object's segments; the bytes still to upload are in
    /// [`Self::take_ready`].
    pub(crate) fn finish(&mut self, end_offset: i64) -> Result<Vec<ReplacementSegment>> {
        self.close(end_offset)?;
        if let Some(last) = self.segments.last_mut() {
            last.end_offset = end_offset;
        } else if let Some(cleaned_at) = self.empty_cleaned_at {
            // Every record of the run was removed: its offsets stay
            // covered, by a segment that holds none.
            self.push(
                SegmentWriter::new(self.compression),
                end_offset,
                Some(cleaned_at),
                0,
            )?;
        }
        Ok(std::mem::take(&mut self.segments))
    }

    /// Bytes of the object so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }
}

/// An object being uploaded as it is written: a single PUT if it stays
/// below one part, a multipart upload otherwise. The bytes written are
/// sent as they are, never copied into a buffer of the upload's own.
pub(crate) struct StreamedUpload {
    store: Arc<dyn ObjectStore>,
    key: String,
    path: Path,
    /// Written bytes not yet sent in a part, and their length.
    pending: Vec<Bytes>,
    pending_len: usize,
    multipart: Option<Multipart>,
}

struct Multipart {
    upload: Box<dyn MultipartUpload>,
    parts: JoinSet<object_store::Result<()>>,
}

impl StreamedUpload {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, key: String) -> Result<Self> {
        let path = Path::parse(&key)
            .map_err(|e| StorageError::object_store("put", &key, object_store::Error::from(e)))?;
        Ok(Self {
            store,
            key,
            path,
            pending: Vec::new(),
            pending_len: 0,
            multipart: None,
        })
    }

    /// Appends bytes to the object; once a part's worth is pending it is
    /// sent, after waiting while [`PARTS_IN_FLIGHT`] parts are.
    pub(crate) async fn write(&mut self, bytes: Bytes) -> Result<()> {
        self.pending_len += bytes.len();
        self.pending.push(bytes);
        if self.pending_len < PART_BYTES {
            return Ok(());
        }
        if self.multipart.is_none() {
            let upload = self
                .store
                .put_multipart(&self.path)
                .await
                .map_err(|e| StorageError::object_store("start upload", &self.key, e))?;
            self.multipart = Some(Multipart {
                upload,
                parts: JoinSet::new(),
            });
        }
        self.send_part().await
    }

    /// Sends what is pending as the next part.
    async fn send_part(&mut self) -> Result<()> {
        let Some(multipart) = &mut self.multipart else {
            return Ok(());
        };
        while multipart.parts.len() >= PARTS_IN_FLIGHT {
            Self::part_done(&self.key, multipart.parts.join_next().await)?;
        }
        let payload: PutPayload = std::mem::take(&mut self.pending).into_iter().collect();
        self.pending_len = 0;
        multipart.parts.spawn(multipart.upload.put_part(payload));
        Ok(())
    }

    fn part_done(
        key: &str,
        joined: Option<std::result::Result<object_store::Result<()>, tokio::task::JoinError>>,
    ) -> Result<()> {
        match joined {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(error))) => Err(StorageError::object_store("put part", key, error)),
            Some(Err(error)) => match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(_) => Err(StorageError::ShuttingDown),
            },
        }
    }

    /// Completes the object.
    pub(crate) async fn finish(mut self) -> Result<()> {
        if self.multipart.is_none() {
            let payload: PutPayload = std::mem::take(&mut self.pending).into_iter().collect();
            return crate::object_storage::put_with_retry(
                self.store,
                self.key,
                payload,
                PUT_ATTEMPTS,
                PUT_BACKOFF,
            )
            .await;
        }
        if self.pending_len > 0 {
            self.send_part().await?;
        }
        let Some(mut multipart) = self.multipart.take() else {
            return Ok(());
        };
        let sent: Result<()> = async {
            while let Some(joined) = multipart.parts.join_next().await {
                Self::part_done(&self.key, Some(joined))?;
            }
            Ok(())
        }
        .await;
        if let Err(error) = sent {
            Self::abort_multipart(&self.key, multipart).await;
            return Err(error);
        }
        multipart
            .upload
            .complete()
            .await
            .map(|_| ())
            .map_err(|e| StorageError::object_store("complete upload", &self.key, e))
    }

    /// Gives up on the object: a multipart upload is aborted (its parts
    /// deleted); nothing was written otherwise.
    pub(crate) async fn abort(mut self) {
        if let Some(multipart) = self.multipart.take() {
            Self::abort_multipart(&self.key, multipart).await;
        }
    }

    async fn abort_multipart(key: &str, mut multipart: Multipart) {
        multipart.parts.abort_all();
        while multipart.parts.join_next().await.is_some() {}
        if let Err(error) = multipart.upload.abort().await {
            tracing::warn!(%key, %error, "could not abort a compaction upload");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(segment_bytes: u64) -> CompactionConfig {
        CompactionConfig {
            segment_bytes,
            compression: Compression::None,
            ..CompactionConfig::default()
        }
    }

    fn value(offset: i64) -> Record {
        Record::new(offset, vec![b'v'; 100])
            .with_key(b"k".to_vec())
            .with_offset(offset)
    }

    fn tombstone(offset: i64) -> Record {
        Record::tombstone(offset)
            .with_key(b"k".to_vec())
            .with_offset(offset)
    }

    fn shape(segments: &[ReplacementSegment]) -> Vec<(i64, i64, i64, Option<i64>, i64)> {
        segments
            .iter()
            .map(|s| {
                (
                    s.base_offset,
                    s.end_offset,
                    s.record_count,
                    s.cleaned_at,
                    s.tombstones,
                )
            })
            .collect()
    }

    #[test]
    fn segments_tile_the_run_and_close_at_their_size() {
        let mut output = SegmentedOutput::new(&config(250), 10);
        for offset in [12, 13, 15, 16, 19] {
            output.append(&value(offset), Kept::Whole).expect("append");
        }
        let segments = output.finish(20).expect("finish");
        assert_eq!(
            shape(&segments),
            [
                (10, 13, 2, None, 0),
                (14, 16, 2, None, 0),
                (17, 20, 1, None, 0)
            ]
        );
        let ready = output.take_ready();
        assert_eq!(ready.len(), 3);
        assert_eq!(
            output.written(),
            ready.iter().map(|b| b.len() as u64).sum::<u64>()
        );
        assert_eq!(segments[1].byte_offset, segments[0].byte_length);
    }

    #[test]
    fn tombstones_of_two_compactions_never_share_a_segment() {
        let mut output = SegmentedOutput::new(&config(1 << 20), 0);
        output
            .append(&tombstone(1), Kept::Cleaned { cleaned_at: 100 })
            .expect("append");
        // A value compacted later may join; it moves the segment's latest
        // time but not its tombstones' time.
        output
            .append(&value(2), Kept::Cleaned { cleaned_at: 200 })
            .expect("append");
        output
            .append(&tombstone(4), Kept::Cleaned { cleaned_at: 200 })
            .expect("append");
        output
            .append(&value(5), Kept::Cleaned { cleaned_at: 300 })
            .expect("append");
        // Past the key map: a whole range starts a segment of its own.
        output.append(&value(6), Kept::Whole).expect("append");
        output.append(&value(7), Kept::Whole).expect("append");
        let segments = output.finish(7).expect("finish");
        assert_eq!(
            shape(&segments),
            [
                (0, 3, 2, Some(100), 1),
                (4, 5, 2, Some(200), 1),
                (6, 7, 2, None, 0)
            ]
        );
        // Without tombstones, a segment carries its latest time.
        let mut output = SegmentedOutput::new(&config(1 << 20), 0);
        output
            .append(&value(0), Kept::Cleaned { cleaned_at: 100 })
            .expect("append");
        output
            .append(&value(1), Kept::Cleaned { cleaned_at: 300 })
            .expect("append");
        assert_eq!(
            shape(&output.finish(1).expect("finish")),
            [(0, 1, 2, Some(300), 0)]
        );
    }

    #[test]
    fn a_whole_range_after_emptied_offsets_starts_at_its_first_record() {
        let mut output = SegmentedOutput::new(&config(1 << 20), 0).with_empty_cleaned_at(9);
        output
            .append(&value(1), Kept::Cleaned { cleaned_at: 9 })
            .expect("append");
        // The segment closes at its size here...
        output.close(3).expect("close");
        // ...and the records up to 5 were removed: 4..=5 become an empty
        // segment, so the whole one holds every offset of 6..=7.
        output.append(&value(6), Kept::Whole).expect("append");
        output.append(&value(7), Kept::Whole).expect("append");
        assert_eq!(
            shape(&output.finish(7).expect("finish")),
            [
                (0, 3, 1, Some(9), 0),
                (4, 5, 0, Some(9), 0),
                (6, 7, 2, None, 0)
            ]
        );
    }

    #[test]
    fn a_run_that_keeps_nothing_becomes_one_empty_segment() {
        let mut output = SegmentedOutput::new(&config(1 << 20), 5).with_empty_cleaned_at(42);
        let segments = output.finish(9).expect("finish");
        assert_eq!(shape(&segments), [(5, 9, 0, Some(42), 0)]);
        let bytes = output.take_ready();
        let reader = crate::segment::SegmentReader::new(bytes[0].clone()).expect("segment");
        assert!(reader.is_empty());
    }
}
