//! The ACL matrix: for each API family, a principal with and without the
//! ACL Kafka documents for it gets success or Kafka's authorization error;
//! Deny beats Allow, PREFIXED patterns apply, super users bypass ACLs.

use std::time::Duration;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_acls_response::DescribeAclsResource;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::*;
use streamhouse_storage::security::{
    AclBinding, AclOperation, AclPermission, CLUSTER_NAME, PatternType, Principal, ResourceType,
    ScramMechanism,
};
use streamhouse_storage::{SecurityConfig, StorageConfig};

use super::super::common::str_bytes;
use super::*;

const ADMIN: &str = "User:admin";
const BOB: &str = "User:bob";

async fn secured() -> Harness {
    let config = StorageConfig {
        security: SecurityConfig {
            authorizer: true,
            super_users: vec![Principal::parse(ADMIN).expect("principal")],
            refresh_interval: Duration::from_millis(50),
        },
        ..StorageConfig::default()
    };
    let harness = Harness::start(config).await;
    // The engine refuses everyone but super users until it has read the
    // ACLs once; storing one makes it read them now.
    harness
        .allow(
            "User:nobody",
            AclOperation::Read,
            ResourceType::Topic,
            "unrelated",
        )
        .await;
    harness
}

fn acl(
    principal: &str,
    permission: AclPermission,
    operation: AclOperation,
    resource_type: ResourceType,
    pattern_type: PatternType,
    name: &str,
) -> AclBinding {
    AclBinding {
        resource_type,
        resource_name: name.into(),
        pattern_type,
        principal: principal.into(),
        host: "*".into(),
        operation,
        permission,
    }
}

impl Harness {
    async fn grant(&self, bindings: &[AclBinding]) {
        self.broker
            .engine
            .create_acls(bindings)
            .await
            .expect("create acls");
    }

    async fn allow(
        &self,
        principal: &str,
        operation: AclOperation,
        kind: ResourceType,
        name: &str,
    ) {
        self.grant(&[acl(
            principal,
            AclPermission::Allow,
            operation,
            kind,
            PatternType::Literal,
            name,
        )])
        .await;
    }
}

fn produce_code(response: ResponseKind) -> i16 {
    let ResponseKind::Produce(response) = response else {
        panic!("not a produce answer");
    };
    response.responses[0].partition_responses[0].error_code
}

fn fetch_code(response: ResponseKind) -> i16 {
    let ResponseKind::Fetch(response) = response else {
        panic!("not a fetch answer");
    };
    response.responses[0].partitions[0].error_code
}

fn metadata_topics(response: ResponseKind) -> Vec<(String, i16)> {
    let ResponseKind::Metadata(response) = response else {
        panic!("not a metadata answer");
    };
    response
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                t.error_code,
            )
        })
        .collect()
}

#[tokio::test]
async fn metadata_shows_only_topics_the_caller_may_describe() {
    let harness = secured().await;
    harness.topic("orders").await;
    harness.topic("secret").await;
    harness
        .allow(ALICE, AclOperation::Describe, ResourceType::Topic, "orders")
        .await;

    assert_eq!(
        metadata_topics(harness.call(ALICE, 12, metadata(None)).await),
        vec![("orders".to_string(), 0)]
    );
    // Named: refused whether or not the topic exists, so its existence
    // is not disclosed.
    assert_eq!(
        metadata_topics(
            harness
                .call(ALICE, 12, metadata(Some(&["secret", "ghost"])))
                .await
        ),
        vec![("secret".to_string(), 29), ("ghost".to_string(), 29)]
    );
    let ResponseKind::Metadata(answer) = harness.call(ALICE, 10, metadata(Some(&["orders"]))).await
    else {
        panic!("metadata");
    };
    assert_eq!(answer.topics[0].topic_authorized_operations, 1 << 8);
    assert_eq!(answer.cluster_authorized_operations, 0);
    assert!(metadata_topics(harness.call(BOB, 12, metadata(None)).await).is_empty());
    assert_eq!(
        metadata_topics(harness.call(ADMIN, 12, metadata(None)).await).len(),
        2
    );
}

