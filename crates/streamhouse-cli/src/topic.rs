//! `streamctl topic create|list|describe|delete`.
//!
//! JSON output: `create` and `list` print the server's topic summaries,
//! `describe` its topic detail (partitions with high watermark and log
//! start offset, effective config), `delete` `{"deleted": NAME}`.

use std::collections::BTreeMap;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;
use streamhouse_api::{TopicDetail, TopicSummary};

use crate::client::ApiClient;
use crate::output::{
    OutputFormat, format_timestamp, join_pairs, parse_key_value, print_json, print_line, table,
};

#[derive(Debug, Subcommand)]
pub(crate) enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topics with their partition counts and config overrides.
    List,
    /// Show a topic's partitions (log start offset, high watermark) and
    /// effective config.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Delete a topic and all its records.
    Delete {
        /// Topic name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Topic name.
    name: String,
    /// Number of partitions.
    #[arg(long, short = 'p', default_value_t = 1, value_name = "N")]
    partitions: i32,
    /// A topic config override, e.g. `--config retention.ms=86400000`;
    /// repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    configs: Vec<(String, String)>,
}

pub(crate) async fn run(
    client: &ApiClient,
    command: TopicCommand,
    output: OutputFormat,
) -> Result<()> {
    match command {
        TopicCommand::Create(args) => create(client, args, output).await,
        TopicCommand::List => list(client, output).await,
        TopicCommand::Describe { name } => describe(client, &name, output).await,
        TopicCommand::Delete { name } => delete(client, &name, output).await,
    }
}

async fn create(client: &ApiClient, args: CreateArgs, output: OutputFormat) -> Result<()> {
    // A key given twice keeps its last value, as repeated flags usually do.
    let config: BTreeMap<String, String> = args.configs.into_iter().collect();
    let topic = client
        .create_topic(&args.name, args.partitions, &config)
        .await?;
    match output {
        OutputFormat::Json => print_json(&topic),
        OutputFormat::Table => {
            let plural = if topic.partitions == 1 { "" } else { "s" };
            let mut text = format!(
                "Created topic {:?} with {} partition{plural}",
                topic.name, topic.partitions
            );
            if !topic.config.is_empty() {
                text.push_str(&format!(" (config: {})", join_pairs(&topic.config)));
            }
            print_line(format!("{text}."))
        }
    }
}

async fn list(client: &ApiClient, output: OutputFormat) -> Result<()> {
    let topics = client.list_topics().await?;
    match output {
        OutputFormat::Json => print_json(&topics),
        OutputFormat::Table if topics.is_empty() => print_line("No topics."),
        OutputFormat::Table => print_line(topics_table(&topics)),
    }
}

fn topics_table(topics: &[TopicSummary]) -> comfy_table::Table {
    let mut rows = table(["TOPIC", "PARTITIONS", "CONFIG OVERRIDES", "CREATED"]);
    for topic in topics {
        rows.add_row(vec![
            topic.name.clone(),
            topic.partitions.to_string(),
            join_pairs(&topic.config),
            format_timestamp(topic.created_at),
        ]);
    }
    rows
}

async fn describe(client: &ApiClient, name: &str, output: OutputFormat) -> Result<()> {
    let topic = client.describe_topic(name).await?;
    match output {
        OutputFormat::Json => print_json(&topic),
        OutputFormat::Table => print_line(describe_text(&topic)),
    }
}

fn describe_text(topic: &TopicDetail) -> String {
    let records: i64 = topic
        .partitions
        .iter()
        .map(|p| p.high_watermark - p.log_start_offset)
        .sum();
    let mut partitions = table(["PARTITION", "LOG START", "HIGH WATERMARK", "RECORDS"]);
    for p in &topic.partitions {
        partitions.add_row(vec![
            p.partition.to_string(),
            p.log_start_offset.to_string(),
            p.high_watermark.to_string(),
            (p.high_watermark - p.log_start_offset).to_string(),
        ]);
    }
    let mut config = table(["CONFIG", "VALUE"]);
    for (key, value) in &topic.config {
        config.add_row(vec![key.clone(), value.clone()]);
    }
    format!(
        "Topic:      {}\nTopic id:   {}\nCreated:    {}\nPartitions: {} ({records} readable records)\n\n{partitions}\n\n{config}",
        topic.name,
        topic.topic_id,
        format_timestamp(topic.created_at),
        topic.partitions.len(),
    )
}

async fn delete(client: &ApiClient, name: &str, output: OutputFormat) -> Result<()> {
    client.delete_topic(name).await?;
    match output {
        OutputFormat::Json => print_json(&json!({ "deleted": name })),
        OutputFormat::Table => print_line(format!("Deleted topic {name:?}.")),
    }
}
