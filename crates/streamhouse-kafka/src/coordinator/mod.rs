//! The consumer group coordinator.
//!
//! Group membership lives in memory; committed offsets live in the
//! metadata store, so a restarted coordinator re-forms groups from them.
//! A refused request comes back as a [`GroupError`]; its Kafka error code
//! is chosen in `crate::error`.
//!
//! - `group_coordinator.rs`: [`GroupCoordinator`], the handle the Kafka
//!   handlers and the HTTP API share: construction, the timer, shutdown,
//!   list/describe and DeleteGroups.
//! - `classic/`: Kafka's classic protocol (JoinGroup, SyncGroup, Heartbeat,
//!   LeaveGroup): the group state machine and one file per request.
//! - `offsets.rs`: whether an OffsetCommit may commit; offset expiry.
//! - `limits.rs`: [`GroupLimits`] and the checks that apply them.
//! - `error.rs`: [`GroupError`].
//!
//! - `consumer/`: Kafka's consumer protocol (KIP-848's
//!   ConsumerGroupHeartbeat, server-side assignors), whose groups live in
//!   the metadata store so that any agent can take them over.
//!
//! A group id belongs to one protocol at a time: a classic group with
//! members refuses consumer-protocol heartbeats and the other way round;
//! an empty group of either kind is taken over by the other.

mod classic;
pub(crate) mod consumer;
mod error;
mod group_coordinator;
mod limits;
mod offsets;
#[cfg(test)]
mod testing;

use tokio::sync::oneshot;

pub(crate) use classic::{JoinParams, JoinRefused, JoinResult, SyncResult};
pub(crate) use error::GroupError;
pub(crate) use group_coordinator::OffsetDeleteScope;
pub use group_coordinator::{GroupCoordinator, GroupSummary, MemberSummary};
pub use limits::GroupLimits;

/// An answer that is ready, or one that comes when the group moves on.
pub(crate) enum Wait<T> {
    Ready(T),
    Later(oneshot::Receiver<T>),
}
