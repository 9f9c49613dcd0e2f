//! Kafka's classic group protocol: JoinGroup, SyncGroup, Heartbeat and
//! LeaveGroup.
//!
//! The group and its state machine are in `group.rs`; each request is in
//! its own file and moves the group only through the transitions there.
//! All classic groups are behind one lock in the coordinator, and every
//! transition happens inside it.

mod group;
mod heartbeat;
mod join;
mod sync;

pub(crate) use group::{Group, GroupState};
pub(crate) use join::{JoinParams, JoinRefused, JoinResult};
pub(crate) use sync::SyncResult;

#[cfg(test)]
mod tests;
