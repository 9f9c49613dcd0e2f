//! A load generator for any Kafka-compatible broker, through librdkafka, so
//! every broker is measured the same way. Each run prints one JSON report:
//! setup, parameters, results, and — when `--metrics-url` points at a
//! StreamHouse `/metrics` — the object-store requests and metadata commits
//! the run cost.
//!
//! Every record carries its run id and sequence number, so a run can check
//! that each acknowledged record is read back exactly once and in order.

mod raw;
mod report;
mod workload;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "streamhouse-bench",
    about = "Load generator for Kafka-compatible brokers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Bootstrap servers, e.g. 127.0.0.1:9092.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Topic to use; created with --partitions if missing.
    #[arg(long)]
    pub topic: String,
    #[arg(long, default_value_t = 16)]
    pub partitions: i32,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// StreamHouse /metrics URLs (comma-separated, one per agent) to read
    /// request counts from; counts are summed.
    #[arg(long)]
    pub metrics_url: Option<String>,
    /// A name for the system under test, copied into the report.
    #[arg(long, default_value = "broker")]
    pub label: String,
    /// A librdkafka property for every client, e.g.
    /// `security.protocol=SASL_SSL`; may be given several times.
    #[arg(long = "client-config", value_name = "KEY=VALUE")]
    pub client_config: Vec<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ProducerArgs {
    /// Records per second; 0 sends as fast as the broker acknowledges.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// `all`, `1` or `0`.
    #[arg(long, default_value = "all")]
    pub acks: String,
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// Records in flight in the client before sends wait.
    #[arg(long, default_value_t = 100_000)]
    pub max_in_flight: usize,
    /// An idempotent producer (enable.idempotence=true).
    #[arg(long)]
    pub idempotent: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Produce records and report throughput and acknowledgement latency.
    Produce {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        producer: ProducerArgs,
        /// Records to send (or use --seconds).
        #[arg(long)]
        records: Option<u64>,
        /// Send for this long.
        #[arg(long)]
        seconds: Option<u64>,
        /// After producing, read the topic back and check every
        /// acknowledged record is there once, in order.
        #[arg(long)]
        verify: bool,
    },
    /// Transactions one after the other from one transactional producer:
    /// transactions and records per second, and EndTxn's latency.
    Transactions {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        producer: ProducerArgs,
        #[arg(long, default_value_t = 100)]
        transactions: u64,
        #[arg(long, default_value_t = 100)]
        records_per_transaction: u64,
    },
    /// Consume a topic from the start and report throughput.
    Consume {
        #[command(flatten)]
        common: Common,
        /// Stop after this many records (default: up to the high watermarks
        /// at the start).
        #[arg(long)]
        expect: Option<u64>,
    },
    /// PUT and GET objects straight to an S3 store (endpoint and keys from
    /// AWS_*): the baseline StreamHouse is compared with.
    RawS3 {
        #[arg(long)]
        bucket: String,
        #[arg(long, default_value = "bench-raw")]
        prefix: String,
        #[arg(long, default_value_t = 8 << 20)]
        object_size: usize,
        #[arg(long, default_value_t = 64)]
        objects: usize,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Produce at a fixed rate while consuming; report end-to-end latency.
    E2e {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        producer: ProducerArgs,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let report = match cli.command {
        Command::Produce {
            common,
            producer,
            records,
            seconds,
            verify,
        } => workload::produce(&common, &producer, records, seconds, verify).await?,
        Command::Transactions {
            common,
            producer,
            transactions,
            records_per_transaction,
        } => {
            workload::transactions(&common, &producer, transactions, records_per_transaction)
                .await?
        }
        Command::Consume { common, expect } => workload::consume(&common, expect).await?,
        Command::RawS3 {
            bucket,
            prefix,
            object_size,
            objects,
            concurrency,
        } => raw::put_get(&bucket, &prefix, object_size, objects, concurrency).await?,
        Command::E2e {
            common,
            producer,
            seconds,
        } => workload::e2e(&common, &producer, seconds).await?,
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
