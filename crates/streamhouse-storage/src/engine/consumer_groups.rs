//! The engine's door to the stored state of consumer groups of Kafka's
//! consumer protocol (KIP-848), which their coordinator keeps here so that
//! any agent can take a group over.

use streamhouse_metadata::{
    ConsumerGroupListing, ConsumerGroupRecord, ConsumerGroupSave, MetadataError,
};

use super::StorageEngine;
use crate::error::Result;
use crate::topics::LOOKUP_TIMEOUT;

impl StorageEngine {
    /// The group with its members, if stored. Fails with a retriable error
    /// when the metadata store does not answer within seconds, so that a
    /// member's heartbeat is answered in time.
    pub async fn load_consumer_group(&self, group_id: &str) -> Result<Option<ConsumerGroupRecord>> {
        Ok(within_lookup_timeout(
            "load consumer group",
            self.inner.metadata.load_consumer_group(group_id),
        )
        .await?)
    }

    /// Saves one change of a group; `None` when the stored group is no
    /// longer at the version the change was computed from.
    pub async fn save_consumer_group(&self, save: &ConsumerGroupSave) -> Result<Option<i64>> {
        Ok(within_lookup_timeout(
            "save consumer group",
            self.inner.metadata.save_consumer_group(save),
        )
        .await?)
    }

    /// Removes a group at `expected_version`; whether it did.
    pub async fn delete_consumer_group(
        &self,
        group_id: &str,
        expected_version: i64,
    ) -> Result<bool> {
        Ok(within_lookup_timeout(
            "delete consumer group",
            self.inner
                .metadata
                .delete_consumer_group(group_id, expected_version),
        )
        .await?)
    }

    /// Every stored group with its state and member count.
    pub async fn list_consumer_groups(&self) -> Result<Vec<ConsumerGroupListing>> {
        Ok(within_lookup_timeout(
            "list consumer groups",
            self.inner.metadata.list_consumer_groups(),
        )
        .await?)
    }

    /// The stored group's version, if stored: whether a held copy is
    /// still the latest.
    pub async fn consumer_group_version(&self, group_id: &str) -> Result<Option<i64>> {
        Ok(within_lookup_timeout(
            "consumer group version",
            self.inner.metadata.consumer_group_version(group_id),
        )
        .await?)
    }
}

/// `query`, or a retriable error once [`LOOKUP_TIMEOUT`] has passed. A save
/// that timed out may still commit; its version then no longer matches and
/// the coordinator reloads.
async fn within_lookup_timeout<T>(
    operation: &'static str,
    query: impl std::future::Future<Output = std::result::Result<T, MetadataError>>,
) -> std::result::Result<T, MetadataError> {
    tokio::time::timeout(LOOKUP_TIMEOUT, query)
        .await
        .unwrap_or_else(|_| {
            Err(MetadataError::unavailable(
                operation,
                format!("no answer within {} s", LOOKUP_TIMEOUT.as_secs()),
            ))
        })
}
