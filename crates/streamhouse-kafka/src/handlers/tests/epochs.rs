//! Leader epochs through the Kafka APIs (KIP-320): Metadata, Fetch,
//! ListOffsets and OffsetForLeaderEpoch report and check the same epochs;
//! fetched batches carry the epoch they were written in; committed offsets
//! keep theirs. Topic ids (KIP-516) in Fetch, Produce and Metadata, and
//! DescribeTopicPartitions with its cursor.

use std::time::Instant;

use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::records::RecordBatchDecoder;
use streamhouse_storage::{LeaderMove, NewTopic, StorageConfig};

use super::*;

const ANYONE: &str = "User:ANONYMOUS";
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUEST: i16 = 42;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;
const UNKNOWN_TOPIC_ID: i16 = 100;

/// "orders" (one partition): offsets 0-2 written in epoch 0, then its
/// leader moves (epoch 1 starts at 3) and offsets 3-4 are written.
async fn two_epochs() -> Harness {
    let harness = Harness::start(StorageConfig::default()).await;
    harness.topic("orders").await;
    for _ in 0..3 {
        produce_one(&harness, "orders").await;
    }
    let bumped = harness
        .broker
        .engine
        .move_leaders(&[LeaderMove {
            topic: "orders".into(),
            partition: 0,
            leader: "another-agent".into(),
        }])
        .await
        .expect("move");
    assert_eq!(bumped.len(), 1);
    for _ in 0..2 {
        produce_one(&harness, "orders").await;
    }
    harness
}

async fn produce_one(harness: &Harness, topic: &str) {
    let ResponseKind::Produce(produced) = harness.call(ANYONE, 9, produce(topic)).await else {
        panic!("produce");
    };
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
}

fn fetch_at(
    topic: &str,
    offset: i64,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
) -> RequestKind {
    let RequestKind::Fetch(request) = fetch(topic) else {
        unreachable!()
    };
    let mut request = request;
    request.topics[0].partitions[0].fetch_offset = offset;
    request.topics[0].partitions[0].current_leader_epoch = current_leader_epoch;
    request.topics[0].partitions[0].last_fetched_epoch = last_fetched_epoch;
    RequestKind::Fetch(request)
}

/// (partition leader epoch, offsets) of each batch of a fetch answer.
fn batches(partition: &fetch_response::PartitionData) -> Vec<(i32, Vec<i64>)> {
    let mut records = partition.records.clone().unwrap_or_default();
    RecordBatchDecoder::decode_all(&mut records)
        .expect("decode")
        .iter()
        .map(|set| {
            (
                set.records[0].partition_leader_epoch,
                set.records.iter().map(|r| r.offset).collect(),
            )
        })
        .collect()
}

async fn fetched(harness: &Harness, version: i16, request: RequestKind) -> FetchResponse {
    let ResponseKind::Fetch(response) = harness.call(ANYONE, version, request).await else {
        panic!("fetch");
    };
    response
}

