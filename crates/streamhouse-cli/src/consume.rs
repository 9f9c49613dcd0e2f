//! `streamctl consume TOPIC`: read records from one or all partitions,
//! either up to the high watermarks seen at start or, with `--follow`,
//! until Ctrl-C.
//!
//! The invariant that matters: every record is printed once and, within a
//! partition, in offset order; the next read always starts at the previous
//! answer's `next_offset`. Without `--follow` the partitions are read one
//! after the other up to the high watermark each had when the command
//! started, so the run has a known end; with `--follow` each partition is
//! long-polled on its own and records appear as they arrive.
//!
//! Output: table mode prints one tab-separated line per record (partition,
//! offset, timestamp, key, value, headers; no header row, so it pipes into
//! `cut`/`wc -l`); JSON mode prints one JSON object per line (JSON lines),
//! `{"topic","partition","offset","timestamp","key","value","headers":
//! [{"key","value"}],"encoding"}`, so output can be processed while it
//! streams. Notes (group start positions, the final count) go to stderr.

use std::collections::BTreeMap;
use std::io::{BufWriter, IsTerminal, Stdout, Write};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use indicatif::ProgressBar;
use reqwest::StatusCode;
use serde::Serialize;
use streamhouse_api::{ConsumedRecord, Encoding, IsolationLevel, PartitionDetail};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::api::ReadRequest;
use crate::client::{ApiClient, is_status};
use crate::output::{OutputFormat, display_bytes, escape_text, format_timestamp, progress_style};

/// Records asked for per read.
const FETCH_RECORDS: usize = 1000;
/// How long one `--follow` long poll may wait on the server (its limit is
/// 60 s); short enough that a dead connection is noticed.
const FOLLOW_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub(crate) struct ConsumeArgs {
    /// Topic to read.
    topic: String,
    /// Read only this partition [default: all partitions].
    #[arg(long, value_name = "P")]
    partition: Option<i32>,
    /// Where to start in each partition: an offset, `earliest` (the log
    /// start offset) or `latest` (the high watermark: only new records).
    #[arg(
        long,
        default_value = "earliest",
        value_name = "N|earliest|latest",
        value_parser = parse_start
    )]
    offset: StartOffset,
    /// Stop after N records.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_records: Option<u64>,
    /// Keep waiting for new records (long polls) until Ctrl-C.
    #[arg(long)]
    follow: bool,
    /// Start each partition at GROUP's committed offset, as shown by `group
    /// describe`; partitions without one start at --offset. Read-only: the
    /// HTTP API has no endpoint to commit offsets, so streamctl never
    /// commits and the group's position does not move.
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    /// Encoding asked for in JSON output: `utf8` returns text and falls back
    /// to base64 for a record holding binary data (its `encoding` field
    /// says so); `base64` returns every record in base64. Table output
    /// shows text, or hex/base64 for binary, either way.
    #[arg(long, value_enum, default_value_t)]
    encoding: Encoding,
    /// Kafka's `isolation.level`: `read-committed` returns only records of
    /// committed transactions and stops at each partition's last stable
    /// offset; `read-uncommitted` returns aborted records too. Transaction
    /// markers are never shown.
    #[arg(long, value_enum, default_value_t, value_name = "LEVEL")]
    isolation_level: IsolationLevel,
}

/// `--offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartOffset {
    Earliest,
    Latest,
    At(i64),
}

fn parse_start(text: &str) -> Result<StartOffset, String> {
    match text {
        "earliest" | "beginning" => Ok(StartOffset::Earliest),
        "latest" | "end" => Ok(StartOffset::Latest),
        number => match number.parse::<i64>() {
            Ok(offset) if offset >= 0 => Ok(StartOffset::At(offset)),
            _ => Err(format!(
                "expected an offset (0 or more), `earliest` or `latest`, got {text:?}"
            )),
        },
    }
}

impl StartOffset {
    fn describe(self) -> String {
        match self {
            StartOffset::Earliest => "earliest".into(),
            StartOffset::Latest => "latest".into(),
            StartOffset::At(offset) => format!("offset {offset}"),
        }
    }
}

/// Where one partition is read from, and (without `--follow`) up to.
#[derive(Debug, Clone, Copy)]
struct Position {
    partition: i32,
    offset: i64,
    /// The high watermark when the command started.
    end: i64,
}

