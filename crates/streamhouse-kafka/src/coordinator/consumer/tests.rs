//! The consumer group protocol against a real engine on SQLite: joins,
//! incremental revocation, static members, fencing, coordinator moves.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use streamhouse_metadata::testing::{TempSqlite, temp_sqlite};
use streamhouse_storage::{NewTopic, ObjectStorage, StorageConfig, StorageEngine};
use uuid::Uuid;

use super::{Assignment, ConsumerGroupState, ConsumerGroups, HeartbeatAnswer, HeartbeatRequest};
use crate::coordinator::{GroupError, GroupLimits};

struct Harness {
    engine: StorageEngine,
    groups: ConsumerGroups,
    _sqlite: TempSqlite,
    _objects: tempfile::TempDir,
}

impl Harness {
    async fn start(limits: GroupLimits, topics: &[(&str, i64)]) -> Self {
        let sqlite = temp_sqlite().await.expect("sqlite");
        let objects = tempfile::tempdir().expect("tempdir");
        let storage = ObjectStorage::local(objects.path()).expect("local");
        let engine = StorageEngine::start(
            Arc::new(sqlite.store.clone()),
            storage,
            StorageConfig::default(),
        );
        for (name, partitions) in topics {
            engine
                .create_topic(NewTopic::new(*name, *partitions))
                .await
                .expect("create topic");
        }
        let groups = ConsumerGroups::new(engine.clone(), limits);
        Self {
            engine,
            groups,
            _sqlite: sqlite,
            _objects: objects,
        }
    }

    /// Another agent's coordinator over the same store.
    fn other_coordinator(&self) -> ConsumerGroups {
        ConsumerGroups::new(self.engine.clone(), GroupLimits::default())
    }

    async fn topic_id(&self, name: &str) -> Uuid {
        let topic = self.engine.topic(name).await.expect("topic");
        Uuid::parse_str(&topic.topic_id).expect("uuid")
    }
}

fn join(member: &str, topics: &[&str]) -> HeartbeatRequest {
    HeartbeatRequest {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(topics.iter().map(|t| t.to_string()).collect()),
        owned: Some(Assignment::new()),
        client_id: format!("client-{member}"),
        client_host: "/127.0.0.1".into(),
        ..HeartbeatRequest::default()
    }
}

fn beat(member: &str, epoch: i32, owned: Option<Assignment>) -> HeartbeatRequest {
    HeartbeatRequest {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned,
        client_id: format!("client-{member}"),
        client_host: "/127.0.0.1".into(),
        ..HeartbeatRequest::default()
    }
}

fn set(topic: Uuid, partitions: &[i32]) -> Assignment {
    let mut set = Assignment::new();
    if !partitions.is_empty() {
        set.insert(topic, partitions.iter().copied().collect());
    }
    set
}

fn partitions(answer: &HeartbeatAnswer, topic: Uuid) -> Vec<i32> {
    answer
        .assignment
        .as_ref()
        .expect("an assignment in the answer")
        .get(&topic)
        .map(|p| p.iter().copied().collect())
        .unwrap_or_default()
}

async fn ok(groups: &ConsumerGroups, request: HeartbeatRequest) -> HeartbeatAnswer {
    groups
        .heartbeat(request, false)
        .await
        .expect("heartbeat accepted")
}

