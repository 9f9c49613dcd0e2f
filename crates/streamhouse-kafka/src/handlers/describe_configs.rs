//! DescribeConfigs for topics and for this broker. A topic needs
//! DescribeConfigs on it (TOPIC_AUTHORIZATION_FAILED), the broker
//! DescribeConfigs on the cluster (CLUSTER_AUTHORIZATION_FAILED).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use streamhouse_core::ConfigType;

use streamhouse_storage::security::AclOperation;

use super::access::Access;
use super::common::str_bytes;
use super::common::{SOURCE_DEFAULT, SOURCE_TOPIC};
use crate::broker::{Broker, RequestContext};
use crate::error::storage_error_code;

/// One config as DescribeConfigs reports it.
struct Entry {
    name: String,
    value: String,
    source: i8,
    /// Kafka's config type id (v3+).
    config_type: i8,
    documentation: &'static str,
}
/// A failure's error code and message.
type Failure = (i16, String);

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// DescribeConfigs' config source for a static broker setting.
const SOURCE_STATIC_BROKER: i8 = 4;

// DescribeConfigs' config types (Kafka's ConfigDef.Type ids).
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_DOUBLE: i8 = 6;
const TYPE_LIST: i8 = 7;

fn config_type_id(kind: ConfigType) -> i8 {
    match kind {
        ConfigType::Boolean => TYPE_BOOLEAN,
        ConfigType::String => TYPE_STRING,
        ConfigType::Int => TYPE_INT,
        ConfigType::Long => TYPE_LONG,
        ConfigType::Double => TYPE_DOUBLE,
        ConfigType::List => TYPE_LIST,
    }
}

pub(crate) async fn handle(
    broker: &Broker,
    context: &RequestContext,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let access = Access::of(broker, context);
    let refused = |code: i16| (code, "not authorized to describe these configs".to_string());
    let mut results = Vec::with_capacity(request.resources.len());
    let include_documentation = request.include_documentation;
    for resource in request.resources {
        let name = resource.resource_name.to_string();
        let wanted = |key: &str| {
            resource
                .configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == key))
        };
        let result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let entries: Result<Vec<Entry>, Failure> = match resource.resource_type {
            RESOURCE_TOPIC if access.topic(AclOperation::DescribeConfigs, &name).is_err() => {
                Err(refused(super::access::TOPIC_AUTHORIZATION_FAILED))
            }
            RESOURCE_BROKER if access.cluster(AclOperation::DescribeConfigs).is_err() => {
                Err(refused(super::access::CLUSTER_AUTHORIZATION_FAILED))
            }
            RESOURCE_TOPIC => match broker.engine.load_topic(&name).await {
                Ok(topic) => Ok(topic
                    .config
                    .entries()
                    .into_iter()
                    .map(|e| Entry {
                        source: if e.is_default {
                            SOURCE_DEFAULT
                        } else {
                            SOURCE_TOPIC
                        },
                        config_type: config_type_id(e.kind),
                        documentation: e.doc,
                        name: e.name,
                        value: e.value,
                    })
                    .collect()),
                Err(error) => Err((storage_error_code(&error), error.to_string())),
            },
            RESOURCE_BROKER => Ok(broker_configs(broker)),
            other => Err((
                ResponseError::InvalidRequest.code(),
                format!("resource type {other} is not supported"),
            )),
        };
        results.push(match entries {
            Ok(entries) => result.with_error_code(0).with_configs(
                entries
                    .into_iter()
                    .filter(|entry| wanted(&entry.name))
                    .map(|entry| {
                        DescribeConfigsResourceResult::default()
                            .with_name(str_bytes(entry.name))
                            .with_value(Some(str_bytes(entry.value)))
                            .with_read_only(resource.resource_type == RESOURCE_BROKER)
                            .with_config_source(entry.source)
                            .with_is_sensitive(false)
                            .with_config_type(entry.config_type)
                            .with_documentation(
                                include_documentation.then(|| str_bytes(entry.documentation)),
                            )
                    })
                    .collect(),
            ),
            Err((code, message)) => result
                .with_error_code(code)
                .with_error_message(Some(str_bytes(message))),
        });
    }
    DescribeConfigsResponse::default().with_results(results)
}

fn broker_configs(broker: &Broker) -> Vec<Entry> {
    [
        (
            "auto.create.topics.enable",
            broker.config.auto_create_topics.to_string(),
            TYPE_BOOLEAN,
            "Whether a topic is created when a client asks for one that does not exist \
             (--auto-create-topics-enable).",
        ),
        (
            "broker.id",
            broker.config.node_id.to_string(),
            TYPE_INT,
            "This agent's node id.",
        ),
        (
            "num.partitions",
            broker.config.default_partitions.to_string(),
            TYPE_INT,
            "Partitions of a topic created without a count (--num-partitions).",
        ),
        (
            "socket.request.max.bytes",
            broker.config.max_frame_bytes.to_string(),
            TYPE_INT,
            "The largest request frame accepted (--socket-request-max-bytes).",
        ),
    ]
    .into_iter()
    .map(|(name, value, config_type, documentation)| Entry {
        name: name.to_string(),
        value,
        source: SOURCE_STATIC_BROKER,
        config_type,
        documentation,
    })
    .collect()
}
