//! The produce, consume and end-to-end workloads.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use rand::RngExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde_json::{Value, json};

use crate::report::{BrokerCounters, histogram, latency_ms};
use crate::{Common, ProducerArgs};

/// Bytes at the start of every value: run id, sequence, send time (µs).
const STAMP: usize = 24;

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Random filler shared by every record, so values are incompressible
/// without generating random bytes per record.
struct Filler(Vec<u8>);

impl Filler {
    fn new() -> Self {
        let mut rng = rand::rng();
        Self((0..(1 << 20) + 65_536).map(|_| rng.random()).collect())
    }

    fn value(&self, size: usize, run: u64, seq: u64) -> Vec<u8> {
        let size = size.max(STAMP);
        let mut value = Vec::with_capacity(size);
        value.extend_from_slice(&run.to_le_bytes());
        value.extend_from_slice(&seq.to_le_bytes());
        value.extend_from_slice(&now_micros().to_le_bytes());
        let start = (seq as usize * 7919) % (1 << 20);
        let rest = size - STAMP;
        let mut filled = 0;
        while filled < rest {
            let take = (rest - filled).min(self.0.len() - start);
            value.extend_from_slice(&self.0[start..start + take]);
            filled += take;
        }
        value
    }
}

fn stamp(value: &[u8]) -> Option<(u64, u64, u64)> {
    let word = |i: usize| {
        value
            .get(i * 8..i * 8 + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    Some((word(0)?, word(1)?, word(2)?))
}

fn client_config(common: &Common) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &common.brokers);
    for property in &common.client_config {
        // clap has checked nothing about the value; a property without `=`
        // is passed with an empty value, and librdkafka names it in its error.
        let (key, value) = property.split_once('=').unwrap_or((property, ""));
        config.set(key, value);
    }
    config
}

async fn ensure_topic(common: &Common) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(common).create()?;
    let topic = NewTopic::new(&common.topic, common.partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .context("create topic")?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => bail!("cannot create {topic}: {code}"),
        }
    }
    Ok(())
}

/// Acknowledgements collected by librdkafka's delivery callback, with the
/// moment each one arrived.
#[derive(Default)]
struct Acks {
    latency: Option<Histogram<u64>>,
    /// (partition, offset, sequence) of every acknowledged record.
    acked: Vec<(i32, i64, u64)>,
    failed: u64,
    first_error: Option<String>,
}

struct BenchContext {
    acks: Arc<Mutex<Acks>>,
}

impl ClientContext for BenchContext {}

impl ProducerContext for BenchContext {
    type DeliveryOpaque = Box<(u64, Instant)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (seq, sent) = *opaque;
        let elapsed = sent.elapsed().as_micros() as u64;
        let Ok(mut acks) = self.acks.lock() else {
            return;
        };
        match result {
            Ok(message) => {
                if let Some(h) = acks.latency.as_mut() {
                    let _ = h.record(elapsed.max(1));
                }
                acks.acked
                    .push((message.partition(), message.offset(), seq));
            }
            Err((error, _)) => {
                acks.failed += 1;
                if acks.first_error.is_none() {
                    acks.first_error = Some(error.to_string());
                }
            }
        }
    }
}

fn producer(
    common: &Common,
    args: &ProducerArgs,
    acks: Arc<Mutex<Acks>>,
) -> anyhow::Result<ThreadedProducer<BenchContext>> {
    Ok(client_config(common)
        .set("acks", &args.acks)
        .set("linger.ms", args.linger_ms.to_string())
        .set("compression.type", &args.compression)
        .set(
            "queue.buffering.max.messages",
            args.max_in_flight.to_string(),
        )
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "300000")
        .set("enable.idempotence", args.idempotent.to_string())
        .create_with_context(BenchContext { acks })?)
}

/// Queues record `seq`, waiting while the client's queue is full.
fn send_record(
    producer: &ThreadedProducer<BenchContext>,
    common: &Common,
    filler: &Filler,
    run: u64,
    seq: u64,
) -> anyhow::Result<()> {
    let value = filler.value(common.record_size, run, seq);
    let partition = (seq % common.partitions.max(1) as u64) as i32;
    let mut record = BaseRecord::with_opaque_to(&common.topic, Box::new((seq, Instant::now())))
        .payload(&value)
        .partition(partition);
    loop {
        match producer.send::<(), Vec<u8>>(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                record = returned;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err((error, _)) => bail!("send failed: {error}"),
        }
    }
}