/// Two members share four partitions; m1 joined first and held all four,
/// so m2's come to it only once m1 has revoked them.
async fn two_members(h: &Harness) -> Uuid {
    let orders = h.topic_id("orders").await;
    let first = ok(&h.groups, join("m1", &["orders"])).await;
    assert_eq!(
        (first.member_epoch, partitions(&first, orders)),
        (1, vec![0, 1, 2, 3])
    );
    assert_eq!(first.heartbeat_interval_ms, 5_000);

    let second = ok(&h.groups, join("m2", &["orders"])).await;
    assert_eq!(second.member_epoch, 2);
    assert_eq!(
        partitions(&second, orders),
        Vec::<i32>::new(),
        "m1 still owns m2's partitions"
    );

    // m1 is asked to give up two partitions and stays at epoch 1 ...
    let revoke = ok(&h.groups, beat("m1", 1, Some(set(orders, &[0, 1, 2, 3])))).await;
    assert_eq!(revoke.member_epoch, 1);
    let kept = partitions(&revoke, orders);
    assert_eq!(kept.len(), 2);
    // ... and moves to epoch 2 once it reports having done so.
    let revoked = ok(&h.groups, beat("m1", 1, Some(set(orders, &kept)))).await;
    assert_eq!(revoked.member_epoch, 2);
    assert!(revoked.assignment.is_none(), "nothing changed for m1");

    let released = ok(&h.groups, beat("m2", 2, Some(Assignment::new()))).await;
    let mut gained = partitions(&released, orders);
    assert_eq!(gained.len(), 2);
    gained.extend(&kept);
    gained.sort();
    assert_eq!(gained, [0, 1, 2, 3], "every partition once");
    orders
}

#[tokio::test]
async fn a_joining_member_gets_its_share_after_the_owner_revokes() {
    let h = Harness::start(GroupLimits::default(), &[("orders", 4)]).await;
    two_members(&h).await;
    let described = h
        .groups
        .describe("g")
        .await
        .unwrap()
        .expect("a consumer group");
    assert_eq!(described.state, ConsumerGroupState::Stable);
    assert_eq!((described.group_epoch, described.assignment_epoch), (2, 2));
    assert_eq!(described.assignor, "uniform");
    assert_eq!(described.members.len(), 2);
    for member in &described.members {
        assert_eq!(member.member_epoch, 2);
        assert_eq!(member.assignment, member.target);
        assert_eq!(member.assignment[0].1, "orders");
    }
}

#[tokio::test]
async fn a_new_coordinator_carries_on_at_the_same_epochs() {
    let h = Harness::start(GroupLimits::default(), &[("orders", 4)]).await;
    let orders = two_members(&h).await;
    let before = h.groups.describe("g").await.unwrap().unwrap();
    // The coordinator dies; another agent takes the group over from the
    // store. The members heartbeat there at the epochs they have.
    let next = h.other_coordinator();
    let m1 = ok(&next, beat("m1", 2, None)).await;
    assert_eq!(m1.member_epoch, 2);
    let full = beat("m2", 2, Some(Assignment::new()));
    let m2 = ok(
        &next,
        HeartbeatRequest {
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["orders".into()]),
            ..full
        },
    )
    .await;
    assert_eq!(m2.member_epoch, 2);
    let after = next.describe("g").await.unwrap().unwrap();
    assert_eq!(after.group_epoch, before.group_epoch, "no rebalance");
    for (old, new) in before.members.iter().zip(&after.members) {
        assert_eq!(old.assignment, new.assignment);
    }
    assert_eq!(partitions(&m2, orders).len(), 2);
}

#[tokio::test]
async fn a_stale_coordinator_reloads_instead_of_overwriting() {
    let h = Harness::start(GroupLimits::default(), &[("orders", 4)]).await;
    let orders = two_members(&h).await;
    // Another agent took over and saw m3 join; the old coordinator still
    // holds the group at epoch 2.
    let next = h.other_coordinator();
    let m3 = ok(&next, join("m3", &["orders"])).await;
    assert_eq!(m3.member_epoch, 3);
    // m3 now heartbeats to the old coordinator at epoch 3: its copy does
    // not know m3, so it reads the store again rather than fence m3.
    let again = ok(&h.groups, beat("m3", 3, Some(Assignment::new()))).await;
    assert_eq!(again.member_epoch, 3);
    // And a change it makes is saved on top of the other agent's.
    let leave = ok(&h.groups, beat("m3", -1, None)).await;
    assert_eq!(leave.member_epoch, -1);
    let stored = h.engine.load_consumer_group("g").await.unwrap().unwrap();
    let ids: Vec<&str> = stored
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert_eq!(ids, ["m1", "m2"]);
    assert_eq!(stored.group_epoch, 4);
    let _ = orders;
}

