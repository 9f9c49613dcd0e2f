//! Metadata: every live agent is a broker; each partition's leader is the
//! agent that rendezvous hashing places it on (see `cluster.rs`). Topics
//! are created on first use when the client asks for it and the server
//! allows it (Kafka's `auto.create.topics.enable`).
//!
//! A topic the caller may not Describe is left out of the full list and
//! answered with TOPIC_AUTHORIZATION_FAILED when named, whether or not it
//! exists; creating one on first use needs Create on the cluster or the
//! topic.
//!
//! The invariant that matters: an outage of the metadata store never
//! looks like deleted topics. Clients drop topics missing from a full
//! list and stop producing to a topic answered with
//! UNKNOWN_TOPIC_OR_PARTITION, so the full list comes from the engine's
//! last known list, and a topic that cannot be looked up is answered with
//! LEADER_NOT_AVAILABLE, which every client retries.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use streamhouse_storage::security::{AclOperation, CLUSTER_NAME, ResourceType};
use streamhouse_storage::{NewTopic, StorageError, Topic};

use super::access::{Access, TOPIC_AUTHORIZATION_FAILED};
use super::common::{str_bytes, topic_uuid};
use crate::broker::{Broker, RequestContext};
use crate::error::storage_error_code;

pub(crate) async fn handle(
    broker: &Broker,
    context: &RequestContext,
    request: MetadataRequest,
) -> MetadataResponse {
    let version = context.version;
    let listener = context.listener;
    let access = Access::of(broker, context);
    let describe = |topic: &str| access.topic(AclOperation::Describe, topic);
    let with_operations = |topic: MetadataResponseTopic, name: &str| {
        topic.with_topic_authorized_operations(access.operations_if(
            request.include_topic_authorized_operations,
            ResourceType::Topic,
            name,
        ))
    };
    // v0: an empty list means every topic; v1+: null means every topic.
    // From v10 a topic may be named by its id instead (clients of the
    // consumer group protocol learn their partitions by topic id).
    let mut by_id: Vec<uuid::Uuid> = Vec::new();
    let requested: Option<Vec<String>> = match request.topics {
        None => None,
        Some(topics) if topics.is_empty() && version == 0 => None,
        Some(topics) => Some(
            topics
                .into_iter()
                .filter_map(|t| match t.name {
                    Some(name) => Some(name.0.to_string()),
                    None => {
                        if !t.topic_id.is_nil() {
                            by_id.push(t.topic_id);
                        }
                        None
                    }
                })
                .collect(),
        ),
    };
    let auto_create =
        broker.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let mut topics = Vec::new();
    match requested {
        None => match broker.engine.list_topics().await {
            Ok(all) => topics.extend(
                all.iter()
                    // Left out without a word in the log, as Kafka does.
                    .filter(|t| access.allows(AclOperation::Describe, ResourceType::Topic, &t.name))
                    .map(|t| with_operations(topic_metadata(broker, t), &t.name)),
            ),
            // Only when the topic list could not be read even at start:
            // nothing to answer with but an empty list.
            Err(error) => {
                tracing::warn!(%error, "metadata: cannot list topics and none are known");
            }
        },
        Some(names) => {
            for name in names {
                if let Err(code) = describe(&name) {
                    topics.push(
                        MetadataResponseTopic::default()
                            .with_name(Some(TopicName(str_bytes(name))))
                            .with_error_code(code),
                    );
                    continue;
                }
                // Through the engine's topic cache, which keeps answering
                // while the metadata store is briefly unreachable.
                let found = match broker.engine.topic(&name).await {
                    Ok(topic) => Ok((*topic).clone()),
                    Err(StorageError::UnknownTopic { .. })
                        if auto_create && !access.may_create_topic(&name) =>
                    {
                        Err(TOPIC_AUTHORIZATION_FAILED)
                    }
                    Err(StorageError::UnknownTopic { .. }) if auto_create => {
                        create_on_first_use(broker, &name).await.map_err(|e| {
                            if e.is_retriable() {
                                ResponseError::LeaderNotAvailable.code()
                            } else {
                                storage_error_code(&e)
                            }
                        })
                    }
                    // The topic may well exist: tell the client to retry.
                    Err(error) if error.is_retriable() => {
                        Err(ResponseError::LeaderNotAvailable.code())
                    }
                    Err(error) => Err(storage_error_code(&error)),
                };
                topics.push(match found {
                    Ok(topic) => with_operations(topic_metadata(broker, &topic), &name),
                    Err(code) => MetadataResponseTopic::default()
                        .with_name(Some(TopicName(str_bytes(name))))
                        .with_error_code(code),
                });
            }
        }
    }
    if !by_id.is_empty() {
        topics.extend(topics_by_id(broker, access, by_id).await.into_iter().map(
            |(topic, name)| match name {
                Some(name) => with_operations(topic, &name),
                None => topic,
            },
        ));
    }
    let brokers = listed_brokers(broker, listener)
        .into_iter()
        .map(|listed| {
            MetadataResponseBroker::default()
                .with_node_id(listed.node_id.into())
                .with_host(str_bytes(listed.host))
                .with_port(listed.port)
                .with_rack(listed.rack.map(str_bytes))
        })
        .collect();
    let cluster_operations = access.operations_if(
        request.include_cluster_authorized_operations,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_authorized_operations(cluster_operations)
        .with_cluster_id(Some(str_bytes(broker.config.cluster_id.clone())))
        .with_controller_id(broker.config.node_id.into())
        .with_topics(topics)
}

/// Topics named by id, each once: UNKNOWN_TOPIC_ID for an id no topic
/// has, TOPIC_AUTHORIZATION_FAILED (without the name) for one the caller
/// may not describe. Each answer comes with the topic's name when it may
/// be shown.
async fn topics_by_id(
    broker: &Broker,
    access: Access<'_>,
    mut ids: Vec<uuid::Uuid>,
) -> Vec<(MetadataResponseTopic, Option<String>)> {
    ids.sort();
    ids.dedup();
    let known: Result<std::collections::HashMap<uuid::Uuid, std::sync::Arc<Topic>>, i16> = broker
        .engine
        .list_topics()
        .await
        .map(|all| all.into_iter().map(|t| (topic_uuid(&t), t)).collect())
        .map_err(|e| {
            if e.is_retriable() {
                ResponseError::LeaderNotAvailable.code()
            } else {
                storage_error_code(&e)
            }
        });
    ids.into_iter()
        .map(|id| {
            let refused = |code: i16| {
                MetadataResponseTopic::default()
                    .with_topic_id(id)
                    .with_name(None)
                    .with_error_code(code)
            };
            match &known {
                Err(code) => (refused(*code), None),
                Ok(known) => match known.get(&id) {
                    None => (refused(ResponseError::UnknownTopicId.code()), None),
                    Some(topic) => match access.topic(AclOperation::Describe, &topic.name) {
                        Ok(()) => (topic_metadata(broker, topic), Some(topic.name.clone())),
                        Err(code) => (refused(code), None),
                    },
                },
            }
        })
        .collect()
}

/// A live agent as a broker of the cluster.
pub(crate) struct ListedBroker {
    pub(crate) node_id: i32,
    pub(crate) host: String,
    pub(crate) port: i32,
    pub(crate) rack: Option<String>,
}

/// Each live agent at its port for the listener this client came through
/// (Kafka's behaviour); an agent without that listener is left out.
pub(crate) fn listed_brokers(
    broker: &Broker,
    listener: crate::listener::SecurityProtocol,
) -> Vec<ListedBroker> {
    broker
        .cluster
        .live()
        .iter()
        .filter_map(|agent| {
            Some(ListedBroker {
                node_id: agent.node_id,
                host: agent.host.clone(),
                port: agent.port_for(listener)?,
                rack: agent.zone.clone(),
            })
        })
        .collect()
}

async fn create_on_first_use(broker: &Broker, name: &str) -> Result<Topic, StorageError> {
    let topic = NewTopic::new(name, i64::from(broker.config.default_partitions));
    match broker.engine.create_topic(topic).await {
        Ok(topic) => {
            tracing::info!(topic = name, "created topic on first use");
            Ok(topic)
        }
        // Another client may have created it at the same moment; if not,
        // reading it back reports why.
        Err(error) => {
            tracing::debug!(topic = name, %error, "creating topic on first use failed");
            broker.engine.load_topic(name).await
        }
    }
}

pub(crate) fn topic_metadata(broker: &Broker, topic: &Topic) -> MetadataResponseTopic {
    let partitions = (0..topic.partition_count)
        .map(|partition| {
            let node = broker.cluster.leader(&topic.name, partition).node_id;
            MetadataResponsePartition::default()
                .with_error_code(0)
                .with_partition_index(partition)
                .with_leader_id(node.into())
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node.into()])
                .with_isr_nodes(vec![node.into()])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_error_code(0)
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic_uuid(topic))
        .with_is_internal(false)
        .with_partitions(partitions)
        .with_topic_authorized_operations(super::access::OPERATIONS_NOT_REQUESTED)
}
