//! ACLs enforced over a real connection: a PLAINTEXT client is
//! `User:ANONYMOUS` from its own address, and sees and writes only what
//! the ACLs grant that principal.

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Client;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use streamhouse_kafka::{KafkaConfig, KafkaServer};
use streamhouse_metadata::testing::temp_sqlite;
use streamhouse_storage::security::{
    AclBinding, AclOperation, AclPermission, PatternType, ResourceType,
};
use streamhouse_storage::{NewTopic, ObjectStorage, SecurityConfig, StorageConfig, StorageEngine};
use tokio::net::TcpListener;

fn metadata(topics: Option<&[&str]>) -> RequestKind {
    RequestKind::Metadata(
        MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|n| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(n.to_string()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(false),
    )
}

fn topics(response: ResponseKind) -> Vec<(String, i16)> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_client_sees_only_what_its_acls_grant() {
    let sqlite = temp_sqlite().await.expect("sqlite");
    let objects = tempfile::tempdir().expect("tempdir");
    let config = StorageConfig {
        security: SecurityConfig {
            authorizer: true,
            super_users: Vec::new(),
            refresh_interval: Duration::from_millis(50),
        },
        ..StorageConfig::default()
    };
    let engine = StorageEngine::start(
        Arc::new(sqlite.store.clone()),
        ObjectStorage::local(objects.path()).expect("local"),
        config,
    );
    for name in ["open", "closed"] {
        engine
            .create_topic(NewTopic::new(name, 1))
            .await
            .expect("topic");
    }
    engine
        .create_acls(&[AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: "open".into(),
            pattern_type: PatternType::Literal,
            principal: "User:ANONYMOUS".into(),
            host: "127.0.0.1".into(),
            operation: AclOperation::Describe,
            permission: AclPermission::Allow,
        }])
        .await
        .expect("acl");

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = KafkaServer::new(
        engine.clone(),
        KafkaConfig {
            advertised_port: addr.port(),
            ..KafkaConfig::default()
        },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = server
            .run(listener, async {
                let _ = stopped.await;
            })
            .await;
    });

    let mut client = Client::connect(addr).await;
    assert_eq!(
        topics(client.call(ApiKey::Metadata, 12, metadata(None)).await),
        vec![("open".to_string(), 0)]
    );
    assert_eq!(
        topics(
            client
                .call(ApiKey::Metadata, 12, metadata(Some(&["closed"])))
                .await
        ),
        vec![("closed".to_string(), 29)]
    );

    let _ = stop.send(());
    let _ = task.await;
    engine.shutdown().await;
}
