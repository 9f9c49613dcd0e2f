//! Authorization of each API, decided by the engine for the request's
//! caller: requests go through `dispatch` with a chosen principal, against
//! a real engine on SQLite and a local directory.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use streamhouse_core::Record;
use streamhouse_metadata::testing::{TempSqlite, temp_sqlite};
use streamhouse_storage::security::{Caller, Principal};
use streamhouse_storage::{NewTopic, ObjectStorage, StorageConfig, StorageEngine};

use super::common::str_bytes;
use super::{Reply, dispatch};
use crate::broker::{Broker, RequestContext};
use crate::config::KafkaConfig;
use crate::records::encode_batch;

pub(super) struct Harness {
    pub(super) broker: Arc<Broker>,
    _sqlite: TempSqlite,
    _objects: tempfile::TempDir,
}

impl Harness {
    pub(super) async fn start(config: StorageConfig) -> Self {
        let sqlite = temp_sqlite().await.expect("sqlite");
        let objects = tempfile::tempdir().expect("tempdir");
        let storage = ObjectStorage::local(objects.path()).expect("local");
        let engine = StorageEngine::start(Arc::new(sqlite.store.clone()), storage, config);
        let broker = Arc::new(Broker::new(engine, KafkaConfig::default()));
        Self {
            broker,
            _sqlite: sqlite,
            _objects: objects,
        }
    }

    pub(super) async fn topic(&self, name: &str) {
        self.broker
            .engine
            .create_topic(NewTopic::new(name, 1))
            .await
            .expect("create topic");
    }

    /// Sends `request` as `principal` (`User:alice`) and waits for the
    /// answer.
    pub(super) async fn call(
        &self,
        principal: &str,
        version: i16,
        request: RequestKind,
    ) -> ResponseKind {
        let context = RequestContext {
            client_id: "test".into(),
            client_host: "127.0.0.1".into(),
            version,
            caller: Caller::new(Principal::parse(principal).expect("principal"), "127.0.0.1"),
            listener: crate::listener::SecurityProtocol::Plaintext,
        };
        match dispatch(&self.broker, &context, request).await {
            Reply::Now(response) => *response,
            Reply::Later(pending) => pending.await,
            Reply::Nothing => panic!("no answer"),
        }
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(str_bytes(name))
}

pub(super) fn metadata(topics: Option<&[&str]>) -> RequestKind {
    RequestKind::Metadata(
        MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(true)
            .with_include_cluster_authorized_operations(true)
            .with_include_topic_authorized_operations(true),
    )
}

pub(super) fn produce(topic: &str) -> RequestKind {
    let records = encode_batch(
        &[Record::new(1_700_000_000_000, Bytes::from_static(b"v"))
            .with_key(Bytes::from_static(b"k"))
            .with_offset(0)],
        false,
    )
    .expect("encode");
    RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(records)),
                    ]),
            ]),
    )
}

pub(super) fn fetch(topic: &str) -> RequestKind {
    RequestKind::Fetch(
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]),
    )
}

pub(super) fn create_topic(name: &str) -> RequestKind {
    RequestKind::CreateTopics(
        CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(topic_name(name))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ]),
    )
}

pub(super) fn acl_creation(
    resource_type: i8,
    name: &str,
    pattern_type: i8,
    principal: &str,
    operation: i8,
    permission: i8,
) -> AclCreation {
    AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(str_bytes(name))
        .with_resource_pattern_type(pattern_type)
        .with_principal(str_bytes(principal))
        .with_host(str_bytes("*"))
        .with_operation(operation)
        .with_permission_type(permission)
}

pub(super) fn upsertion(user: &str, mechanism: i8, iterations: i32) -> ScramCredentialUpsertion {
    let salt = b"a salt of sixteen".to_vec();
    let length = if mechanism == 2 { 64 } else { 32 };
    ScramCredentialUpsertion::default()
        .with_name(str_bytes(user))
        .with_mechanism(mechanism)
        .with_iterations(iterations)
        .with_salt(Bytes::from(salt))
        .with_salted_password(Bytes::from(vec![7u8; length]))
}

pub(super) fn deletion(user: &str, mechanism: i8) -> ScramCredentialDeletion {
    ScramCredentialDeletion::default()
        .with_name(str_bytes(user))
        .with_mechanism(mechanism)
}

/// (user, error code) of each AlterUserScramCredentials result.
pub(super) fn alter_results(response: ResponseKind) -> Vec<(String, i16)> {
    let ResponseKind::AlterUserScramCredentials(response) = response else {
        panic!("not an AlterUserScramCredentials answer");
    };
    response
        .results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect()
}

const ALICE: &str = "User:alice";

