//! The engine's door to topics: every front-end creates, changes, reads
//! and deletes topics through these, so policy (the cluster's partition
//! limit) and the caches in front of the metadata store stay in one place.

use std::collections::HashMap;
use std::sync::Arc;

use streamhouse_core::TopicConfig;
use streamhouse_metadata::{NewTopic, SegmentInfo, Topic, TopicDescription};

use super::StorageEngine;
use crate::error::{Result, StorageError};

impl StorageEngine {
    /// Creates a topic, within the cluster's partition limit, if its
    /// configs agree with each other ([`TopicConfig::check`]).
    pub async fn create_topic(&self, topic: NewTopic) -> Result<Topic> {
        topic.config.check()?;
        self.check_partition_limit(topic.partitions).await?;
        let name = topic.name.clone();
        let created = self.inner.metadata.create_topic(topic).await?;
        self.forget_topic(&name);
        Ok(created)
    }

    /// Grows a topic to `total` partitions, within the cluster's limit.
    pub async fn add_partitions(&self, name: &str, total: i64) -> Result<Topic> {
        let current = self.inner.metadata.get_topic(name).await?;
        self.check_partition_limit(total - i64::from(current.partition_count))
            .await?;
        let grown = self.inner.metadata.add_partitions(name, total).await?;
        self.forget_topic(name);
        Ok(grown)
    }

    /// Refuses `adding` more partitions when the cluster would then hold
    /// more than `max_partitions`. Agents creating topics at the same
    /// moment may overshoot by what they create together.
    async fn check_partition_limit(&self, adding: i64) -> Result<()> {
        if adding <= 0 {
            return Ok(());
        }
        let max = self.inner.max_partitions;
        let held: i64 = self
            .inner
            .metadata
            .list_topics()
            .await?
            .iter()
            .map(|t| i64::from(t.partition_count))
            .sum();
        if held.saturating_add(adding) > i64::try_from(max).unwrap_or(i64::MAX) {
            metrics::counter!("streamhouse_limit_rejections_total", "limit" => "max_partitions")
                .increment(1);
            return Err(StorageError::PolicyViolation {
                reason: format!(
                    "the cluster holds {held} partitions; {adding} more would exceed \
                     its limit of {max} (--max-partitions)"
                ),
            });
        }
        Ok(())
    }

    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        self.inner.metadata.delete_topic(name).await?;
        self.forget_topic(name);
        self.inner.topics.deleted(name);
        Ok(())
    }

    /// Drops everything held in memory about a topic.
    pub(crate) fn forget_topic(&self, name: &str) {
        self.inner.topics.invalidate(name);
        self.inner.index.invalidate_topic(name);
        self.inner.watermarks.invalidate_topic(name);
        self.inner.epochs.forget_topic(name);
    }

    /// The topic's metadata as the write path sees it (cached briefly).
    pub async fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.inner.topics.get(name).await
    }

    /// The topics among `ids` (topic ids as [`Topic::topic_id`] holds
    /// them) that exist, by id: from the topics known in memory, listing
    /// them again from the store at most once when some id is not among
    /// them, so a request naming any number of ids costs one query at
    /// most. When the store cannot be reached, the ids known are answered.
    pub async fn topics_by_id(&self, ids: &[String]) -> Result<HashMap<String, Arc<Topic>>> {
        let find = |topics: Vec<Arc<Topic>>| -> HashMap<String, Arc<Topic>> {
            let by_id: HashMap<&str, &Arc<Topic>> =
                topics.iter().map(|t| (t.topic_id.as_str(), t)).collect();
            ids.iter()
                .filter_map(|id| Some((id.clone(), (*by_id.get(id.as_str())?).clone())))
                .collect()
        };
        let known = find(self.inner.topics.last_known());
        if ids.iter().all(|id| known.contains_key(id)) {
            return Ok(known);
        }
        match self.inner.topics.list().await {
            Ok(listed) => Ok(find(listed)),
            Err(error) if error.is_retriable() => Ok(known),
            Err(error) => Err(error),
        }
    }

    /// Every topic, ordered by name. While the metadata store fails or
    /// does not answer within seconds, the last list it gave (with topics
    /// looked up since), never an empty list because the store is down.
    pub async fn list_topics(&self) -> Result<Vec<Arc<Topic>>> {
        self.inner.topics.list().await
    }

    /// Replaces a topic's configuration overrides, if they agree with each
    /// other ([`TopicConfig::check`]): a change made one config at a time
    /// (IncrementalAlterConfigs, the REST API) is checked as a whole here.
    pub async fn update_topic_config(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        config.check()?;
        let topic = self
            .inner
            .metadata
            .update_topic_config(name, config)
            .await?;
        self.inner.topics.invalidate(name);
        Ok(topic)
    }

    /// The topic as the metadata store has it now (not cached), for
    /// answers that must reflect the latest change by any agent
    /// (describing configs, validating a change).
    pub async fn load_topic(&self, name: &str) -> Result<Topic> {
        Ok(self.inner.metadata.get_topic(name).await?)
    }

    /// The topic and the high watermark and log start offset of each of its
    /// partitions, read in one snapshot.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        Ok(self.inner.metadata.describe_topic(name).await?)
    }

    /// Segment rows of a partition whose `end_offset >= from_offset`,
    /// ordered by base offset, at most `limit`, as the metadata store has
    /// them now.
    pub async fn segments(
        &self,
        topic: &str,
        partition: i32,
        from_offset: i64,
        limit: usize,
    ) -> Result<Vec<SegmentInfo>> {
        Ok(self
            .inner
            .metadata
            .list_segments(topic, partition, from_offset, limit)
            .await?)
    }
}
