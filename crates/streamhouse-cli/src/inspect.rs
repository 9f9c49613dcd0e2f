//! `streamctl inspect FILE`: decode a local segment file or flushed batch
//! object — table of contents, segment headers, block index and records —
//! with the same reader the server uses.
//!
//! The invariant that matters: damage is never shown as data. Every
//! segment goes through `SegmentReader::new` (magic, CRC, bounds) and all
//! of its records are decoded, not only the ones printed; any failure is
//! reported with the reader's typed error and makes the command exit 1,
//! after the undamaged segments of a batch object have been shown.
//!
//! JSON output: `{"file","kind":"segment"|"batch_object","size_bytes",
//! "toc":[…] (batch objects only),"segments":[{"topic","partition",
//! "byte_offset","byte_length","header":{…},"blocks":[…],"records":[…],
//! "records_decoded","error"}]}`; record bytes as UTF-8 text, or base64
//! when any field of the record is binary (its `encoding` says which).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use clap::Args;
use serde::Serialize;
use streamhouse_api::{ConsumedHeader, Encoding};
use streamhouse_core::Record;
use streamhouse_segment::batch::{ObjectEntry, is_batch_object, read_toc};
use streamhouse_segment::{BlockIndexEntry, MAGIC, SegmentHeader, SegmentReader};

use crate::output::{
    OutputFormat, display_bytes, display_optional_bytes, escape_text, format_timestamp, print_json,
    print_line, table, truncate,
};

/// Longest key or value shown in a table cell, in characters.
const CELL_CHARS: usize = 100;

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// A segment file, or a batch object written by a flush (under
    /// DATA_DIR/objects/batches/ for the local object store).
    file: PathBuf,
    /// Records to print per segment: a number, or `all`. All records are
    /// decoded and checked either way.
    #[arg(long, default_value = "20", value_name = "N|all", value_parser = parse_limit)]
    records: RecordLimit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RecordLimit(Option<usize>);

fn parse_limit(text: &str) -> Result<RecordLimit, String> {
    if text == "all" {
        return Ok(RecordLimit(None));
    }
    text.parse()
        .map(|n| RecordLimit(Some(n)))
        .map_err(|_| format!("expected a number of records or `all`, got {text:?}"))
}

#[derive(Serialize)]
struct Report {
    file: String,
    kind: &'static str,
    size_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    toc: Option<Vec<TocRow>>,
    segments: Vec<SegmentReport>,
}

#[derive(Serialize)]
struct TocRow {
    topic: String,
    partition: i32,
    byte_offset: u64,
    byte_length: u64,
    record_count: u64,
}

impl From<&ObjectEntry> for TocRow {
    fn from(entry: &ObjectEntry) -> Self {
        Self {
            topic: entry.topic.clone(),
            partition: entry.partition,
            byte_offset: entry.byte_offset,
            byte_length: entry.byte_length,
            record_count: entry.record_count,
        }
    }
}

#[derive(Serialize)]
struct SegmentReport {
    /// From the table of contents; absent for a lone segment file.
    topic: Option<String>,
    partition: Option<i32>,
    byte_offset: u64,
    byte_length: u64,
    header: Option<HeaderReport>,
    blocks: Vec<BlockReport>,
    records: Vec<RecordReport>,
    records_decoded: u64,
    /// Why the segment could not be (fully) read.
    error: Option<String>,
    /// The first records as raw bytes, for the table rendering.
    #[serde(skip)]
    raw_records: Vec<Record>,
}

#[derive(Serialize)]
struct HeaderReport {
    version: u8,
    compression: String,
    base_offset: i64,
    last_offset: i64,
    record_count: u64,
    min_timestamp: i64,
    max_timestamp: i64,
    block_count: u32,
}

impl From<&SegmentHeader> for HeaderReport {
    fn from(header: &SegmentHeader) -> Self {
        Self {
            version: header.version,
            compression: header.compression.to_string(),
            base_offset: header.base_offset,
            last_offset: header.last_offset,
            record_count: header.record_count,
            min_timestamp: header.min_timestamp,
            max_timestamp: header.max_timestamp,
            block_count: header.block_count,
        }
    }
}

#[derive(Serialize)]
struct BlockReport {
    first_offset: i64,
    last_offset: i64,
    first_timestamp: i64,
    max_timestamp: i64,
    position: u64,
}

impl From<&BlockIndexEntry> for BlockReport {
    fn from(entry: &BlockIndexEntry) -> Self {
        Self {
            first_offset: entry.first_offset,
            last_offset: entry.last_offset,
            first_timestamp: entry.first_timestamp,
            max_timestamp: entry.max_timestamp,
            position: entry.position,
        }
    }
}

