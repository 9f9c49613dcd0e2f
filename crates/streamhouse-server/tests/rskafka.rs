//! rskafka, a pure-Rust Kafka client with protocol code of its own, against
//! the real `streamhouse` binary: it creates a topic, produces a batch in
//! every codec it has, fetches every record back, lists offsets (earliest,
//! latest, by timestamp), deletes records and the topic. On the embedded
//! default and on PostgreSQL + S3 (skipped loudly without their URLs,
//! failed under `scripts/test.sh`).

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use common::agent::{Agent, Backend, streamhouse};
use rskafka::client::error::{Error as ClientError, ProtocolError};
use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::{Record, RecordAndOffset};

const TOPIC: &str = "rskafka";
const PARTITIONS: i32 = 2;
/// The partition the test writes to; the other stays empty.
const PARTITION: i32 = 1;
const CODECS: [Compression; 5] = [
    Compression::NoCompression,
    Compression::Gzip,
    Compression::Lz4,
    Compression::Snappy,
    Compression::Zstd,
];
/// Records per produced batch.
const BATCH: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rskafka_on_the_embedded_default() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let backend = Backend::embedded(&dir.path().join("data"))?;
    rskafka_round_trip(dir.path(), &backend).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rskafka_on_postgres_and_s3() -> Result<()> {
    let Some(backend) = Backend::postgres_s3("rskafka_on_postgres_and_s3").await? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    rskafka_round_trip(dir.path(), &backend).await
}

fn millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("a timestamp in range")
}

/// The records of batch `batch`: keyed and keyless, a tombstone, binary and
/// compressible values, headers, and a timestamp one second apart each.
fn batch_records(batch: usize, base_ms: i64) -> Vec<Record> {
    (0..BATCH)
        .map(|i| {
            let n = batch * BATCH + i;
            let mut headers = BTreeMap::new();
            if i % 2 == 0 {
                headers.insert("trace".to_string(), format!("t-{n}").into_bytes());
                headers.insert("empty".to_string(), Vec::new());
            }
            Record {
                key: match i {
                    0 => Some(format!("key-{n}").into_bytes()),
                    1 => None,
                    2 => Some(Vec::new()),
                    _ => Some(vec![0xff, 0x00, 0x80]),
                },
                value: match i {
                    1 => None,
                    2 => Some((0..=255u8).cycle().take(4096).collect()),
                    _ => Some(format!("value {n} h\u{e9}llo").into_bytes()),
                },
                headers,
                timestamp: millis(base_ms + 1000 * n as i64),
            }
        })
        .collect()
}

async fn rskafka_round_trip(dir: &Path, backend: &Backend) -> Result<()> {
    let mut command = streamhouse(dir);
    command
        .args(["serve", "--kafka-listen", "127.0.0.1:0"])
        .args(["--http-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--metadata", &backend.metadata_url])
        .args(["--object-store", &backend.object_url]);
    let agent = Agent::start(&mut command).await?;
    let client = ClientBuilder::new(vec![agent.kafka.clone()])
        .client_id("streamhouse-rskafka-test")
        .build()
        .await?;

    create_topic(&client).await?;
    let partition = client
        .partition_client(TOPIC, PARTITION, UnknownTopicHandling::Retry)
        .await?;
    let base_ms = Utc::now().timestamp_millis() - 3_600_000;

    // One batch per codec, each acknowledged with the next offsets.
    let mut produced = Vec::new();
    for (batch, compression) in CODECS.into_iter().enumerate() {
        let records = batch_records(batch, base_ms);
        let offsets = partition.produce(records.clone(), compression).await?;
        let first = produced.len() as i64;
        assert_eq!(
            offsets,
            (first..first + BATCH as i64).collect::<Vec<_>>(),
            "{compression:?}: offsets of the batch"
        );
        produced.extend(records);
    }
    let total = produced.len() as i64;

    // Every record back once, in order, every field intact.
    let (read, high_watermark) = fetch_from(&partition, 0, total).await?;
    assert_eq!(high_watermark, total);
    assert_eq!(
        read.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>()
    );
    for (record, read) in produced.iter().zip(&read) {
        assert_eq!(&read.record, record, "offset {}", read.offset);
    }

    // List offsets: the ends, and by timestamp the first record at or after it.
    assert_eq!(partition.get_offset(OffsetAt::Earliest).await?, 0);
    assert_eq!(partition.get_offset(OffsetAt::Latest).await?, total);
    let at = |ms| OffsetAt::Timestamp(millis(ms));
    assert_eq!(partition.get_offset(at(base_ms - 60_000)).await?, 0);
    assert_eq!(partition.get_offset(at(base_ms + 7_000)).await?, 7);
    assert_eq!(partition.get_offset(at(base_ms + 7_500)).await?, 8);
    assert_eq!(
        partition.get_offset(at(base_ms + 1000 * total)).await?,
        -1,
        "no record at or after the timestamp"
    );
    let empty = client
        .partition_client(TOPIC, 0, UnknownTopicHandling::Retry)
        .await?;
    assert_eq!(empty.get_offset(OffsetAt::Latest).await?, 0);

    // Delete records: the log start moves, older offsets are out of range.
    let kept_from = 6;
    partition.delete_records(kept_from, 5_000).await?;
    assert_eq!(partition.get_offset(OffsetAt::Earliest).await?, kept_from);
    match partition.fetch_records(0, 1..1_000_000, 100).await {
        Err(ClientError::ServerError {
            protocol_error: ProtocolError::OffsetOutOfRange,
            ..
        }) => {}
        other => bail!("fetching a deleted offset: {other:?}"),
    }
    let (rest, _) = fetch_from(&partition, kept_from, total).await?;
    assert_eq!(rest.first().map(|r| r.offset), Some(kept_from));
    assert_eq!(rest.len() as i64, total - kept_from);

    client
        .controller_client()?
        .delete_topic(TOPIC, 5_000)
        .await?;
    let topics = client.list_topics().await?;
    assert!(
        topics.iter().all(|t| t.name != TOPIC),
        "deleted topic still listed: {topics:?}"
    );

    drop(client);
    let status = agent.stop().await?;
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    Ok(())
}

async fn create_topic(client: &Client) -> Result<()> {
    client
        .controller_client()?
        .create_topic(TOPIC, PARTITIONS, 1, 5_000)
        .await?;
    let topics = client.list_topics().await?;
    let topic = topics.iter().find(|t| t.name == TOPIC);
    let partitions: Option<Vec<i32>> = topic.map(|t| t.partitions.iter().copied().collect());
    assert_eq!(partitions, Some((0..PARTITIONS).collect()), "{topics:?}");
    Ok(())
}

/// Fetches from `offset` until the record before `end` has been read.
async fn fetch_from(
    partition: &PartitionClient,
    mut offset: i64,
    end: i64,
) -> Result<(Vec<RecordAndOffset>, i64)> {
    let mut read = Vec::new();
    let mut high_watermark = -1;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while offset < end {
        if tokio::time::Instant::now() > deadline {
            bail!("read up to offset {offset} of {end} within 30 s");
        }
        let (records, watermark) = partition.fetch_records(offset, 1..1_000_000, 100).await?;
        high_watermark = watermark;
        if let Some(last) = records.last() {
            offset = last.offset + 1;
        }
        read.extend(records);
    }
    Ok((read, high_watermark))
}