#[tokio::test]
async fn auto_creation_needs_create_on_the_cluster_or_the_topic() {
    let harness = secured().await;
    harness
        .grant(&[acl(
            ALICE,
            AclPermission::Allow,
            AclOperation::Describe,
            ResourceType::Topic,
            PatternType::Prefixed,
            "new-",
        )])
        .await;
    assert_eq!(
        metadata_topics(harness.call(ALICE, 12, metadata(Some(&["new-a"]))).await),
        vec![("new-a".to_string(), 29)]
    );
    assert!(harness.broker.engine.load_topic("new-a").await.is_err());
    harness
        .grant(&[acl(
            ALICE,
            AclPermission::Allow,
            AclOperation::Create,
            ResourceType::Topic,
            PatternType::Prefixed,
            "new-",
        )])
        .await;
    assert_eq!(
        metadata_topics(harness.call(ALICE, 12, metadata(Some(&["new-a"]))).await),
        vec![("new-a".to_string(), 0)]
    );
    harness
        .allow(BOB, AclOperation::Describe, ResourceType::Topic, "*")
        .await;
    harness
        .allow(
            BOB,
            AclOperation::Create,
            ResourceType::Cluster,
            CLUSTER_NAME,
        )
        .await;
    assert_eq!(
        metadata_topics(harness.call(BOB, 12, metadata(Some(&["bobs"]))).await),
        vec![("bobs".to_string(), 0)]
    );
}

#[tokio::test]
async fn produce_needs_write_and_fetch_needs_read() {
    let harness = secured().await;
    harness.topic("orders").await;
    assert_eq!(
        produce_code(harness.call(ALICE, 9, produce("orders")).await),
        29
    );
    assert_eq!(
        fetch_code(harness.call(ALICE, 12, fetch("orders")).await),
        29
    );
    // A long poll on topics the caller may not read is answered at once.
    let RequestKind::Fetch(long_poll) = fetch("orders") else {
        unreachable!("a fetch request")
    };
    let started = std::time::Instant::now();
    let long_poll = long_poll.with_max_wait_ms(10_000).with_min_bytes(1);
    let refused = harness.call(ALICE, 12, RequestKind::Fetch(long_poll)).await;
    assert_eq!(fetch_code(refused), 29);
    assert!(started.elapsed() < Duration::from_secs(5));
    harness
        .allow(ALICE, AclOperation::Write, ResourceType::Topic, "orders")
        .await;
    assert_eq!(
        produce_code(harness.call(ALICE, 9, produce("orders")).await),
        0
    );
    assert_eq!(
        fetch_code(harness.call(ALICE, 12, fetch("orders")).await),
        29
    );
    harness
        .allow(ALICE, AclOperation::Read, ResourceType::Topic, "orders")
        .await;
    assert_eq!(
        fetch_code(harness.call(ALICE, 12, fetch("orders")).await),
        0
    );
    // Write on a topic is enough for an idempotent producer's id.
    let ResponseKind::InitProducerId(producer) = harness
        .call(
            ALICE,
            4,
            RequestKind::InitProducerId(
                InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_producer_id((-1).into())
                    .with_producer_epoch(-1),
            ),
        )
        .await
    else {
        panic!("init producer id");
    };
    assert_eq!(producer.error_code, 0);
    let ResponseKind::InitProducerId(refused) = harness
        .call(
            BOB,
            4,
            RequestKind::InitProducerId(
                InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_producer_id((-1).into())
                    .with_producer_epoch(-1),
            ),
        )
        .await
    else {
        panic!("init producer id");
    };
    assert_eq!(refused.error_code, 31);
    let ResponseKind::InitProducerId(transactional) = harness
        .call(
            ALICE,
            4,
            RequestKind::InitProducerId(
                InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(str_bytes("tx"))))
                    .with_producer_id((-1).into())
                    .with_producer_epoch(-1),
            ),
        )
        .await
    else {
        panic!("init producer id");
    };
    assert_eq!(transactional.error_code, 53);
    let list_offsets = RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(TopicName(str_bytes("orders")))
            .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)]),
    ]));
    let ResponseKind::ListOffsets(offsets) = harness.call(BOB, 6, list_offsets.clone()).await
    else {
        panic!("list offsets");
    };
    assert_eq!(offsets.topics[0].partitions[0].error_code, 29);
    // Read implies Describe.
    let ResponseKind::ListOffsets(offsets) = harness.call(ALICE, 6, list_offsets).await else {
        panic!("list offsets");
    };
    assert_eq!(offsets.topics[0].partitions[0].error_code, 0);
    assert_eq!(offsets.topics[0].partitions[0].offset, 1);
}

