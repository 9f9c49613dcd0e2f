//! Transactions (KIP-98): the state a transaction coordinator keeps for
//! each `transactional.id`, and the rules that move it from state to state.
//!
//! The rules are pure: a backend loads the id's row inside a write
//! transaction, asks [`decide_init`], [`decide_add`] or [`decide_end`]
//! what to do, and writes the answer back in the same transaction. Two
//! agents racing on one id are therefore serialised by the database, and
//! an agent that dies between two steps leaves a state any other agent
//! can carry on from.

/// Kafka's transaction states, stored as their codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionState {
    /// No transaction open (after InitProducerId).
    Empty,
    /// Partitions or groups were added; records may be written.
    Ongoing,
    /// EndTxn(commit) was accepted; markers are being written.
    PrepareCommit,
    /// EndTxn(abort), a timeout or a newer producer epoch aborts it;
    /// markers are being written.
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TransactionState {
    pub const ALL: [TransactionState; 6] = [
        TransactionState::Empty,
        TransactionState::Ongoing,
        TransactionState::PrepareCommit,
        TransactionState::PrepareAbort,
        TransactionState::CompleteCommit,
        TransactionState::CompleteAbort,
    ];

    pub fn code(self) -> i16 {
        match self {
            TransactionState::Empty => 0,
            TransactionState::Ongoing => 1,
            TransactionState::PrepareCommit => 2,
            TransactionState::PrepareAbort => 3,
            TransactionState::CompleteCommit => 4,
            TransactionState::CompleteAbort => 5,
        }
    }

    pub fn from_code(code: i16) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Kafka's name, as DescribeTransactions and ListTransactions give it.
    pub fn name(self) -> &'static str {
        match self {
            TransactionState::Empty => "Empty",
            TransactionState::Ongoing => "Ongoing",
            TransactionState::PrepareCommit => "PrepareCommit",
            TransactionState::PrepareAbort => "PrepareAbort",
            TransactionState::CompleteCommit => "CompleteCommit",
            TransactionState::CompleteAbort => "CompleteAbort",
        }
    }

    /// The state Kafka's name (any case) stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    /// Prepared: its markers are being written.
    pub fn is_prepared(self) -> bool {
        matches!(
            self,
            TransactionState::PrepareCommit | TransactionState::PrepareAbort
        )
    }
}

/// A `transactional.id`'s state, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionInfo {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub state: TransactionState,
    pub timeout_ms: i32,
    /// Milliseconds since the Unix epoch when the open transaction
    /// started; -1 when none is open.
    pub started_at: i64,
    pub updated_at: i64,
    /// Partitions added to the open transaction, ordered.
    pub partitions: Vec<(String, i32)>,
    /// Consumer groups added to it (AddOffsetsToTxn), ordered.
    pub groups: Vec<String>,
}

/// Why a transaction request was refused, each the Kafka error it is
/// answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionRefusal {
    /// The producer id is not the one issued to the `transactional.id`,
    /// or the id has no state (INVALID_PRODUCER_ID_MAPPING).
    ProducerIdMismatch,
    /// A newer epoch of the producer exists (PRODUCER_FENCED).
    Fenced,
    /// The previous transaction is still being completed
    /// (CONCURRENT_TRANSACTIONS; the client retries).
    Concurrent,
    /// Not allowed in the transaction's state (INVALID_TXN_STATE).
    InvalidState,
}

/// The stored fields the rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    pub(crate) state: TransactionState,
}

/// The highest epoch a producer id is given; past it the
/// `transactional.id` gets a new producer id, as in Kafka.
pub(crate) const LAST_EPOCH: i16 = i16::MAX - 1;

/// What InitProducerId does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InitDecision {
    /// A new producer id at epoch 0 (a new id, or the epochs ran out).
    NewProducerId,
    /// The same producer id at this epoch, state Empty.
    Epoch(i16),
    /// A transaction is open: it is fenced at this epoch and aborted
    /// (PrepareAbort); InitProducerId asks again once it completed.
    AbortOpen(i16),
    /// A retry of the InitProducerId that already gave this epoch.
    Current,
    Refuse(TransactionRefusal),
}