pub(crate) async fn run(client: &ApiClient, args: ConsumeArgs, output: OutputFormat) -> Result<()> {
    let topic = client.describe_topic(&args.topic).await?;
    let partitions: Vec<PartitionDetail> = match args.partition {
        None => topic.partitions.clone(),
        Some(wanted) => match topic.partitions.iter().find(|p| p.partition == wanted) {
            Some(found) => vec![*found],
            None => bail!(
                "topic {:?} has no partition {wanted} (it has {} partitions)",
                topic.name,
                topic.partitions.len()
            ),
        },
    };
    let committed = match &args.group {
        Some(group) => group_offsets(client, group, &args.topic).await?,
        None => BTreeMap::new(),
    };
    let mut notes = Vec::new();
    let positions = partitions
        .iter()
        .map(|p| {
            start_position(
                p,
                args.offset,
                args.isolation_level,
                &committed,
                args.group.is_some(),
                &mut notes,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(group) = &args.group {
        if committed.is_empty() {
            eprintln!(
                "Group {group:?} has no committed offsets for topic {:?}; starting at {} \
                 (read-only: streamctl commits nothing).",
                args.topic,
                args.offset.describe()
            );
        } else {
            eprintln!(
                "Starting from group {group:?}'s committed offsets (read-only: streamctl commits \
                 nothing): {}.",
                notes.join(", ")
            );
        }
    }
    let mut sink = RecordSink::new(&args.topic, output, args.max_records);
    if args.follow {
        follow(client, &args, positions, &mut sink).await?;
    } else {
        read_to_end(client, &args, positions, &mut sink).await?;
    }
    if std::io::stderr().is_terminal() {
        let plural = if sink.written == 1 { "" } else { "s" };
        eprintln!("Consumed {} record{plural}.", sink.written);
    }
    Ok(())
}

/// The group's committed offsets for `topic`, by partition; empty when the
/// server does not know the group.
async fn group_offsets(client: &ApiClient, group: &str, topic: &str) -> Result<BTreeMap<i32, i64>> {
    match client.describe_group(group).await {
        Ok(detail) => Ok(detail
            .offsets
            .into_iter()
            .filter(|o| o.topic == topic && o.committed_offset >= 0)
            .map(|o| (o.partition, o.committed_offset))
            .collect()),
        Err(error) if is_status(&error, StatusCode::NOT_FOUND) => Ok(BTreeMap::new()),
        Err(error) => Err(error.context(format!("looking up group {group:?}"))),
    }
}

/// Chooses a partition's start offset; with a group, appends a note on
/// where it starts and why.
fn start_position(
    partition: &PartitionDetail,
    start: StartOffset,
    isolation: IsolationLevel,
    committed: &BTreeMap<i32, i64>,
    with_group: bool,
    notes: &mut Vec<String>,
) -> Result<Position> {
    let p = partition.partition;
    let (first, end) = (partition.log_start_offset, partition.high_watermark);
    // What a read_committed run can read: up to the last stable offset.
    let readable_end = match isolation {
        IsolationLevel::ReadUncommitted => end,
        IsolationLevel::ReadCommitted => partition.last_stable_offset.min(end),
    };
    // Only an error when it is needed: a committed offset makes a bad
    // --offset irrelevant for that partition.
    let fallback = || match start {
        StartOffset::Earliest => Ok(first),
        StartOffset::Latest => Ok(end),
        StartOffset::At(offset) if (first..=end).contains(&offset) => Ok(offset),
        StartOffset::At(offset) => Err(anyhow::anyhow!(
            "--offset {offset} is outside partition {p}'s readable offsets {first}..{end} \
             (log start offset..high watermark)"
        )),
    };
    let offset = match committed.get(&p) {
        Some(&offset) if (first..=end).contains(&offset) => {
            notes.push(format!("partition {p} at offset {offset}"));
            offset
        }
        Some(&offset) => {
            let fallback = fallback()?;
            notes.push(format!(
                "partition {p} committed {offset}, which is no longer readable ({first}..{end}), \
                 so at {} ({fallback})",
                start.describe()
            ));
            fallback
        }
        None => {
            let fallback = fallback()?;
            if with_group {
                notes.push(format!(
                    "partition {p} has no committed offset, so at {} ({fallback})",
                    start.describe()
                ));
            }
            fallback
        }
    };
    Ok(Position {
        partition: p,
        offset,
        end: readable_end,
    })
}

/// Reads the partitions one after the other up to their start-time high
/// watermarks, with a progress bar when the run is long and stderr is a
/// terminal.
async fn read_to_end(
    client: &ApiClient,
    args: &ConsumeArgs,
    positions: Vec<Position>,
    sink: &mut RecordSink,
) -> Result<()> {
    let available: u64 = positions
        .iter()
        .map(|p| u64::try_from(p.end - p.offset).unwrap_or(0))
        .sum();
    let total = args.max_records.map_or(available, |max| max.min(available));
    let bar = (total > FETCH_RECORDS as u64 && std::io::stderr().is_terminal())
        .then(|| progress_bar(total));
    for mut position in positions {
        while position.offset < position.end && !sink.is_done() {
            let left_in_partition = usize::try_from(position.end - position.offset).unwrap_or(0);
            let request = ReadRequest {
                offset: Some(position.offset),
                max_records: FETCH_RECORDS.min(left_in_partition).min(sink.remaining()),
                encoding: args.encoding,
                isolation_level: args.isolation_level,
                wait: Duration::ZERO,
            };
            let response = client
                .read(&args.topic, position.partition, request)
                .await
                .with_context(|| {
                    format!(
                        "reading partition {} at offset {}",
                        position.partition, position.offset
                    )
                })?;
            // Records that arrived after the start are past the known end.
            let records: Vec<ConsumedRecord> = response
                .records
                .into_iter()
                .take_while(|r| r.offset < position.end)
                .collect();
            if response.next_offset <= position.offset {
                // Nothing readable below the end any more (e.g. retention
                // moved the log start while we read); do not spin. An
                // answer with no record that moved on skipped transaction
                // markers or aborted records.
                break;
            }
            let written = match &bar {
                Some(bar) => bar.suspend(|| sink.write(position.partition, &records))?,
                None => sink.write(position.partition, &records)?,
            };
            if let Some(bar) = &bar {
                bar.inc(written as u64);
            }
            position.offset = response.next_offset;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Some(style) =
        progress_style("{bar:40} {human_pos}/{human_len} records ({rate}, eta {eta})")
    {
        bar.set_style(style);
    }
    bar
}

/// Long-polls every partition concurrently and prints records as they
/// arrive, until Ctrl-C, `--max-records` or an error.
async fn follow(
    client: &ApiClient,
    args: &ConsumeArgs,
    positions: Vec<Position>,
    sink: &mut RecordSink,
) -> Result<()> {
    type Batch = (i32, i64, Result<Vec<ConsumedRecord>>);
    // Bounded, so a slow stdout holds the readers back instead of
    // buffering without limit.
    let (sender, mut receiver) = mpsc::channel::<Batch>(4);
    let mut readers = JoinSet::new();
    for position in positions {
        let client = client.clone();
        let topic = args.topic.clone();
        let sender = sender.clone();
        let (encoding, isolation_level) = (args.encoding, args.isolation_level);
        readers.spawn(async move {
            let mut offset = position.offset;
            loop {
                let request = ReadRequest {
                    offset: Some(offset),
                    max_records: FETCH_RECORDS,
                    encoding,
                    isolation_level,
                    wait: FOLLOW_WAIT,
                };
                let read = client.read(&topic, position.partition, request).await;
                let failed = read.is_err();
                let batch = read.map(|response| {
                    let at = offset;
                    offset = response.next_offset.max(offset);
                    (at, response.records)
                });
                let message = match batch {
                    Ok((at, records)) => (position.partition, at, Ok(records)),
                    Err(error) => (position.partition, offset, Err(error)),
                };
                if sender.send(message).await.is_err() || failed {
                    return;
                }
            }
        });
    }
    drop(sender);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let outcome = loop {
        tokio::select! {
            message = receiver.recv() => match message {
                Some((partition, _, Ok(records))) => {
                    sink.write(partition, &records)?;
                    if sink.is_done() {
                        break Ok(());
                    }
                }
                Some((partition, offset, Err(error))) => {
                    break Err(error.context(format!(
                        "reading partition {partition} at offset {offset}"
                    )));
                }
                None => break Ok(()),
            },
            _ = &mut ctrl_c => break Ok(()),
        }
    };
    readers.abort_all();
    outcome
}

/// Prints records to stdout in the chosen format and counts them against
/// `--max-records`.
struct RecordSink {
    topic: String,
    output: OutputFormat,
    remaining: Option<u64>,
    written: u64,
    stdout: BufWriter<Stdout>,
}

#[derive(Serialize)]
struct RecordLine<'a> {
    topic: &'a str,
    partition: i32,
    #[serde(flatten)]
    record: &'a ConsumedRecord,
}

impl RecordSink {
    fn new(topic: &str, output: OutputFormat, max_records: Option<u64>) -> Self {
        Self {
            topic: topic.to_string(),
            output,
            remaining: max_records,
            written: 0,
            stdout: BufWriter::new(std::io::stdout()),
        }
    }

    fn is_done(&self) -> bool {
        self.remaining == Some(0)
    }

    /// How many more records may be printed (for sizing reads).
    fn remaining(&self) -> usize {
        self.remaining
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Prints as many of `records` as `--max-records` still allows and
    /// flushes, so a follower sees each batch at once; returns the count.
    fn write(&mut self, partition: i32, records: &[ConsumedRecord]) -> Result<usize> {
        let take = records.len().min(self.remaining());
        for record in &records[..take] {
            match self.output {
                OutputFormat::Json => {
                    let line = RecordLine {
                        topic: &self.topic,
                        partition,
                        record,
                    };
                    // Serialized first: serde_json hides a writer's
                    // io::Error, which main needs to see a closed pipe.
                    let mut json = serde_json::to_vec(&line)?;
                    json.push(b'\n');
                    self.stdout.write_all(&json)?;
                }
                OutputFormat::Table => {
                    writeln!(self.stdout, "{}", record_line(partition, record))?;
                }
            }
        }
        self.stdout.flush()?;
        self.written += take as u64;
        if let Some(remaining) = &mut self.remaining {
            *remaining -= take as u64;
        }
        Ok(take)
    }
}

/// `partition offset timestamp key value headers`, tab-separated.
fn record_line(partition: i32, record: &ConsumedRecord) -> String {
    let field = |text: Option<&String>| match text {
        None => "(null)".to_string(),
        Some(text) => show(text, record.encoding),
    };
    let headers = if record.headers.is_empty() {
        "-".to_string()
    } else {
        record
            .headers
            .iter()
            .map(|h| format!("{}={}", escape_text(&h.key), field(h.value.as_ref())))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "{partition}\t{}\t{}\t{}\t{}\t{headers}",
        record.offset,
        format_timestamp(record.timestamp),
        field(record.key.as_ref()),
        field(record.value.as_ref()),
    )
}

/// A field as the server encoded it, shown for people.
fn show(text: &str, encoding: Encoding) -> String {
    match encoding {
        Encoding::Utf8 => escape_text(text),
        Encoding::Base64 => match STANDARD.decode(text) {
            Ok(bytes) => display_bytes(&bytes),
            Err(_) => format!("base64:{text}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamhouse_api::ConsumedHeader;

    #[test]
    fn start_offsets_parse() {
        assert_eq!(parse_start("earliest"), Ok(StartOffset::Earliest));
        assert_eq!(parse_start("latest"), Ok(StartOffset::Latest));
        assert_eq!(parse_start("42"), Ok(StartOffset::At(42)));
        assert!(parse_start("-1").is_err());
        assert!(parse_start("soon").is_err());
    }

    #[test]
    fn group_offsets_win_and_out_of_range_ones_fall_back() {
        let partition = |partition| PartitionDetail {
            partition,
            log_start_offset: 10,
            high_watermark: 20,
            last_stable_offset: 20,
        };
        let committed = BTreeMap::from([(0, 15), (1, 5)]);
        let mut notes = Vec::new();
        let at = |p, start, notes: &mut Vec<String>| {
            start_position(
                &partition(p),
                start,
                IsolationLevel::ReadUncommitted,
                &committed,
                true,
                notes,
            )
            .map(|pos| pos.offset)
        };
        assert_eq!(at(0, StartOffset::Earliest, &mut notes).ok(), Some(15));
        assert_eq!(at(1, StartOffset::Latest, &mut notes).ok(), Some(20));
        assert_eq!(at(2, StartOffset::At(12), &mut notes).ok(), Some(12));
        assert!(at(2, StartOffset::At(21), &mut notes).is_err());
        // A bad --offset does not matter where the group has an offset.
        assert_eq!(at(0, StartOffset::At(21), &mut notes).ok(), Some(15));
        assert_eq!(notes.len(), 4, "{notes:?}");
        assert!(notes[1].contains("no longer readable"), "{notes:?}");
    }

    #[test]
    fn record_lines_are_tab_separated_and_escaped() {
        let record = ConsumedRecord {
            offset: 7,
            timestamp: 0,
            key: None,
            value: Some("a\tb".into()),
            headers: vec![ConsumedHeader {
                key: "h".into(),
                value: Some("v".into()),
            }],
            encoding: Encoding::Utf8,
        };
        assert_eq!(
            record_line(3, &record),
            "3\t7\t1970-01-01T00:00:00.000Z\t(null)\ta\\tb\th=v"
        );
        let binary = ConsumedRecord {
            value: Some(STANDARD.encode([0xffu8, 0])),
            encoding: Encoding::Base64,
            headers: Vec::new(),
            ..record
        };
        assert!(record_line(0, &binary).ends_with("\thex:ff00\t-"));
    }
}