#[tokio::test]
async fn deny_beats_allow_and_prefixed_patterns_apply() {
    let harness = secured().await;
    harness.topic("orders-eu").await;
    harness.topic("orders-us").await;
    harness.topic("payments").await;
    harness
        .grant(&[
            acl(
                ALICE,
                AclPermission::Allow,
                AclOperation::Write,
                ResourceType::Topic,
                PatternType::Prefixed,
                "orders-",
            ),
            acl(
                "User:*",
                AclPermission::Deny,
                AclOperation::Write,
                ResourceType::Topic,
                PatternType::Literal,
                "orders-us",
            ),
        ])
        .await;
    assert_eq!(
        produce_code(harness.call(ALICE, 9, produce("orders-eu")).await),
        0
    );
    assert_eq!(
        produce_code(harness.call(ALICE, 9, produce("orders-us")).await),
        29
    );
    assert_eq!(
        produce_code(harness.call(ALICE, 9, produce("payments")).await),
        29
    );
    // An ACL for another client address does not apply.
    let mut elsewhere = acl(
        BOB,
        AclPermission::Allow,
        AclOperation::Write,
        ResourceType::Topic,
        PatternType::Literal,
        "payments",
    );
    elsewhere.host = "10.0.0.1".into();
    harness.grant(std::slice::from_ref(&elsewhere)).await;
    assert_eq!(
        produce_code(harness.call(BOB, 9, produce("payments")).await),
        29
    );
    let mut here = elsewhere;
    here.host = "127.0.0.1".into();
    harness.grant(&[here]).await;
    assert_eq!(
        produce_code(harness.call(BOB, 9, produce("payments")).await),
        0
    );
    // Super users bypass every ACL, Deny included.
    assert_eq!(
        produce_code(harness.call(ADMIN, 9, produce("orders-us")).await),
        0
    );
}

fn join(group: &str) -> RequestKind {
    RequestKind::JoinGroup(
        JoinGroupRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_protocol_type(str_bytes("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(str_bytes("range"))
                    .with_metadata(Bytes::new()),
            ]),
    )
}

fn commit(group: &str, topic: &str) -> RequestKind {
    RequestKind::OffsetCommit(
        OffsetCommitRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(str_bytes(topic)))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(1),
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

#[tokio::test]
async fn groups_need_read_describe_or_delete_on_the_group() {
    let harness = secured().await;
    harness.topic("orders").await;
    let ResponseKind::JoinGroup(joined) = harness.call(ALICE, 9, join("billing")).await else {
        panic!("join");
    };
    assert_eq!(joined.error_code, 30);
    assert_eq!(
        commit_code(harness.call(ALICE, 8, commit("billing", "orders")).await),
        30
    );
    let ResponseKind::FindCoordinator(found) = harness
        .call(
            ALICE,
            3,
            RequestKind::FindCoordinator(
                FindCoordinatorRequest::default().with_key(str_bytes("billing")),
            ),
        )
        .await
    else {
        panic!("find coordinator");
    };
    assert_eq!(found.error_code, 30);

    harness
        .allow(ALICE, AclOperation::Read, ResourceType::Group, "billing")
        .await;
    // Read on the group, not on the topic.
    assert_eq!(
        commit_code(harness.call(ALICE, 8, commit("billing", "orders")).await),
        29
    );
    harness
        .allow(ALICE, AclOperation::Read, ResourceType::Topic, "orders")
        .await;
    assert_eq!(
        commit_code(harness.call(ALICE, 8, commit("billing", "orders")).await),
        0
    );
    // Past authorization, the coordinator answers: no such member.
    let heartbeat = RequestKind::Heartbeat(
        HeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes("billing")))
            .with_member_id(str_bytes("ghost")),
    );
    let ResponseKind::Heartbeat(beat) = harness.call(BOB, 4, heartbeat.clone()).await else {
        panic!("heartbeat");
    };
    assert_eq!(beat.error_code, 30);
    let ResponseKind::Heartbeat(beat) = harness.call(ALICE, 4, heartbeat).await else {
        panic!("heartbeat");
    };
    assert_eq!(beat.error_code, 25);

    // Offsets of topics the caller may not Describe are not shown.
    harness
        .grant(&[acl(
            BOB,
            AclPermission::Allow,
            AclOperation::Describe,
            ResourceType::Group,
            PatternType::Literal,
            "billing",
        )])
        .await;
    let fetch_offsets = |topics| {
        RequestKind::OffsetFetch(
            OffsetFetchRequest::default()
                .with_group_id(GroupId(str_bytes("billing")))
                .with_topics(topics),
        )
    };
    let ResponseKind::OffsetFetch(all) = harness.call(BOB, 7, fetch_offsets(None)).await else {
        panic!("offset fetch");
    };
    assert_eq!(all.error_code, 0);
    assert!(all.topics.is_empty());
    let named = Some(vec![
        OffsetFetchRequestTopic::default()
            .with_name(TopicName(str_bytes("orders")))
            .with_partition_indexes(vec![0]),
    ]);
    let ResponseKind::OffsetFetch(named) = harness.call(BOB, 7, fetch_offsets(named)).await else {
        panic!("offset fetch");
    };
    assert_eq!(named.topics[0].partitions[0].error_code, 29);
    let ResponseKind::OffsetFetch(alices) = harness.call(ALICE, 7, fetch_offsets(None)).await
    else {
        panic!("offset fetch");
    };
    assert_eq!(alices.topics[0].partitions[0].committed_offset, 1);

    // ListGroups: groups the caller may Describe, or all with Describe
    // on the cluster.
    let list = || RequestKind::ListGroups(ListGroupsRequest::default());
    let listed = |response: ResponseKind| {
        let ResponseKind::ListGroups(response) = response else {
            panic!("list groups");
        };
        response
            .groups
            .iter()
            .map(|g| g.group_id.0.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed(harness.call(ALICE, 4, list()).await),
        vec!["billing"]
    );
    assert!(listed(harness.call("User:carol", 4, list()).await).is_empty());
    harness
        .allow(
            "User:carol",
            AclOperation::Describe,
            ResourceType::Cluster,
            CLUSTER_NAME,
        )
        .await;
    assert_eq!(
        listed(harness.call("User:carol", 4, list()).await),
        vec!["billing"]
    );

    let describe = RequestKind::DescribeGroups(
        DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(str_bytes("billing"))])
            .with_include_authorized_operations(true),
    );
    let ResponseKind::DescribeGroups(described) =
        harness.call("User:carol", 5, describe.clone()).await
    else {
        panic!("describe groups");
    };
    assert_eq!(described.groups[0].error_code, 30);
    let ResponseKind::DescribeGroups(described) = harness.call(ALICE, 5, describe).await else {
        panic!("describe groups");
    };
    assert_eq!(described.groups[0].error_code, 0);
    assert_eq!(
        described.groups[0].authorized_operations,
        (1 << 3) | (1 << 8)
    );
    let delete = RequestKind::DeleteGroups(
        DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str_bytes("billing"))]),
    );
    let ResponseKind::DeleteGroups(deleted) = harness.call(ALICE, 2, delete).await else {
        panic!("delete groups");
    };
    assert_eq!(deleted.results[0].error_code, 30);
}