#[tokio::test]
async fn metadata_fetch_and_list_offsets_agree_on_the_leader_epoch() {
    let harness = two_epochs().await;
    let ResponseKind::Metadata(metadata) = harness
        .call(ANYONE, 12, super::metadata(Some(&["orders"])))
        .await
    else {
        panic!("metadata");
    };
    assert_eq!(metadata.topics[0].partitions[0].leader_epoch, 1);

    // Batches carry the epoch their records were written in.
    let response = fetched(&harness, 12, fetch_at("orders", 0, 1, -1)).await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(
        batches(partition),
        [(0, vec![0, 1, 2]), (1, vec![3, 4])],
        "one batch per epoch"
    );
    let response = fetched(&harness, 12, fetch_at("orders", 0, -1, -1)).await;
    assert_eq!(
        response.responses[0].partitions[0].error_code, 0,
        "no epoch, no check"
    );

    // An older epoch is fenced, with the current leader named (and from
    // v16, where topics are named by id, its endpoint); a newer one is not
    // known here yet.
    let RequestKind::Fetch(mut by_id) = fetch_at("orders", 0, 0, -1) else {
        unreachable!()
    };
    let topic = harness.broker.engine.topic("orders").await.expect("topic");
    by_id.topics[0].topic_id = super::super::common::topic_uuid(&topic);
    let response = fetched(&harness, 16, RequestKind::Fetch(by_id)).await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, FENCED_LEADER_EPOCH);
    assert!(partition.records.as_ref().is_none_or(|r| r.is_empty()));
    assert_eq!(partition.current_leader.leader_epoch, 1);
    let node = harness.broker.config.node_id;
    assert_eq!(partition.current_leader.leader_id.0, node);
    assert_eq!(
        response
            .node_endpoints
            .iter()
            .map(|e| e.node_id.0)
            .collect::<Vec<_>>(),
        [node],
        "v16 carries the leader's endpoint"
    );
    let response = fetched(&harness, 12, fetch_at("orders", 0, 2, -1)).await;
    assert_eq!(
        response.responses[0].partitions[0].error_code,
        UNKNOWN_LEADER_EPOCH
    );

    // ListOffsets: each offset with its epoch, the request's checked.
    let list = |timestamp: i64, current_leader_epoch: i32| {
        RequestKind::ListOffsets(
            ListOffsetsRequest::default()
                .with_replica_id((-1).into())
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(topic_name("orders"))
                        .with_partitions(vec![
                            ListOffsetsPartition::default()
                                .with_timestamp(timestamp)
                                .with_current_leader_epoch(current_leader_epoch),
                        ]),
                ]),
        )
    };
    let mut answers = Vec::new();
    for (timestamp, current) in [(-1, 1), (-2, 1), (1_700_000_000_000, -1), (-1, 0), (-1, 5)] {
        let ResponseKind::ListOffsets(listed) =
            harness.call(ANYONE, 6, list(timestamp, current)).await
        else {
            panic!("list offsets");
        };
        let p = &listed.topics[0].partitions[0];
        answers.push((p.error_code, p.offset, p.leader_epoch));
    }
    assert_eq!(
        answers,
        [
            (0, 5, 1),
            (0, 0, 0),
            (0, 0, 0),
            (FENCED_LEADER_EPOCH, -1, -1),
            (UNKNOWN_LEADER_EPOCH, -1, -1)
        ]
    );
}

#[tokio::test]
async fn a_fetch_after_a_diverging_epoch_is_told_where_it_diverged() {
    let harness = two_epochs().await;
    // The client read up to 4 in epoch 0; epoch 0 ended at 3.
    let response = fetched(&harness, 12, fetch_at("orders", 4, 1, 0)).await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(
        (
            partition.diverging_epoch.epoch,
            partition.diverging_epoch.end_offset
        ),
        (0, 3)
    );
    assert!(partition.records.as_ref().is_none_or(|r| r.is_empty()));
    // Within its epoch's range there is nothing to report.
    for (offset, last_fetched_epoch) in [(3, 0), (4, 1), (5, 1)] {
        let response = fetched(
            &harness,
            12,
            fetch_at("orders", offset, 1, last_fetched_epoch),
        )
        .await;
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0);
        assert_eq!(partition.diverging_epoch.epoch, -1, "offset {offset}");
    }
    // An epoch not heard of here yet is never called a divergence.
    let response = fetched(&harness, 12, fetch_at("orders", 4, -1, 3)).await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, UNKNOWN_LEADER_EPOCH);
    assert_eq!(partition.diverging_epoch.epoch, -1);
}

fn epoch_request(topic: &str, partitions: &[(i32, i32, i32)]) -> OffsetForLeaderTopic {
    OffsetForLeaderTopic::default()
        .with_topic(topic_name(topic))
        .with_partitions(
            partitions
                .iter()
                .map(|&(partition, current_leader_epoch, leader_epoch)| {
                    OffsetForLeaderPartition::default()
                        .with_partition(partition)
                        .with_current_leader_epoch(current_leader_epoch)
                        .with_leader_epoch(leader_epoch)
                })
                .collect(),
        )
}

