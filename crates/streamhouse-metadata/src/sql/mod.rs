//! SQL backends: SQLite and PostgreSQL.
//!
//! One file per aggregate (`topics`, `segments`, `producers`, `offsets`,
//! `cluster`, `objects`, `security`) holds that aggregate's statements, as constants,
//! and the implementation of its role, written once for every
//! [`backend::Backend`]. Both backends speak the same SQL except in the
//! flush commit, whose batching is backend-specific and lives in
//! `postgres.rs` and `sqlite.rs`.

mod assign;
mod backend;
mod cluster;
mod consumer_groups;
mod epochs;
mod error;
mod flush_transactions;
mod objects;
mod offsets;
mod postgres;
mod producers;
mod security;
mod segments;
mod sqlite;
mod topics;
mod transactions;

pub(crate) use assign::{
    BatchMeta, KEPT_BATCHES, LockedRow, ProducerKey, ProducerState, assign_offsets,
};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

pub(crate) const PING: &str = "SELECT 1";

pub(crate) fn limit_to_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