#[tokio::test]
async fn topic_administration_needs_create_delete_alter_and_configs_rights() {
    let harness = secured().await;
    let created = |response: ResponseKind| {
        let ResponseKind::CreateTopics(response) = response else {
            panic!("create topics");
        };
        let topic = &response.topics[0];
        (
            topic.error_code,
            topic.topic_config_error_code,
            topic.configs.clone(),
        )
    };
    assert_eq!(
        created(harness.call(ALICE, 7, create_topic("orders")).await).0,
        29
    );
    harness
        .allow(
            ALICE,
            AclOperation::Create,
            ResourceType::Cluster,
            CLUSTER_NAME,
        )
        .await;
    let (code, config_code, configs) =
        created(harness.call(ALICE, 7, create_topic("orders")).await);
    assert_eq!((code, config_code), (0, 29));
    assert!(configs.is_none_or(|c| c.is_empty()));

    let configs_of = |resource_type: i8, name: &str| {
        RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(str_bytes(name)),
        ]))
    };
    let described = |response: ResponseKind| {
        let ResponseKind::DescribeConfigs(response) = response else {
            panic!("describe configs");
        };
        response.results[0].error_code
    };
    assert_eq!(
        described(harness.call(ALICE, 4, configs_of(2, "orders")).await),
        29
    );
    assert_eq!(
        described(harness.call(ALICE, 4, configs_of(4, "0")).await),
        31
    );
    harness
        .allow(
            ALICE,
            AclOperation::AlterConfigs,
            ResourceType::Topic,
            "orders",
        )
        .await;
    // AlterConfigs implies DescribeConfigs.
    assert_eq!(
        described(harness.call(ALICE, 4, configs_of(2, "orders")).await),
        0
    );
    let alter = |resource_type: i8, name: &str| {
        RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default().with_resources(
            vec![
                kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(str_bytes(name))
                    .with_configs(vec![
                        kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(str_bytes("retention.ms"))
                            .with_config_operation(0)
                            .with_value(Some(str_bytes("60000"))),
                    ]),
            ],
        ))
    };
    let altered = |response: ResponseKind| {
        let ResponseKind::IncrementalAlterConfigs(response) = response else {
            panic!("alter configs");
        };
        response.responses[0].error_code
    };
    assert_eq!(altered(harness.call(BOB, 1, alter(2, "orders")).await), 29);
    assert_eq!(altered(harness.call(BOB, 1, alter(4, "0")).await), 31);
    assert_eq!(altered(harness.call(ALICE, 1, alter(2, "orders")).await), 0);

    let grow = RequestKind::CreatePartitions(CreatePartitionsRequest::default().with_topics(vec![
        CreatePartitionsTopic::default()
            .with_name(TopicName(str_bytes("orders")))
            .with_count(2),
    ]));
    let ResponseKind::CreatePartitions(grown) = harness.call(ALICE, 3, grow.clone()).await else {
        panic!("create partitions");
    };
    assert_eq!(grown.results[0].error_code, 29);
    harness
        .allow(ALICE, AclOperation::Alter, ResourceType::Topic, "orders")
        .await;
    let ResponseKind::CreatePartitions(grown) = harness.call(ALICE, 3, grow).await else {
        panic!("create partitions");
    };
    assert_eq!(grown.results[0].error_code, 0);

    let truncate = RequestKind::DeleteRecords(DeleteRecordsRequest::default().with_topics(vec![
        DeleteRecordsTopic::default()
            .with_name(TopicName(str_bytes("orders")))
            .with_partitions(vec![
                DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(0),
            ]),
    ]));
    let ResponseKind::DeleteRecords(truncated) = harness.call(ALICE, 2, truncate).await else {
        panic!("delete records");
    };
    assert_eq!(truncated.topics[0].partitions[0].error_code, 29);

    let delete = RequestKind::DeleteTopics(
        DeleteTopicsRequest::default().with_topic_names(vec![TopicName(str_bytes("orders"))]),
    );
    let deleted = |response: ResponseKind| {
        let ResponseKind::DeleteTopics(response) = response else {
            panic!("delete topics");
        };
        response.responses[0].error_code
    };
    assert_eq!(deleted(harness.call(ALICE, 5, delete.clone()).await), 29);
    harness
        .allow(ALICE, AclOperation::Delete, ResourceType::Topic, "orders")
        .await;
    assert_eq!(deleted(harness.call(ALICE, 5, delete).await), 0);
}