#[derive(Serialize)]
struct RecordReport {
    offset: i64,
    timestamp: i64,
    key: Option<String>,
    value: Option<String>,
    headers: Vec<ConsumedHeader>,
    encoding: Encoding,
}

impl From<&Record> for RecordReport {
    /// Text when every byte field is UTF-8, else base64 for all of them,
    /// as the HTTP API does.
    fn from(record: &Record) -> Self {
        let is_text = |bytes: &[u8]| std::str::from_utf8(bytes).is_ok();
        let all_text = record.key.as_deref().is_none_or(is_text)
            && record.value.as_deref().is_none_or(is_text)
            && record
                .headers
                .iter()
                .all(|h| h.value.as_deref().is_none_or(is_text));
        let encoding = if all_text {
            Encoding::Utf8
        } else {
            Encoding::Base64
        };
        let encode = |bytes: &Bytes| match encoding {
            Encoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Encoding::Base64 => STANDARD.encode(bytes),
        };
        Self {
            offset: record.offset,
            timestamp: record.timestamp,
            key: record.key.as_ref().map(encode),
            value: record.value.as_ref().map(encode),
            headers: record
                .headers
                .iter()
                .map(|h| ConsumedHeader {
                    key: h.key.clone(),
                    value: h.value.as_ref().map(encode),
                })
                .collect(),
            encoding,
        }
    }
}

pub(crate) fn run(args: InspectArgs, output: OutputFormat) -> Result<()> {
    let path = args.file.display().to_string();
    let data = Bytes::from(std::fs::read(&args.file).with_context(|| format!("reading {path}"))?);
    let report = build_report(&path, data, args.records)?;
    match output {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Table => print_line(render(&report, args.records))?,
    }
    let damaged: Vec<String> = report
        .segments
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            s.error
                .as_ref()
                .map(|error| format!("segment {} ({}): {error}", i + 1, describe_segment(s)))
        })
        .collect();
    match damaged.as_slice() {
        [] => Ok(()),
        [only] => bail!("{path}: {only}"),
        [first, ..] => bail!(
            "{path}: {} of {} segments are damaged; first: {first}",
            damaged.len(),
            report.segments.len()
        ),
    }
}

/// Everything `inspect` shows about `data`. Fails only when nothing at all
/// can be shown (unknown format, damaged table of contents, a lone segment
/// that does not open); a damaged segment inside a batch object is
/// reported in its `error`.
fn build_report(path: &str, data: Bytes, limit: RecordLimit) -> Result<Report> {
    let size_bytes = data.len() as u64;
    if is_batch_object(&data) {
        let toc = read_toc(&data)
            .with_context(|| format!("{path}: damaged batch object table of contents"))?;
        let segments = toc
            .iter()
            .map(|entry| {
                // `read_toc` checked that every range lies inside the
                // object; slicing is still checked rather than trusted.
                let segment = usize::try_from(entry.byte_offset)
                    .ok()
                    .zip(usize::try_from(entry.range().end).ok())
                    .filter(|(start, end)| start <= end && *end <= data.len())
                    .map(|(start, end)| data.slice(start..end));
                let mut report =
                    inspect_segment(segment, entry.byte_offset, entry.byte_length, limit);
                report.topic = Some(entry.topic.clone());
                report.partition = Some(entry.partition);
                report
            })
            .collect();
        Ok(Report {
            file: path.to_string(),
            kind: "batch_object",
            size_bytes,
            toc: Some(toc.iter().map(TocRow::from).collect()),
            segments,
        })
    } else if data.starts_with(&MAGIC) {
        let data_ends_like_a_segment = data.ends_with(&MAGIC);
        let report = inspect_segment(Some(data), 0, size_bytes, limit);
        if let Some(error) = &report.error
            && report.header.is_none()
        {
            // Nothing readable to show: the error is the whole answer.
            let hint = if data_ends_like_a_segment {
                ""
            } else {
                " (the file starts like a segment but ends like neither a segment nor a batch \
                 object: truncated?)"
            };
            bail!("{path}: not a valid segment: {error}{hint}");
        }
        Ok(Report {
            file: path.to_string(),
            kind: "segment",
            size_bytes,
            toc: None,
            segments: vec![report],
        })
    } else {
        bail!(
            "{path} is neither a segment (leading magic \"SHSG\") nor a batch object (trailing \
             magic \"SHBO\"); it starts with {:?}",
            data.get(..4).unwrap_or(&data)
        )
    }
}

