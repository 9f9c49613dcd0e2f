use super::*;
use streamhouse_metadata::{GroupOffsets, TopicCatalog};

const SESSION: Duration = Duration::from_secs(10);

fn params(member_id: &str, client: &str) -> JoinParams {
    JoinParams {
        group_id: "g".into(),
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: client.into(),
        client_host: "127.0.0.1".into(),
        session_timeout_ms: ms(SESSION),
        rebalance_timeout_ms: 5_000,
        protocol_type: "consumer".into(),
        protocols: vec![
            ("range".into(), Bytes::from_static(b"meta-range")),
            ("roundrobin".into(), Bytes::from_static(b"meta-rr")),
        ],
        require_known_member_id: true,
        version: 9,
    }
}

fn ms(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).expect("fits a Kafka timeout")
}

fn coordinator() -> GroupCoordinator {
    GroupCoordinator::new(GroupLimits::default())
}

fn ready<T>(wait: Wait<T>) -> T {
    match wait {
        Wait::Ready(value) => value,
        Wait::Later(_) => panic!("expected an immediate answer"),
    }
}

fn later<T>(wait: Wait<T>) -> oneshot::Receiver<T> {
    match wait {
        Wait::Later(receiver) => receiver,
        Wait::Ready(_) => panic!("expected to wait"),
    }
}

/// The answer, ready now or once it comes (a test that would wait for
/// ever fails instead).
async fn answer<T>(wait: Wait<T>) -> T {
    match wait {
        Wait::Ready(value) => value,
        Wait::Later(receiver) => tokio::time::timeout(Duration::from_secs(5), receiver)
            .await
            .expect("answered in time")
            .expect("answered"),
    }
}

/// A new member: MEMBER_ID_REQUIRED, then a join with that id.
fn join_new(coordinator: &GroupCoordinator, client: &str) -> (String, Wait<JoinOutcome>) {
    let first = ready(coordinator.join(params("", client)));
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    assert!(first.member_id.starts_with(client));
    let member_id = first.member_id.clone();
    (
        member_id.clone(),
        coordinator.join(params(&member_id, client)),
    )
}

fn state(coordinator: &GroupCoordinator) -> String {
    coordinator.describe("g").expect("group").state
}

#[tokio::test]
async fn two_members_join_sync_and_rebalance_when_one_leaves() {
    let coordinator = coordinator();
    let (a, wait_a) = join_new(&coordinator, "a");
    let joined_a = later(wait_a).await.expect("answer");
    assert_eq!(joined_a.error_code, 0);
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
    assert_eq!(synced.error_code, 0);
    assert_eq!(synced.assignment, Bytes::from_static(b"all"));
    assert_eq!(state(&coordinator), "Stable");

    // A second member joins: the first learns of the rebalance by heartbeat.
    let (b, wait_b) = join_new(&coordinator, "b");
    let mut wait_b = later(wait_b);
    assert!(wait_b.try_recv().is_err(), "b waits for a to rejoin");
    assert_eq!(state(&coordinator), "PreparingRebalance");
    assert_eq!(
        coordinator.heartbeat("g", 1, &a),
        ResponseError::RebalanceInProgress.code()
    );
    let rejoined_a = later(coordinator.join(params(&a, "a")))
        .await
        .expect("answer");
    let joined_b = wait_b.await.expect("answer");
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
        sync_a.await.expect("a").assignment,
        Bytes::from_static(b"for-a")
    );
    assert_eq!(
        wait_sync_b.await.expect("b").assignment,
        Bytes::from_static(b"for-b")
    );
    assert_eq!(state(&coordinator), "Stable");
    assert_eq!(coordinator.heartbeat("g", 2, &b), 0);
    assert_eq!(
        coordinator.heartbeat("g", 1, &b),
        ResponseError::IllegalGeneration.code()
    );

    // The leader leaves; the survivor rejoins and leads generation 3.
    assert_eq!(coordinator.leave("g", std::slice::from_ref(&a)), vec![0]);
    assert_eq!(
        coordinator.heartbeat("g", 2, &b),
        ResponseError::RebalanceInProgress.code()
    );
    let rejoined_b = later(coordinator.join(params(&b, "b")))
        .await
        .expect("answer");
    assert_eq!(rejoined_b.generation_id, 3);
    assert_eq!(rejoined_b.leader, b);
    assert_eq!(
        coordinator.leave("g", &["nobody".to_string()]),
        vec![ResponseError::UnknownMemberId.code()]
    );
}

