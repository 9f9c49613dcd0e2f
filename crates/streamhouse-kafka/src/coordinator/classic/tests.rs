use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::JoinParams;
use crate::coordinator::GroupError;
use crate::coordinator::testing::{
    SESSION, answer, coordinator, in_group, join_new, later, listed, params, ready, refusal, state,
};

#[tokio::test]
async fn two_members_join_sync_and_rebalance_when_one_leaves() {
    let coordinator = coordinator();
    let (a, wait_a) = join_new(&coordinator, "a");
    let joined_a = later(wait_a).await.expect("answer");
    let joined_a = joined_a.expect("joined without an error");
    assert_eq!(joined_a.generation_id, 1);
    assert_eq!(joined_a.leader, a);
    assert_eq!(joined_a.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined_a.members.len(), 1);
    let synced = answer(coordinator.sync(
        "g",
        1,
        &a,
        None,
        None,
        vec![(a.clone(), Bytes::from_static(b"all"))],
    ))
    .await;
    let synced = synced.expect("synced without an error");
    assert_eq!(synced.assignment, Bytes::from_static(b"all"));
    assert_eq!(state(&coordinator), "Stable");

    // A second member joins: the first learns of the rebalance by heartbeat.
    let (b, wait_b) = join_new(&coordinator, "b");
    let mut wait_b = later(wait_b);
    assert!(wait_b.try_recv().is_err(), "b waits for a to rejoin");
    assert_eq!(state(&coordinator), "PreparingRebalance");
    assert_eq!(
        coordinator.heartbeat("g", 1, &a),
        Err(GroupError::RebalanceInProgress)
    );
    let rejoined_a = later(coordinator.join(params(&a, "a")))
        .await
        .expect("answer")
        .expect("joined");
    let joined_b = wait_b.await.expect("answer").expect("joined");
    assert_eq!(rejoined_a.generation_id, 2);
    assert_eq!(joined_b.generation_id, 2);
    assert_eq!(rejoined_a.leader, a, "the first member keeps leading");
    assert_eq!(rejoined_a.members.len(), 2, "the leader sees every member");
    assert!(joined_b.members.is_empty(), "followers see none");
    assert_eq!(
        rejoined_a.members[1].2,
        Bytes::from_static(b"meta-range"),
        "metadata of the selected protocol"
    );

    // The follower syncs first and waits for the leader's assignment.
    let wait_sync_b = later(coordinator.sync("g", 2, &b, Some("consumer"), Some("range"), vec![]));
    let sync_a = later(coordinator.sync(
        "g",
        2,
        &a,
        Some("consumer"),
        Some("range"),
        vec![
            (a.clone(), Bytes::from_static(b"for-a")),
            (b.clone(), Bytes::from_static(b"for-b")),
        ],
    ));
    assert_eq!(
        sync_a.await.expect("a").expect("synced").assignment,
        Bytes::from_static(b"for-a")
    );
    assert_eq!(
        wait_sync_b.await.expect("b").expect("synced").assignment,
        Bytes::from_static(b"for-b")
    );
    assert_eq!(state(&coordinator), "Stable");
    assert_eq!(coordinator.heartbeat("g", 2, &b), Ok(()));
    assert_eq!(
        coordinator.heartbeat("g", 1, &b),
        Err(GroupError::IllegalGeneration)
    );

    // The leader leaves; the survivor rejoins and leads generation 3.
    assert_eq!(
        coordinator.leave("g", std::slice::from_ref(&a)),
        vec![Ok(())]
    );
    assert_eq!(
        coordinator.heartbeat("g", 2, &b),
        Err(GroupError::RebalanceInProgress)
    );
    let rejoined_b = later(coordinator.join(params(&b, "b")))
        .await
        .expect("answer")
        .expect("joined");
    assert_eq!(rejoined_b.generation_id, 3);
    assert_eq!(rejoined_b.leader, b);
    assert_eq!(
        coordinator.leave("g", &["nobody".to_string()]),
        vec![Err(GroupError::UnknownMemberId)]
    );
}