/// Validates and decodes one segment; failures land in `error`.
fn inspect_segment(
    data: Option<Bytes>,
    byte_offset: u64,
    byte_length: u64,
    limit: RecordLimit,
) -> SegmentReport {
    let mut report = SegmentReport {
        topic: None,
        partition: None,
        byte_offset,
        byte_length,
        header: None,
        blocks: Vec::new(),
        records: Vec::new(),
        records_decoded: 0,
        error: None,
        raw_records: Vec::new(),
    };
    let Some(data) = data else {
        report.error = Some("byte range lies outside the object".into());
        return report;
    };
    let reader = match SegmentReader::new(data) {
        Ok(reader) => reader,
        Err(error) => {
            report.error = Some(error.to_string());
            return report;
        }
    };
    report.header = Some(HeaderReport::from(reader.header()));
    report.blocks = reader.blocks().iter().map(BlockReport::from).collect();
    let keep = limit.0.unwrap_or(usize::MAX);
    for record in reader.iter_from(i64::MIN) {
        match record {
            Ok(record) => {
                report.records_decoded += 1;
                if report.raw_records.len() < keep {
                    report.records.push(RecordReport::from(&record));
                    report.raw_records.push(record);
                }
            }
            Err(error) => {
                report.error = Some(format!(
                    "after {} good records: {error}",
                    report.records_decoded
                ));
                break;
            }
        }
    }
    report
}

fn describe_segment(segment: &SegmentReport) -> String {
    let range = format!(
        "bytes {}..{}",
        segment.byte_offset,
        segment.byte_offset.saturating_add(segment.byte_length)
    );
    match (&segment.topic, segment.partition) {
        (Some(topic), Some(partition)) => format!("topic {topic:?} partition {partition}, {range}"),
        _ => range,
    }
}

/// The table rendering of the whole report.
fn render(report: &Report, limit: RecordLimit) -> String {
    let mut out = String::new();
    let count = report.segments.len();
    match &report.toc {
        Some(toc) => {
            out.push_str(&format!(
                "{}: batch object, {} bytes, {count} segment{}\n",
                report.file,
                report.size_bytes,
                if count == 1 { "" } else { "s" }
            ));
            let mut rows = table(["#", "TOPIC", "PARTITION", "BYTE RANGE", "RECORDS"]);
            for (i, entry) in toc.iter().enumerate() {
                rows.add_row(vec![
                    (i + 1).to_string(),
                    entry.topic.clone(),
                    entry.partition.to_string(),
                    format!(
                        "{}..{}",
                        entry.byte_offset,
                        entry.byte_offset.saturating_add(entry.byte_length)
                    ),
                    entry.record_count.to_string(),
                ]);
            }
            out.push_str(&format!("{rows}\n"));
            out.push_str(
                "Offsets below are as stored: a flushed segment is written before its offsets \
                 are assigned, so they start at 0; `streamctl segments` shows the committed \
                 base offset of each.\n",
            );
        }
        None => out.push_str(&format!(
            "{}: segment, {} bytes\n",
            report.file, report.size_bytes
        )),
    }
    for (i, segment) in report.segments.iter().enumerate() {
        out.push_str(&format!(
            "\nSegment {}/{count}: {}\n",
            i + 1,
            describe_segment(segment)
        ));
        render_segment(&mut out, segment, limit);
    }
    out.trim_end().to_string()
}

