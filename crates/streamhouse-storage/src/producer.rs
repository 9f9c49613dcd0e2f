//! The in-process producer: sends records to topics through the storage
//! engine. Concurrent sends are batched into the same flush, so one
//! object PUT and one metadata transaction serve them all.

use bytes::Bytes;
use streamhouse_core::{Header, Record};

use crate::engine::StorageEngine;
use crate::error::Result;
use crate::writer::AppendResult;

/// A record to send. Without a partition, keyed records go where Kafka's
/// default partitioner would put them and unkeyed records rotate.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    pub topic: String,
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    /// `None` is Kafka's null value (a tombstone).
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    /// Milliseconds since the epoch; now when `None`.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    pub fn header(mut self, key: impl Into<String>, value: Option<Bytes>) -> Self {
        self.headers.push(Header::new(key, value));
        self
    }

    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }
}

/// Where a sent record was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
}

pub struct Producer {
    engine: StorageEngine,
}

impl Producer {
    pub(crate) fn new(engine: StorageEngine) -> Self {
        Self { engine }
    }

    /// Sends one record and waits until it is durable and visible.
    pub async fn send(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        let partition = self.choose_partition(&record).await?;
        let timestamp = record
            .timestamp
            .unwrap_or_else(|| self.engine.clock().now_ms());
        let stored = Record {
            offset: 0,
            timestamp,
            key: record.key,
            value: record.value,
            headers: record.headers,
        };
        let result = self
            .engine
            .append(&record.topic, partition, vec![stored])
            .await?;
        Ok(RecordMetadata {
            topic: record.topic,
            partition,
            offset: result.base_offset,
            timestamp,
        })
    }

    /// Sends records to one partition as one append: they get consecutive
    /// offsets, in order.
    pub async fn send_batch(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<Record>,
    ) -> Result<AppendResult> {
        self.engine.append(topic, partition, records).await
    }

    async fn choose_partition(&self, record: &ProducerRecord) -> Result<i32> {
        let topic = self.engine.topic(&record.topic).await?;
        self.engine
            .choose_partition(&topic, record.partition, record.key.as_deref())
    }
}