/// (error code, leader epoch, end offset) of each partition answered.
async fn epoch_ends(
    harness: &Harness,
    principal: &str,
    version: i16,
    topics: Vec<OffsetForLeaderTopic>,
) -> Vec<(i16, i32, i64)> {
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id((-1).into())
        .with_topics(topics);
    let ResponseKind::OffsetForLeaderEpoch(response) = harness
        .call(
            principal,
            version,
            RequestKind::OffsetForLeaderEpoch(request),
        )
        .await
    else {
        panic!("offset for leader epoch");
    };
    response
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| (p.error_code, p.leader_epoch, p.end_offset))
        .collect()
}

#[tokio::test]
async fn offset_for_leader_epoch_answers_where_each_epoch_ended() {
    let harness = two_epochs().await;
    for version in [2, 3, 4] {
        let answers = epoch_ends(
            &harness,
            ANYONE,
            version,
            vec![epoch_request(
                "orders",
                &[
                    (0, 1, 0),
                    (0, 1, 1),
                    (0, -1, 1),
                    (0, 1, -1),
                    (0, 1, 7),
                    (0, 0, 0),
                    (0, 2, 0),
                    (3, 1, 0),
                ],
            )],
        )
        .await;
        assert_eq!(
            answers,
            [
                (0, 0, 3),
                (0, 1, 5),
                (0, 1, 5),
                (0, -1, -1),
                (UNKNOWN_LEADER_EPOCH, -1, -1),
                (FENCED_LEADER_EPOCH, -1, -1),
                (UNKNOWN_LEADER_EPOCH, -1, -1),
                (UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
            ],
            "version {version}"
        );
    }
    let answers = epoch_ends(
        &harness,
        ANYONE,
        4,
        vec![epoch_request("missing", &[(0, -1, 0)])],
    )
    .await;
    assert_eq!(answers, [(UNKNOWN_TOPIC_OR_PARTITION, -1, -1)]);

    // A hostile request naming the partition 100,000 times reads it once.
    let started = Instant::now();
    let repeated: Vec<(i32, i32, i32)> = vec![(0, 1, 0); 100_000];
    let answers = epoch_ends(
        &harness,
        ANYONE,
        4,
        vec![
            epoch_request("orders", &repeated),
            epoch_request("missing", &[(0, -1, 0); 1000]),
        ],
    )
    .await;
    assert_eq!(answers.len(), 101_000);
    assert!(answers[..100_000].iter().all(|a| *a == (0, 0, 3)));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn committed_offsets_keep_their_leader_epoch() {
    let harness = two_epochs().await;
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes("billing")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic_name("orders"))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(4)
                        .with_committed_leader_epoch(1),
                ]),
        ]);
    let ResponseKind::OffsetCommit(committed) = harness
        .call(ANYONE, 8, RequestKind::OffsetCommit(commit))
        .await
    else {
        panic!("offset commit");
    };
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
    let request = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(str_bytes("billing")))
            .with_topics(Some(vec![
                OffsetFetchRequestTopics::default()
                    .with_name(topic_name("orders"))
                    .with_partition_indexes(vec![0]),
            ])),
    ]);
    let ResponseKind::OffsetFetch(fetched) = harness
        .call(ANYONE, 8, RequestKind::OffsetFetch(request))
        .await
    else {
        panic!("offset fetch");
    };
    let partition = &fetched.groups[0].topics[0].partitions[0];
    assert_eq!(
        (partition.committed_offset, partition.committed_leader_epoch),
        (4, 1)
    );
}

