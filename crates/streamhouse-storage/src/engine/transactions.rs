//! The engine's transaction coordinator (KIP-98): every step of a
//! transaction's life is a metadata transaction, and markers go through
//! the normal flush commit, so any agent can serve any `transactional.id`
//! and finish what a dead agent started.
//!
//! Ending a transaction is two steps. The first prepares it (its state
//! says PrepareCommit or PrepareAbort; nothing new can join it). Then a
//! marker is written to every partition where the producer's transaction
//! is open, and the transaction completes, moving staged offsets into the
//! groups' committed offsets on commit. An agent that dies between the
//! steps leaves a prepared transaction: the next InitProducerId or EndTxn
//! for the id, or the expiry sweep, writes the markers still missing (only
//! partitions still open get one) and completes it.

use futures::future::try_join_all;
use streamhouse_metadata::{
    AbortedTransaction, EndDecision, InitTransaction, OffsetCommit, PartitionInfo,
    TransactionBatch, TransactionInfo, TransactionRefusal, TransactionState,
};

use super::StorageEngine;
use crate::error::{Result, StorageError};

/// How often InitProducerId aborts an open transaction and asks again
/// before it answers CONCURRENT_TRANSACTIONS.
const INIT_ATTEMPTS: usize = 3;

/// What a transaction request answers: done, or Kafka's reason not to.
pub type TransactionOutcome<T> = Result<std::result::Result<T, TransactionRefusal>>;

