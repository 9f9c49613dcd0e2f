//! `streamctl produce TOPIC`: one record from flags, or one record per line
//! of stdin, sent in batches.
//!
//! The invariant that matters: stdin lines are stored in the order they
//! were read. Batches are sent one at a time and each is acknowledged (its
//! records durably committed) before the next is sent; within a batch the
//! server keeps request order per partition. A failed batch stops the run
//! and the error says which lines were stored before it.
//!
//! JSON output: `{"topic", "records", "requests", "partitions": [{"partition",
//! "records", "first_offset", "last_offset"}]}`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use clap::builder::NonEmptyStringValueParser;
use indicatif::{ProgressBar, ProgressDrawTarget};
use serde::Serialize;
use streamhouse_api::{Encoding, ProduceHeader, ProduceRecord, StoredOffset};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::client::ApiClient;
use crate::output::{OutputFormat, parse_key_value, print_json, print_line, progress_style, table};

/// A batch is sent early once its keys and values reach this many bytes,
/// so that even long lines stay well inside the server's request body
/// limit (16 MiB by default) after JSON escaping.
const MAX_BATCH_BYTES: usize = 2 << 20;

#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    /// Topic to produce to.
    topic: String,
    /// The record's value. Without --value (or --null-value), every line of
    /// stdin is one record.
    #[arg(long, value_name = "VALUE")]
    value: Option<String>,
    /// Produce one record whose value is null (a tombstone).
    #[arg(long, conflicts_with = "value")]
    null_value: bool,
    /// The record's key; with stdin input, the key of every line.
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// A record header, e.g. `--header trace-id=abc`; repeatable; applies to
    /// every record.
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    headers: Vec<(String, String)>,
    /// Partition to write to [default: chosen from the key, or round-robin
    /// without one].
    #[arg(long, value_name = "P")]
    partition: Option<i32>,
    /// Record timestamp in milliseconds since the Unix epoch [default: now].
    #[arg(long, value_name = "MS")]
    timestamp: Option<i64>,
    /// Split each stdin line at the first SEP into key and value (a line
    /// without SEP is an error).
    #[arg(
        long,
        value_name = "SEP",
        value_parser = NonEmptyStringValueParser::new(),
        conflicts_with_all = ["value", "null_value", "key"]
    )]
    key_separator: Option<String>,
    /// How keys, values and header values are given: as text, or as
    /// standard base64 for binary data.
    #[arg(long, value_enum, default_value_t)]
    encoding: Encoding,
    /// Stdin lines per request.
    #[arg(
        long,
        default_value_t = 500,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    batch_size: u32,
}

/// What every record of the run shares.
struct RecordTemplate {
    headers: Vec<ProduceHeader>,
    partition: Option<i32>,
    timestamp: Option<i64>,
}

impl RecordTemplate {
    fn record(&self, key: Option<String>, value: Option<String>) -> ProduceRecord {
        ProduceRecord {
            key,
            value,
            headers: self.headers.clone(),
            partition: self.partition,
            timestamp: self.timestamp,
        }
    }
}

pub(crate) async fn run(client: &ApiClient, args: ProduceArgs, output: OutputFormat) -> Result<()> {
    let encoding = args.encoding;
    for (name, value) in &args.headers {
        check_encoding(value, encoding).with_context(|| format!("--header {name}"))?;
    }
    if let Some(key) = &args.key {
        check_encoding(key, encoding).context("--key")?;
    }
    let template = RecordTemplate {
        headers: args
            .headers
            .iter()
            .map(|(key, value)| ProduceHeader {
                key: key.clone(),
                value: Some(value.clone()),
            })
            .collect(),
        partition: args.partition,
        timestamp: args.timestamp,
    };
    let mut summary = Summary::new(&args.topic);
    if args.value.is_some() || args.null_value {
        if let Some(value) = &args.value {
            check_encoding(value, encoding).context("--value")?;
        }
        let record = template.record(args.key.clone(), args.value.clone());
        let offsets = client
            .produce(&args.topic, std::slice::from_ref(&record), encoding)
            .await?;
        summary.add(&offsets, 1)?;
    } else {
        produce_stdin(client, &args, &template, &mut summary).await?;
    }
    summary.print(output)
}