#[tokio::test]
async fn without_an_authorizer_every_principal_may_do_everything() {
    let harness = Harness::start(StorageConfig::default()).await;
    harness.topic("orders").await;

    let ResponseKind::Metadata(answer) = harness.call(ALICE, 12, metadata(None)).await else {
        panic!("metadata");
    };
    assert_eq!(answer.topics.len(), 1);
    // Kafka's bit fields: every topic and cluster operation.
    let topic_bits =
        (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
    assert_eq!(answer.topics[0].topic_authorized_operations, topic_bits);
    let cluster_bits =
        (1 << 5) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 7) | (1 << 8);
    assert_eq!(answer.cluster_authorized_operations, cluster_bits);

    let ResponseKind::Produce(produced) = harness.call(ALICE, 9, produce("orders")).await else {
        panic!("produce");
    };
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    let ResponseKind::Fetch(fetched) = harness.call(ALICE, 12, fetch("orders")).await else {
        panic!("fetch");
    };
    let partition = &fetched.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.high_watermark, 1);
    let ResponseKind::CreateTopics(created) =
        harness.call(ALICE, 7, create_topic("payments")).await
    else {
        panic!("create topics");
    };
    assert_eq!(created.topics[0].error_code, 0);
    assert!(
        created.topics[0]
            .configs
            .as_ref()
            .is_some_and(|c| !c.is_empty())
    );
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
    assert!(producer.producer_id.0 >= 0);
}

#[tokio::test]
async fn acl_apis_answer_security_disabled_without_an_authorizer() {
    let harness = Harness::start(StorageConfig::default()).await;
    let creation = acl_creation(2, "orders", 3, ALICE, 3, 3);
    let ResponseKind::CreateAcls(created) = harness
        .call(
            ALICE,
            3,
            RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(vec![creation])),
        )
        .await
    else {
        panic!("create acls");
    };
    assert_eq!(created.results[0].error_code, 54);
    assert!(created.results[0].error_message.is_some());
    let ResponseKind::DescribeAcls(described) = harness
        .call(
            ALICE,
            3,
            RequestKind::DescribeAcls(
                DescribeAclsRequest::default()
                    .with_resource_type_filter(1)
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1),
            ),
        )
        .await
    else {
        panic!("describe acls");
    };
    assert_eq!(described.error_code, 54);
    let ResponseKind::DeleteAcls(deleted) = harness
        .call(
            ALICE,
            3,
            RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(
                vec![DeleteAclsFilter::default()
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1)],
            )),
        )
        .await
    else {
        panic!("delete acls");
    };
    assert_eq!(deleted.filter_results[0].error_code, 54);
}

#[tokio::test]
async fn scram_alterations_are_checked_as_kafka_checks_them() {
    let harness = Harness::start(StorageConfig::default()).await;
    let request = AlterUserScramCredentialsRequest::default()
        .with_upsertions(vec![
            upsertion("few", 1, 4095),
            upsertion("many", 2, 16385),
            upsertion("", 1, 8192),
            upsertion("strange", 9, 8192),
            upsertion("twice", 1, 8192),
            upsertion("twice", 1, 4096),
            upsertion("short", 1, 8192).with_salted_password(Bytes::from_static(b"short")),
            upsertion("mixed", 2, 8192),
        ])
        .with_deletions(vec![deletion("nobody", 2), deletion("mixed", 1)]);
    let results = alter_results(
        harness
            .call(ALICE, 0, RequestKind::AlterUserScramCredentials(request))
            .await,
    );
    assert_eq!(
        results,
        vec![
            ("nobody".to_string(), 91),
            ("mixed".to_string(), 92),
            ("few".to_string(), 93),
            ("many".to_string(), 93),
            (String::new(), 93),
            ("strange".to_string(), 33),
            ("twice".to_string(), 92),
            ("short".to_string(), 93),
        ]
    );
}

#[tokio::test]
async fn describing_scram_users_reports_unknown_and_repeated_names() {
    let harness = Harness::start(StorageConfig::default()).await;
    let request = DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
        UserName::default().with_name(str_bytes("ghost")),
        UserName::default().with_name(str_bytes("echo")),
        UserName::default().with_name(str_bytes("echo")),
    ]));
    let ResponseKind::DescribeUserScramCredentials(described) = harness
        .call(ALICE, 0, RequestKind::DescribeUserScramCredentials(request))
        .await
    else {
        panic!("describe scram");
    };
    assert_eq!(described.error_code, 0);
    let results: Vec<(String, i16)> = described
        .results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect();
    assert_eq!(
        results,
        vec![("ghost".to_string(), 91), ("echo".to_string(), 92)]
    );
}

mod admin;
mod compaction;
mod consumer_groups;
mod epochs;
mod matrix;
mod transactions;