fn render_segment(out: &mut String, segment: &SegmentReport, limit: RecordLimit) {
    if let Some(header) = &segment.header {
        let offsets = if header.record_count == 0 {
            "none".to_string()
        } else {
            format!("{}..={}", header.base_offset, header.last_offset)
        };
        out.push_str(&format!(
            "  version {}, compression {}, {} records, offsets {offsets}, timestamps {} .. {}, {} block{}\n",
            header.version,
            header.compression,
            header.record_count,
            format_timestamp(header.min_timestamp),
            format_timestamp(header.max_timestamp),
            header.block_count,
            if header.block_count == 1 { "" } else { "s" },
        ));
        let mut blocks = table([
            "BLOCK",
            "FIRST OFFSET",
            "LAST OFFSET",
            "FIRST TIMESTAMP",
            "MAX TIMESTAMP",
            "POSITION",
        ]);
        for (i, block) in segment.blocks.iter().enumerate() {
            blocks.add_row(vec![
                i.to_string(),
                block.first_offset.to_string(),
                block.last_offset.to_string(),
                format_timestamp(block.first_timestamp),
                format_timestamp(block.max_timestamp),
                block.position.to_string(),
            ]);
        }
        if !segment.blocks.is_empty() {
            out.push_str(&format!("{blocks}\n"));
        }
    }
    if !segment.raw_records.is_empty() {
        let mut records = table(["OFFSET", "TIMESTAMP", "KEY", "VALUE", "HEADERS"]);
        for record in &segment.raw_records {
            let headers: Vec<String> = record
                .headers
                .iter()
                .map(|h| {
                    format!(
                        "{}={}",
                        escape_text(&h.key),
                        display_optional_bytes(h.value.as_deref())
                    )
                })
                .collect();
            records.add_row(vec![
                record.offset.to_string(),
                format_timestamp(record.timestamp),
                truncate(display_optional_bytes(record.key.as_deref()), CELL_CHARS),
                truncate(
                    record
                        .value
                        .as_deref()
                        .map_or_else(|| "(null: tombstone)".to_string(), display_bytes),
                    CELL_CHARS,
                ),
                if headers.is_empty() {
                    "-".into()
                } else {
                    truncate(headers.join(", "), CELL_CHARS)
                },
            ]);
        }
        out.push_str(&format!("{records}\n"));
    }
    let hidden = segment.records_decoded - segment.raw_records.len() as u64;
    if hidden > 0 && segment.error.is_none() {
        out.push_str(&format!(
            "  … {hidden} more record{} (--records all shows every one; limit {})\n",
            if hidden == 1 { "" } else { "s" },
            limit.0.map_or_else(|| "all".to_string(), |n| n.to_string())
        ));
    }
    if let Some(error) = &segment.error {
        out.push_str(&format!("  DAMAGED: {error}\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamhouse_core::Header;
    use streamhouse_segment::Compression;
    use streamhouse_segment::{BatchObjectBuilder, SegmentWriter};

    fn segment(records: &[Record]) -> Bytes {
        let mut writer = SegmentWriter::new(Compression::Lz4);
        for record in records {
            if let Err(error) = writer.append(record) {
                panic!("append: {error}");
            }
        }
        match writer.finish() {
            Ok(bytes) => bytes,
            Err(error) => panic!("finish: {error}"),
        }
    }

    fn sample() -> Vec<Record> {
        (0..5)
            .map(|i| Record {
                offset: i,
                timestamp: 1_000 + i,
                key: Some(Bytes::from(format!("k{i}"))),
                value: (i != 4).then(|| Bytes::from(vec![0xff, i as u8])),
                headers: vec![Header::new("h", Some(Bytes::from_static(b"v")))],
            })
            .collect()
    }

    #[test]
    fn decodes_every_record_and_keeps_the_limit() {
        let report = inspect_segment(Some(segment(&sample())), 0, 0, RecordLimit(Some(2)));
        assert_eq!(report.error, None);
        assert_eq!(report.records_decoded, 5);
        assert_eq!(report.records.len(), 2);
        assert_eq!(report.header.as_ref().map(|h| h.record_count), Some(5));
        let first = &report.records[0];
        assert_eq!(first.encoding, Encoding::Base64, "binary value");
        assert_eq!(first.key.as_deref(), Some(STANDARD.encode("k0").as_str()));
        let all = inspect_segment(Some(segment(&sample())), 0, 0, RecordLimit(None));
        assert_eq!(all.records.len(), 5);
        assert_eq!(all.records[4].value, None, "tombstone stays null");
    }

    #[test]
    fn damage_is_a_typed_error_not_data() {
        let mut bytes = segment(&sample()).to_vec();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        let report = inspect_segment(Some(Bytes::from(bytes)), 0, 0, RecordLimit(None));
        assert!(report.records.is_empty());
        let error = report.error.unwrap_or_default();
        assert!(error.contains("crc mismatch"), "{error}");
    }

    #[test]
    fn batch_objects_show_every_segment_and_isolate_damage() {
        let mut builder = BatchObjectBuilder::new();
        builder.add_segment("a", 0, segment(&sample()), 5);
        let second = builder.len() as usize;
        builder.add_segment("b", 3, segment(&sample()[..1]), 1);
        let (chunks, _) = builder.finish();
        let object: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();

        let report = build_report("x", Bytes::from(object.clone()), RecordLimit(Some(20)));
        let report = report.unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(report.kind, "batch_object");
        let seen: Vec<_> = report
            .segments
            .iter()
            .map(|s| {
                (
                    s.topic.clone(),
                    s.partition,
                    s.records_decoded,
                    s.error.clone(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (Some("a".into()), Some(0), 5, None),
                (Some("b".into()), Some(3), 1, None)
            ]
        );

        let mut damaged = object;
        damaged[second + 30] ^= 0x80;
        let report = build_report("x", Bytes::from(damaged), RecordLimit(Some(20)));
        let report = report.unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(
            report.segments[0].error, None,
            "the first segment is intact"
        );
        let error = report.segments[1].error.clone().unwrap_or_default();
        assert!(error.contains("crc mismatch"), "{error}");
    }

    #[test]
    fn unknown_files_and_limits_are_refused() {
        let error = build_report("x", Bytes::from_static(b"hello world"), RecordLimit(None));
        let error = error.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("neither a segment"), "{error}");
        assert_eq!(parse_limit("all"), Ok(RecordLimit(None)));
        assert_eq!(parse_limit("3"), Ok(RecordLimit(Some(3))));
        assert!(parse_limit("-1").is_err());
    }
}