#[tokio::test]
async fn topics_are_named_by_id_from_fetch_13_produce_13_and_metadata_12() {
    let harness = two_epochs().await;
    let topic = harness.broker.engine.topic("orders").await.expect("topic");
    let id = super::super::common::topic_uuid(&topic);
    assert!(!id.is_nil());
    let unknown = uuid::Uuid::from_u128(0x00c0_ffee);

    let by_id = |id: uuid::Uuid| {
        let RequestKind::Fetch(mut request) = fetch_at("", 0, -1, -1) else {
            unreachable!()
        };
        request.topics[0].topic_id = id;
        RequestKind::Fetch(request)
    };
    let response = fetched(&harness, 13, by_id(id)).await;
    assert_eq!(response.responses[0].topic_id, id);
    assert_eq!(response.responses[0].partitions[0].error_code, 0);
    assert_eq!(batches(&response.responses[0].partitions[0]).len(), 2);
    let response = fetched(&harness, 18, by_id(unknown)).await;
    assert_eq!(response.responses[0].topic_id, unknown);
    assert_eq!(
        response.responses[0].partitions[0].error_code,
        UNKNOWN_TOPIC_ID
    );

    let produce_to = |id: uuid::Uuid| {
        let RequestKind::Produce(mut request) = produce("") else {
            unreachable!()
        };
        request.topic_data[0].topic_id = id;
        RequestKind::Produce(request)
    };
    for (id, code) in [(id, 0), (unknown, UNKNOWN_TOPIC_ID)] {
        let ResponseKind::Produce(produced) = harness.call(ANYONE, 13, produce_to(id)).await else {
            panic!("produce");
        };
        assert_eq!(produced.responses[0].topic_id, id);
        assert_eq!(
            produced.responses[0].partition_responses[0].error_code,
            code
        );
    }
    assert_eq!(
        harness
            .broker
            .engine
            .partition_info("orders", 0)
            .await
            .expect("info")
            .high_watermark,
        6,
        "the record produced by id is stored"
    );

    let request = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_topic_id(id),
        metadata_request::MetadataRequestTopic::default().with_topic_id(id),
        metadata_request::MetadataRequestTopic::default().with_topic_id(unknown),
    ]));
    let ResponseKind::Metadata(metadata) = harness
        .call(ANYONE, 12, RequestKind::Metadata(request))
        .await
    else {
        panic!("metadata");
    };
    let topics: Vec<(Option<String>, uuid::Uuid, i16)> = metadata
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().map(|n| n.0.to_string()),
                t.topic_id,
                t.error_code,
            )
        })
        .collect();
    assert_eq!(
        topics,
        [
            (None, unknown, UNKNOWN_TOPIC_ID),
            (Some("orders".to_string()), id, 0)
        ]
    );
}

fn describe_partitions(topics: &[&str], limit: i32, cursor: Option<(&str, i32)>) -> RequestKind {
    RequestKind::DescribeTopicPartitions(
        DescribeTopicPartitionsRequest::default()
            .with_topics(
                topics
                    .iter()
                    .map(|t| TopicRequest::default().with_name(topic_name(t)))
                    .collect(),
            )
            .with_response_partition_limit(limit)
            .with_cursor(cursor.map(|(topic, partition)| {
                Cursor::default()
                    .with_topic_name(topic_name(topic))
                    .with_partition_index(partition)
            })),
    )
}

/// Each topic's (name, error code, partitions), and the next cursor.
type Page = (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>);

async fn page(harness: &Harness, principal: &str, request: RequestKind) -> Page {
    let ResponseKind::DescribeTopicPartitions(response) = harness.call(principal, 0, request).await
    else {
        panic!("describe topic partitions");
    };
    (
        response
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                    t.error_code,
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            })
            .collect(),
        response
            .next_cursor
            .map(|c| (c.topic_name.0.to_string(), c.partition_index)),
    )
}