/// Sends records until `stop` says so; paces to `rate` per second when set.
fn send_loop(
    producer: &ThreadedProducer<BenchContext>,
    common: &Common,
    rate: u64,
    run: u64,
    mut stop: impl FnMut(u64, Duration) -> bool,
) -> anyhow::Result<(u64, Duration)> {
    let filler = Filler::new();
    let started = Instant::now();
    let mut seq = 0u64;
    while !stop(seq, started.elapsed()) {
        if rate > 0 {
            let due = started + Duration::from_secs_f64(seq as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        send_record(producer, common, &filler, run, seq)?;
        seq += 1;
    }
    producer.flush(Duration::from_secs(300))?;
    Ok((seq, started.elapsed()))
}

/// Transactions of `per_transaction` records, one after the other, from
/// one transactional producer: transactions and records per second, and
/// how long EndTxn (commit_transaction once every record is acknowledged)
/// takes.
pub async fn transactions(
    common: &Common,
    args: &ProducerArgs,
    transactions: u64,
    per_transaction: u64,
) -> anyhow::Result<Value> {
    ensure_topic(common).await?;
    let before = BrokerCounters::scrape(common.metrics_url.as_deref());
    let acks = Arc::new(Mutex::new(Acks::default()));
    let run: u64 = rand::random();
    let (common_c, args_c, acks_c) = (common.clone(), args.clone(), acks.clone());
    let (elapsed, commits) = tokio::task::spawn_blocking(move || {
        let producer: ThreadedProducer<BenchContext> = client_config(&common_c)
            .set("acks", "all")
            .set("linger.ms", args_c.linger_ms.to_string())
            .set("compression.type", &args_c.compression)
            .set(
                "queue.buffering.max.messages",
                args_c.max_in_flight.to_string(),
            )
            .set("queue.buffering.max.kbytes", "1048576")
            .set("transactional.id", format!("streamhouse-bench-{run}"))
            .set("transaction.timeout.ms", "300000")
            .set("message.timeout.ms", "300000")
            .create_with_context(BenchContext { acks: acks_c })?;
        producer.init_transactions(Duration::from_secs(60))?;
        let filler = Filler::new();
        let mut commits = histogram();
        let started = Instant::now();
        let mut seq = 0;
        for _ in 0..transactions {
            producer.begin_transaction()?;
            for _ in 0..per_transaction {
                send_record(&producer, &common_c, &filler, run, seq)?;
                seq += 1;
            }
            producer.flush(Duration::from_secs(300))?;
            let committing = Instant::now();
            producer.commit_transaction(Duration::from_secs(300))?;
            let _ = commits.record((committing.elapsed().as_micros() as u64).max(1));
        }
        anyhow::Ok((started.elapsed(), commits))
    })
    .await??;
    let after = BrokerCounters::scrape(common.metrics_url.as_deref());
    let acks = std::mem::take(&mut *acks.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let secs = elapsed.as_secs_f64();
    let acked = acks.acked.len() as u64;
    let bytes = acked as f64 * common.record_size as f64;
    let mut report = json!({
        "workload": "transactions",
        "setup": { "label": common.label, "brokers": common.brokers },
        "parameters": {
            "topic": common.topic,
            "partitions": common.partitions,
            "record_size": common.record_size,
            "transactions": transactions,
            "records_per_transaction": per_transaction,
            "linger_ms": args.linger_ms,
            "compression": args.compression,
        },
        "results": {
            "acknowledged": acked,
            "failed": acks.failed,
            "first_error": acks.first_error,
            "seconds": secs,
            "transactions_per_s": transactions as f64 / secs,
            "records_per_s": acked as f64 / secs,
            "mib_per_s": bytes / 1048576.0 / secs,
            "commit_latency_ms": latency_ms(&commits),
        },
    });
    if let (Some(before), Some(after)) = (&before, &after) {
        report["broker"] = before.delta(after, secs);
    }
    Ok(report)
}

pub async fn produce(
    common: &Common,
    args: &ProducerArgs,
    records: Option<u64>,
    seconds: Option<u64>,
    verify: bool,
) -> anyhow::Result<Value> {
    ensure_topic(common).await?;
    let before = BrokerCounters::scrape(common.metrics_url.as_deref());
    let acks = Arc::new(Mutex::new(Acks {
        latency: Some(histogram()),
        ..Default::default()
    }));
    let run: u64 = rand::random();
    let (common_c, args_c, acks_c) = (common.clone(), args.clone(), acks.clone());
    let (sent, elapsed) = tokio::task::spawn_blocking(move || {
        let producer = producer(&common_c, &args_c, acks_c)?;
        let limit = records.unwrap_or(u64::MAX);
        let duration = seconds.map(Duration::from_secs);
        send_loop(&producer, &common_c, args_c.rate, run, |seq, elapsed| {
            seq >= limit || duration.is_some_and(|d| elapsed >= d)
        })
    })
    .await??;
    let after = BrokerCounters::scrape(common.metrics_url.as_deref());
    let acks = std::mem::take(&mut *acks.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let latency = acks.latency.clone().unwrap_or_else(histogram);
    let secs = elapsed.as_secs_f64();
    let acked = acks.acked.len() as u64;
    let bytes = acked as f64 * common.record_size as f64;
    let mut report = json!({
        "workload": "produce",
        "setup": { "label": common.label, "brokers": common.brokers },
        "parameters": {
            "topic": common.topic,
            "partitions": common.partitions,
            "record_size": common.record_size,
            "rate": args.rate,
            "acks": args.acks,
            "linger_ms": args.linger_ms,
            "compression": args.compression,
        },
        "results": {
            "sent": sent,
            "acknowledged": acked,
            "failed": acks.failed,
            "first_error": acks.first_error,
            "seconds": secs,
            "records_per_s": acked as f64 / secs,
            "mib_per_s": bytes / 1048576.0 / secs,
            "ack_latency_ms": latency_ms(&latency),
        },
    });
    if let (Some(before), Some(after)) = (&before, &after) {
        report["broker"] = before.delta(after, secs);
    }
    if verify {
        report["integrity"] = verify_acked(common, run, &acks.acked).await?;
    }
    Ok(report)
}

fn consumer(common: &Common) -> anyhow::Result<BaseConsumer> {
    Ok(client_config(common)
        .set(
            "group.id",
            format!("streamhouse-bench-{}", rand::random::<u32>()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .create()?)
}

/// High watermark of every partition.
fn watermarks(consumer: &BaseConsumer, common: &Common) -> anyhow::Result<Vec<i64>> {
    (0..common.partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(&common.topic, p, Duration::from_secs(10))
                .map(|(_, high)| high)
                .with_context(|| format!("watermarks of partition {p}"))
        })
        .collect()
}

fn assign(consumer: &BaseConsumer, common: &Common, offset: Offset) -> anyhow::Result<()> {
    let mut list = TopicPartitionList::new();
    for p in 0..common.partitions {
        list.add_partition_offset(&common.topic, p, offset)?;
    }
    consumer.assign(&list)?;
    Ok(())
}

/// Reads every partition from the start up to `until`; calls `each` with
/// (partition, offset, value) and returns the bytes read.
fn read_all(
    consumer: &BaseConsumer,
    until: &[i64],
    mut each: impl FnMut(i32, i64, &[u8]),
) -> anyhow::Result<u64> {
    let mut positions = vec![0i64; until.len()];
    let mut bytes = 0u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    while positions.iter().zip(until).any(|(p, u)| p < u) {
        if Instant::now() > deadline {
            bail!("reading back timed out at {positions:?} of {until:?}");
        }
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(error)) => bail!("consume failed: {error}"),
            Some(Ok(message)) => {
                let partition = message.partition();
                let value = message.payload().unwrap_or_default();
                bytes += value.len() as u64;
                each(partition, message.offset(), value);
                if let Some(position) = positions.get_mut(partition as usize) {
                    *position = message.offset() + 1;
                }
            }
        }
    }
    Ok(bytes)
}

pub async fn consume(common: &Common, expect: Option<u64>) -> anyhow::Result<Value> {
    let common = common.clone();
    tokio::task::spawn_blocking(move || {
        let consumer = consumer(&common)?;
        let until = watermarks(&consumer, &common)?;
        let total: i64 = until.iter().sum();
        assign(&consumer, &common, Offset::Beginning)?;
        let before = BrokerCounters::scrape(common.metrics_url.as_deref());
        let started = Instant::now();
        let mut records = 0u64;
        let bytes = read_all(&consumer, &until, |_, _, _| records += 1)?;
        let secs = started.elapsed().as_secs_f64();
        let after = BrokerCounters::scrape(common.metrics_url.as_deref());
        let mut report = json!({
            "workload": "consume",
            "setup": { "label": common.label, "brokers": common.brokers },
            "parameters": { "topic": common.topic, "partitions": common.partitions },
            "results": {
                "records": records,
                "expected": expect.unwrap_or(total as u64),
                "seconds": secs,
                "records_per_s": records as f64 / secs,
                "mib_per_s": bytes as f64 / 1048576.0 / secs,
            },
        });
        if let (Some(before), Some(after)) = (&before, &after) {
            report["broker"] = before.delta(after, secs);
        }
        Ok(report)
    })
    .await?
}

/// Reads the topic back and checks every acknowledged record of `run`:
/// present, exactly once, at the offset it was acknowledged with, and in
/// send order within its partition.
async fn verify_acked(
    common: &Common,
    run: u64,
    acked: &[(i32, i64, u64)],
) -> anyhow::Result<Value> {
    let common = common.clone();
    let acked = acked.to_vec();
    tokio::task::spawn_blocking(move || {
        let consumer = consumer(&common)?;
        let until = watermarks(&consumer, &common)?;
        assign(&consumer, &common, Offset::Beginning)?;
        let mut stored: HashMap<(i32, i64), u64> = HashMap::new();
        let mut seen: HashMap<u64, u32> = HashMap::new();
        let mut order_violations = 0u64;
        let mut last: BTreeMap<i32, u64> = BTreeMap::new();
        read_all(&consumer, &until, |partition, offset, value| {
            if let Some((record_run, seq, _)) = stamp(value)
                && record_run == run
            {
                stored.insert((partition, offset), seq);
                *seen.entry(seq).or_insert(0) += 1;
                if last.get(&partition).is_some_and(|&prev| seq <= prev) {
                    order_violations += 1;
                }
                last.insert(partition, seq);
            }
        })?;
        let missing = acked
            .iter()
            .filter(|(p, o, seq)| stored.get(&(*p, *o)) != Some(seq))
            .count();
        let duplicated = seen.values().filter(|&&n| n > 1).count();
        Ok(json!({
            "acknowledged": acked.len(),
            "read_back": stored.len(),
            "missing_or_moved": missing,
            "duplicated": duplicated,
            "out_of_order": order_violations,
            "ok": missing == 0 && duplicated == 0 && order_violations == 0,
        }))
    })
    .await?
}

pub async fn e2e(common: &Common, args: &ProducerArgs, seconds: u64) -> anyhow::Result<Value> {
    if args.rate == 0 {
        bail!("e2e needs --rate");
    }
    ensure_topic(common).await?;
    let run: u64 = rand::random();
    let acks = Arc::new(Mutex::new(Acks {
        latency: Some(histogram()),
        ..Default::default()
    }));
    let expected = args.rate * seconds;
    let common_c = common.clone();
    let reader = tokio::task::spawn_blocking(move || -> anyhow::Result<(Histogram<u64>, u64)> {
        let consumer = consumer(&common_c)?;
        assign(&consumer, &common_c, Offset::End)?;
        // Make sure the assignment is active before the producer starts.
        let _ = consumer.poll(Duration::from_millis(500));
        let mut latency = histogram();
        let mut received = 0u64;
        let deadline = Instant::now() + Duration::from_secs(seconds + 60);
        while received < expected && Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200))
                && let Some((record_run, _, sent)) = stamp(message.payload().unwrap_or_default())
                && record_run == run
            {
                let _ = latency.record(now_micros().saturating_sub(sent).max(1));
                received += 1;
            }
        }
        Ok((latency, received))
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (common_p, args_p, acks_p) = (common.clone(), args.clone(), acks.clone());
    let (sent, elapsed) = tokio::task::spawn_blocking(move || {
        let producer = producer(&common_p, &args_p, acks_p)?;
        send_loop(&producer, &common_p, args_p.rate, run, |seq, _| {
            seq >= expected
        })
    })
    .await??;
    let (e2e_latency, received) = reader.await??;
    let acks = acks.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let ack_latency = acks.latency.clone().unwrap_or_else(histogram);
    Ok(json!({
        "workload": "e2e",
        "setup": { "label": common.label, "brokers": common.brokers },
        "parameters": {
            "topic": common.topic,
            "partitions": common.partitions,
            "record_size": common.record_size,
            "rate": args.rate,
            "seconds": seconds,
            "acks": args.acks,
            "linger_ms": args.linger_ms,
        },
        "results": {
            "sent": sent,
            "acknowledged": acks.acked.len(),
            "received": received,
            "seconds": elapsed.as_secs_f64(),
            "ack_latency_ms": latency_ms(&ack_latency),
            "e2e_latency_ms": latency_ms(&e2e_latency),
        },
    }))
}