/// Reads stdin to its end, sending a batch whenever one is full.
async fn produce_stdin(
    client: &ApiClient,
    args: &ProduceArgs,
    template: &RecordTemplate,
    summary: &mut Summary,
) -> Result<()> {
    if std::io::stdin().is_terminal() {
        eprintln!("Reading records from stdin, one per line; end with Ctrl-D.");
    }
    let batch_size = args.batch_size as usize;
    let mut reader = BufReader::with_capacity(1 << 16, tokio::io::stdin());
    let mut line = Vec::new();
    let mut line_number: u64 = 0;
    let mut batch = Batch::default();
    let mut progress = Progress::new();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .await
            .context("reading stdin")?;
        if read == 0 {
            break;
        }
        line_number += 1;
        let record = parse_line(strip_newline(&line), line_number, args, template)?;
        batch.push(record, line_number);
        if batch.records.len() >= batch_size || batch.bytes >= MAX_BATCH_BYTES {
            send_batch(
                client,
                &args.topic,
                args.encoding,
                &mut batch,
                summary,
                &mut progress,
            )
            .await?;
        }
    }
    if !batch.records.is_empty() {
        send_batch(
            client,
            &args.topic,
            args.encoding,
            &mut batch,
            summary,
            &mut progress,
        )
        .await?;
    }
    progress.finish();
    Ok(())
}

/// Records read but not yet sent, with the stdin lines they came from.
#[derive(Default)]
struct Batch {
    records: Vec<ProduceRecord>,
    first_line: u64,
    last_line: u64,
    bytes: usize,
}

impl Batch {
    fn push(&mut self, record: ProduceRecord, line: u64) {
        if self.records.is_empty() {
            self.first_line = line;
        }
        self.last_line = line;
        self.bytes += record.key.as_ref().map_or(0, String::len)
            + record.value.as_ref().map_or(0, String::len);
        self.records.push(record);
    }
}

async fn send_batch(
    client: &ApiClient,
    topic: &str,
    encoding: Encoding,
    batch: &mut Batch,
    summary: &mut Summary,
    progress: &mut Progress,
) -> Result<()> {
    if summary.requests >= 1 {
        progress.show();
    }
    let offsets = client
        .produce(topic, &batch.records, encoding)
        .await
        .with_context(|| {
            let lines = if batch.first_line == batch.last_line {
                format!("line {}", batch.first_line)
            } else {
                format!("lines {}-{}", batch.first_line, batch.last_line)
            };
            match summary.records {
                0 => format!("sending stdin {lines}"),
                stored => format!(
                    "sending stdin {lines} (the {stored} records read before them were stored)"
                ),
            }
        })?;
    summary.add(&offsets, batch.records.len())?;
    progress.set(summary.records);
    batch.records.clear();
    batch.bytes = 0;
    Ok(())
}

fn strip_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// One stdin line as a record: split at the key separator if there is
/// one, checked against the encoding so a bad line is reported by number.
fn parse_line(
    line: &[u8],
    number: u64,
    args: &ProduceArgs,
    template: &RecordTemplate,
) -> Result<ProduceRecord> {
    let Ok(text) = std::str::from_utf8(line) else {
        bail!(
            "stdin line {number} is not valid UTF-8; give binary data as base64 with --encoding base64"
        );
    };
    let (key, value) = match &args.key_separator {
        Some(separator) => match text.split_once(separator.as_str()) {
            Some((key, value)) => (Some(key.to_string()), value.to_string()),
            None => bail!("stdin line {number} has no key separator {separator:?}"),
        },
        None => (args.key.clone(), text.to_string()),
    };
    if let Some(key) = &key {
        check_encoding(key, args.encoding).with_context(|| format!("stdin line {number}: key"))?;
    }
    check_encoding(&value, args.encoding).with_context(|| format!("stdin line {number}: value"))?;
    Ok(template.record(key, Some(value)))
}

/// In base64 mode, rejects text that is not standard base64 before it is
/// sent, so the error can name the flag or line rather than a request index.
fn check_encoding(text: &str, encoding: Encoding) -> Result<()> {
    if encoding == Encoding::Base64 {
        STANDARD
            .decode(text)
            .with_context(|| format!("{text:?} is not valid base64"))?;
    }
    Ok(())
}

/// A progress counter on stderr, shown only from the second batch on and
/// only when stderr is a terminal (stdin's length is unknown, so it counts
/// rather than fills). It counts hidden from the start, so that its rate
/// covers the whole run rather than jumping when it appears.
struct Progress {
    bar: Option<ProgressBar>,
    shown: bool,
}