#[tokio::test]
async fn silent_members_are_expired_after_their_session() {
    let coordinator = coordinator();
    let (a, wait_a) = join_new(&coordinator, "a");
    later(wait_a).await.expect("joined");
    answer(coordinator.sync("g", 1, &a, None, None, vec![])).await;
    coordinator.expire(Instant::now() + SESSION / 2);
    assert_eq!(coordinator.describe("g").expect("group").members.len(), 1);
    coordinator.expire(Instant::now() + SESSION * 2);
    assert!(
        coordinator.describe("g").is_none(),
        "an empty group is forgotten"
    );
    assert_eq!(
        coordinator.heartbeat("g", 1, &a),
        ResponseError::UnknownMemberId.code()
    );
}

#[tokio::test]
async fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout() {
    let coordinator = coordinator();
    let (a, wait_a) = join_new(&coordinator, "a");
    later(wait_a).await.expect("joined");
    answer(coordinator.sync("g", 1, &a, None, None, vec![])).await;
    let (b, wait_b) = join_new(&coordinator, "b");
    let wait_b = later(wait_b);
    // a never rejoins; after the rebalance timeout b goes on alone.
    coordinator.expire(Instant::now() + Duration::from_secs(6));
    let joined_b = wait_b.await.expect("answer");
    assert_eq!(joined_b.generation_id, 2);
    assert_eq!(joined_b.leader, b);
    assert_eq!(joined_b.members.len(), 1);
    assert_eq!(
        coordinator.validate_commit("g", 1, &a),
        Err(ResponseError::RebalanceInProgress.code())
    );
}

