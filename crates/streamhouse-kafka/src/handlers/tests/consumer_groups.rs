//! The consumer group protocol (KIP-848) through the Kafka APIs: a member
//! joins with ConsumerGroupHeartbeat and learns its partitions by topic id
//! through Metadata; the other group APIs see the group as Kafka 4 shows
//! it (ListGroups type `consumer`, DescribeGroups `Dead`,
//! ConsumerGroupDescribe); offsets are committed and fetched at the
//! member's epoch; a classic member cannot join it.

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::*;
use streamhouse_storage::StorageConfig;

use super::*;

const ANYONE: &str = "User:ANONYMOUS";

fn join(member: &str, topics: &[&str]) -> RequestKind {
    RequestKind::ConsumerGroupHeartbeat(
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_member_id(str_bytes(member))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(
                topics.iter().map(|t| TopicName(str_bytes(*t))).collect(),
            ))
            .with_topic_partitions(Some(Vec::<TopicPartitions>::new())),
    )
}

fn heartbeat(response: ResponseKind) -> ConsumerGroupHeartbeatResponse {
    let ResponseKind::ConsumerGroupHeartbeat(response) = response else {
        panic!("not a consumer group heartbeat answer");
    };
    response
}

fn commit(member: &str, epoch: i32) -> RequestKind {
    RequestKind::OffsetCommit(
        OffsetCommitRequest::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_member_id(str_bytes(member))
            .with_generation_id_or_member_epoch(epoch)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(topic_name("orders"))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(7),
                    ]),
            ]),
    )
}

fn commit_code(response: ResponseKind) -> i16 {
    let ResponseKind::OffsetCommit(response) = response else {
        panic!("not an offset commit answer");
    };
    response.topics[0].partitions[0].error_code
}

fn fetch_offsets(member: Option<&str>, epoch: i32) -> RequestKind {
    RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(str_bytes("g")))
                .with_member_id(member.map(str_bytes))
                .with_member_epoch(epoch)
                .with_topics(None),
        ]))
}