fn describe_all_acls() -> RequestKind {
    RequestKind::DescribeAcls(
        DescribeAclsRequest::default()
            .with_resource_name_filter(None)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1),
    )
}

fn described_acls(response: ResponseKind) -> (i16, Vec<DescribeAclsResource>) {
    let ResponseKind::DescribeAcls(response) = response else {
        panic!("describe acls");
    };
    (response.error_code, response.resources)
}

#[tokio::test]
async fn acls_round_trip_through_create_describe_and_delete() {
    let harness = secured().await;
    let creations = vec![
        acl_creation(2, "orders", 3, ALICE, 3, 3),
        acl_creation(2, "orders-", 4, ALICE, 4, 3),
        // A filter-only pattern type in a binding.
        acl_creation(2, "orders", 2, ALICE, 3, 3),
        acl_creation(4, "not-the-cluster", 3, ALICE, 8, 3),
        acl_creation(2, "orders", 3, "alice", 3, 3),
    ];
    let create = RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(creations));
    let ResponseKind::CreateAcls(refused) = harness.call(ALICE, 3, create.clone()).await else {
        panic!("create acls");
    };
    assert!(refused.results.iter().all(|r| r.error_code == 31));
    let ResponseKind::CreateAcls(created) = harness.call(ADMIN, 3, create).await else {
        panic!("create acls");
    };
    let codes: Vec<i16> = created.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, vec![0, 0, 42, 42, 42]);
    assert!(
        created.results[2..]
            .iter()
            .all(|r| r.error_message.is_some())
    );

    assert_eq!(
        described_acls(harness.call(ALICE, 3, describe_all_acls()).await).0,
        31
    );
    let (code, resources) = described_acls(harness.call(ADMIN, 3, describe_all_acls()).await);
    assert_eq!(code, 0);
    let mut seen: Vec<(i8, String, i8, String, i8)> = resources
        .iter()
        .flat_map(|r| {
            r.acls.iter().map(|a| {
                (
                    r.resource_type,
                    r.resource_name.to_string(),
                    r.pattern_type,
                    a.principal.to_string(),
                    a.operation,
                )
            })
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (2, "orders".into(), 3, ALICE.into(), 3),
            (2, "orders-".into(), 4, ALICE.into(), 4),
            (2, "unrelated".into(), 3, "User:nobody".into(), 3),
        ]
    );
    // The new ACLs take effect: Read on "orders" lets alice fetch.
    harness.topic("orders").await;
    assert_eq!(
        fetch_code(harness.call(ALICE, 12, fetch("orders")).await),
        0
    );

    // MATCH selects what applies to a name: the literal and the prefix.
    let matching = DescribeAclsRequest::default()
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(2)
        .with_resource_name_filter(Some(str_bytes("orders-eu")))
        .with_pattern_type_filter(2)
        .with_operation(1)
        .with_permission_type(1);
    let (_, matched) = described_acls(
        harness
            .call(ADMIN, 3, RequestKind::DescribeAcls(matching))
            .await,
    );
    assert_eq!(matched.len(), 1);
    assert_eq!(matched[0].resource_name.as_str(), "orders-");

    let delete = RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(vec![
        kafka_protocol::messages::delete_acls_request::DeleteAclsFilter::default()
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_resource_type_filter(2)
            .with_resource_name_filter(Some(str_bytes("orders")))
            .with_pattern_type_filter(3)
            .with_operation(1)
            .with_permission_type(1),
        kafka_protocol::messages::delete_acls_request::DeleteAclsFilter::default()
            .with_resource_name_filter(None)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_resource_type_filter(0)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1),
    ]));
    let ResponseKind::DeleteAcls(refused) = harness.call(ALICE, 3, delete.clone()).await else {
        panic!("delete acls");
    };
    assert!(refused.filter_results.iter().all(|r| r.error_code == 31));
    let ResponseKind::DeleteAcls(deleted) = harness.call(ADMIN, 3, delete).await else {
        panic!("delete acls");
    };
    assert_eq!(deleted.filter_results[0].error_code, 0);
    assert_eq!(deleted.filter_results[0].matching_acls.len(), 1);
    assert_eq!(deleted.filter_results[0].matching_acls[0].operation, 3);
    assert_eq!(deleted.filter_results[1].error_code, 42);
    let (_, left) = described_acls(harness.call(ADMIN, 3, describe_all_acls()).await);
    let left: Vec<&str> = left.iter().map(|r| r.resource_name.as_str()).collect();
    assert_eq!(left, vec!["orders-", "unrelated"]);
    assert_eq!(
        fetch_code(harness.call(ALICE, 12, fetch("orders")).await),
        29
    );
}