#[tokio::test]
async fn silent_members_are_expired_after_their_session() {
    let coordinator = coordinator();
    let (a, wait_a) = join_new(&coordinator, "a");
    later(wait_a).await.expect("answer").expect("joined");
    answer(coordinator.sync("g", 1, &a, None, None, vec![]))
        .await
        .expect("synced");
    coordinator.expire(Instant::now() + SESSION / 2);
    assert_eq!(coordinator.describe("g").expect("group").members.len(), 1);
    coordinator.expire(Instant::now() + SESSION * 2);
    assert!(
        coordinator.describe("g").is_none(),
        "an empty group is forgotten"
    );
    assert_eq!(
        coordinator.heartbeat("g", 1, &a),
        Err(GroupError::UnknownMemberId)
    );
}

#[tokio::test]
async fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout() {
    let coordinator = coordinator();
    let (a, wait_a) = join_new(&coordinator, "a");
    later(wait_a).await.expect("answer").expect("joined");
    answer(coordinator.sync("g", 1, &a, None, None, vec![]))
        .await
        .expect("synced");
    let (b, wait_b) = join_new(&coordinator, "b");
    let wait_b = later(wait_b);
    // a never rejoins; after the rebalance timeout b goes on alone.
    coordinator.expire(Instant::now() + Duration::from_secs(6));
    let joined_b = wait_b.await.expect("answer").expect("joined");
    assert_eq!(joined_b.generation_id, 2);
    assert_eq!(joined_b.leader, b);
    assert_eq!(joined_b.members.len(), 1);
    assert_eq!(
        coordinator.validate_commit("g", 1, &a),
        Err(GroupError::RebalanceInProgress)
    );
}

#[tokio::test]
async fn joins_that_cannot_work_are_refused() {
    let coordinator = coordinator();
    let unknown = refusal(coordinator.join(params("made-up", "x")));
    assert_eq!(unknown.error, GroupError::UnknownMemberId);
    let (a, wait_a) = join_new(&coordinator, "a");
    later(wait_a).await.expect("answer").expect("joined");
    let mut other = params("", "c");
    other.protocols = vec![("sticky".into(), Bytes::new())];
    other.require_known_member_id = false;
    let refused = refusal(coordinator.join(other));
    assert_eq!(
        refused.error,
        GroupError::InconsistentGroupProtocol,
        "no protocol in common with {a}"
    );
    let mut v3 = params("", "d");
    v3.require_known_member_id = false;
    let mut joined = later(coordinator.join(v3));
    assert!(
        joined.try_recv().is_err(),
        "old clients join at once and wait for the rebalance"
    );
}

#[tokio::test]
async fn a_member_that_dies_during_a_rebalance_does_not_hold_it_up() {
    let coordinator = coordinator();
    let (a, wait_a) = join_new(&coordinator, "a");
    later(wait_a).await.expect("answer").expect("joined");
    answer(coordinator.sync("g", 1, &a, None, None, vec![]))
        .await
        .expect("synced");
    // b joins; a never rejoins and never heart-beats again (it crashed).
    let (_b, wait_b) = join_new(&coordinator, "b");
    let wait_b = later(wait_b);
    coordinator.expire(Instant::now() + SESSION + Duration::from_secs(1));
    let joined_b = wait_b.await.expect("answer");
    let joined_b = joined_b.expect("joined without an error");
    assert_eq!(
        joined_b.members.len(),
        1,
        "a was expired by its session, not the rebalance timeout"
    );
}

