//! `streamctl segments TOPIC`: the metadata store's segment rows — which
//! object, and which byte range of it, holds each run of offsets.
//!
//! The invariant that matters: every row is listed once, in partition and
//! offset order, however many there are; the server pages at
//! [`SEGMENT_PAGE`] rows and the next page starts after the last row's
//! (inclusive) `end_offset`.
//!
//! JSON output: one array of rows, each as the server gives it
//! (`{"id","topic","partition","base_offset","end_offset","record_count",
//! "size_bytes","bucket","key","byte_offset","byte_length","min_timestamp",
//! "max_timestamp","created_at","kind"}`, where `kind` is `flushed` or
//! `compacted`).

use anyhow::Result;
use clap::Args;
use streamhouse_api::SegmentRow;

use crate::api::SEGMENT_PAGE;
use crate::client::ApiClient;
use crate::output::{OutputFormat, format_timestamp, print_json, print_line, table};

#[derive(Debug, Args)]
pub(crate) struct SegmentsArgs {
    /// Topic name.
    topic: String,
    /// Only this partition [default: all partitions].
    #[arg(long, value_name = "P")]
    partition: Option<i32>,
}

pub(crate) async fn run(
    client: &ApiClient,
    args: SegmentsArgs,
    output: OutputFormat,
) -> Result<()> {
    let partitions: Vec<i32> = match args.partition {
        // The server answers 404 with a clear message for a bad partition.
        Some(partition) => vec![partition],
        None => client
            .describe_topic(&args.topic)
            .await?
            .partitions
            .iter()
            .map(|p| p.partition)
            .collect(),
    };
    let mut rows = Vec::new();
    for partition in partitions {
        let mut from_offset = 0;
        loop {
            let page = client.segments(&args.topic, partition, from_offset).await?;
            let full = page.len() >= SEGMENT_PAGE;
            let next = page.last().map(|row| row.end_offset.saturating_add(1));
            rows.extend(page);
            match next {
                // A next page must start further on, or a server that
                // ignores `from_offset` would loop forever.
                Some(next) if full && next > from_offset => from_offset = next,
                _ => break,
            }
        }
    }
    match output {
        OutputFormat::Json => print_json(&rows),
        OutputFormat::Table if rows.is_empty() => {
            print_line(format!("No segments for topic {:?} yet.", args.topic))
        }
        OutputFormat::Table => print_line(segments_table(&rows)),
    }
}

fn segments_table(rows: &[SegmentRow]) -> comfy_table::Table {
    let mut out = table([
        "PARTITION",
        "BASE",
        "END",
        "RECORDS",
        "TOMBSTONES",
        "KIND",
        "UNCOMPRESSED BYTES",
        "OBJECT",
        "BYTE RANGE",
        "MIN TIMESTAMP",
        "MAX TIMESTAMP",
        "CREATED",
    ]);
    for row in rows {
        out.add_row(vec![
            row.partition.to_string(),
            row.base_offset.to_string(),
            row.end_offset.to_string(),
            row.record_count.to_string(),
            row.tombstones
                .map_or_else(|| "-".to_string(), |n| n.to_string()),
            row.kind.clone().unwrap_or_else(|| "-".to_string()),
            row.size_bytes.to_string(),
            row.key.clone(),
            format!(
                "{}..{}",
                row.byte_offset,
                row.byte_offset.saturating_add(row.byte_length)
            ),
            format_timestamp(row.min_timestamp),
            format_timestamp(row.max_timestamp),
            format_timestamp(row.created_at),
        ]);
    }
    out
}
