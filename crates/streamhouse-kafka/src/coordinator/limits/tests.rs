use std::time::Duration;

use tokio::time::Instant;

use super::GroupLimits;
use crate::coordinator::testing::{
    SESSION, answer, coordinator, in_group, join_new, join_new_as, later, listed, ms, params,
    refusal,
};
use crate::coordinator::{GroupCoordinator, GroupError, JoinParams};
use crate::error::group_error_code;

#[tokio::test]
async fn session_timeouts_outside_the_bounds_are_refused_and_leave_nothing() {
    let coordinator = coordinator();
    let limits = GroupLimits::default();
    let (min, max) = (
        ms(limits.min_session_timeout),
        ms(limits.max_session_timeout),
    );
    assert_eq!((min, max), (6_000, 1_800_000), "Kafka's defaults");
    for session_timeout_ms in [min - 1, max + 1, 0, -1, i32::MIN, i32::MAX] {
        let refused = refusal(coordinator.join(JoinParams {
            session_timeout_ms,
            rebalance_timeout_ms: session_timeout_ms,
            ..params("", "hostile")
        }));
        assert_eq!(
            refused.error,
            GroupError::InvalidSessionTimeout { session_timeout_ms },
            "session timeout {session_timeout_ms} ms"
        );
        assert!(
            listed(&coordinator).is_empty(),
            "{session_timeout_ms} ms left a group"
        );
    }
    // The bounds themselves are allowed.
    for (group, session_timeout_ms) in [("at-min", min), ("at-max", max)] {
        let accepted = refusal(coordinator.join(JoinParams {
            session_timeout_ms,
            ..in_group(group, "ok")
        }));
        assert_eq!(accepted.error, GroupError::MemberIdRequired, "{group}");
    }
    // The group the hostile join named is not wedged: a normal member
    // forms it at once.
    let (a, wait_a) = join_new(&coordinator, "a");
    let joined = answer(wait_a).await.expect("joined without an error");
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, a);
}

#[tokio::test]
async fn negative_rebalance_timeouts_are_refused_and_long_ones_are_capped() {
    let coordinator = coordinator();
    for rebalance_timeout_ms in [-1, i32::MIN] {
        let refused = refusal(coordinator.join(JoinParams {
            rebalance_timeout_ms,
            ..params("", "hostile")
        }));
        assert_eq!(
            refused.error,
            GroupError::InvalidRebalanceTimeout {
                rebalance_timeout_ms
            },
            "rebalance timeout {rebalance_timeout_ms} ms"
        );
        assert!(listed(&coordinator).is_empty());
    }
    for (group, rebalance_timeout_ms) in [("zero", 0), ("huge", i32::MAX)] {
        let (_, wait) = join_new_as(
            &coordinator,
            &JoinParams {
                rebalance_timeout_ms,
                ..in_group(group, "ok")
            },
        );
        assert!(answer(wait).await.is_ok(), "{group}");
    }
}

#[tokio::test]
async fn the_coordinator_waits_for_rejoins_no_longer_than_its_bound() {
    let bound = Duration::from_secs(60);
    let coordinator = GroupCoordinator::new(GroupLimits {
        max_rebalance_timeout: bound,
        ..GroupLimits::default()
    });
    // a asks to be waited for 24 days, and keeps its session (30 min).
    let patient = JoinParams {
        session_timeout_ms: 1_800_000,
        rebalance_timeout_ms: i32::MAX,
        ..params("", "a")
    };
    let (a, wait_a) = join_new_as(&coordinator, &patient);
    answer(wait_a).await.expect("joined");
    answer(coordinator.sync("g", 1, &a, None, None, vec![]))
        .await
        .expect("synced");
    let (b, wait_b) = join_new(&coordinator, "b");
    let mut wait_b = later(wait_b);
    let started = Instant::now();
    coordinator.expire(started + bound - Duration::from_secs(1));
    assert!(wait_b.try_recv().is_err(), "b still waits for a to rejoin");
    coordinator.expire(started + bound + Duration::from_millis(200));
    let joined_b = wait_b
        .try_recv()
        .expect("answered at the bound")
        .expect("joined");
    assert_eq!(joined_b.generation_id, 2);
    assert_eq!(joined_b.leader, b);
    assert_eq!(joined_b.members.len(), 1, "a was left out, not waited for");
}