#[tokio::test]
async fn describe_topic_partitions_pages_with_its_cursor() {
    let harness = Harness::start(StorageConfig::default()).await;
    for (name, partitions) in [("c", 4), ("a", 3), ("b", 2)] {
        harness
            .broker
            .engine
            .create_topic(NewTopic::new(name, partitions))
            .await
            .expect("create");
    }
    let owned = |pages: &[(&str, i16, &[i32])]| -> Vec<(String, i16, Vec<i32>)> {
        pages
            .iter()
            .map(|(n, c, p)| (n.to_string(), *c, p.to_vec()))
            .collect()
    };
    // Every topic, four partitions a page.
    let first = page(&harness, ANYONE, describe_partitions(&[], 4, None)).await;
    assert_eq!(first.0, owned(&[("a", 0, &[0, 1, 2]), ("b", 0, &[0])]));
    assert_eq!(first.1, Some(("b".to_string(), 1)));
    let second = page(
        &harness,
        ANYONE,
        describe_partitions(&[], 4, Some(("b", 1))),
    )
    .await;
    assert_eq!(second.0, owned(&[("b", 0, &[1]), ("c", 0, &[0, 1, 2])]));
    assert_eq!(second.1, Some(("c".to_string(), 3)));
    let third = page(
        &harness,
        ANYONE,
        describe_partitions(&[], 4, Some(("c", 3))),
    )
    .await;
    assert_eq!(third.0, owned(&[("c", 0, &[3])]));
    assert_eq!(third.1, None);
    // A page that ends with a topic points at the next topic.
    let exact = page(&harness, ANYONE, describe_partitions(&[], 3, None)).await;
    assert_eq!(exact.0, owned(&[("a", 0, &[0, 1, 2])]));
    assert_eq!(exact.1, Some(("b".to_string(), 0)));

    // Named topics, an unknown and an invalid one, each named once
    // however often the request names it; at least one partition a page.
    let mut named = vec!["c"; 100_000];
    named.extend(["zzz", "bad name!", "a"]);
    let answer = page(&harness, ANYONE, describe_partitions(&named, 0, None)).await;
    assert_eq!(answer.0, owned(&[("a", 0, &[0])]));
    assert_eq!(answer.1, Some(("a".to_string(), 1)));
    let answer = page(
        &harness,
        ANYONE,
        describe_partitions(&named, 2000, Some(("a", 1))),
    )
    .await;
    assert_eq!(
        answer.0,
        owned(&[
            ("a", 0, &[1, 2]),
            ("bad name!", 17, &[]),
            ("c", 0, &[0, 1, 2, 3]),
            ("zzz", UNKNOWN_TOPIC_OR_PARTITION, &[])
        ])
    );
    assert_eq!(answer.1, None);

    // A cursor on a topic the request does not name, or a negative
    // partition, is refused for every topic.
    for cursor in [("b", 0), ("a", -1)] {
        let answer = page(
            &harness,
            ANYONE,
            describe_partitions(&["a", "c"], 10, Some(cursor)),
        )
        .await;
        assert_eq!(
            answer.0,
            owned(&[("a", INVALID_REQUEST, &[]), ("c", INVALID_REQUEST, &[])])
        );
    }

    // Partitions carry their leader, epoch and the topic's id.
    harness
        .broker
        .engine
        .move_leaders(&[LeaderMove {
            topic: "b".into(),
            partition: 1,
            leader: "elsewhere".into(),
        }])
        .await
        .expect("move");
    let ResponseKind::DescribeTopicPartitions(response) = harness
        .call(ANYONE, 0, describe_partitions(&["b"], 10, None))
        .await
    else {
        panic!("describe topic partitions");
    };
    let topic = &response.topics[0];
    let stored = harness.broker.engine.topic("b").await.expect("topic");
    assert_eq!(topic.topic_id, super::super::common::topic_uuid(&stored));
    let node = harness.broker.config.node_id;
    let partitions: Vec<(i32, i32, Vec<i32>)> = topic
        .partitions
        .iter()
        .map(|p| {
            (
                p.leader_id.0,
                p.leader_epoch,
                p.replica_nodes.iter().map(|n| n.0).collect(),
            )
        })
        .collect();
    assert_eq!(partitions, [(node, 0, vec![node]), (node, 1, vec![node])]);
}

