//! Topic metadata held in memory for the write path, so an append does not
//! cost a metadata query.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use streamhouse_metadata::{MetadataStore, Topic};
use tokio::time::Instant;

use crate::error::{Result, StorageError};

pub(crate) struct TopicCache {
    store: Arc<dyn MetadataStore>,
    ttl: Duration,
    topics: Mutex<HashMap<String, (Arc<Topic>, Instant)>>,
}

impl TopicCache {
    pub(crate) fn new(store: Arc<dyn MetadataStore>, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            topics: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) async fn get(&self, name: &str) -> Result<Arc<Topic>> {
        if let Some((topic, loaded)) = self.topics.lock().get(name)
            && loaded.elapsed() <= self.ttl
        {
            return Ok(topic.clone());
        }
        self.load(name).await
    }

    /// The topic, checking that `partition` exists; reloads once when the
    /// cached partition count is too small (partitions may have been added).
    pub(crate) async fn get_partition(&self, name: &str, partition: i32) -> Result<Arc<Topic>> {
        let topic = self.get(name).await?;
        if (0..topic.partition_count).contains(&partition) {
            return Ok(topic);
        }
        let topic = self.load(name).await?;
        if (0..topic.partition_count).contains(&partition) {
            Ok(topic)
        } else {
            Err(StorageError::UnknownPartition {
                topic: name.to_string(),
                partition,
            })
        }
    }

    pub(crate) fn invalidate(&self, name: &str) {
        self.topics.lock().remove(name);
    }

    async fn load(&self, name: &str) -> Result<Arc<Topic>> {
        match self.store.get_topic(name).await {
            Ok(topic) => {
                let topic = Arc::new(topic);
                self.topics
                    .lock()
                    .insert(name.to_string(), (topic.clone(), Instant::now()));
                Ok(topic)
            }
            // While the metadata store is unreachable, what was known keeps
            // serving: a topic's partitions only grow, and a deleted topic's
            // writes still fail at commit.
            Err(error) if error.is_retriable() => match self.topics.lock().get(name) {
                Some((topic, _)) => Ok(topic.clone()),
                None => Err(error.into()),
            },
            Err(error) => {
                self.topics.lock().remove(name);
                Err(error.into())
            }
        }
    }
}
