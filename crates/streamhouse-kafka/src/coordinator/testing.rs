//! Helpers shared by the coordinator's tests: a member's JoinGroup, and
//! answers that come now or later.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{GroupCoordinator, GroupError, GroupLimits, JoinParams, JoinRefused, JoinResult, Wait};

pub(crate) const SESSION: Duration = Duration::from_secs(10);

pub(crate) fn params(member_id: &str, client: &str) -> JoinParams {
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

pub(crate) fn ms(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).expect("fits a Kafka timeout")
}

pub(crate) fn coordinator() -> GroupCoordinator {
    GroupCoordinator::new(GroupLimits::default())
}

pub(crate) fn ready<T>(wait: Wait<T>) -> T {
    match wait {
        Wait::Ready(value) => value,
        Wait::Later(_) => panic!("expected an immediate answer"),
    }
}

pub(crate) fn later<T>(wait: Wait<T>) -> oneshot::Receiver<T> {
    match wait {
        Wait::Later(receiver) => receiver,
        Wait::Ready(_) => panic!("expected to wait"),
    }
}

/// The answer, ready now or once it comes (a test that would wait for
/// ever fails instead).
pub(crate) async fn answer<T>(wait: Wait<T>) -> T {
    match wait {
        Wait::Ready(value) => value,
        Wait::Later(receiver) => tokio::time::timeout(Duration::from_secs(5), receiver)
            .await
            .expect("answered in time")
            .expect("answered"),
    }
}

/// A JoinGroup refused at once.
pub(crate) fn refusal(wait: Wait<JoinResult>) -> JoinRefused {
    ready(wait).expect_err("refused")
}

/// A new member: MEMBER_ID_REQUIRED, then a join with that id.
pub(crate) fn join_new(coordinator: &GroupCoordinator, client: &str) -> (String, Wait<JoinResult>) {
    let first = refusal(coordinator.join(params("", client)));
    assert_eq!(first.error, GroupError::MemberIdRequired);
    assert!(first.member_id.starts_with(client));
    let member_id = first.member_id.clone();
    (
        member_id.clone(),
        coordinator.join(params(&member_id, client)),
    )
}

pub(crate) fn state(coordinator: &GroupCoordinator) -> String {
    coordinator.describe("g").expect("group").state
}

/// A new member of `template.group_id`: MEMBER_ID_REQUIRED, then a join
/// with that id.
pub(crate) fn join_new_as(
    coordinator: &GroupCoordinator,
    template: &JoinParams,
) -> (String, Wait<JoinResult>) {
    let first = refusal(coordinator.join(JoinParams {
        member_id: String::new(),
        ..template.clone()
    }));
    assert_eq!(first.error, GroupError::MemberIdRequired);
    let member_id = first.member_id.clone();
    let joined = coordinator.join(JoinParams {
        member_id: member_id.clone(),
        ..template.clone()
    });
    (member_id, joined)
}

pub(crate) fn in_group(group: &str, client: &str) -> JoinParams {
    JoinParams {
        group_id: group.into(),
        ..params("", client)
    }
}

pub(crate) fn listed(coordinator: &GroupCoordinator) -> Vec<String> {
    coordinator.list().into_iter().map(|g| g.group_id).collect()
}
