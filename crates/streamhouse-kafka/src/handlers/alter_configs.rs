//! AlterConfigs (replace a topic's overrides) and IncrementalAlterConfigs
//! (set, delete, append to or subtract from single configs) for topics.
//! Broker settings are static and refused.
//!
//! A topic needs AlterConfigs on it (TOPIC_AUTHORIZATION_FAILED), the
//! broker AlterConfigs on the cluster (CLUSTER_AUTHORIZATION_FAILED).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, alter_configs_response, incremental_alter_configs_response,
};
use streamhouse_core::TopicConfig;

use streamhouse_storage::security::AclOperation;

use super::access::Access;
use super::common::str_bytes;
use crate::broker::{Broker, RequestContext};
use crate::error::storage_error_code;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// A failure's error code and message.
type Failure = (i16, String);

/// Whether the caller may alter the resource's configs.
fn authorize(access: Access<'_>, resource_type: i8, name: &str) -> Result<(), Failure> {
    let refused = |code| Err((code, "not authorized to alter these configs".to_string()));
    match resource_type {
        RESOURCE_TOPIC => access
            .topic(AclOperation::AlterConfigs, name)
            .or_else(refused),
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => {
            access.cluster(AclOperation::AlterConfigs).or_else(refused)
        }
        _ => Ok(()),
    }
}

pub(crate) async fn alter(
    broker: &Broker,
    context: &RequestContext,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let access = Access::of(broker, context);
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let pairs: Vec<(String, String)> = resource
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        let outcome = if let Err(failure) =
            authorize(access, resource.resource_type, &resource.resource_name)
        {
            Err(failure)
        } else if resource.resource_type == RESOURCE_TOPIC {
            match TopicConfig::from_pairs(pairs) {
                Ok(config) => {
                    apply(
                        broker,
                        &resource.resource_name,
                        request.validate_only,
                        |_| Ok(config),
                    )
                    .await
                }
                Err(error) => Err((ResponseError::InvalidConfig.code(), error.to_string())),
            }
        } else {
            Err(not_a_topic(resource.resource_type))
        };
        let (code, message) = outcome.err().unwrap_or((0, String::new()));
        responses.push(
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message((code != 0).then(|| str_bytes(message)))
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub(crate) async fn incremental(
    broker: &Broker,
    context: &RequestContext,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let access = Access::of(broker, context);
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let outcome = if let Err(failure) =
            authorize(access, resource.resource_type, &resource.resource_name)
        {
            Err(failure)
        } else if resource.resource_type == RESOURCE_TOPIC {
            let changes: Vec<(String, i8, Option<String>)> = resource
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.config_operation,
                        c.value.as_ref().map(ToString::to_string),
                    )
                })
                .collect();
            apply(
                broker,
                &resource.resource_name,
                request.validate_only,
                |current| {
                    let mut config = current.clone();
                    for (name, operation, value) in &changes {
                        change(&mut config, name, *operation, value.as_deref())?;
                    }
                    Ok(config)
                },
            )
            .await
        } else {
            Err(not_a_topic(resource.resource_type))
        };
        let (code, message) = outcome.err().unwrap_or((0, String::new()));
        responses.push(
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message((code != 0).then(|| str_bytes(message)))
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Computes the topic's new config from its current one and stores it
/// (unless only validating).
async fn apply(
    broker: &Broker,
    topic: &str,
    validate_only: bool,
    next: impl FnOnce(&TopicConfig) -> Result<TopicConfig, Failure>,
) -> Result<(), Failure> {
    let current = broker
        .engine
        .load_topic(topic)
        .await
        .map_err(|e| (storage_error_code(&e), e.to_string()))?;
    let config = next(&current.config)?;
    // The engine checks this too; checked here so that validate_only
    // answers as the change itself would.
    config
        .check()
        .map_err(|e| (ResponseError::InvalidConfig.code(), e.to_string()))?;
    if validate_only {
        return Ok(());
    }
    broker
        .engine
        .update_topic_config(topic, config)
        .await
        .map_err(|e| (storage_error_code(&e), e.to_string()))?;
    tracing::info!(%topic, "topic config changed");
    Ok(())
}

/// One IncrementalAlterConfigs operation.
fn change(
    config: &mut TopicConfig,
    name: &str,
    operation: i8,
    value: Option<&str>,
) -> Result<(), Failure> {
    let invalid =
        |e: streamhouse_core::ValidationError| (ResponseError::InvalidConfig.code(), e.to_string());
    let list = |config: &TopicConfig| -> Vec<String> {
        config
            .overrides()
            .get(name)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    match operation {
        OP_SET => {
            let value = value.ok_or_else(|| {
                (
                    ResponseError::InvalidConfig.code(),
                    format!("{name}: SET needs a value"),
                )
            })?;
            config
                .set(name.to_string(), value.to_string())
                .map_err(invalid)
        }
        OP_DELETE => {
            config.remove(name);
            Ok(())
        }
        OP_APPEND | OP_SUBTRACT => {
            let mut items = list(config);
            for item in value
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                if operation == OP_APPEND {
                    if !items.iter().any(|i| i == item) {
                        items.push(item.to_string());
                    }
                } else {
                    items.retain(|i| i != item);
                }
            }
            if items.is_empty() {
                config.remove(name);
                Ok(())
            } else {
                config
                    .set(name.to_string(), items.join(","))
                    .map_err(invalid)
            }
        }
        other => Err((
            ResponseError::InvalidRequest.code(),
            format!("{name}: unknown config operation {other}"),
        )),
    }
}

fn not_a_topic(resource_type: i8) -> Failure {
    (
        ResponseError::InvalidRequest.code(),
        format!(
            "resource type {resource_type} cannot be altered: only topic configs can; broker settings are static"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_operations() {
        let mut config = TopicConfig::default();
        change(&mut config, "retention.ms", OP_SET, Some("1000")).expect("set");
        assert_eq!(config.retention_ms(), Some(1000));
        change(&mut config, "cleanup.policy", OP_APPEND, Some("delete")).expect("append");
        change(&mut config, "cleanup.policy", OP_APPEND, Some("compact")).expect("append");
        assert_eq!(
            config.overrides().get("cleanup.policy").map(String::as_str),
            Some("delete,compact")
        );
        change(&mut config, "cleanup.policy", OP_SUBTRACT, Some("delete")).expect("subtract");
        assert_eq!(
            config.overrides().get("cleanup.policy").map(String::as_str),
            Some("compact")
        );
        change(&mut config, "retention.ms", OP_DELETE, None).expect("delete");
        assert!(!config.overrides().contains_key("retention.ms"));
        assert!(change(&mut config, "retention.ms", OP_SET, Some("soon")).is_err());
        assert!(change(&mut config, "no.such.config", OP_SET, Some("1")).is_err());
        assert!(change(&mut config, "retention.ms", 9, Some("1")).is_err());
    }
}
