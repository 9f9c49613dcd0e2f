//! Consumer groups of Kafka's consumer protocol (KIP-848) as their
//! coordinator stores them: the group's epochs, the topics its members
//! subscribe to, and each member's subscription, epoch and assignments.
//!
//! The invariant that matters: a save names the version it was computed
//! from, and is refused when the stored group has moved on. Two agents
//! that both believe they coordinate a group (while their views of the
//! cluster differ) therefore never interleave their changes: the one that
//! lost reloads and sends its members to the coordinator again.

use serde::{Deserialize, Serialize};

/// A group as stored, with every member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupRecord {
    pub group_id: String,
    /// Moves by one with every save; a save names the version it read.
    pub version: i64,
    /// Kafka's group epoch: bumped when a member joins, leaves or changes
    /// its subscription, or when a subscribed topic changes.
    pub group_epoch: i32,
    /// The group epoch the target assignment was computed for.
    pub assignment_epoch: i32,
    /// Kafka's state name as of the last save (`Empty`, `Assigning`,
    /// `Reconciling`, `Stable`), for listings that do not load the group.
    pub state: String,
    /// The subscribed topics that existed when the group epoch was last
    /// bumped, with their ids and partition counts.
    pub subscribed_topics: Vec<SubscribedTopic>,
    pub members: Vec<ConsumerGroupMemberRecord>,
}

/// A topic some member subscribes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribedTopic {
    pub name: String,
    pub topic_id: String,
    pub partitions: i32,
}

/// Partitions of one topic, named by the topic's id as the protocol names
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignedPartitions {
    pub topic_id: String,
    pub partitions: Vec<i32>,
}

/// A member as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerGroupMemberRecord {
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// The principal of the member's connection (`User:NAME`), for
    /// authorizing what a pattern subscription matches.
    #[serde(default)]
    pub principal: Option<String>,
    pub rebalance_timeout_ms: i32,
    /// `group.remote.assignor`, when the member names one.
    pub server_assignor: Option<String>,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    /// `stable`, `unrevoked_partitions` or `unreleased_partitions`.
    pub state: String,
    /// Partitions the member owns now.
    pub assigned: Vec<AssignedPartitions>,
    /// Partitions the member was asked to give up and has not yet.
    pub pending_revocation: Vec<AssignedPartitions>,
    /// What the assignor gave the member at the assignment epoch.
    pub target: Vec<AssignedPartitions>,
}

/// One change to a group, saved in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupSave {
    pub group_id: String,
    /// The version the change was computed from; `None` for a group that
    /// is not stored yet.
    pub expected_version: Option<i64>,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub state: String,
    pub subscribed_topics: Vec<SubscribedTopic>,
    /// Members added or changed.
    pub upserted: Vec<ConsumerGroupMemberRecord>,
    /// Ids of members that left.
    pub removed: Vec<String>,
}

/// A stored group as listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupListing {
    pub group_id: String,
    pub state: String,
    pub members: i64,
}
