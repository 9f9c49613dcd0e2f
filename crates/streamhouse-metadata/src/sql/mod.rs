//! SQL backends: SQLite and PostgreSQL.
//!
//! One file per aggregate (`topics`, `segments`, `producers`, `offsets`,
//! `cluster`, `objects`) holds that aggregate's statements, as constants,
//! and the implementation of its role, written once and compiled into each
//! backend by that file's `impl_*!` macro. Both backends speak the same SQL
//! except in the flush commit, whose batching is backend-specific and lives
//! in `postgres.rs` and `sqlite.rs`.

mod assign;
mod cluster;
mod error;
mod objects;
mod offsets;
mod postgres;
mod producers;
mod segments;
mod sqlite;
mod topics;

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) use assign::{BatchMeta, KEPT_BATCHES, ProducerKey, ProducerState, assign_offsets};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

pub(crate) const PING: &str = "SELECT 1";

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn limit_to_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Implements [`crate::StoreHealth`] for a backend with `self.pool` and
/// `Self::BACKEND`.
macro_rules! impl_store_health {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::StoreHealth for $store {
            fn backend(&self) -> &'static str {
                Self::BACKEND
            }

            async fn ping(&self) -> $crate::Result<()> {
                sqlx::query($crate::sql::PING)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| $crate::MetadataError::from_sqlx("ping", e))?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_store_health;

/// Implements every role for a backend: `$store` has `self.pool` (a pool of
/// `$db`), `self.notices`, `Self::BACKEND`, `begin_write()`,
/// `commit_flush_tx()` and `subscribe_notices()`.
macro_rules! impl_roles {
    ($store:ty, $db:ty) => {
        $crate::sql::impl_store_health!($store, $db);
        $crate::sql::topics::impl_topic_catalog!($store, $db);
        $crate::sql::segments::impl_segment_log!($store, $db);
        $crate::sql::producers::impl_producer_registry!($store, $db);
        $crate::sql::cluster::impl_cluster_registry!($store, $db);
        $crate::sql::objects::impl_object_ledger!($store, $db);
        $crate::sql::offsets::impl_group_offsets!($store, $db);
    };
}

pub(crate) use impl_roles;
