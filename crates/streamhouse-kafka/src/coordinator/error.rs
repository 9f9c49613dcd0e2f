//! Why the coordinator refused a request. The Kafka error code for each
//! is chosen in `crate::error`.

/// A refusal by the group coordinator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GroupError {
    #[error("the group id is empty")]
    InvalidGroupId,
    #[error("session timeout of {session_timeout_ms} ms is outside the coordinator's bounds")]
    InvalidSessionTimeout { session_timeout_ms: i32 },
    #[error("rebalance timeout of {rebalance_timeout_ms} ms is negative")]
    InvalidRebalanceTimeout { rebalance_timeout_ms: i32 },
    #[error("the group has no member with this id")]
    UnknownMemberId,
    /// The member was given an id and must join again with it.
    #[error("a new member must join again with the member id it was given")]
    MemberIdRequired,
    #[error("the member is not at the group's generation")]
    IllegalGeneration,
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("the protocol type or protocols do not match the group's")]
    InconsistentGroupProtocol,
    #[error("the group has reached its {max_size} members (group.max.size)")]
    GroupMaxSizeReached { max_size: usize },
    /// Retriable: room comes back as other groups empty.
    #[error("this coordinator holds its {max_groups} groups")]
    TooManyGroups { max_groups: usize },
    /// Retriable: the coordinator went away before it answered.
    #[error("the coordinator went away before answering")]
    CoordinatorNotAvailable,
    #[error("this agent is not the group's coordinator")]
    NotCoordinator,
    /// A newer member holds the static instance id.
    #[error("another member holds this group instance id")]
    FencedInstanceId,
    #[error("the group still has members")]
    NonEmptyGroup,
    /// KIP-848: the member's epoch is not the coordinator's; it must give
    /// up its partitions and join again.
    #[error(
        "member epoch {sent} is fenced (the coordinator has {current}); the member must \
         abandon its partitions and rejoin"
    )]
    FencedMemberEpoch { sent: i32, current: i32 },
    /// KIP-848: an offset commit or fetch at another epoch than the
    /// member's; it retries with the epoch of its next heartbeat.
    #[error("member epoch {sent} is stale (the member is at {current})")]
    StaleMemberEpoch { sent: i32, current: i32 },
    #[error(
        "instance id {instance_id:?} is still held by member {holder:?}, which must leave first"
    )]
    UnreleasedInstanceId { instance_id: String, holder: String },
    #[error("server assignor {name:?} is not supported (supported: uniform, range)")]
    UnsupportedAssignor { name: String },
    #[error("invalid topic regular expression: {reason}")]
    InvalidRegularExpression { reason: String },
    /// The group is of the other protocol, or unknown where it must exist.
    #[error("group {group_id:?} {reason}")]
    GroupIdNotFound {
        group_id: String,
        reason: &'static str,
    },
    #[error("{reason}")]
    UnsupportedVersion { reason: &'static str },
    /// A malformed request (Kafka's INVALID_REQUEST).
    #[error("{reason}")]
    InvalidRequest { reason: String },
    /// Another agent changed the group since this one read it, or the
    /// group's state could not be read or saved: the client retries.
    #[error("the group's state could not be read or saved: {reason}")]
    StoreUnavailable { reason: String },
}
