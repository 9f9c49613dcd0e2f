//! Topic metadata held in memory for the write path, so an append does not
//! cost a metadata query, and the last topic list the metadata store gave,
//! so that clients asking for every topic during an outage are not told
//! that their topics are gone.
//!
//! The invariant that matters: while the metadata store does not answer,
//! what was known keeps serving (a topic's partitions only grow, and a
//! deleted topic's writes still fail at commit), and a lookup never waits
//! longer than [`LOOKUP_TIMEOUT`] for the store.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use streamhouse_metadata::{MetadataError, MetadataStore, Topic};
use tokio::time::Instant;

use crate::error::{Result, StorageError};

/// Longest a topic lookup waits for the metadata store before it answers
/// from memory (or fails with a retriable error). A blackholed database
/// connection otherwise hangs a query until TCP gives up, many minutes.
pub(crate) const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) struct TopicCache {
    store: Arc<dyn MetadataStore>,
    ttl: Duration,
    topics: Mutex<HashMap<String, (Arc<Topic>, Instant)>>,
    listed: Mutex<Listed>,
}

/// The last complete list, and when listing last failed.
#[derive(Default)]
struct Listed {
    topics: Vec<Arc<Topic>>,
    at: Option<Instant>,
    failed_at: Option<Instant>,
}

impl TopicCache {
    pub(crate) fn new(store: Arc<dyn MetadataStore>, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            topics: Mutex::new(HashMap::new()),
            listed: Mutex::new(Listed::default()),
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

    /// Forgets a topic that no longer exists, in the last list too.
    pub(crate) fn deleted(&self, name: &str) {
        self.invalidate(name);
        self.listed.lock().topics.retain(|t| t.name != name);
    }

    /// Every topic, ordered by name. While the metadata store fails or does
    /// not answer, the last list it gave together with the topics looked
    /// up by name since; the store is asked again once the topic TTL has
    /// passed since the failure, so an outage does not cost every caller
    /// a [`LOOKUP_TIMEOUT`].
    pub(crate) async fn list(&self) -> Result<Vec<Arc<Topic>>> {
        let failed_recently = self
            .listed
            .lock()
            .failed_at
            .is_some_and(|at| at.elapsed() <= self.ttl);
        let failure = if failed_recently {
            None
        } else {
            match lookup("list topics", self.store.list_topics()).await {
                Ok(topics) => return Ok(self.remember_list(topics)),
                Err(error) if error.is_retriable() => {
                    tracing::warn!(%error, "cannot list topics; answering with the last known list");
                    self.listed.lock().failed_at = Some(Instant::now());
                    Some(error)
                }
                Err(error) => return Err(error.into()),
            }
        };
        let known = self.last_known();
        if known.is_empty() && self.listed.lock().at.is_none() {
            // Never listed, nothing looked up: an empty answer would say
            // that no topic exists.
            return Err(failure.unwrap_or_else(|| timed_out("list topics")).into());
        }
        Ok(known)
    }

    fn remember_list(&self, topics: Vec<Topic>) -> Vec<Arc<Topic>> {
        let now = Instant::now();
        let topics: Vec<Arc<Topic>> = topics.into_iter().map(Arc::new).collect();
        {
            let mut cached = self.topics.lock();
            for topic in &topics {
                cached.insert(topic.name.clone(), (topic.clone(), now));
            }
        }
        *self.listed.lock() = Listed {
            topics: topics.clone(),
            at: Some(now),
            failed_at: None,
        };
        topics
    }

    /// The last list merged with topics looked up by name, the later of
    /// two copies winning.
    pub(crate) fn last_known(&self) -> Vec<Arc<Topic>> {
        let mut known: BTreeMap<String, (Arc<Topic>, Option<Instant>)> = {
            let listed = self.listed.lock();
            listed
                .topics
                .iter()
                .map(|t| (t.name.clone(), (t.clone(), listed.at)))
                .collect()
        };
        for (name, (topic, loaded)) in self.topics.lock().iter() {
            let newer = known
                .get(name)
                .is_none_or(|(_, listed_at)| listed_at.is_none_or(|at| *loaded >= at));
            if newer {
                known.insert(name.clone(), (topic.clone(), Some(*loaded)));
            }
        }
        known.into_values().map(|(topic, _)| topic).collect()
    }

    async fn load(&self, name: &str) -> Result<Arc<Topic>> {
        match lookup("get topic", self.store.get_topic(name)).await {
            Ok(topic) => {
                let topic = Arc::new(topic);
                self.topics
                    .lock()
                    .insert(name.to_string(), (topic.clone(), Instant::now()));
                Ok(topic)
            }
            // While the metadata store is unreachable, what was known keeps
            // serving, and is trusted for another TTL so that every lookup
            // does not wait for the store again.
            Err(error) if error.is_retriable() => match self.topics.lock().get_mut(name) {
                Some((topic, loaded)) => {
                    *loaded = Instant::now();
                    Ok(topic.clone())
                }
                None => Err(error.into()),
            },
            Err(error @ MetadataError::TopicNotFound { .. }) => {
                self.deleted(name);
                Err(error.into())
            }
            Err(error) => {
                self.topics.lock().remove(name);
                Err(error.into())
            }
        }
    }
}

/// `query`, or a retriable error if the store does not answer within
/// [`LOOKUP_TIMEOUT`].
async fn lookup<T>(
    operation: &'static str,
    query: impl Future<Output = Result<T, MetadataError>>,
) -> Result<T, MetadataError> {
    tokio::time::timeout(LOOKUP_TIMEOUT, query)
        .await
        .unwrap_or_else(|_| Err(timed_out(operation)))
}

fn timed_out(operation: &'static str) -> MetadataError {
    MetadataError::unavailable(
        operation,
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {} ms", LOOKUP_TIMEOUT.as_millis()),
        ),
    )
}

#[cfg(test)]
mod tests {
    use streamhouse_metadata::NewTopic;

    use super::*;

    #[tokio::test]
    async fn the_list_survives_and_forgets_only_deleted_topics() {
        let temp = streamhouse_metadata::testing::temp_sqlite()
            .await
            .expect("sqlite");
        let store: Arc<dyn MetadataStore> = Arc::new(temp.store);
        for name in ["a", "b"] {
            store
                .create_topic(NewTopic::new(name, 1))
                .await
                .expect("create");
        }
        let cache = TopicCache::new(store.clone(), Duration::from_secs(5));
        let names = |topics: Vec<Arc<Topic>>| -> Vec<String> {
            topics.iter().map(|t| t.name.clone()).collect()
        };
        assert_eq!(names(cache.list().await.expect("list")), ["a", "b"]);
        cache.invalidate("a");
        cache.deleted("b");
        assert_eq!(names(cache.last_known()), ["a"]);
    }
}
