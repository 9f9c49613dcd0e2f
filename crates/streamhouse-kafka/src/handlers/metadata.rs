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
//! Each partition carries its leader epoch (KIP-320) as this agent knows
//! it; every agent agrees within a heartbeat of a change. From v12 topics
//! may be named by id (KIP-516): an id no topic has gets UNKNOWN_TOPIC_ID,
//! and no topic is created by id. A topic named more than once is answered
//! once.
//!
//! The invariant that matters: an outage of the metadata store never
//! looks like deleted topics. Clients drop topics missing from a full
//! list and stop producing to a topic answered with
//! UNKNOWN_TOPIC_OR_PARTITION, so the full list comes from the engine's
//! last known list, and a topic that cannot be looked up is answered with
//! LEADER_NOT_AVAILABLE, which every client retries.

use std::collections::HashSet;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
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
    let mut topics = Vec::new();
    let mut by_id = false;
    let requested: Option<Vec<String>> = match request.topics {
        None => None,
        Some(named) if named.is_empty() && version == 0 => None,
        // Versions 10 and 11 carry ids the server is not to use (Kafka's
        // note on the message); names may be left out only from 12.
        Some(named) if version >= 12 && named.iter().any(|t| !t.topic_id.is_nil()) => {
            by_id = true;
            let (names, unknown) = names_of_ids(broker, &named).await;
            topics.extend(unknown);
            Some(names)
        }
        Some(named) => Some(unique(
            named
                .into_iter()
                .filter_map(|t| t.name.map(|n| n.0.to_string())),
        )),
    };
    let auto_create = !by_id
        && broker.config.auto_create_topics
        && (version < 4 || request.allow_auto_topic_creation);
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
                    // A topic asked for by id is not named to a caller who
                    // may not see it; its id is no secret (Kafka's rule).
                    let refused = if by_id {
                        let id = broker
                            .engine
                            .topic(&name)
                            .await
                            .map(|t| topic_uuid(&t))
                            .unwrap_or_default();
                        MetadataResponseTopic::default()
                            .with_name(None)
                            .with_topic_id(id)
                    } else {
                        MetadataResponseTopic::default().with_name(Some(TopicName(str_bytes(name))))
                    };
                    topics.push(refused.with_error_code(code));
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

/// `names` without repeats, in the order first given.
pub(crate) fn unique<T: Clone + Eq + std::hash::Hash>(
    names: impl IntoIterator<Item = T>,
) -> Vec<T> {
    let mut seen = HashSet::new();
    names
        .into_iter()
        .filter(|name| seen.insert(name.clone()))
        .collect()
}

/// The names of the topics with the ids `requested` names (each once),
/// and an UNKNOWN_TOPIC_ID answer for each id no topic has. All ids are
/// looked up at once.
async fn names_of_ids(
    broker: &Broker,
    requested: &[MetadataRequestTopic],
) -> (Vec<String>, Vec<MetadataResponseTopic>) {
    let ids = unique(
        requested
            .iter()
            .filter(|t| !t.topic_id.is_nil())
            .map(|t| t.topic_id),
    );
    let keys: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let found = match broker.engine.topics_by_id(&keys).await {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%error, "metadata: cannot look topic ids up");
            Default::default()
        }
    };
    let mut names = Vec::new();
    let mut unknown = Vec::new();
    for (id, key) in ids.into_iter().zip(keys) {
        match found.get(&key) {
            Some(topic) => names.push(topic.name.clone()),
            None => unknown.push(
                MetadataResponseTopic::default()
                    .with_error_code(ResponseError::UnknownTopicId.code())
                    .with_name(None)
                    .with_topic_id(id),
            ),
        }
    }
    (names, unknown)
}

pub(crate) fn topic_metadata(broker: &Broker, topic: &Topic) -> MetadataResponseTopic {
    let partitions = (0..topic.partition_count)
        .map(|partition| {
            let node = broker.cluster.leader(&topic.name, partition).node_id;
            MetadataResponsePartition::default()
                .with_error_code(0)
                .with_partition_index(partition)
                .with_leader_id(node.into())
                .with_leader_epoch(broker.engine.leader_epoch(&topic.name, partition))
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