#[tokio::test]
async fn groups_per_coordinator_are_bounded() {
    let coordinator = GroupCoordinator::new(GroupLimits {
        max_groups: 2,
        ..GroupLimits::default()
    });
    for group in ["g1", "g2"] {
        let accepted = refusal(coordinator.join(in_group(group, "a")));
        assert_eq!(accepted.error, GroupError::MemberIdRequired);
    }
    let refused = refusal(coordinator.join(in_group("g3", "a")));
    assert_eq!(refused.error, GroupError::TooManyGroups { max_groups: 2 });
    assert_eq!(
        group_error_code(&refused.error),
        kafka_protocol::ResponseError::CoordinatorNotAvailable.code(),
        "retriable: the client tries again later"
    );
    assert_eq!(listed(&coordinator), ["g1", "g2"]);
    // Groups that exist still take members.
    let long_session = JoinParams {
        session_timeout_ms: ms(SESSION * 3),
        ..in_group("g1", "b")
    };
    let (_, joined) = join_new_as(&coordinator, &long_session);
    assert!(answer(joined).await.is_ok());
    // Room comes back once a group is gone.
    coordinator.expire(Instant::now() + SESSION + Duration::from_secs(1));
    assert_eq!(
        listed(&coordinator),
        ["g1"],
        "g2 had only an unused member id"
    );
    let accepted = refusal(coordinator.join(in_group("g3", "a")));
    assert_eq!(accepted.error, GroupError::MemberIdRequired);
}

#[tokio::test]
async fn members_per_group_are_bounded() {
    let coordinator = GroupCoordinator::new(GroupLimits {
        max_group_size: 2,
        ..GroupLimits::default()
    });
    assert_eq!(GroupLimits::default().max_group_size, 1_000);
    // Member ids handed out count: two are out, a third would exceed.
    let a = refusal(coordinator.join(params("", "a"))).member_id;
    let b = refusal(coordinator.join(params("", "b"))).member_id;
    let refused = refusal(coordinator.join(params("", "c")));
    assert_eq!(
        refused.error,
        GroupError::GroupMaxSizeReached { max_size: 2 }
    );
    assert_eq!(
        refused.member_id, "",
        "no member id for a member that was refused"
    );
    // Those two join.
    answer(coordinator.join(params(&a, "a")))
        .await
        .expect("joined");
    let mut wait_b = later(coordinator.join(params(&b, "b")));
    let rejoined_a = answer(coordinator.join(params(&a, "a"))).await;
    assert!(rejoined_a.is_ok(), "a member of a full group may rejoin");
    assert_eq!(
        wait_b
            .try_recv()
            .expect("b joined")
            .expect("joined")
            .generation_id,
        2
    );
    for request in [
        params("", "c"),
        JoinParams {
            group_instance_id: Some("instance-c".into()),
            ..params("", "c")
        },
        JoinParams {
            require_known_member_id: false,
            ..params("", "c")
        },
    ] {
        let refused = refusal(coordinator.join(request));
        assert_eq!(
            refused.error,
            GroupError::GroupMaxSizeReached { max_size: 2 }
        );
    }
    assert_eq!(coordinator.describe("g").expect("group").members.len(), 2);
    // Once a member leaves there is room again.
    coordinator.leave("g", std::slice::from_ref(&b));
    let accepted = refusal(coordinator.join(params("", "c")));
    assert_eq!(accepted.error, GroupError::MemberIdRequired);
}