#[tokio::test]
async fn joins_that_cannot_work_are_refused() {
    let coordinator = coordinator();
    let unknown = ready(coordinator.join(params("made-up", "x")));
    assert_eq!(unknown.error_code, ResponseError::UnknownMemberId.code());
    let (a, wait_a) = join_new(&coordinator, "a");
    later(wait_a).await.expect("joined");
    let mut other = params("", "c");
    other.protocols = vec![("sticky".into(), Bytes::new())];
    other.require_known_member_id = false;
    let refused = ready(coordinator.join(other));
    assert_eq!(
        refused.error_code,
        ResponseError::InconsistentGroupProtocol.code(),
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
async fn commits_are_checked_against_the_generation() {
    let coordinator = coordinator();
    assert_eq!(coordinator.validate_commit("standalone", -1, ""), Ok(()));
    assert_eq!(
        coordinator.validate_commit("standalone", 3, "m"),
        Err(ResponseError::IllegalGeneration.code())
    );
    let (a, wait_a) = join_new(&coordinator, "a");
    later(wait_a).await.expect("joined");
    assert_eq!(
        coordinator.validate_commit("g", 1, &a),
        Err(ResponseError::RebalanceInProgress.code()),
        "while completing the rebalance"
    );
    answer(coordinator.sync("g", 1, &a, None, None, vec![])).await;
    assert_eq!(coordinator.validate_commit("g", 1, &a), Ok(()));
    assert_eq!(
        coordinator.validate_commit("g", 0, &a),
        Err(ResponseError::IllegalGeneration.code())
    );
    assert_eq!(
        coordinator.validate_commit("g", 1, "stranger"),
        Err(ResponseError::UnknownMemberId.code())
    );
    assert_eq!(
        coordinator.remove_if_empty("g"),
        Err(ResponseError::NonEmptyGroup.code())
    );
    coordinator.leave("g", &[a]);
    assert!(
        coordinator.describe("g").is_none(),
        "forgotten when the last member left"
    );
    assert_eq!(coordinator.remove_if_empty("g"), Ok(false));
    let (_b, _wait_b) = join_new(&coordinator, "b");
    assert_eq!(
        coordinator.remove_if_empty("g"),
        Err(ResponseError::NonEmptyGroup.code())
    );
}

#[test]
fn consumer_assignments_decode() {
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let mut assignment = ConsumerProtocolAssignment::default();
    assignment.assigned_partitions = vec![{
        let mut tp = TopicPartition::default();
        tp.topic = kafka_protocol::messages::TopicName(StrBytes::from_static_str("orders"));
        tp.partitions = vec![0, 2];
        tp
    }];
    let mut buf = bytes::BytesMut::new();
    bytes::BufMut::put_i16(&mut buf, 1);
    assignment.encode(&mut buf, 1).expect("encode");
    assert_eq!(
        decode_assignment(&buf.freeze()),
        vec![("orders".to_string(), vec![0, 2])]
    );
    assert!(decode_assignment(&Bytes::from_static(b"\x00")).is_empty());
    assert!(decode_assignment(&Bytes::from_static(b"\x00\x01\xff\xff\xff")).is_empty());
}

#[tokio::test]
async fn a_member_that_dies_during_a_rebalance_does_not_hold_it_up() {
    let coordinator = coordinator();
    let (a, wait_a) = join_new(&coordinator, "a");
    later(wait_a).await.expect("joined");
    answer(coordinator.sync("g", 1, &a, None, None, vec![])).await;
    // b joins; a never rejoins and never heart-beats again (it crashed).
    let (_b, wait_b) = join_new(&coordinator, "b");
    let wait_b = later(wait_b);
    coordinator.expire(Instant::now() + SESSION + Duration::from_secs(1));
    let joined_b = wait_b.await.expect("answer");
    assert_eq!(joined_b.error_code, 0);
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
    let a = joined_a.member_id.clone();
    assert_eq!(
        joined_a.error_code, 0,
        "static members join without MEMBER_ID_REQUIRED"
    );
    let (b, wait_b) = join_new(&coordinator, "b");
    let mut wait_b = later(wait_b);
    assert!(wait_b.try_recv().is_err());
    let rejoined = answer(coordinator.join(static_params(&a, "a"))).await;
    let joined_b = wait_b.await.expect("b");
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
    leader_sync.await.expect("synced");
    answer(coordinator.sync("g", 2, &follower, None, None, vec![])).await;
    assert_eq!(joined_b.generation_id, 2);

    // a restarts: no member id, same instance id.
    let restarted = answer(coordinator.join(static_params("", "a"))).await;
    assert_eq!(restarted.error_code, 0);
    assert_eq!(restarted.generation_id, 2, "no new generation");
    assert_ne!(restarted.member_id, a, "a new member id");
    assert_eq!(state(&coordinator), "Stable");
    let synced = answer(coordinator.sync("g", 2, &restarted.member_id, None, None, vec![])).await;
    assert_eq!(
        synced.assignment,
        Bytes::from_static(b"for-a"),
        "its old partitions"
    );
    assert_eq!(coordinator.heartbeat("g", 2, &b), 0, "b was not disturbed");
    // The old id is fenced.
    let zombie = answer(coordinator.join(static_params(&a, "a"))).await;
    assert_eq!(zombie.error_code, ResponseError::FencedInstanceId.code());
}

#[tokio::test]
async fn stopping_answers_waiting_requests() {
    let coordinator = coordinator();
    let (a, wait_a) = join_new(&coordinator, "a");
    later(wait_a).await.expect("joined");
    answer(coordinator.sync("g", 1, &a, None, None, vec![])).await;
    let (_b, wait_b) = join_new(&coordinator, "b");
    let wait_b = later(wait_b);
    let stop = CancellationToken::new();
    let timer = coordinator.start(stop.clone());
    stop.cancel();
    let answered = tokio::time::timeout(Duration::from_secs(5), wait_b)
        .await
        .expect("answered promptly")
        .expect("answer");
    assert_eq!(answered.error_code, ResponseError::NotCoordinator.code());
    timer.await.expect("timer stops");
}

/// A new member of `template.group_id`: MEMBER_ID_REQUIRED, then a join
/// with that id.
fn join_new_as(
    coordinator: &GroupCoordinator,
    template: &JoinParams,
) -> (String, Wait<JoinOutcome>) {
    let first = ready(coordinator.join(JoinParams {
        member_id: String::new(),
        ..template.clone()
    }));
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    let member_id = first.member_id.clone();
    let joined = coordinator.join(JoinParams {
        member_id: member_id.clone(),
        ..template.clone()
    });
    (member_id, joined)
}

fn in_group(group: &str, client: &str) -> JoinParams {
    JoinParams {
        group_id: group.into(),
        ..params("", client)
    }
}

fn listed(coordinator: &GroupCoordinator) -> Vec<String> {
    coordinator.list().into_iter().map(|g| g.group_id).collect()
}

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
        let refused = ready(coordinator.join(JoinParams {
            session_timeout_ms,
            rebalance_timeout_ms: session_timeout_ms,
            ..params("", "hostile")
        }));
        assert_eq!(
            refused.error_code,
            ResponseError::InvalidSessionTimeout.code(),
            "session timeout {session_timeout_ms} ms"
        );
        assert!(
            listed(&coordinator).is_empty(),
            "{session_timeout_ms} ms left a group"
        );
    }
    // The bounds themselves are allowed.
    for (group, session_timeout_ms) in [("at-min", min), ("at-max", max)] {
        let accepted = ready(coordinator.join(JoinParams {
            session_timeout_ms,
            ..in_group(group, "ok")
        }));
        assert_eq!(
            accepted.error_code,
            ResponseError::MemberIdRequired.code(),
            "{group}"
        );
    }
    // The group the hostile join named is not wedged: a normal member
    // forms it at once.
    let (a, wait_a) = join_new(&coordinator, "a");
    let joined = answer(wait_a).await;
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    assert_eq!(joined.leader, a);
}

