//! What the shared implementation of the roles needs of a backend: its
//! pool, how it starts a write transaction, and its half of the flush
//! commit.
//!
//! Each aggregate implements its role for every `S: Backend`; the impl's
//! where-clause names what its statements bind and read (sqlx cannot say
//! "every type this database encodes" once), and both backends satisfy
//! them all.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{Database, Executor, IntoArguments, Pool, Transaction};
use streamhouse_core::clock::Clock;
use tokio::sync::broadcast;

use crate::error::{MetadataError, Result};
use crate::store::StoreHealth;
use crate::types::{CommitNotice, FlushCommit, SegmentOutcome, WatermarkNotice};

/// The little a shared statement needs that sqlx does not abstract over.
pub(crate) trait Dialect: Database {
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

impl Dialect for sqlx::Sqlite {
    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }
}

impl Dialect for sqlx::Postgres {
    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }
}

/// A SQL backend. Every role is implemented once for all of them, in the
/// aggregate's file, in terms of this trait.
#[async_trait]
pub(crate) trait Backend: Send + Sync + std::fmt::Debug + 'static {
    type Db: Dialect;

    /// Short backend name for logs and metrics.
    const BACKEND: &'static str;

    /// Appended to a SELECT inside a write transaction to keep the rows it
    /// read from changing until the transaction ends (empty where the
    /// write transaction already excludes every other writer).
    const SHARE_LOCK: &'static str;

    fn pool(&self) -> &Pool<Self::Db>;

    /// The wall clock stored times (creation, commit and tombstone times)
    /// are read from.
    fn clock(&self) -> &dyn Clock;

    /// Starts a transaction that will write, taking whatever lock the
    /// backend needs up front.
    async fn begin_write(&self, operation: &'static str) -> Result<Transaction<'static, Self::Db>>;

    /// The backend's part of a flush commit, inside `tx`: assigns offsets
    /// to the segments not in `before` (those in `refused` get that
    /// outcome unless they are duplicates) and writes the rows. Returns the
    /// outcomes and what the commit announces.
    async fn commit_flush_tx(
        &self,
        tx: &mut Transaction<'_, Self::Db>,
        flush: &FlushCommit,
        before: &HashMap<usize, (i64, i64)>,
        refused: &HashMap<usize, SegmentOutcome>,
    ) -> Result<(Vec<SegmentOutcome>, Vec<WatermarkNotice>)>;

    /// Locks the rows of `partitions` inside `tx` in the order flush
    /// commits lock them, so that a transaction updating several
    /// partitions cannot deadlock with a flush (a no-op where write
    /// transactions exclude each other).
    async fn lock_partitions_tx(
        &self,
        tx: &mut Transaction<'_, Self::Db>,
        partitions: &[(String, i32)],
    ) -> Result<()>;

    /// Where this process's commits announce their watermarks.
    fn notices(&self) -> &broadcast::Sender<CommitNotice>;

    fn subscribe_notices(&self) -> broadcast::Receiver<CommitNotice>;
}

#[async_trait]
impl<S> StoreHealth for S
where
    S: Backend,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
{
    fn backend(&self) -> &'static str {
        S::BACKEND
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query(super::PING)
            .execute(self.pool())
            .await
            .map_err(|e| MetadataError::from_sqlx("ping", e))?;
        Ok(())
    }
}
