use std::sync::Arc;

use crate::error::{MetadataError, Result};
use crate::sql::{PostgresStore, SqliteStore};
use crate::store::MetadataStore;

/// Opens the metadata store named by a URL: `sqlite://PATH` or
/// `postgres://…` (also `postgresql://…`). Migrations are applied.
pub async fn open(url: &str) -> Result<Arc<dyn MetadataStore>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else {
        Err(MetadataError::InvalidUrl {
            url: url.to_string(),
            reason: "expected sqlite://PATH or postgres://…".into(),
        })
    }
}
