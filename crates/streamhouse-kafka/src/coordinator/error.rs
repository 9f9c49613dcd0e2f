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
}