#[tokio::test]
async fn scram_credentials_round_trip_and_need_cluster_rights() {
    let harness = secured().await;
    let mechanism = ScramMechanism::Sha256;
    let salt = b"pepper and salt!".to_vec();
    let salted = mechanism.salted_password(b"s3cret", &salt, 4096);
    let upsert = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        upsertion("alice", 1, 4096)
            .with_salt(Bytes::from(salt))
            .with_salted_password(Bytes::from(salted)),
    ]);
    assert_eq!(
        alter_results(
            harness
                .call(
                    BOB,
                    0,
                    RequestKind::AlterUserScramCredentials(upsert.clone())
                )
                .await
        ),
        vec![("alice".to_string(), 31)]
    );
    assert_eq!(
        alter_results(
            harness
                .call(ADMIN, 0, RequestKind::AlterUserScramCredentials(upsert))
                .await
        ),
        vec![("alice".to_string(), 0)]
    );
    let principal = harness
        .broker
        .engine
        .authenticate_password("alice", "s3cret")
        .await
        .expect("authenticate");
    assert_eq!(principal, Some(Principal::user("alice")));

    let describe = |users: Option<Vec<&str>>| {
        RequestKind::DescribeUserScramCredentials(
            DescribeUserScramCredentialsRequest::default().with_users(users.map(|users| {
                users
                    .into_iter()
                    .map(|u| UserName::default().with_name(str_bytes(u)))
                    .collect()
            })),
        )
    };
    let ResponseKind::DescribeUserScramCredentials(refused) =
        harness.call(BOB, 0, describe(None)).await
    else {
        panic!("describe scram");
    };
    assert_eq!(refused.error_code, 31);
    let ResponseKind::DescribeUserScramCredentials(described) =
        harness.call(ADMIN, 0, describe(None)).await
    else {
        panic!("describe scram");
    };
    assert_eq!(described.results.len(), 1);
    assert_eq!(described.results[0].user.as_str(), "alice");
    let info = &described.results[0].credential_infos;
    assert_eq!((info[0].mechanism, info[0].iterations), (1, 4096));

    let delete =
        AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion("alice", 1)]);
    assert_eq!(
        alter_results(
            harness
                .call(
                    ADMIN,
                    0,
                    RequestKind::AlterUserScramCredentials(delete.clone())
                )
                .await
        ),
        vec![("alice".to_string(), 0)]
    );
    assert_eq!(
        alter_results(
            harness
                .call(ADMIN, 0, RequestKind::AlterUserScramCredentials(delete))
                .await
        ),
        vec![("alice".to_string(), 91)]
    );
    let ResponseKind::DescribeUserScramCredentials(gone) =
        harness.call(ADMIN, 0, describe(Some(vec!["alice"]))).await
    else {
        panic!("describe scram");
    };
    assert_eq!(gone.results[0].error_code, 91);
}

