//! The consistency checker: what must hold after any job, at any time.
//!
//! For every partition: the segment rows from the log start offset to the
//! high watermark cover every offset exactly once, in order; every row's
//! object exists; its byte range decodes as a segment with a valid CRC
//! whose records are exactly the row's offsets.

use streamhouse_metadata::{MetadataError, SegmentInfo};

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{Result, StorageError};
use crate::segment::SegmentReader;

/// What the checker found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub partitions: u64,
    pub segment_rows: u64,
    pub records: u64,
    /// One line per problem; empty when everything holds.
    pub problems: Vec<String>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

const ROWS_PER_PARTITION: usize = 1_000_000;

/// Checks every partition of every topic.
pub async fn check_consistency(
    metadata: &dyn streamhouse_metadata::MetadataStore,
    storage: &crate::object_storage::ObjectStorage,
) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let store = storage.store();
    for topic in metadata.list_topics().await? {
        for partition in 0..topic.partition_count {
            let info = match metadata.get_partition(&topic.name, partition).await {
                Ok(info) => info,
                Err(MetadataError::PartitionNotFound { .. }) => continue,
                Err(error) => return Err(error.into()),
            };
            report.partitions += 1;
            let tp = format!("{}-{partition}", topic.name);
            let rows = metadata
                .list_segments(&topic.name, partition, 0, ROWS_PER_PARTITION)
                .await?;
            // The first row may start below the log start offset (a
            // segment straddling it); every later row follows the previous.
            let mut expected = match rows.first() {
                Some(first) if first.base_offset <= info.log_start_offset => first.base_offset,
                Some(first) => {
                    report.problems.push(format!(
                        "{tp}: first segment starts at {} above the log start offset {}",
                        first.base_offset, info.log_start_offset
                    ));
                    first.base_offset
                }
                None => info.high_watermark,
            };
            if rows.is_empty() && info.log_start_offset != info.high_watermark {
                report.problems.push(format!(
                    "{tp}: no segments but offsets {}..{} are readable",
                    info.log_start_offset, info.high_watermark
                ));
            }
            for row in &rows {
                report.segment_rows += 1;
                if row.base_offset != expected {
                    report.problems.push(format!(
                        "{tp}: segment {} starts at {}, expected {expected}",
                        row.key, row.base_offset
                    ));
                }
                expected = row.end_offset + 1;
                let bytes = match read_segment(store.clone(), row).await {
                    Ok(bytes) => bytes,
                    Err(error) => {
                        report.problems.push(format!(
                            "{tp}: segment {}..={}: {error}",
                            row.base_offset, row.end_offset
                        ));
                        continue;
                    }
                };
                let reader = match SegmentReader::new(bytes) {
                    Ok(reader) => reader.placed_at(row.base_offset),
                    Err(error) => {
                        report.problems.push(format!(
                            "{tp}: segment {}..={} in {}: {error}",
                            row.base_offset, row.end_offset, row.key
                        ));
                        continue;
                    }
                };
                // Key-compacted rows may have gaps; every other row holds
                // each offset of its range.
                let gapped = row.cleaned_at.is_some();
                let (mut next, mut count) = (row.base_offset, 0i64);
                for record in reader.iter_from(i64::MIN) {
                    match record {
                        Ok(record)
                            if record.offset == next
                                || (gapped
                                    && record.offset > next
                                    && record.offset <= row.end_offset) =>
                        {
                            next = record.offset + 1;
                            count += 1;
                        }
                        Ok(record) => {
                            report.problems.push(format!(
                                "{tp}: {} holds offset {} where {next} was expected",
                                row.key, record.offset
                            ));
                            break;
                        }
                        Err(error) => {
                            report.problems.push(format!("{tp}: {}: {error}", row.key));
                            break;
                        }
                    }
                }
                if count != row.record_count || (!gapped && next != row.end_offset + 1) {
                    report.problems.push(format!(
                        "{tp}: {} holds {count} records up to offset {}, its row says {} in {}..={}",
                        row.key,
                        next - 1,
                        row.record_count,
                        row.base_offset,
                        row.end_offset
                    ));
                }
                report.records += u64::try_from(count).unwrap_or(0);
            }
            if !rows.is_empty() && expected != info.high_watermark {
                report.problems.push(format!(
                    "{tp}: segments end at {}, the high watermark is {}",
                    expected, info.high_watermark
                ));
            }
        }
    }
    Ok(report)
}

/// The bytes of one segment, by a ranged GET.
async fn read_segment(store: Arc<dyn ObjectStore>, row: &SegmentInfo) -> Result<Bytes> {
    let path = Path::parse(&row.key)
        .map_err(|e| StorageError::object_store("get", &row.key, object_store::Error::from(e)))?;
    let start = u64::try_from(row.byte_offset).unwrap_or(0);
    let length = u64::try_from(row.byte_length).unwrap_or(0);
    store
        .get_range(&path, start..start + length)
        .await
        .map_err(|e| StorageError::object_store("get", &row.key, e))
}