impl Progress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
            if let Some(style) =
                progress_style("{spinner} {human_pos} records sent ({rate}, {elapsed})")
            {
                bar.set_style(style);
            }
            bar
        });
        Self { bar, shown: false }
    }

    fn show(&mut self) {
        if let Some(bar) = &self.bar
            && !self.shown
        {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.enable_steady_tick(Duration::from_millis(100));
            self.shown = true;
        }
    }

    fn set(&self, position: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// What was stored, per partition.
#[derive(Serialize)]
struct Summary {
    topic: String,
    records: u64,
    requests: u64,
    partitions: Vec<PartitionSummary>,
    #[serde(skip)]
    by_partition: BTreeMap<i32, PartitionSummary>,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct PartitionSummary {
    partition: i32,
    records: u64,
    first_offset: i64,
    last_offset: i64,
}

impl Summary {
    fn new(topic: &str) -> Self {
        Self {
            topic: topic.to_string(),
            records: 0,
            requests: 0,
            partitions: Vec::new(),
            by_partition: BTreeMap::new(),
        }
    }

    /// Adds one request's offsets; `sent` is how many records it carried.
    fn add(&mut self, offsets: &[StoredOffset], sent: usize) -> Result<()> {
        if offsets.len() != sent {
            bail!(
                "the server acknowledged {} offsets for {sent} records",
                offsets.len()
            );
        }
        self.requests += 1;
        for stored in offsets {
            self.records += 1;
            let entry = self
                .by_partition
                .entry(stored.partition)
                .or_insert(PartitionSummary {
                    partition: stored.partition,
                    records: 0,
                    first_offset: stored.offset,
                    last_offset: stored.offset,
                });
            entry.records += 1;
            entry.first_offset = entry.first_offset.min(stored.offset);
            entry.last_offset = entry.last_offset.max(stored.offset);
        }
        Ok(())
    }

    fn print(mut self, output: OutputFormat) -> Result<()> {
        self.partitions = self.by_partition.values().copied().collect();
        if output == OutputFormat::Json {
            return print_json(&self);
        }
        let topic = &self.topic;
        match self.partitions.as_slice() {
            [] => print_line("No records read from stdin; nothing produced."),
            [only] if only.records == 1 => print_line(format!(
                "Produced 1 record to topic {topic:?}: partition {}, offset {}.",
                only.partition, only.first_offset
            )),
            partitions => {
                let mut rows = table(["PARTITION", "RECORDS", "FIRST OFFSET", "LAST OFFSET"]);
                for p in partitions {
                    rows.add_row(vec![
                        p.partition.to_string(),
                        p.records.to_string(),
                        p.first_offset.to_string(),
                        p.last_offset.to_string(),
                    ]);
                }
                let requests = self.requests;
                let plural = if requests == 1 { "" } else { "s" };
                print_line(format!(
                    "Produced {} records to topic {topic:?} in {requests} request{plural}.\n{rows}",
                    self.records
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_are_stripped_once() {
        assert_eq!(strip_newline(b"a\r\n"), b"a");
        assert_eq!(strip_newline(b"a\n"), b"a");
        assert_eq!(strip_newline(b"a"), b"a");
        assert_eq!(strip_newline(b"a\n\n"), b"a\n");
    }

    #[test]
    fn summary_tracks_offset_ranges_per_partition() {
        let mut summary = Summary::new("t");
        let stored = |partition, offset| StoredOffset { partition, offset };
        let added = summary.add(&[stored(1, 7), stored(0, 3), stored(1, 8)], 3);
        assert!(added.is_ok());
        assert!(summary.add(&[stored(0, 4)], 2).is_err(), "count mismatch");
        let p1 = summary.by_partition.get(&1).copied();
        assert_eq!(
            p1.map(|p| (p.records, p.first_offset, p.last_offset)),
            Some((2, 7, 8))
        );
        assert_eq!(summary.records, 3);
    }

    #[test]
    fn base64_is_checked_before_sending() {
        assert!(check_encoding("AP8Q", Encoding::Base64).is_ok());
        assert!(check_encoding("not base64!", Encoding::Base64).is_err());
        assert!(check_encoding("not base64!", Encoding::Utf8).is_ok());
    }
}