#[tokio::test]
async fn describe_producers_needs_read_on_the_topic() {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    let harness = secured().await;
    harness.topic("orders").await;
    let request = || {
        RequestKind::DescribeProducers(DescribeProducersRequest::default().with_topics(vec![
            TopicRequest::default()
                .with_name(TopicName(str_bytes("orders")))
                .with_partition_indexes(vec![0]),
        ]))
    };
    let code = |response: ResponseKind| {
        let ResponseKind::DescribeProducers(response) = response else {
            panic!("not a DescribeProducers response");
        };
        response.topics[0].partitions[0].error_code
    };
    assert_eq!(code(harness.call(ALICE, 0, request()).await), 29);
    harness
        .allow(ALICE, AclOperation::Describe, ResourceType::Topic, "orders")
        .await;
    assert_eq!(
        code(harness.call(ALICE, 0, request()).await),
        29,
        "Describe is not enough: Kafka asks for Read"
    );
    harness
        .allow(ALICE, AclOperation::Read, ResourceType::Topic, "orders")
        .await;
    assert_eq!(code(harness.call(ALICE, 0, request()).await), 0);
}

#[tokio::test]
async fn log_dirs_and_offset_deletion_need_cluster_describe_and_group_delete() {
    use kafka_protocol::messages::offset_delete_request::{
        OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    let harness = secured().await;
    harness.topic("orders").await;
    let log_dirs = || RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default());
    let ResponseKind::DescribeLogDirs(refused) = harness.call(ALICE, 4, log_dirs()).await else {
        panic!("not a DescribeLogDirs response");
    };
    assert_eq!((refused.error_code, refused.results.len()), (31, 0));
    harness
        .allow(
            ALICE,
            AclOperation::Describe,
            ResourceType::Cluster,
            CLUSTER_NAME,
        )
        .await;
    let ResponseKind::DescribeLogDirs(allowed) = harness.call(ALICE, 4, log_dirs()).await else {
        panic!("not a DescribeLogDirs response");
    };
    assert_eq!((allowed.error_code, allowed.results.len()), (0, 1));

    let delete = || {
        RequestKind::OffsetDelete(
            OffsetDeleteRequest::default()
                .with_group_id(GroupId(str_bytes("billing")))
                .with_topics(vec![
                    OffsetDeleteRequestTopic::default()
                        .with_name(TopicName(str_bytes("orders")))
                        .with_partitions(vec![OffsetDeleteRequestPartition::default()]),
                ]),
        )
    };
    let code = |response: ResponseKind| {
        let ResponseKind::OffsetDelete(response) = response else {
            panic!("not an OffsetDelete response");
        };
        (
            response.error_code,
            response.topics.first().map(|t| t.partitions[0].error_code),
        )
    };
    assert_eq!(code(harness.call(ALICE, 0, delete()).await), (30, None));
    harness
        .allow(ALICE, AclOperation::Delete, ResourceType::Group, "billing")
        .await;
    // The group has no offsets at all.
    assert_eq!(code(harness.call(ALICE, 0, delete()).await), (69, None));
    harness
        .allow(ALICE, AclOperation::Read, ResourceType::Group, "billing")
        .await;
    harness
        .allow(ALICE, AclOperation::Read, ResourceType::Topic, "orders")
        .await;
    assert_eq!(
        commit_code(harness.call(ALICE, 8, commit("billing", "orders")).await),
        0
    );
    assert_eq!(code(harness.call(ALICE, 0, delete()).await), (0, Some(0)));
}

