//! Administration through the Kafka APIs: OffsetDelete as Kafka decides it
//! (unknown group, a member subscribed to the topic, unknown partitions),
//! ListGroups v5's type filter, and DescribeLogDirs.

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Encodable;
use streamhouse_storage::StorageConfig;

use super::*;

const ADMIN: &str = "User:ANONYMOUS";
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
const GROUP_ID_NOT_FOUND: i16 = 69;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// A consumer protocol subscription to `topics`, version-prefixed.
fn subscription(topics: &[&str]) -> Bytes {
    let mut buf = bytes::BytesMut::new();
    buf.extend_from_slice(&1i16.to_be_bytes());
    ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| str_bytes(*t)).collect())
        .encode(&mut buf, 1)
        .expect("encode subscription");
    buf.freeze()
}

async fn commit_offsets(harness: &Harness, group: &str, topics: &[(&str, i64)]) {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(
            topics
                .iter()
                .map(|(topic, offset)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(topic))
                        .with_partitions(vec![
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(*offset),
                        ])
                })
                .collect(),
        );
    let ResponseKind::OffsetCommit(committed) = harness
        .call(ADMIN, 8, RequestKind::OffsetCommit(request))
        .await
    else {
        panic!("not an OffsetCommit response");
    };
    for topic in committed.topics {
        assert_eq!(topic.partitions[0].error_code, 0);
    }
}