#[tokio::test]
async fn epochs_are_fenced_as_kafka_fences_them() {
    let h = Harness::start(GroupLimits::default(), &[("orders", 4)]).await;
    let orders = h.topic_id("orders").await;
    ok(&h.groups, join("m1", &["orders"])).await;
    let err = h.groups.heartbeat(beat("m1", 5, None), false).await;
    assert!(
        matches!(
            err,
            Err(GroupError::FencedMemberEpoch {
                sent: 5,
                current: 1
            })
        ),
        "{err:?}"
    );
    ok(&h.groups, join("m2", &["orders"])).await;
    // m1 revokes and reaches epoch 2; a retry of its epoch-1 heartbeat
    // (the answer was lost) owning only what it keeps is accepted.
    let revoke = ok(&h.groups, beat("m1", 1, Some(set(orders, &[0, 1, 2, 3])))).await;
    let kept = partitions(&revoke, orders);
    ok(&h.groups, beat("m1", 1, Some(set(orders, &kept)))).await;
    let retry = ok(&h.groups, beat("m1", 1, Some(set(orders, &kept)))).await;
    assert_eq!(retry.member_epoch, 2);
    let err = h
        .groups
        .heartbeat(beat("m1", 1, Some(set(orders, &[0, 1, 2, 3]))), false)
        .await;
    assert!(
        matches!(err, Err(GroupError::FencedMemberEpoch { .. })),
        "{err:?}"
    );
    let err = h.groups.heartbeat(beat("nobody", 1, None), false).await;
    assert_eq!(err, Err(GroupError::UnknownMemberId));
}

#[tokio::test]
async fn a_member_leaving_hands_its_partitions_to_the_others() {
    let h = Harness::start(GroupLimits::default(), &[("orders", 4)]).await;
    let orders = two_members(&h).await;
    let left = ok(&h.groups, beat("m2", -1, None)).await;
    assert_eq!(left.member_epoch, -1);
    let m1 = ok(&h.groups, beat("m1", 2, None)).await;
    assert_eq!(m1.member_epoch, 3);
    assert_eq!(partitions(&m1, orders), [0, 1, 2, 3]);
    let err = h.groups.heartbeat(beat("m2", 2, None), false).await;
    assert_eq!(err, Err(GroupError::UnknownMemberId));
}