impl StorageEngine {
    /// InitProducerId with a `transactional.id`: its producer id and a new
    /// epoch, after aborting a transaction the previous epoch left open.
    pub async fn init_transaction(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> TransactionOutcome<(i64, i16)> {
        for _ in 0..INIT_ATTEMPTS {
            let answer = self
                .inner
                .metadata
                .init_transaction(transactional_id, timeout_ms, expected)
                .await?;
            match answer {
                Ok(InitTransaction::Ready {
                    producer_id,
                    producer_epoch,
                }) => return Ok(Ok((producer_id, producer_epoch))),
                Ok(InitTransaction::Aborting(info)) => {
                    tracing::info!(
                        transactional_id,
                        producer_id = info.producer_id,
                        "aborting the transaction a previous producer epoch left open"
                    );
                    self.complete_transaction(&info).await?;
                }
                // A prepared transaction some agent may have left: finish
                // it here rather than wait for the sweep.
                Err(TransactionRefusal::Concurrent) => {
                    match self
                        .inner
                        .metadata
                        .describe_transaction(transactional_id)
                        .await?
                    {
                        Some(info) if info.state.is_prepared() => {
                            self.complete_transaction(&info).await?;
                        }
                        _ => return Ok(Err(TransactionRefusal::Concurrent)),
                    }
                }
                Err(refusal) => return Ok(Err(refusal)),
            }
        }
        Ok(Err(TransactionRefusal::Concurrent))
    }

    /// AddPartitionsToTxn.
    pub async fn add_transaction_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> TransactionOutcome<()> {
        Ok(self
            .inner
            .metadata
            .add_transaction_partitions(transactional_id, producer_id, producer_epoch, partitions)
            .await?)
    }

    /// AddOffsetsToTxn.
    pub async fn add_transaction_group(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group: &str,
    ) -> TransactionOutcome<()> {
        Ok(self
            .inner
            .metadata
            .add_transaction_group(transactional_id, producer_id, producer_epoch, group)
            .await?)
    }

    /// TxnOffsetCommit: offsets that become the group's when the
    /// transaction commits.
    pub async fn stage_transaction_offsets(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group: &str,
        offsets: &[OffsetCommit],
    ) -> TransactionOutcome<()> {
        Ok(self
            .inner
            .metadata
            .stage_transaction_offsets(
                transactional_id,
                producer_id,
                producer_epoch,
                group,
                offsets,
            )
            .await?)
    }

    /// EndTxn: commits or aborts the open transaction, answering once its
    /// markers are durable and its offsets applied.
    pub async fn end_transaction(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> TransactionOutcome<()> {
        let answer = self
            .inner
            .metadata
            .end_transaction(transactional_id, producer_id, producer_epoch, commit)
            .await?;
        match answer {
            Ok((EndDecision::Prepared | EndDecision::StillPrepared, info)) => {
                self.complete_transaction(&info).await?;
                Ok(Ok(()))
            }
            Ok((EndDecision::Completed, _)) => Ok(Ok(())),
            Err(refusal) => Ok(Err(refusal)),
        }
    }

    /// Every `transactional.id`'s state (without partitions and groups).
    pub async fn list_transactions(&self) -> Result<Vec<TransactionInfo>> {
        Ok(self.inner.metadata.list_transactions().await?)
    }

    /// One `transactional.id`'s state with its partitions and groups.
    pub async fn describe_transaction(
        &self,
        transactional_id: &str,
    ) -> Result<Option<TransactionInfo>> {
        Ok(self
            .inner
            .metadata
            .describe_transaction(transactional_id)
            .await?)
    }

    /// The aborted transactions whose records reach into `from..=to` of a
    /// partition, ordered by first offset (what a read_committed Fetch of
    /// that range carries).
    pub async fn aborted_transactions(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        to: i64,
    ) -> Result<Vec<AbortedTransaction>> {
        Ok(self
            .inner
            .metadata
            .aborted_transactions(topic, partition, from, to)
            .await?)
    }

    /// The partition's range as the metadata store has it now, refreshing
    /// the engine's cached copy.
    pub async fn refreshed_partition_info(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<PartitionInfo> {
        Ok(self.inner.watermarks.refresh(topic, partition).await?)
    }

    /// Aborts transactions open longer than their timeout, completes
    /// prepared ones left for `stale_ms` (their agent died between the two
    /// steps), and forgets transactional ids idle for `id_expiration_ms`
    /// (Kafka's `transactional.id.expiration.ms`), for the ids `mine`
    /// selects (those this agent coordinates). Returns how many
    /// transactions it ended.
    pub async fn expire_transactions(
        &self,
        stale_ms: i64,
        id_expiration_ms: i64,
        mine: impl Fn(&str) -> bool,
    ) -> Result<usize> {
        let now = self.inner.clock.now_ms();
        let mut ended = 0;
        for info in self.inner.metadata.list_transactions().await? {
            if !mine(&info.transactional_id) {
                continue;
            }
            let expired = info.state == TransactionState::Ongoing
                && info.started_at >= 0
                && info.started_at.saturating_add(i64::from(info.timeout_ms)) <= now;
            if expired {
                let fenced = self
                    .inner
                    .metadata
                    .abort_open_transaction(
                        &info.transactional_id,
                        info.producer_id,
                        info.producer_epoch,
                    )
                    .await?;
                if let Some(fenced) = fenced {
                    tracing::info!(transactional_id = %fenced.transactional_id,
                        producer_id = fenced.producer_id, timeout_ms = fenced.timeout_ms,
                        "aborting a transaction that timed out");
                    metrics::counter!("streamhouse_transactions_timed_out_total").increment(1);
                    self.complete_transaction(&fenced).await?;
                    ended += 1;
                }
            } else if info.state.is_prepared()
                && info.updated_at.saturating_add(stale_ms) <= now
                && let Some(info) = self
                    .inner
                    .metadata
                    .describe_transaction(&info.transactional_id)
                    .await?
                    .filter(|i| i.state.is_prepared())
            {
                tracing::info!(transactional_id = %info.transactional_id,
                    state = info.state.name(), "completing a transaction left prepared");
                self.complete_transaction(&info).await?;
                ended += 1;
            } else if matches!(
                info.state,
                TransactionState::Empty
                    | TransactionState::CompleteCommit
                    | TransactionState::CompleteAbort
            ) && info.updated_at.saturating_add(id_expiration_ms) <= now
                && self
                    .inner
                    .metadata
                    .forget_transactional_id(
                        &info.transactional_id,
                        now.saturating_sub(id_expiration_ms),
                    )
                    .await?
            {
                tracing::info!(transactional_id = %info.transactional_id,
                    "forgot a transactional id idle longer than transactional.id.expiration.ms");
                metrics::counter!("streamhouse_transactional_ids_expired_total").increment(1);
            }
        }
        Ok(ended)
    }

    /// Writes the markers of a prepared transaction to every partition
    /// where it is still open, then completes it.
    async fn complete_transaction(&self, info: &TransactionInfo) -> Result<()> {
        let commit = match info.state {
            TransactionState::PrepareCommit => true,
            TransactionState::PrepareAbort => false,
            _ => return Ok(()),
        };
        let marker = TransactionBatch {
            producer_id: info.producer_id,
            producer_epoch: info.producer_epoch,
            commit: Some(commit),
        };
        let open = self
            .inner
            .metadata
            .open_transaction_partitions(info.producer_id)
            .await?;
        try_join_all(
            open.iter().map(|(topic, partition)| async move {
                match self.append_marker(topic, *partition, marker).await {
                    // Deleted meanwhile, and its transactions with it.
                    Ok(_)
                    | Err(
                        StorageError::UnknownTopic { .. } | StorageError::UnknownPartition { .. },
                    ) => Ok(()),
                    Err(error) => Err(error),
                }
            }),
        )
        .await?;
        let completed = self
            .inner
            .metadata
            .complete_transaction(
                &info.transactional_id,
                info.producer_id,
                info.producer_epoch,
            )
            .await?;
        if completed {
            let outcome = if commit { "commit" } else { "abort" };
            metrics::counter!("streamhouse_transactions_total", "outcome" => outcome).increment(1);
        }
        Ok(())
    }
}
