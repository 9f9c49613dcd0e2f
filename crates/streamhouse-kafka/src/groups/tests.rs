use super::*;

const SESSION: Duration = Duration::from_secs(10);

fn params(member_id: &str, client: &str) -> JoinParams {
    JoinParams {
        group_id: "g".into(),
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: client.into(),
        client_host: "127.0.0.1".into(),
        session_timeout: SESSION,
        rebalance_timeout: Duration::from_secs(5),
        protocol_type: "consumer".into(),
        protocols: vec![
            ("range".into(), Bytes::from_static(b"meta-range")),
            ("roundrobin".into(), Bytes::from_static(b"meta-rr")),
        ],
        require_known_member_id: true,
        version: 9,
    }
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

/// The answer, ready now or once it comes.
async fn answer<T>(wait: Wait<T>) -> T {
    match wait {
        Wait::Ready(value) => value,
        Wait::Later(receiver) => receiver.await.expect("answered"),
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
    let coordinator = GroupCoordinator::new();
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
    let coordinator = GroupCoordinator::new();
    let (a, wait_a) = join_new(&coordinator, "a");
    later(wait_a).await.expect("joined");
    answer(coordinator.sync("g", 1, &a, None, None, vec![])).await;
    coordinator.expire(Instant::now() + SESSION / 2);
    assert_eq!(coordinator.describe("g").expect("group").members.len(), 1);
    coordinator.expire(Instant::now() + SESSION * 2);
    let group = coordinator.describe("g").expect("group");
    assert!(group.members.is_empty(), "expired");
    assert_eq!(group.state, "Empty");
    assert_eq!(
        coordinator.heartbeat("g", 1, &a),
        ResponseError::UnknownMemberId.code()
    );
}

#[tokio::test]
async fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout() {
    let coordinator = GroupCoordinator::new();
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
    let coordinator = GroupCoordinator::new();
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
    let coordinator = GroupCoordinator::new();
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
    assert_eq!(coordinator.remove_if_empty("g"), Ok(true));
    assert!(coordinator.describe("g").is_none());
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
    let coordinator = GroupCoordinator::new();
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
    let coordinator = GroupCoordinator::new();
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
    let coordinator = GroupCoordinator::new();
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