#[tokio::test]
async fn silent_members_are_fenced_when_their_session_ends() {
    let limits = GroupLimits {
        consumer_session_timeout: Duration::from_millis(300),
        consumer_heartbeat_interval: Duration::from_millis(100),
        ..GroupLimits::default()
    };
    let h = Harness::start(limits, &[("orders", 4)]).await;
    let orders = h.topic_id("orders").await;
    ok(&h.groups, join("m1", &["orders"])).await;
    ok(&h.groups, join("m2", &["orders"])).await;
    // m1 keeps heart-beating; m2 goes silent.
    let mut epoch = 1;
    let mut owned = set(orders, &[0, 1, 2, 3]);
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        h.groups.tick(&|_| true, tokio::time::Instant::now());
        let answer = ok(&h.groups, beat("m1", epoch, Some(owned.clone()))).await;
        epoch = answer.member_epoch;
        if let Some(assigned) = answer.assignment {
            owned = assigned;
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let described = h.groups.describe("g").await.unwrap().unwrap();
    let members: Vec<&str> = described
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert_eq!(members, ["m1"], "m2's session ended");
    assert_eq!(owned, set(orders, &[0, 1, 2, 3]));
}

#[tokio::test]
async fn a_static_member_that_restarts_keeps_its_partitions_without_a_rebalance() {
    let h = Harness::start(GroupLimits::default(), &[("orders", 4)]).await;
    let orders = h.topic_id("orders").await;
    let static_join = |member: &str, instance: &str| HeartbeatRequest {
        instance_id: Some(instance.into()),
        ..join(member, &["orders"])
    };
    ok(&h.groups, static_join("a-1", "instance-a")).await;
    ok(&h.groups, static_join("b-1", "instance-b")).await;
    // Settle: a revokes, b gets its share.
    let revoke = ok(
        &h.groups,
        HeartbeatRequest {
            instance_id: Some("instance-a".into()),
            ..beat("a-1", 1, Some(set(orders, &[0, 1, 2, 3])))
        },
    )
    .await;
    let a_kept = partitions(&revoke, orders);
    ok(
        &h.groups,
        HeartbeatRequest {
            instance_id: Some("instance-a".into()),
            ..beat("a-1", 1, Some(set(orders, &a_kept)))
        },
    )
    .await;
    let b = ok(
        &h.groups,
        HeartbeatRequest {
            instance_id: Some("instance-b".into()),
            ..beat("b-1", 2, Some(Assignment::new()))
        },
    )
    .await;
    let b_has = partitions(&b, orders);
    let before = h.groups.describe("g").await.unwrap().unwrap();
    assert_eq!(before.state, ConsumerGroupState::Stable);

    // b restarts: it leaves with -2, and comes back as b-2.
    let left = ok(
        &h.groups,
        HeartbeatRequest {
            instance_id: Some("instance-b".into()),
            ..beat("b-1", -2, None)
        },
    )
    .await;
    assert_eq!(left.member_epoch, -2);
    // While b is away nobody gets its partitions.
    let a = ok(
        &h.groups,
        HeartbeatRequest {
            instance_id: Some("instance-a".into()),
            ..beat("a-1", 2, Some(set(orders, &a_kept)))
        },
    )
    .await;
    assert_eq!(a.member_epoch, 2);
    // A second instance with the same id cannot join meanwhile... once b
    // is back it holds the id again.
    let back = ok(&h.groups, static_join("b-2", "instance-b")).await;
    assert_eq!(back.member_epoch, 2, "same epoch: no rebalance");
    assert_eq!(partitions(&back, orders), b_has);
    let err = h
        .groups
        .heartbeat(static_join("b-3", "instance-b"), false)
        .await;
    assert!(
        matches!(err, Err(GroupError::UnreleasedInstanceId { .. })),
        "{err:?}"
    );
    let after = h.groups.describe("g").await.unwrap().unwrap();
    assert_eq!(after.group_epoch, before.group_epoch);
    assert_eq!(after.state, ConsumerGroupState::Stable);
    // The old member id is fenced.
    let err = h
        .groups
        .heartbeat(
            HeartbeatRequest {
                instance_id: Some("instance-b".into()),
                ..beat("b-1", 2, None)
            },
            false,
        )
        .await;
    assert_eq!(err, Err(GroupError::FencedInstanceId));
}

#[tokio::test]
async fn subscriptions_by_pattern_follow_new_topics() {
    let h = Harness::start(
        GroupLimits::default(),
        &[("orders-a", 1), ("orders-b", 2), ("payments", 1)],
    )
    .await;
    let pattern = HeartbeatRequest {
        subscribed_topic_names: None,
        subscribed_topic_regex: Some("orders-.*".into()),
        ..join("m1", &[])
    };
    let answer = ok(&h.groups, pattern).await;
    let assigned = answer.assignment.expect("assignment");
    let a = h.topic_id("orders-a").await;
    let b = h.topic_id("orders-b").await;
    assert_eq!(
        assigned.keys().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([a, b])
    );
    h.engine
        .create_topic(NewTopic::new("orders-c", 1))
        .await
        .unwrap();
    let c = h.topic_id("orders-c").await;
    // The topic list is trusted for two seconds.
    tokio::time::sleep(super::slots::TOPICS_TTL + Duration::from_millis(100)).await;
    let answer = ok(&h.groups, beat("m1", 1, None)).await;
    assert_eq!(answer.member_epoch, 2);
    assert!(answer.assignment.expect("new assignment").contains_key(&c));
    let err = h
        .groups
        .heartbeat(
            HeartbeatRequest {
                subscribed_topic_regex: Some("orders-(".into()),
                ..join("m2", &["x"])
            },
            false,
        )
        .await;
    assert!(
        matches!(err, Err(GroupError::InvalidRegularExpression { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn malformed_heartbeats_are_refused_with_kafka_errors() {
    let h = Harness::start(GroupLimits::default(), &[("orders", 1)]).await;
    let no_topics = HeartbeatRequest {
        subscribed_topic_names: Some(Vec::new()),
        ..join("m1", &[])
    };
    assert!(matches!(
        h.groups.heartbeat(no_topics, false).await,
        Err(GroupError::InvalidRequest { .. })
    ));
    let owning = HeartbeatRequest {
        owned: None,
        ..join("m1", &["orders"])
    };
    assert!(matches!(
        h.groups.heartbeat(owning, false).await,
        Err(GroupError::InvalidRequest { .. })
    ));
    let assignor = HeartbeatRequest {
        server_assignor: Some("sticky".into()),
        ..join("m1", &["orders"])
    };
    assert_eq!(
        h.groups.heartbeat(assignor, false).await,
        Err(GroupError::UnsupportedAssignor {
            name: "sticky".into()
        })
    );
    assert!(matches!(
        h.groups.heartbeat(beat("m1", -7, None), false).await,
        Err(GroupError::InvalidRequest { .. })
    ));
    // A classic group with members holds the id.
    assert!(matches!(
        h.groups.heartbeat(join("m1", &["orders"]), true).await,
        Err(GroupError::GroupIdNotFound { .. })
    ));
    assert!(
        !h.groups.exists("g").await.unwrap(),
        "refusals leave no group"
    );
}

#[tokio::test]
async fn groups_hold_at_most_group_max_size_members() {
    let limits = GroupLimits {
        max_group_size: 2,
        ..GroupLimits::default()
    };
    let h = Harness::start(limits, &[("orders", 2)]).await;
    ok(&h.groups, join("m1", &["orders"])).await;
    ok(&h.groups, join("m2", &["orders"])).await;
    assert_eq!(
        h.groups.heartbeat(join("m3", &["orders"]), false).await,
        Err(GroupError::GroupMaxSizeReached { max_size: 2 })
    );
    // A member joining again with its own id is not a new member.
    ok(&h.groups, join("m2", &["orders"])).await;
}

#[tokio::test]
async fn the_range_assignor_is_used_when_members_ask_for_it() {
    let h = Harness::start(GroupLimits::default(), &[("orders", 4)]).await;
    let orders = h.topic_id("orders").await;
    let ranged = |member: &str| HeartbeatRequest {
        server_assignor: Some("range".into()),
        ..join(member, &["orders"])
    };
    ok(&h.groups, ranged("m1")).await;
    ok(&h.groups, ranged("m2")).await;
    let described = h.groups.describe("g").await.unwrap().unwrap();
    assert_eq!(described.assignor, "range");
    let targets: Vec<Vec<i32>> = described
        .members
        .iter()
        .map(|m| m.target.first().map(|t| t.2.clone()).unwrap_or_default())
        .collect();
    assert_eq!(targets, [vec![0, 1], vec![2, 3]]);
    let _ = orders;
}

#[tokio::test]
async fn offset_commits_and_fetches_are_checked_against_member_epochs() {
    let h = Harness::start(GroupLimits::default(), &[("orders", 1)]).await;
    ok(&h.groups, join("m1", &["orders"])).await;
    let g = &h.groups;
    assert_eq!(
        g.validate_commit("g", "m1", 1, 9, false).await,
        Ok(Some(()))
    );
    assert_eq!(
        g.validate_commit("g", "m1", 0, 9, false).await,
        Err(GroupError::StaleMemberEpoch {
            sent: 0,
            current: 1
        })
    );
    assert!(matches!(
        g.validate_commit("g", "m1", 1, 8, false).await,
        Err(GroupError::UnsupportedVersion { .. })
    ));
    assert_eq!(
        g.validate_commit("g", "m1", 0, 3, true).await,
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        g.validate_commit("g", "", -1, 9, false).await,
        Err(GroupError::UnknownMemberId),
        "a group with members refuses commits from outside"
    );
    assert_eq!(g.validate_commit("other", "", -1, 9, false).await, Ok(None));
    assert_eq!(g.validate_fetch("g", Some("m1"), 1).await, Ok(Some(())));
    assert_eq!(g.validate_fetch("g", None, -1).await, Ok(Some(())));
    assert_eq!(
        g.validate_fetch("g", Some("m1"), 2).await,
        Err(GroupError::StaleMemberEpoch {
            sent: 2,
            current: 1
        })
    );
    // Once empty, anyone may commit, and the group can be deleted.
    ok(g, beat("m1", -1, None)).await;
    assert_eq!(g.validate_commit("g", "", -1, 9, false).await, Ok(Some(())));
    assert_eq!(g.delete_if_empty("g").await, Ok(true));
    assert!(!g.exists("g").await.unwrap());
}

#[tokio::test]
async fn lookups_of_ever_new_groups_do_not_grow_the_coordinator() {
    let limits = GroupLimits {
        max_groups: 2,
        ..GroupLimits::default()
    };
    let h = Harness::start(limits, &[("orders", 1)]).await;
    ok(&h.groups, join("m1", &["orders"])).await;
    for i in 0..super::slots::MAX_IDLE_SLOTS + 500 {
        assert!(!h.groups.exists(&format!("other-{i}")).await.unwrap());
    }
    let held = h.groups.inner.slots.lock().len();
    assert!(
        held <= 2 + super::slots::MAX_IDLE_SLOTS,
        "{held} slots held after lookups of unknown groups"
    );
    // The group with a member is still there.
    assert!(h.groups.exists("g").await.unwrap());
    assert_eq!(ok(&h.groups, beat("m1", 1, None)).await.member_epoch, 1);
}

#[test]
fn topics_never_listed_leave_the_subscriptions_alone() {
    use super::group::{ConsumerGroup, TopicInfo, TopicSnapshot};
    use super::heartbeat::HeartbeatEnv;

    let orders = Uuid::from_bytes([1; 16]);
    let listed = TopicSnapshot {
        generation: 1,
        by_name: [(
            "orders".to_string(),
            TopicInfo {
                id: orders,
                partitions: 2,
            },
        )]
        .into(),
    };
    let anyone = |_: &super::member::Member, _: &str| true;
    let env = |topics| HeartbeatEnv {
        now: tokio::time::Instant::now(),
        session_timeout: Duration::from_secs(45),
        heartbeat_interval_ms: 5_000,
        max_size: 10,
        max_rebalance_timeout: Duration::from_secs(300),
        topics,
        may_describe: &anyone,
    };
    let mut group = ConsumerGroup::new("g".into());
    let joined = group
        .heartbeat(&join("m1", &["orders"]), &env(&listed))
        .expect("join");
    assert_eq!(joined.assignment, Some(set(orders, &[0, 1])));
    // A coordinator that could not list topics (the metadata store is
    // down) must not take the group's partitions away.
    let unknown = TopicSnapshot::default();
    let answer = group
        .heartbeat(&beat("m1", 1, Some(set(orders, &[0, 1]))), &env(&unknown))
        .expect("heartbeat");
    assert_eq!(answer.member_epoch, 1);
    assert_eq!(group.group_epoch, 1);
    assert_eq!(group.members["m1"].assigned, set(orders, &[0, 1]));
}

fn short_sessions() -> GroupLimits {
    GroupLimits {
        consumer_session_timeout: Duration::from_millis(400),
        consumer_heartbeat_interval: Duration::from_millis(100),
        ..GroupLimits::default()
    }
}

#[tokio::test]
async fn a_coordinator_that_restarted_fences_members_it_was_never_asked_about() {
    let h = Harness::start(short_sessions(), &[("orders", 2)]).await;
    ok(&h.groups, join("m1", &["orders"])).await;
    // The coordinator restarts; no member ever heartbeats again.
    let next = ConsumerGroups::new(h.engine.clone(), short_sessions());
    next.load_stored(&|_| true).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    next.tick(&|_| true, tokio::time::Instant::now());
    let stored = wait_for(|| async {
        let g = h.engine.load_consumer_group("g").await.unwrap().unwrap();
        g.members.is_empty().then_some(g)
    })
    .await;
    assert_eq!(stored.state, "Empty");
}

#[tokio::test]
async fn reading_the_group_again_keeps_the_deadlines_of_known_members() {
    let h = Harness::start(short_sessions(), &[("orders", 2)]).await;
    let orders = h.topic_id("orders").await;
    ok(&h.groups, join("m1", &["orders"])).await;
    ok(&h.groups, join("m2", &["orders"])).await;
    // m2 goes silent. Another agent changes the group (m3 joins), so this
    // coordinator reads it again when m3 heartbeats here; m2 must not get a
    // new session from that.
    let other = ConsumerGroups::new(h.engine.clone(), short_sessions());
    ok(&other, join("m3", &["orders"])).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    ok(&h.groups, beat("m3", 3, Some(Assignment::new()))).await;
    let mut owned = Some(set(orders, &[0, 1]));
    let mut epoch = 1;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        h.groups.tick(&|_| true, tokio::time::Instant::now());
        for member in ["m1", "m3"] {
            if let Ok(answer) = h
                .groups
                .heartbeat(
                    beat(
                        member,
                        if member == "m1" { epoch } else { 3 },
                        owned.clone(),
                    ),
                    false,
                )
                .await
                && member == "m1"
            {
                epoch = answer.member_epoch;
                if let Some(assigned) = answer.assignment {
                    owned = Some(assigned);
                }
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let members: Vec<String> = wait_for(|| async {
        let d = h.groups.describe("g").await.unwrap().unwrap();
        let ids: Vec<String> = d.members.iter().map(|m| m.member_id.clone()).collect();
        (!ids.contains(&"m2".to_string())).then_some(ids)
    })
    .await;
    assert!(members.contains(&"m1".to_string()), "{members:?}");
}

#[tokio::test]
async fn a_held_copy_is_checked_against_the_store_once_per_heartbeat_interval() {
    let h = Harness::start(short_sessions(), &[("orders", 2)]).await;
    let orders = h.topic_id("orders").await;
    ok(&h.groups, join("m1", &["orders"])).await;
    ok(&h.groups, join("m2", &["orders"])).await;
    let revoke = ok(&h.groups, beat("m1", 1, Some(set(orders, &[0, 1])))).await;
    let kept = partitions(&revoke, orders);
    ok(&h.groups, beat("m1", 1, Some(set(orders, &kept)))).await;
    ok(&h.groups, beat("m2", 2, Some(Assignment::new()))).await;
    // Another agent, believing it coordinates the group, sees m2 leave.
    let other = ConsumerGroups::new(h.engine.clone(), short_sessions());
    assert_eq!(ok(&other, beat("m2", -1, None)).await.member_epoch, -1);
    // m1's next heartbeat here, a heartbeat interval later, is answered
    // from the stored group: it gets m2's partition at the new epoch.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let answer = ok(&h.groups, beat("m1", 2, Some(set(orders, &kept)))).await;
    assert_eq!(answer.member_epoch, 3);
    assert_eq!(partitions(&answer, orders), [0, 1]);
}

#[tokio::test]
async fn a_lost_join_answer_and_a_static_member_rejoining_under_its_id_cost_no_rebalance() {
    let h = Harness::start(GroupLimits::default(), &[("orders", 2)]).await;
    let orders = h.topic_id("orders").await;
    let first = ok(&h.groups, join("m1", &["orders"])).await;
    let again = ok(&h.groups, join("m1", &["orders"])).await;
    assert_eq!(
        again.member_epoch, first.member_epoch,
        "the join is answered again"
    );
    let static_join = HeartbeatRequest {
        instance_id: Some("i".into()),
        ..join("s1", &["orders"])
    };
    ok(&h.groups, static_join.clone()).await;
    let epoch = h.groups.describe("g").await.unwrap().unwrap().group_epoch;
    let held: Vec<i32> = {
        let d = h.groups.describe("g").await.unwrap().unwrap();
        d.members
            .iter()
            .find(|m| m.member_id == "s1")
            .map(|m| m.target.iter().flat_map(|t| t.2.clone()).collect())
            .unwrap()
    };
    ok(
        &h.groups,
        HeartbeatRequest {
            instance_id: Some("i".into()),
            ..beat("s1", 2, None)
        },
    )
    .await;
    let left = ok(
        &h.groups,
        HeartbeatRequest {
            instance_id: Some("i".into()),
            ..beat("s1", -2, None)
        },
    )
    .await;
    assert_eq!(left.member_epoch, -2);
    let back = ok(&h.groups, static_join).await;
    assert_eq!(
        h.groups.describe("g").await.unwrap().unwrap().group_epoch,
        epoch
    );
    let target: Vec<i32> = h
        .groups
        .describe("g")
        .await
        .unwrap()
        .unwrap()
        .members
        .iter()
        .find(|m| m.member_id == "s1")
        .map(|m| m.target.iter().flat_map(|t| t.2.clone()).collect())
        .unwrap();
    assert_eq!(target, held);
    let _ = (back, orders);
}

#[test]
fn patterns_cannot_escape_their_anchors_and_match_only_describable_topics() {
    use super::group::{ConsumerGroup, TopicInfo, TopicSnapshot, topic_regex};
    use super::heartbeat::HeartbeatEnv;

    assert!(topic_regex("a)|(b").is_err());
    assert!(
        topic_regex("orders-.*")
            .is_ok_and(|re| re.is_match("orders-1") && !re.is_match("x-orders-1"))
    );

    let (visible, hidden) = (Uuid::from_bytes([1; 16]), Uuid::from_bytes([2; 16]));
    let topics = TopicSnapshot {
        generation: 1,
        by_name: [
            (
                "orders-a".to_string(),
                TopicInfo {
                    id: visible,
                    partitions: 1,
                },
            ),
            (
                "orders-secret".to_string(),
                TopicInfo {
                    id: hidden,
                    partitions: 1,
                },
            ),
        ]
        .into(),
    };
    let only_a = |_: &super::member::Member, topic: &str| topic == "orders-a";
    let env = HeartbeatEnv {
        now: tokio::time::Instant::now(),
        session_timeout: Duration::from_secs(45),
        heartbeat_interval_ms: 5_000,
        max_size: 10,
        max_rebalance_timeout: Duration::from_secs(300),
        topics: &topics,
        may_describe: &only_a,
    };
    let mut group = ConsumerGroup::new("g".into());
    let request = HeartbeatRequest {
        subscribed_topic_names: None,
        subscribed_topic_regex: Some("orders-.*".into()),
        ..join("m1", &[])
    };
    let answer = group.heartbeat(&request, &env).expect("join");
    assert_eq!(answer.assignment, Some(set(visible, &[0])));
}

/// Polls `probe` until it returns something, for at most five seconds.
async fn wait_for<T, F, Fut>(probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