/// OffsetDelete of partition 0 of each topic (and partition 9 of the
/// last); the top-level code and each partition's.
async fn delete_offsets(harness: &Harness, group: &str, topics: &[&str]) -> (i16, Vec<i16>) {
    let request = OffsetDeleteRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_topics(
            topics
                .iter()
                .enumerate()
                .map(|(i, topic)| {
                    let mut partitions = vec![OffsetDeleteRequestPartition::default()];
                    if i + 1 == topics.len() {
                        partitions
                            .push(OffsetDeleteRequestPartition::default().with_partition_index(9));
                    }
                    OffsetDeleteRequestTopic::default()
                        .with_name(topic_name(topic))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let ResponseKind::OffsetDelete(deleted) = harness
        .call(ADMIN, 0, RequestKind::OffsetDelete(request))
        .await
    else {
        panic!("not an OffsetDelete response");
    };
    let codes = deleted
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect();
    (deleted.error_code, codes)
}

async fn committed(harness: &Harness, group: &str) -> Vec<String> {
    harness
        .broker
        .engine
        .committed_offsets(group)
        .await
        .expect("offsets")
        .into_iter()
        .map(|o| o.topic)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_are_deleted_unless_a_member_subscribes_to_their_topic() {
    let harness = Harness::start(StorageConfig::default()).await;
    for topic in ["a", "b", "c"] {
        harness.topic(topic).await;
    }
    commit_offsets(&harness, "g", &[("a", 5), ("b", 7), ("c", 9)]).await;
    assert_eq!(
        delete_offsets(&harness, "nobody", &["a"]).await.0,
        GROUP_ID_NOT_FOUND
    );

    // Known only by its offsets: any of them may go.
    assert_eq!(
        delete_offsets(&harness, "g", &["c"]).await,
        (0, vec![0, UNKNOWN_TOPIC_OR_PARTITION])
    );
    assert_eq!(committed(&harness, "g").await, ["a", "b"]);

    // A member subscribed to "a": its offsets stay, "b"'s go.
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(str_bytes("g")))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_protocol_type(str_bytes("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(str_bytes("range"))
                .with_metadata(subscription(&["a"])),
        ]);
    let ResponseKind::JoinGroup(joined) =
        harness.call(ADMIN, 3, RequestKind::JoinGroup(join)).await
    else {
        panic!("not a JoinGroup response");
    };
    assert_eq!(joined.error_code, 0);
    assert_eq!(
        delete_offsets(&harness, "g", &["a", "b"]).await,
        (
            0,
            vec![GROUP_SUBSCRIBED_TO_TOPIC, 0, UNKNOWN_TOPIC_OR_PARTITION]
        )
    );
    assert_eq!(committed(&harness, "g").await, ["a"]);

    // ListGroups v5: every group is a classic one.
    let list = |types: &[&str]| {
        RequestKind::ListGroups(
            ListGroupsRequest::default()
                .with_types_filter(types.iter().map(|t| str_bytes(*t)).collect()),
        )
    };
    for (types, expected) in [(&[][..], 1), (&["Classic"][..], 1), (&["consumer"][..], 0)] {
        let ResponseKind::ListGroups(listed) = harness.call(ADMIN, 5, list(types)).await else {
            panic!("not a ListGroups response");
        };
        assert_eq!(listed.groups.len(), expected, "types {types:?}");
        if let Some(group) = listed.groups.first() {
            assert_eq!(
                (group.group_id.0.as_str(), group.group_type.as_str()),
                ("g", "classic")
            );
        }
    }
    harness.broker.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_dirs_report_each_partitions_bytes_in_object_storage() {
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    let harness = Harness::start(StorageConfig::default()).await;
    harness.topic("t").await;
    harness.topic("empty").await;
    let ResponseKind::Produce(produced) = harness.call(ADMIN, 9, produce("t")).await else {
        panic!("not a Produce response");
    };
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    let stored: i64 = harness
        .broker
        .engine
        .partition_bytes("t")
        .await
        .expect("bytes")
        .iter()
        .map(|(_, bytes)| bytes)
        .sum();
    assert!(stored > 0);

    let describe = |topics: Option<Vec<DescribableLogDirTopic>>| {
        RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(topics))
    };
    // Every topic.
    let ResponseKind::DescribeLogDirs(all) = harness.call(ADMIN, 4, describe(None)).await else {
        panic!("not a DescribeLogDirs response");
    };
    assert_eq!(all.error_code, 0);
    let [dir] = all.results.as_slice() else {
        panic!("one log dir: {:?}", all.results);
    };
    assert!(!dir.log_dir.is_empty());
    let sizes: Vec<(String, i32, i64)> = dir
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index, p.partition_size))
        })
        .collect();
    assert_eq!(
        sizes,
        [("empty".to_string(), 0, 0), ("t".to_string(), 0, stored)]
    );
    // Named topics: unknown ones and partitions are left out.
    let named = vec![
        DescribableLogDirTopic::default()
            .with_topic(topic_name("t"))
            .with_partitions(vec![0, 5]),
        DescribableLogDirTopic::default()
            .with_topic(topic_name("missing"))
            .with_partitions(vec![0]),
    ];
    let ResponseKind::DescribeLogDirs(some) = harness.call(ADMIN, 4, describe(Some(named))).await
    else {
        panic!("not a DescribeLogDirs response");
    };
    let topics = &some.results[0].topics;
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].partitions.len(), 1);
    assert_eq!(topics[0].partitions[0].partition_size, stored);
    harness.broker.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_cluster_lists_the_agents_as_brokers() {
    let harness = Harness::start(StorageConfig::default()).await;
    let describe = |endpoint_type| {
        RequestKind::DescribeCluster(
            DescribeClusterRequest::default()
                .with_endpoint_type(endpoint_type)
                .with_include_cluster_authorized_operations(true),
        )
    };
    let ResponseKind::DescribeCluster(described) = harness.call(ADMIN, 2, describe(1)).await else {
        panic!("not a DescribeCluster response");
    };
    assert_eq!(described.error_code, 0);
    assert_eq!(
        described.cluster_id.as_str(),
        harness.broker.config.cluster_id
    );
    let ResponseKind::Metadata(metadata) = harness.call(ADMIN, 12, metadata(Some(&[]))).await
    else {
        panic!("not a Metadata response");
    };
    let brokers = |ids: Vec<(i32, i32)>| ids;
    assert_eq!(
        brokers(
            described
                .brokers
                .iter()
                .map(|b| (b.broker_id.0, b.port))
                .collect()
        ),
        brokers(
            metadata
                .brokers
                .iter()
                .map(|b| (b.node_id.0, b.port))
                .collect()
        ),
        "the same brokers as Metadata"
    );
    assert!(described.cluster_authorized_operations > 0);
    let ResponseKind::DescribeCluster(controllers) = harness.call(ADMIN, 2, describe(2)).await
    else {
        panic!("not a DescribeCluster response");
    };
    assert_eq!(controllers.error_code, 119);
    harness.broker.engine.shutdown().await;
}