#[tokio::test]
async fn the_consumer_protocol_needs_read_on_the_group_and_describe_on_its_topics() {
    let harness = secured().await;
    harness.topic("orders").await;
    let join = RequestKind::ConsumerGroupHeartbeat(
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes("modern")))
            .with_member_id(str_bytes("m1"))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![TopicName(str_bytes("orders"))]))
            .with_topic_partitions(Some(Vec::new())),
    );
    let code = |response: ResponseKind| {
        let ResponseKind::ConsumerGroupHeartbeat(response) = response else {
            panic!("not a consumer group heartbeat answer");
        };
        response.error_code
    };
    assert_eq!(code(harness.call(ALICE, 1, join.clone()).await), 30);
    harness
        .allow(ALICE, AclOperation::Read, ResourceType::Group, "modern")
        .await;
    assert_eq!(
        code(harness.call(ALICE, 1, join.clone()).await),
        29,
        "a subscribed topic the member may not describe"
    );
    harness
        .allow(ALICE, AclOperation::Describe, ResourceType::Topic, "orders")
        .await;
    assert_eq!(code(harness.call(ALICE, 1, join).await), 0);

    let describe = RequestKind::ConsumerGroupDescribe(
        ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(str_bytes("modern"))])
            .with_include_authorized_operations(true),
    );
    let described = |response: ResponseKind| {
        let ResponseKind::ConsumerGroupDescribe(response) = response else {
            panic!("not a consumer group describe answer");
        };
        (
            response.groups[0].error_code,
            response.groups[0].authorized_operations,
        )
    };
    assert_eq!(
        described(harness.call(BOB, 1, describe.clone()).await).0,
        30
    );
    // Read on the group implies Describe.
    assert_eq!(
        described(harness.call(ALICE, 1, describe).await),
        (0, (1 << 3) | (1 << 8))
    );
}

#[tokio::test]
async fn leader_epochs_and_topic_partitions_need_describe_or_cluster_action() {
    use kafka_protocol::messages::describe_topic_partitions_request::TopicRequest;
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    let harness = secured().await;
    harness.topic("orders").await;
    harness.topic("secret").await;
    let epochs = || {
        RequestKind::OffsetForLeaderEpoch(
            OffsetForLeaderEpochRequest::default()
                .with_replica_id((-1).into())
                .with_topics(
                    ["orders", "secret"]
                        .iter()
                        .map(|topic| {
                            OffsetForLeaderTopic::default()
                                .with_topic(TopicName(str_bytes(*topic)))
                                .with_partitions(vec![OffsetForLeaderPartition::default()])
                        })
                        .collect(),
                ),
        )
    };
    let codes = |response: ResponseKind| -> Vec<i16> {
        let ResponseKind::OffsetForLeaderEpoch(response) = response else {
            panic!("not an OffsetForLeaderEpoch response");
        };
        response
            .topics
            .iter()
            .map(|t| t.partitions[0].error_code)
            .collect()
    };
    assert_eq!(codes(harness.call(ALICE, 4, epochs()).await), [29, 29]);
    harness
        .allow(ALICE, AclOperation::Describe, ResourceType::Topic, "orders")
        .await;
    assert_eq!(codes(harness.call(ALICE, 4, epochs()).await), [0, 29]);
    // Replicas' permission covers every topic.
    harness
        .allow(
            BOB,
            AclOperation::ClusterAction,
            ResourceType::Cluster,
            CLUSTER_NAME,
        )
        .await;
    assert_eq!(codes(harness.call(BOB, 4, epochs()).await), [0, 0]);

    let describe = |topics: &[&str]| {
        RequestKind::DescribeTopicPartitions(
            DescribeTopicPartitionsRequest::default()
                .with_response_partition_limit(100)
                .with_topics(
                    topics
                        .iter()
                        .map(|t| TopicRequest::default().with_name(TopicName(str_bytes(*t))))
                        .collect(),
                ),
        )
    };
    let topics = |response: ResponseKind| -> Vec<(String, i16)> {
        let ResponseKind::DescribeTopicPartitions(response) = response else {
            panic!("not a DescribeTopicPartitions response");
        };
        response
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                    t.error_code,
                )
            })
            .collect()
    };
    let owned = |expected: &[(&str, i16)]| -> Vec<(String, i16)> {
        expected.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    };
    // Every topic: those not describable are left out without a word.
    assert_eq!(
        topics(harness.call(ALICE, 0, describe(&[])).await),
        owned(&[("orders", 0)])
    );
    // Named: refused after the others.
    assert_eq!(
        topics(
            harness
                .call(ALICE, 0, describe(&["secret", "orders"]))
                .await
        ),
        owned(&[("orders", 0), ("secret", 29)])
    );
    assert_eq!(
        topics(harness.call(BOB, 0, describe(&["orders"])).await),
        owned(&[("orders", 29)])
    );

    // A topic named by id still needs Read to be fetched.
    let secret = harness.broker.engine.topic("secret").await.expect("topic");
    let RequestKind::Fetch(mut by_id) = fetch("") else {
        unreachable!()
    };
    by_id.topics[0].topic_id = super::super::common::topic_uuid(&secret);
    assert_eq!(
        fetch_code(harness.call(ALICE, 13, RequestKind::Fetch(by_id)).await),
        29
    );
}