#[tokio::test]
async fn a_restarted_static_member_takes_its_place_without_a_rebalance() {
    let coordinator = coordinator();
    let static_params = |member_id: &str, client: &str| JoinParams {
        group_instance_id: Some(format!("instance-{client}")),
        ..params(member_id, client)
    };
    let joined_a = answer(coordinator.join(static_params("", "a"))).await;
    let joined_a = joined_a.expect("static members join without MEMBER_ID_REQUIRED");
    let a = joined_a.member_id.clone();
    let (b, wait_b) = join_new(&coordinator, "b");
    let mut wait_b = later(wait_b);
    assert!(wait_b.try_recv().is_err());
    let rejoined = answer(coordinator.join(static_params(&a, "a")))
        .await
        .expect("joined");
    let joined_b = wait_b.await.expect("b").expect("joined");
    assert_eq!(rejoined.generation_id, 2);
    let leader = rejoined.leader.clone();
    let follower = if leader == a { b.clone() } else { a.clone() };
    let leader_sync = later(coordinator.sync(
        "g",
        2,
        &leader,
        None,
        None,
        vec![
            (a.clone(), Bytes::from_static(b"for-a")),
            (b.clone(), Bytes::from_static(b"for-b")),
        ],
    ));
    leader_sync.await.expect("answer").expect("synced");
    answer(coordinator.sync("g", 2, &follower, None, None, vec![]))
        .await
        .expect("synced");
    assert_eq!(joined_b.generation_id, 2);

    // a restarts: no member id, same instance id.
    let restarted = answer(coordinator.join(static_params("", "a"))).await;
    let restarted = restarted.expect("joined without an error");
    assert_eq!(restarted.generation_id, 2, "no new generation");
    assert_ne!(restarted.member_id, a, "a new member id");
    assert_eq!(state(&coordinator), "Stable");
    let synced = answer(coordinator.sync("g", 2, &restarted.member_id, None, None, vec![])).await;
    assert_eq!(
        synced.expect("synced").assignment,
        Bytes::from_static(b"for-a"),
        "its old partitions"
    );
    assert_eq!(
        coordinator.heartbeat("g", 2, &b),
        Ok(()),
        "b was not disturbed"
    );
    // The old id is fenced.
    let zombie = answer(coordinator.join(static_params(&a, "a"))).await;
    assert_eq!(
        zombie.expect_err("fenced").error,
        GroupError::FencedInstanceId
    );
}

/// A stable group of two static members, "a" leading: their member ids
/// after both synced generation `generation`.
async fn stable_static_pair(
    coordinator: &crate::coordinator::GroupCoordinator,
) -> (String, String, i32) {
    let static_params = |member_id: &str, client: &str| JoinParams {
        group_instance_id: Some(format!("instance-{client}")),
        ..params(member_id, client)
    };
    let a = answer(coordinator.join(static_params("", "a")))
        .await
        .expect("a joined")
        .member_id;
    let b_wait = coordinator.join(static_params("", "b"));
    let a_rejoined = answer(coordinator.join(static_params(&a, "a")))
        .await
        .expect("a rejoined");
    let b = answer(b_wait).await.expect("b joined").member_id;
    let generation = a_rejoined.generation_id;
    assert_eq!(a_rejoined.leader, a, "the first member leads");
    answer(coordinator.sync(
        "g",
        generation,
        &a,
        None,
        None,
        vec![
            (a.clone(), Bytes::from_static(b"for-a")),
            (b.clone(), Bytes::from_static(b"for-b")),
        ],
    ))
    .await
    .expect("leader synced");
    answer(coordinator.sync("g", generation, &b, None, None, vec![]))
        .await
        .expect("follower synced");
    assert_eq!(state(coordinator), "Stable");
    (a, b, generation)
}

#[tokio::test]
async fn a_restarted_static_leader_rejoins_without_a_rebalance() {
    let coordinator = coordinator();
    let (a, b, generation) = stable_static_pair(&coordinator).await;
    let restart = |version| JoinParams {
        group_instance_id: Some("instance-a".into()),
        version,
        ..params("", "a")
    };

    // Before JoinGroup v9 the leader cannot skip the assignment: Kafka
    // names it a follower (the leader under its old id), and it syncs to
    // get its own partitions back.
    let old = answer(coordinator.join(restart(5)))
        .await
        .expect("rejoined");
    assert_eq!(old.generation_id, generation, "no new generation");
    assert_eq!((old.leader.as_str(), old.members.len()), (a.as_str(), 0));
    assert!(!old.skip_assignment);
    assert_eq!(state(&coordinator), "Stable");
    let synced = answer(coordinator.sync("g", generation, &old.member_id, None, None, vec![]))
        .await
        .expect("synced");
    assert_eq!(synced.assignment, Bytes::from_static(b"for-a"));
    assert_eq!(coordinator.heartbeat("g", generation, &b), Ok(()));

    // From v9 it leads, with every member's metadata, and is told to skip
    // the assignment.
    let new = answer(coordinator.join(restart(9)))
        .await
        .expect("rejoined");
    assert_eq!(new.generation_id, generation);
    assert_eq!(new.leader, new.member_id);
    assert_eq!(new.members.len(), 2);
    assert!(new.skip_assignment);
    assert_eq!(
        coordinator.heartbeat("g", generation, &b),
        Ok(()),
        "b undisturbed"
    );
}