/// Every answer of these APIs, at every version advertised, encodes: a
/// field a version does not have must be left at its default.
#[tokio::test]
async fn every_advertised_version_of_these_apis_encodes() {
    let harness = two_epochs().await;
    let topic = harness.broker.engine.topic("orders").await.expect("topic");
    let id = super::super::common::topic_uuid(&topic);
    let fetch_of = |current_leader_epoch: i32, last_fetched_epoch: i32, offset: i64| {
        let RequestKind::Fetch(mut request) =
            fetch_at("orders", offset, current_leader_epoch, last_fetched_epoch)
        else {
            unreachable!()
        };
        request.topics[0].topic_id = id;
        RequestKind::Fetch(request)
    };
    let list_offsets = |timestamp: i64, current_leader_epoch: i32| {
        RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(topic_name("orders"))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_timestamp(timestamp)
                            .with_current_leader_epoch(current_leader_epoch),
                    ]),
            ]))
    };
    let produce_to = |topic_id: uuid::Uuid| {
        let RequestKind::Produce(mut request) = produce("orders") else {
            unreachable!()
        };
        request.topic_data[0].topic_id = topic_id;
        RequestKind::Produce(request)
    };
    let epochs = || {
        RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default().with_topics(vec![
            epoch_request("orders", &[(0, 1, 0), (0, 0, 0), (0, 1, 9)]),
        ]))
    };
    let offset_fetch = || {
        RequestKind::OffsetFetch(
            OffsetFetchRequest::default()
                .with_group_id(GroupId(str_bytes("g")))
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(topic_name("orders"))
                        .with_partition_indexes(vec![0]),
                ]))
                .with_groups(vec![
                    OffsetFetchRequestGroup::default().with_group_id(GroupId(str_bytes("g"))),
                ]),
        )
    };
    // As every version decodes it: no authorized operations asked for.
    let metadata_of = |names: Option<&[&str]>| {
        let RequestKind::Metadata(request) = super::metadata(names) else {
            unreachable!()
        };
        RequestKind::Metadata(
            request
                .with_include_cluster_authorized_operations(false)
                .with_include_topic_authorized_operations(false),
        )
    };
    let metadata_by_id = || {
        RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_topic_id(id),
            metadata_request::MetadataRequestTopic::default()
                .with_topic_id(uuid::Uuid::from_u128(7)),
        ])))
    };
    let cases: Vec<(ApiKey, Vec<RequestKind>)> = vec![
        (
            ApiKey::Fetch,
            vec![
                fetch_of(1, -1, 0),
                fetch_of(0, -1, 0),
                fetch_of(2, -1, 0),
                fetch_of(1, 0, 4),
            ],
        ),
        (
            ApiKey::ListOffsets,
            vec![
                list_offsets(-1, 1),
                list_offsets(-2, -1),
                list_offsets(0, -1),
                list_offsets(-1, 0),
            ],
        ),
        (
            ApiKey::Metadata,
            vec![
                metadata_of(None),
                metadata_of(Some(&["orders", "missing"])),
                metadata_by_id(),
            ],
        ),
        (
            ApiKey::Produce,
            vec![produce_to(id), produce_to(uuid::Uuid::from_u128(7))],
        ),
        (ApiKey::OffsetFetch, vec![offset_fetch()]),
        (ApiKey::OffsetForLeaderEpoch, vec![epochs()]),
        (
            ApiKey::DescribeTopicPartitions,
            vec![
                describe_partitions(&[], 1, None),
                describe_partitions(&["orders", "missing"], 10, None),
            ],
        ),
    ];
    for (api_key, requests) in cases {
        let (min, max) = crate::versions::range(api_key).expect("advertised");
        for version in min..=max {
            for request in &requests {
                let response = harness.call(ANYONE, version, request.clone()).await;
                let mut buf = bytes::BytesMut::new();
                if let Err(error) = response.encode(&mut buf, version) {
                    panic!("{api_key:?} v{version}: {error}\n{response:?}");
                }
            }
        }
    }
}