/// InitProducerId with a `transactional.id`. `expected` is the producer id
/// and epoch a client that already had one sends (KIP-360).
pub(crate) fn decide_init(stored: Option<Stored>, expected: Option<(i64, i16)>) -> InitDecision {
    let Some(stored) = stored else {
        return match expected {
            None => InitDecision::NewProducerId,
            Some(_) => InitDecision::Refuse(TransactionRefusal::ProducerIdMismatch),
        };
    };
    if stored.state.is_prepared() {
        return InitDecision::Refuse(TransactionRefusal::Concurrent);
    }
    if let Some((producer_id, epoch)) = expected {
        if producer_id != stored.producer_id {
            return InitDecision::Refuse(TransactionRefusal::ProducerIdMismatch);
        }
        if epoch != stored.producer_epoch {
            // The bump this client asked for already happened: its answer
            // was lost.
            return if stored.state == TransactionState::Empty
                && epoch.checked_add(1) == Some(stored.producer_epoch)
            {
                InitDecision::Current
            } else {
                InitDecision::Refuse(TransactionRefusal::Fenced)
            };
        }
    }
    if stored.producer_epoch >= LAST_EPOCH {
        // Out of epochs: an open transaction is aborted at the last one,
        // then the id starts over with a new producer id.
        return if stored.state == TransactionState::Ongoing {
            InitDecision::AbortOpen(stored.producer_epoch)
        } else {
            InitDecision::NewProducerId
        };
    }
    let next = stored.producer_epoch + 1;
    if stored.state == TransactionState::Ongoing {
        InitDecision::AbortOpen(next)
    } else {
        InitDecision::Epoch(next)
    }
}

/// Checks that a request comes from the id's current producer.
pub(crate) fn check_producer(
    stored: Option<Stored>,
    producer_id: i64,
    epoch: i16,
) -> Result<Stored, TransactionRefusal> {
    let stored = stored.ok_or(TransactionRefusal::ProducerIdMismatch)?;
    if stored.producer_id != producer_id {
        return Err(TransactionRefusal::ProducerIdMismatch);
    }
    if epoch != stored.producer_epoch {
        return Err(TransactionRefusal::Fenced);
    }
    Ok(stored)
}

/// AddPartitionsToTxn and AddOffsetsToTxn: whether the transaction was
/// already open (`true`), or starts now (`false`).
pub(crate) fn decide_add(
    stored: Option<Stored>,
    producer_id: i64,
    epoch: i16,
) -> Result<bool, TransactionRefusal> {
    let stored = check_producer(stored, producer_id, epoch)?;
    match stored.state {
        TransactionState::Ongoing => Ok(true),
        TransactionState::Empty
        | TransactionState::CompleteCommit
        | TransactionState::CompleteAbort => Ok(false),
        TransactionState::PrepareCommit | TransactionState::PrepareAbort => {
            Err(TransactionRefusal::Concurrent)
        }
    }
}

/// What EndTxn does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndDecision {
    /// The transaction is now prepared: write its markers, then complete
    /// it.
    Prepared,
    /// A retry: it is prepared already (its markers may still be missing,
    /// so the caller completes it, as a coordinator taking over would).
    StillPrepared,
    /// A retry of an EndTxn that completed: nothing to do.
    Completed,
}

pub(crate) fn decide_end(
    stored: Option<Stored>,
    producer_id: i64,
    epoch: i16,
    commit: bool,
) -> Result<EndDecision, TransactionRefusal> {
    let stored = check_producer(stored, producer_id, epoch)?;
    use TransactionState as S;
    match (stored.state, commit) {
        (S::Ongoing, _) => Ok(EndDecision::Prepared),
        (S::PrepareCommit, true) | (S::PrepareAbort, false) => Ok(EndDecision::StillPrepared),
        (S::CompleteCommit, true) | (S::CompleteAbort, false) => Ok(EndDecision::Completed),
        _ => Err(TransactionRefusal::InvalidState),
    }
}

/// The state EndTxn prepares.
pub(crate) fn prepared(commit: bool) -> TransactionState {
    if commit {
        TransactionState::PrepareCommit
    } else {
        TransactionState::PrepareAbort
    }
}