#[tokio::test]
async fn refused_joins_leave_no_trace() {
    let coordinator = coordinator();
    let refusals = [
        (
            JoinParams {
                protocols: vec![],
                ..in_group("no-protocols", "x")
            },
            GroupError::InconsistentGroupProtocol,
        ),
        (
            JoinParams {
                protocol_type: String::new(),
                ..in_group("no-type", "x")
            },
            GroupError::InconsistentGroupProtocol,
        ),
        (in_group("", "x"), GroupError::InvalidGroupId),
        (
            JoinParams {
                member_id: "made-up".into(),
                ..in_group("unknown-member", "x")
            },
            GroupError::UnknownMemberId,
        ),
        (
            JoinParams {
                member_id: "made-up".into(),
                group_instance_id: Some("static".into()),
                ..in_group("unknown-static", "x")
            },
            GroupError::UnknownMemberId,
        ),
    ];
    for (request, expected) in refusals {
        let group = request.group_id.clone();
        let refused = refusal(coordinator.join(request));
        assert_eq!(refused.error, expected, "group {group:?}");
        assert!(
            coordinator.describe(&group).is_none(),
            "group {group:?} left behind"
        );
    }
    for i in 0..10_000 {
        let refused = refusal(coordinator.join(JoinParams {
            protocols: vec![],
            ..in_group(&format!("hostile-{i}"), "x")
        }));
        assert_eq!(refused.error, GroupError::InconsistentGroupProtocol);
    }
    assert!(listed(&coordinator).is_empty());

    // A join that does not fit an existing group changes nothing there.
    let (a, wait_a) = join_new(&coordinator, "a");
    answer(wait_a).await.expect("joined");
    let refused = refusal(coordinator.join(JoinParams {
        protocol_type: "connect".into(),
        require_known_member_id: false,
        ..params("", "c")
    }));
    assert_eq!(refused.error, GroupError::InconsistentGroupProtocol);
    let group = coordinator.describe("g").expect("group");
    assert_eq!(group.members.len(), 1);
    assert_eq!(group.members[0].member_id, a);
    assert_eq!(listed(&coordinator), ["g"]);
}

#[tokio::test]
async fn a_group_is_forgotten_as_soon_as_nothing_is_left_in_it() {
    let coordinator = coordinator();
    let (a, wait_a) = join_new(&coordinator, "a");
    answer(wait_a).await.expect("joined");
    assert_eq!(
        coordinator.leave("g", std::slice::from_ref(&a)),
        vec![Ok(())]
    );
    assert!(
        listed(&coordinator).is_empty(),
        "forgotten when the last member left"
    );

    // A member id handed out keeps the group until it expires unused.
    let first = refusal(coordinator.join(params("", "b")));
    assert_eq!(first.error, GroupError::MemberIdRequired);
    assert_eq!(state(&coordinator), "Empty");
    coordinator.expire(Instant::now() + SESSION - Duration::from_secs(1));
    assert_eq!(listed(&coordinator), ["g"]);
    coordinator.expire(Instant::now() + SESSION + Duration::from_secs(1));
    assert!(
        listed(&coordinator).is_empty(),
        "forgotten once the member id expired"
    );
    let late = ready(coordinator.join(params(&first.member_id, "b")));
    assert_eq!(
        late.expect_err("refused").error,
        GroupError::UnknownMemberId
    );
    assert!(listed(&coordinator).is_empty());

    // Members that all time out leave nothing either.
    let (c, wait_c) = join_new(&coordinator, "c");
    answer(wait_c).await.expect("joined");
    answer(coordinator.sync("g", 1, &c, None, None, vec![]))
        .await
        .expect("synced");
    coordinator.expire(Instant::now() + SESSION * 2);
    assert!(listed(&coordinator).is_empty());
}
