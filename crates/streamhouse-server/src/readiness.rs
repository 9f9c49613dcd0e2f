//! Cheap checks that the metadata store and the object store answer, used
//! by `GET /ready` and once at startup.
//!
//! The object store check lists a prefix that never holds objects: one
//! request, no data transferred, and unlike a HEAD of a missing key it
//! fails when the bucket is missing (S3 answers a HEAD with 404 either
//! way) or when a local directory cannot be read.

use std::time::Duration;

use object_store::path::Path;
use streamhouse_metadata::MetadataStore;
use streamhouse_storage::ObjectStorage;

use crate::config::one_line;

/// Longest a readiness check may take before it counts as failed.
pub(crate) const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Prefix listed by the object store check; StreamHouse never writes there.
const PROBE_PREFIX: &str = "streamhouse-readiness-probe";

/// `Ok` when the metadata store answers a trivial query in time.
pub(crate) async fn check_metadata(metadata: &dyn MetadataStore) -> Result<(), String> {
    match tokio::time::timeout(CHECK_TIMEOUT, metadata.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(one_line(&error.to_string())),
        Err(_) => Err(format!("no answer within {}s", CHECK_TIMEOUT.as_secs())),
    }
}

/// `Ok` when the object store answers a listing in time.
pub(crate) async fn check_object_store(storage: &ObjectStorage) -> Result<(), String> {
    let store = storage.store();
    let prefix = Path::from(storage.key(PROBE_PREFIX));
    match tokio::time::timeout(CHECK_TIMEOUT, store.list_with_delimiter(Some(&prefix))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(one_line(&error.to_string())),
        Err(_) => Err(format!("no answer within {}s", CHECK_TIMEOUT.as_secs())),
    }
}
