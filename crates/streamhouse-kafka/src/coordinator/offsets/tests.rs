use std::sync::Arc;
use std::time::Duration;

use streamhouse_metadata::MetadataStore;
use streamhouse_metadata::prelude::*;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::coordinator::testing::{answer, coordinator, in_group, join_new, join_new_as, later};
use crate::coordinator::{GroupCoordinator, GroupError, GroupLimits};

#[tokio::test]
async fn commits_are_checked_against_the_generation() {
    let coordinator = coordinator();
    assert_eq!(coordinator.validate_commit("standalone", -1, ""), Ok(()));
    assert_eq!(
        coordinator.validate_commit("standalone", 3, "m"),
        Err(GroupError::IllegalGeneration)
    );
    let (a, wait_a) = join_new(&coordinator, "a");
    later(wait_a).await.expect("answer").expect("joined");
    assert_eq!(
        coordinator.validate_commit("g", 1, &a),
        Err(GroupError::RebalanceInProgress),
        "while completing the rebalance"
    );
    answer(coordinator.sync("g", 1, &a, None, None, vec![]))
        .await
        .expect("synced");
    assert_eq!(coordinator.validate_commit("g", 1, &a), Ok(()));
    assert_eq!(
        coordinator.validate_commit("g", 0, &a),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        coordinator.validate_commit("g", 1, "stranger"),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        coordinator.remove_if_empty("g"),
        Err(GroupError::NonEmptyGroup)
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
        Err(GroupError::NonEmptyGroup)
    );
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
        leader_epoch: -1,
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
    answer(wait_a).await.expect("joined");
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
    answer(joined).await.expect("joined");
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
    answer(wait_a).await.expect("joined");
    commit(store.as_ref(), "g", 1).await;
    commit(store.as_ref(), "abandoned", 2).await;
    let stop = CancellationToken::new();
    let me = crate::cluster::Agent {
        agent_id: "me".into(),
        node_id: 0,
        host: "127.0.0.1".into(),
        port: 9092,
        zone: None,
        listeners: Vec::new(),
    };
    // Alone in the cluster, this agent coordinates every group.
    let cluster = Cluster::new(store.clone(), me, Duration::from_secs(10));
    let timer = coordinator.start_offset_expiry(
        store.clone(),
        cluster,
        Arc::new(streamhouse_core::clock::SystemClock),
        stop.clone(),
    );
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