/// The state a prepared transaction completes in.
pub(crate) fn completed(state: TransactionState) -> Option<TransactionState> {
    match state {
        TransactionState::PrepareCommit => Some(TransactionState::CompleteCommit),
        TransactionState::PrepareAbort => Some(TransactionState::CompleteAbort),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TransactionState as S;

    fn stored(epoch: i16, state: TransactionState) -> Option<Stored> {
        Some(Stored {
            producer_id: 7,
            producer_epoch: epoch,
            state,
        })
    }

    #[test]
    fn init_bumps_the_epoch_and_aborts_an_open_transaction() {
        assert_eq!(decide_init(None, None), InitDecision::NewProducerId);
        assert_eq!(
            decide_init(stored(0, S::Empty), None),
            InitDecision::Epoch(1)
        );
        assert_eq!(
            decide_init(stored(3, S::CompleteCommit), None),
            InitDecision::Epoch(4)
        );
        assert_eq!(
            decide_init(stored(3, S::Ongoing), None),
            InitDecision::AbortOpen(4)
        );
        assert_eq!(
            decide_init(stored(3, S::PrepareCommit), None),
            InitDecision::Refuse(TransactionRefusal::Concurrent)
        );
        assert_eq!(
            decide_init(stored(LAST_EPOCH, S::Empty), None),
            InitDecision::NewProducerId
        );
        assert_eq!(
            decide_init(stored(LAST_EPOCH, S::Ongoing), None),
            InitDecision::AbortOpen(LAST_EPOCH)
        );
    }

    #[test]
    fn init_with_a_producer_id_must_name_the_current_one() {
        assert_eq!(
            decide_init(stored(3, S::Empty), Some((7, 3))),
            InitDecision::Epoch(4)
        );
        // Its earlier bump to 3 was answered but the answer was lost.
        assert_eq!(
            decide_init(stored(3, S::Empty), Some((7, 2))),
            InitDecision::Current
        );
        assert_eq!(
            decide_init(stored(3, S::Empty), Some((7, 1))),
            InitDecision::Refuse(TransactionRefusal::Fenced)
        );
        assert_eq!(
            decide_init(stored(3, S::Empty), Some((8, 3))),
            InitDecision::Refuse(TransactionRefusal::ProducerIdMismatch)
        );
        assert_eq!(
            decide_init(None, Some((8, 3))),
            InitDecision::Refuse(TransactionRefusal::ProducerIdMismatch)
        );
    }

    #[test]
    fn only_the_current_producer_adds_and_ends() {
        assert_eq!(decide_add(stored(2, S::Empty), 7, 2), Ok(false));
        assert_eq!(decide_add(stored(2, S::Ongoing), 7, 2), Ok(true));
        assert_eq!(
            decide_add(stored(2, S::Ongoing), 7, 1),
            Err(TransactionRefusal::Fenced)
        );
        assert_eq!(
            decide_add(stored(2, S::Ongoing), 9, 2),
            Err(TransactionRefusal::ProducerIdMismatch)
        );
        assert_eq!(
            decide_add(stored(2, S::PrepareAbort), 7, 2),
            Err(TransactionRefusal::Concurrent)
        );
        assert_eq!(
            decide_add(None, 7, 2),
            Err(TransactionRefusal::ProducerIdMismatch)
        );
    }

    #[test]
    fn end_prepares_once_and_answers_retries() {
        assert_eq!(
            decide_end(stored(1, S::Ongoing), 7, 1, true),
            Ok(EndDecision::Prepared)
        );
        assert_eq!(
            decide_end(stored(1, S::PrepareCommit), 7, 1, true),
            Ok(EndDecision::StillPrepared)
        );
        assert_eq!(
            decide_end(stored(1, S::CompleteAbort), 7, 1, false),
            Ok(EndDecision::Completed)
        );
        assert_eq!(
            decide_end(stored(1, S::CompleteAbort), 7, 1, true),
            Err(TransactionRefusal::InvalidState)
        );
        assert_eq!(
            decide_end(stored(1, S::Empty), 7, 1, true),
            Err(TransactionRefusal::InvalidState)
        );
        assert_eq!(
            decide_end(stored(1, S::Ongoing), 7, 0, true),
            Err(TransactionRefusal::Fenced)
        );
    }

    #[test]
    fn states_round_trip_through_codes_and_names() {
        for state in TransactionState::ALL {
            assert_eq!(TransactionState::from_code(state.code()), Some(state));
            assert_eq!(TransactionState::from_name(state.name()), Some(state));
        }
        assert_eq!(TransactionState::from_code(6), None);
        assert_eq!(
            TransactionState::from_name("ongoing"),
            Some(TransactionState::Ongoing)
        );
    }
}