#[tokio::test]
async fn negative_rebalance_timeouts_are_refused_and_long_ones_are_capped() {
    let coordinator = coordinator();
    for rebalance_timeout_ms in [-1, i32::MIN] {
        let refused = ready(coordinator.join(JoinParams {
            rebalance_timeout_ms,
            ..params("", "hostile")
        }));
        assert_eq!(
            refused.error_code,
            ResponseError::InvalidRequest.code(),
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
        assert_eq!(answer(wait).await.error_code, 0, "{group}");
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
    answer(wait_a).await;
    answer(coordinator.sync("g", 1, &a, None, None, vec![])).await;
    let (b, wait_b) = join_new(&coordinator, "b");
    let mut wait_b = later(wait_b);
    let started = Instant::now();
    coordinator.expire(started + bound - Duration::from_secs(1));
    assert!(wait_b.try_recv().is_err(), "b still waits for a to rejoin");
    coordinator.expire(started + bound + Duration::from_millis(200));
    let joined_b = wait_b.try_recv().expect("answered at the bound");
    assert_eq!(joined_b.generation_id, 2);
    assert_eq!(joined_b.leader, b);
    assert_eq!(joined_b.members.len(), 1, "a was left out, not waited for");
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
            ResponseError::InconsistentGroupProtocol,
        ),
        (
            JoinParams {
                protocol_type: String::new(),
                ..in_group("no-type", "x")
            },
            ResponseError::InconsistentGroupProtocol,
        ),
        (in_group("", "x"), ResponseError::InvalidGroupId),
        (
            JoinParams {
                member_id: "made-up".into(),
                ..in_group("unknown-member", "x")
            },
            ResponseError::UnknownMemberId,
        ),
        (
            JoinParams {
                member_id: "made-up".into(),
                group_instance_id: Some("static".into()),
                ..in_group("unknown-static", "x")
            },
            ResponseError::UnknownMemberId,
        ),
    ];
    for (request, expected) in refusals {
        let group = request.group_id.clone();
        let refused = ready(coordinator.join(request));
        assert_eq!(refused.error_code, expected.code(), "group {group:?}");
        assert!(
            coordinator.describe(&group).is_none(),
            "group {group:?} left behind"
        );
    }
    for i in 0..10_000 {
        let refused = ready(coordinator.join(JoinParams {
            protocols: vec![],
            ..in_group(&format!("hostile-{i}"), "x")
        }));
        assert_eq!(
            refused.error_code,
            ResponseError::InconsistentGroupProtocol.code()
        );
    }
    assert!(listed(&coordinator).is_empty());

    // A join that does not fit an existing group changes nothing there.
    let (a, wait_a) = join_new(&coordinator, "a");
    answer(wait_a).await;
    let refused = ready(coordinator.join(JoinParams {
        protocol_type: "connect".into(),
        require_known_member_id: false,
        ..params("", "c")
    }));
    assert_eq!(
        refused.error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
    let group = coordinator.describe("g").expect("group");
    assert_eq!(group.members.len(), 1);
    assert_eq!(group.members[0].member_id, a);
    assert_eq!(listed(&coordinator), ["g"]);
}

#[tokio::test]
async fn a_group_is_forgotten_as_soon_as_nothing_is_left_in_it() {
    let coordinator = coordinator();
    let (a, wait_a) = join_new(&coordinator, "a");
    answer(wait_a).await;
    assert_eq!(coordinator.leave("g", std::slice::from_ref(&a)), vec![0]);
    assert!(
        listed(&coordinator).is_empty(),
        "forgotten when the last member left"
    );

    // A member id handed out keeps the group until it expires unused.
    let first = ready(coordinator.join(params("", "b")));
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    assert_eq!(state(&coordinator), "Empty");
    coordinator.expire(Instant::now() + SESSION - Duration::from_secs(1));
    assert_eq!(listed(&coordinator), ["g"]);
    coordinator.expire(Instant::now() + SESSION + Duration::from_secs(1));
    assert!(
        listed(&coordinator).is_empty(),
        "forgotten once the member id expired"
    );
    let late = ready(coordinator.join(params(&first.member_id, "b")));
    assert_eq!(late.error_code, ResponseError::UnknownMemberId.code());
    assert!(listed(&coordinator).is_empty());

    // Members that all time out leave nothing either.
    let (c, wait_c) = join_new(&coordinator, "c");
    answer(wait_c).await;
    answer(coordinator.sync("g", 1, &c, None, None, vec![])).await;
    coordinator.expire(Instant::now() + SESSION * 2);
    assert!(listed(&coordinator).is_empty());
}

#[tokio::test]
async fn groups_per_coordinator_are_bounded() {
    let coordinator = GroupCoordinator::new(GroupLimits {
        max_groups: 2,
        ..GroupLimits::default()
    });
    for group in ["g1", "g2"] {
        let accepted = ready(coordinator.join(in_group(group, "a")));
        assert_eq!(accepted.error_code, ResponseError::MemberIdRequired.code());
    }
    let refused = ready(coordinator.join(in_group("g3", "a")));
    assert_eq!(
        refused.error_code,
        ResponseError::CoordinatorNotAvailable.code(),
        "retriable: the client tries again later"
    );
    assert_eq!(listed(&coordinator), ["g1", "g2"]);
    // Groups that exist still take members.
    let long_session = JoinParams {
        session_timeout_ms: ms(SESSION * 3),
        ..in_group("g1", "b")
    };
    let (_, joined) = join_new_as(&coordinator, &long_session);
    assert_eq!(answer(joined).await.error_code, 0);
    // Room comes back once a group is gone.
    coordinator.expire(Instant::now() + SESSION + Duration::from_secs(1));
    assert_eq!(
        listed(&coordinator),
        ["g1"],
        "g2 had only an unused member id"
    );
    let accepted = ready(coordinator.join(in_group("g3", "a")));
    assert_eq!(accepted.error_code, ResponseError::MemberIdRequired.code());
}

#[tokio::test]
async fn members_per_group_are_bounded() {
    let coordinator = GroupCoordinator::new(GroupLimits {
        max_group_size: 2,
        ..GroupLimits::default()
    });
    assert_eq!(GroupLimits::default().max_group_size, 1_000);
    // Member ids handed out count: two are out, a third would exceed.
    let a = ready(coordinator.join(params("", "a"))).member_id;
    let b = ready(coordinator.join(params("", "b"))).member_id;
    let refused = ready(coordinator.join(params("", "c")));
    assert_eq!(
        refused.error_code,
        ResponseError::GroupMaxSizeReached.code()
    );
    assert_eq!(
        refused.member_id, "",
        "no member id for a member that was refused"
    );
    // Those two join.
    answer(coordinator.join(params(&a, "a"))).await;
    let mut wait_b = later(coordinator.join(params(&b, "b")));
    let rejoined_a = answer(coordinator.join(params(&a, "a"))).await;
    assert_eq!(
        rejoined_a.error_code, 0,
        "a member of a full group may rejoin"
    );
    assert_eq!(wait_b.try_recv().expect("b joined").generation_id, 2);
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
        let refused = ready(coordinator.join(request));
        assert_eq!(
            refused.error_code,
            ResponseError::GroupMaxSizeReached.code()
        );
    }
    assert_eq!(coordinator.describe("g").expect("group").members.len(), 2);
    // Once a member leaves there is room again.
    coordinator.leave("g", std::slice::from_ref(&b));
    let accepted = ready(coordinator.join(params("", "c")));
    assert_eq!(accepted.error_code, ResponseError::MemberIdRequired.code());
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

async fn store_with_topic() -> streamhouse_metadata::testing::TempSqlite {
    let temp = streamhouse_metadata::testing::temp_sqlite()
        .await
        .expect("sqlite");
    temp.store
        .create_topic(streamhouse_metadata::NewTopic::new("t", 1))
        .await
        .expect("topic");
    temp
}

async fn commit(store: &dyn MetadataStore, group: &str, offset: i64) -> i64 {
    let commit = streamhouse_metadata::OffsetCommit {
        topic: "t".into(),
        partition: 0,
        offset,
        metadata: None,
    };
    store
        .commit_offsets(group, &[commit])
        .await
        .expect("commit");
    store.fetch_offsets(group).await.expect("fetch")[0].committed_at
}

async fn offsets(store: &dyn MetadataStore, group: &str) -> Vec<i64> {
    let committed = store.fetch_offsets(group).await.expect("fetch");
    committed.into_iter().map(|o| o.offset).collect()
}

#[tokio::test]
async fn offsets_expire_once_the_group_was_empty_for_the_retention() {
    let temp = store_with_topic().await;
    let store = &temp.store;
    let coordinator = coordinator();
    let retention = GroupLimits::default().offsets_retention;
    let retention_ms = i64::try_from(retention.as_millis()).expect("ms");
    assert_eq!(retention_ms, 10_080 * 60 * 1000, "Kafka's 7 days");
    let mine = |_: &str| true;

    let (a, wait_a) = join_new(&coordinator, "a");
    answer(wait_a).await;
    let committed_at = commit(store, "g", 42).await;
    let t0 = Instant::now();
    let far = committed_at + 100 * DAY_MS;
    // A group with a member keeps its offsets, however old.
    let expired = coordinator.expire_offsets(store, &mine, t0 + retention * 2, far);
    assert_eq!(expired.await.expect("pass"), 0);

    coordinator.leave("g", &[a]);
    // Empty from the first check that sees it so.
    let t1 = t0 + Duration::from_secs(1);
    assert_eq!(
        coordinator
            .expire_offsets(store, &mine, t1, far)
            .await
            .expect("pass"),
        0
    );
    let almost = t1 + retention - Duration::from_millis(1);
    assert_eq!(
        coordinator
            .expire_offsets(store, &mine, almost, far)
            .await
            .expect("pass"),
        0
    );
    assert_eq!(offsets(store, "g").await, [42]);
    // Empty long enough, but the offset was committed exactly a retention
    // period ago: it stays; a millisecond later it goes.
    let long_enough = t1 + retention;
    let at_cutoff = committed_at + retention_ms;
    let pass = coordinator.expire_offsets(store, &mine, long_enough, at_cutoff);
    assert_eq!(pass.await.expect("pass"), 0);
    let pass = coordinator.expire_offsets(store, &mine, long_enough, at_cutoff + 1);
    assert_eq!(pass.await.expect("pass"), 1);
    assert!(offsets(store, "g").await.is_empty());
    assert!(store.list_groups().await.expect("groups").is_empty());
}

#[tokio::test]
async fn offsets_stay_while_the_group_comes_back_or_is_another_agents() {
    let temp = store_with_topic().await;
    let store = &temp.store;
    let coordinator = coordinator();
    let retention = GroupLimits::default().offsets_retention;
    let mine = |group: &str| group != "elsewhere";
    commit(store, "back", 7).await;
    let wall = commit(store, "elsewhere", 7).await + 30 * DAY_MS;
    let t0 = Instant::now();
    let pass = coordinator.expire_offsets(store, &mine, t0, wall);
    assert_eq!(pass.await.expect("pass"), 0);
    // "back" gets a member again between two checks: its empty time
    // starts over at the next check.
    let (a, joined) = join_new_as(&coordinator, &in_group("back", "a"));
    answer(joined).await;
    coordinator.leave("back", &[a]);
    let t1 = t0 + retention;
    let pass = coordinator.expire_offsets(store, &mine, t1, wall);
    assert_eq!(pass.await.expect("pass"), 0);
    assert_eq!(offsets(store, "back").await, [7]);
    let pass = coordinator.expire_offsets(store, &mine, t1 + retention, wall);
    assert_eq!(
        pass.await.expect("pass"),
        1,
        "back, a retention period later"
    );
    // "elsewhere" is another agent's to expire.
    assert_eq!(store.list_groups().await.expect("groups"), ["elsewhere"]);
}

#[tokio::test]
async fn the_expiry_timer_removes_offsets_of_empty_groups() {
    let temp = store_with_topic().await;
    let store: Arc<dyn MetadataStore> = Arc::new(temp.store.clone());
    let coordinator = GroupCoordinator::new(GroupLimits {
        offsets_retention: Duration::from_millis(50),
        offsets_retention_check_interval: Duration::from_millis(10),
        ..GroupLimits::default()
    });
    let (_a, wait_a) = join_new(&coordinator, "a");
    answer(wait_a).await;
    commit(store.as_ref(), "g", 1).await;
    commit(store.as_ref(), "abandoned", 2).await;
    let stop = CancellationToken::new();
    let me = crate::cluster::Agent {
        agent_id: "me".into(),
        node_id: 0,
        host: "127.0.0.1".into(),
        port: 9092,
        zone: None,
    };
    // Alone in the cluster, this agent coordinates every group.
    let cluster = Cluster::new(store.clone(), me, Duration::from_secs(10));
    let timer = coordinator.start_offset_expiry(store.clone(), cluster, stop.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !offsets(store.as_ref(), "abandoned").await.is_empty() {
        assert!(Instant::now() < deadline, "offsets did not expire");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(offsets(store.as_ref(), "g").await, [1], "g has a member");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), timer)
        .await
        .expect("the timer stops")
        .expect("no panic");
}