#[tokio::test]
async fn a_consumer_protocol_group_through_the_kafka_apis() {
    let harness = Harness::start(StorageConfig::default()).await;
    harness.topic("orders").await;

    let joined = heartbeat(harness.call(ANYONE, 1, join("m1", &["orders"])).await);
    assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
    assert_eq!(joined.member_epoch, 1);
    assert_eq!(joined.heartbeat_interval_ms, 5_000);
    let assignment = joined.assignment.expect("an assignment");
    let topic_id = assignment.topic_partitions[0].topic_id;
    assert_eq!(assignment.topic_partitions[0].partitions, [0]);

    // The member learns the topic's name from its id.
    let by_id = |id| {
        RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_topic_id(id).with_name(None),
        ])))
    };
    let ResponseKind::Metadata(found) = harness.call(ANYONE, 12, by_id(topic_id)).await else {
        panic!("metadata");
    };
    assert_eq!(found.topics.len(), 1);
    assert_eq!(found.topics[0].error_code, 0);
    assert_eq!(
        found.topics[0].name.as_ref().map(|n| n.0.as_str()),
        Some("orders")
    );
    assert_eq!(found.topics[0].partitions.len(), 1);
    let unknown = uuid::Uuid::from_bytes([9; 16]);
    let ResponseKind::Metadata(missing) = harness.call(ANYONE, 12, by_id(unknown)).await else {
        panic!("metadata");
    };
    assert_eq!(missing.topics[0].error_code, 100, "UNKNOWN_TOPIC_ID");
    assert_eq!(missing.topics[0].topic_id, unknown);

    // Version 1 needs the client's member id.
    let anonymous = heartbeat(harness.call(ANYONE, 1, join("", &["orders"])).await);
    assert_eq!(anonymous.error_code, 42, "INVALID_REQUEST");
    // Version 0: the coordinator names the member.
    let named = heartbeat(harness.call(ANYONE, 0, join("", &["orders"])).await);
    assert_eq!(named.error_code, 0);
    let second_member = named.member_id.expect("a member id").to_string();
    assert!(!second_member.is_empty());
    let left = heartbeat(
        harness
            .call(
                ANYONE,
                1,
                RequestKind::ConsumerGroupHeartbeat(
                    ConsumerGroupHeartbeatRequest::default()
                        .with_group_id(GroupId(str_bytes("g")))
                        .with_member_id(str_bytes(second_member))
                        .with_member_epoch(-1),
                ),
            )
            .await,
    );
    assert_eq!((left.error_code, left.member_epoch), (0, -1));

    // Offsets at the member's epoch only, with OffsetCommit v9.
    let epoch = heartbeat(
        harness
            .call(ANYONE, 1, {
                let RequestKind::ConsumerGroupHeartbeat(beat) = join("m1", &["orders"]) else {
                    unreachable!()
                };
                RequestKind::ConsumerGroupHeartbeat(
                    beat.with_member_epoch(1)
                        .with_subscribed_topic_names(None)
                        .with_topic_partitions(None)
                        .with_rebalance_timeout_ms(-1),
                )
            })
            .await,
    )
    .member_epoch;
    assert_eq!(
        commit_code(harness.call(ANYONE, 9, commit("m1", epoch - 1)).await),
        113
    );
    assert_eq!(
        commit_code(harness.call(ANYONE, 8, commit("m1", epoch)).await),
        35
    );
    assert_eq!(
        commit_code(harness.call(ANYONE, 9, commit("m1", epoch)).await),
        0
    );
    let ResponseKind::OffsetFetch(stale) = harness
        .call(ANYONE, 9, fetch_offsets(Some("m1"), epoch + 1))
        .await
    else {
        panic!("offset fetch");
    };
    assert_eq!(stale.groups[0].error_code, 113, "STALE_MEMBER_EPOCH");
    let ResponseKind::OffsetFetch(fetched) = harness
        .call(ANYONE, 9, fetch_offsets(Some("m1"), epoch))
        .await
    else {
        panic!("offset fetch");
    };
    assert_eq!(fetched.groups[0].error_code, 0);
    assert_eq!(
        fetched.groups[0].topics[0].partitions[0].committed_offset,
        7
    );

    // ListGroups shows the group's type; DescribeGroups does not know it,
    // ConsumerGroupDescribe does.
    let list = |types: &[&str]| {
        RequestKind::ListGroups(
            ListGroupsRequest::default()
                .with_types_filter(types.iter().map(|t| str_bytes(*t)).collect()),
        )
    };
    let ResponseKind::ListGroups(listed) = harness.call(ANYONE, 5, list(&["consumer"])).await
    else {
        panic!("list groups");
    };
    let groups: Vec<(String, String, String)> = listed
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.0.to_string(),
                g.group_type.to_string(),
                g.group_state.to_string(),
            )
        })
        .collect();
    assert_eq!(groups, [("g".into(), "consumer".into(), "Stable".into())]);
    let ResponseKind::ListGroups(classic) = harness.call(ANYONE, 5, list(&["classic"])).await
    else {
        panic!("list groups");
    };
    assert!(classic.groups.is_empty());
    let ResponseKind::DescribeGroups(old_api) = harness
        .call(
            ANYONE,
            5,
            RequestKind::DescribeGroups(
                DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes("g"))]),
            ),
        )
        .await
    else {
        panic!("describe groups");
    };
    assert_eq!(old_api.groups[0].group_state.as_str(), "Dead");
    let describe = |group: &str| {
        RequestKind::ConsumerGroupDescribe(
            ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(str_bytes(group))]),
        )
    };
    let ResponseKind::ConsumerGroupDescribe(described) =
        harness.call(ANYONE, 1, describe("g")).await
    else {
        panic!("consumer group describe");
    };
    let group = &described.groups[0];
    assert_eq!(group.error_code, 0);
    assert_eq!(group.group_state.as_str(), "Stable");
    assert_eq!(group.assignor_name.as_str(), "uniform");
    assert_eq!(group.members.len(), 1);
    assert_eq!(group.members[0].member_epoch, epoch);
    assert_eq!(group.members[0].member_type, 1);
    assert_eq!(
        group.members[0].assignment.topic_partitions[0]
            .topic_name
            .0
            .as_str(),
        "orders"
    );
    let ResponseKind::ConsumerGroupDescribe(unknown) =
        harness.call(ANYONE, 1, describe("no-such-group")).await
    else {
        panic!("consumer group describe");
    };
    assert_eq!(unknown.groups[0].error_code, 69, "GROUP_ID_NOT_FOUND");

    // A classic member is refused while the group has members.
    let classic_join = RequestKind::JoinGroup(
        JoinGroupRequest::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_protocol_type(str_bytes("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(str_bytes("range"))
                    .with_metadata(Bytes::new()),
            ]),
    );
    let ResponseKind::JoinGroup(refused) = harness.call(ANYONE, 9, classic_join).await else {
        panic!("join group");
    };
    assert_eq!(refused.error_code, 23, "INCONSISTENT_GROUP_PROTOCOL");

    // Once empty, the group can be deleted, offsets and all.
    let leave = RequestKind::ConsumerGroupHeartbeat(
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_member_id(str_bytes("m1"))
            .with_member_epoch(-1),
    );
    assert_eq!(
        heartbeat(harness.call(ANYONE, 1, leave).await).error_code,
        0
    );
    let ResponseKind::DeleteGroups(deleted) = harness
        .call(
            ANYONE,
            2,
            RequestKind::DeleteGroups(
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str_bytes("g"))]),
            ),
        )
        .await
    else {
        panic!("delete groups");
    };
    assert_eq!(deleted.results[0].error_code, 0);
    let ResponseKind::ConsumerGroupDescribe(gone) = harness.call(ANYONE, 1, describe("g")).await
    else {
        panic!("consumer group describe");
    };
    assert_eq!(gone.groups[0].error_code, 69);
}

/// A change to a valid join.
type Change = fn(ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatRequest;

#[tokio::test]
async fn heartbeats_that_break_the_rules_get_kafka_errors() {
    let harness = Harness::start(StorageConfig::default()).await;
    harness.topic("orders").await;
    let with = |change: Change| {
        let RequestKind::ConsumerGroupHeartbeat(beat) = join("m1", &["orders"]) else {
            unreachable!()
        };
        RequestKind::ConsumerGroupHeartbeat(change(beat))
    };
    let cases: [(Change, i16); 6] = [
        (|b| b.with_group_id(GroupId(str_bytes(""))), 24),
        (|b| b.with_server_assignor(Some(str_bytes("sticky"))), 112),
        (
            |b| b.with_subscribed_topic_regex(Some(str_bytes("orders-("))),
            128,
        ),
        (|b| b.with_member_epoch(-5), 42),
        (|b| b.with_rebalance_timeout_ms(-1), 42),
        (|b| b.with_member_epoch(3), 25),
    ];
    for (change, code) in cases {
        let answer = heartbeat(harness.call(ANYONE, 1, with(change)).await);
        assert_eq!(answer.error_code, code, "{:?}", answer.error_message);
        assert!(answer.error_message.is_some());
    }
}
