//! Compacted topics through the Kafka APIs: keyless records refused by
//! Produce, compaction configs checked as a whole by CreateTopics,
//! AlterConfigs and IncrementalAlterConfigs, and DescribeConfigs'
//! report of them.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::*;
use streamhouse_storage::StorageConfig;

use super::*;

const TOPIC: i8 = 2;
const INVALID_RECORD: i16 = 87;
const INVALID_CONFIG: i16 = 40;
const SET: i8 = 0;
const DELETE: i8 = 1;

fn keyed(n: u8) -> Record {
    Record::new(1_700_000_000_000, Bytes::from(vec![n]))
        .with_key(Bytes::from(vec![b'k', n]))
        .with_offset(i64::from(n))
}

fn keyless(n: u8) -> Record {
    Record::new(1_700_000_000_000, Bytes::from(vec![n])).with_offset(i64::from(n))
}

fn produce_records(topic: &str, records: &[Record]) -> RequestKind {
    let records = encode_batch(records, false).expect("encode");
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

fn create_with(name: &str, configs: &[(&str, &str)]) -> RequestKind {
    RequestKind::CreateTopics(
        CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(topic_name(name))
                    .with_num_partitions(1)
                    .with_replication_factor(1)
                    .with_configs(
                        configs
                            .iter()
                            .map(|(k, v)| {
                                CreatableTopicConfig::default()
                                    .with_name(str_bytes(*k))
                                    .with_value(Some(str_bytes(*v)))
                            })
                            .collect(),
                    ),
            ]),
    )
}

fn incremental(
    name: &str,
    changes: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> RequestKind {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    RequestKind::IncrementalAlterConfigs(
        IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(TOPIC)
                    .with_resource_name(str_bytes(name))
                    .with_configs(
                        changes
                            .iter()
                            .map(|(k, op, v)| {
                                AlterableConfig::default()
                                    .with_name(str_bytes(*k))
                                    .with_config_operation(*op)
                                    .with_value(v.map(str_bytes))
                            })
                            .collect(),
                    ),
            ]),
    )
}

fn alter(name: &str, configs: &[(&str, &str)]) -> RequestKind {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    RequestKind::AlterConfigs(AlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(str_bytes(name))
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            AlterableConfig::default()
                                .with_name(str_bytes(*k))
                                .with_value(Some(str_bytes(*v)))
                        })
                        .collect(),
                ),
        ]))
}

impl Harness {
    /// The partition's answer to a Produce of `records` at `version`.
    async fn produce(
        &self,
        version: i16,
        topic: &str,
        records: &[Record],
    ) -> produce_response::PartitionProduceResponse {
        let ResponseKind::Produce(answer) = self
            .call(ALICE, version, produce_records(topic, records))
            .await
        else {
            panic!("produce");
        };
        answer.responses[0].partition_responses[0].clone()
    }

    /// The topic's configs, as DescribeConfigs v4 reports them.
    async fn describe(
        &self,
        topic: &str,
        documentation: bool,
    ) -> BTreeMap<String, DescribeConfigsResourceResult> {
        let request = DescribeConfigsRequest::default()
            .with_include_documentation(documentation)
            .with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(TOPIC)
                    .with_resource_name(str_bytes(topic))
                    .with_configuration_keys(None),
            ]);
        let ResponseKind::DescribeConfigs(answer) = self
            .call(ALICE, 4, RequestKind::DescribeConfigs(request))
            .await
        else {
            panic!("describe configs");
        };
        assert_eq!(answer.results[0].error_code, 0);
        answer.results[0]
            .configs
            .iter()
            .map(|c| (c.name.to_string(), c.clone()))
            .collect()
    }

    /// The (error code, error message) of each resource of an
    /// IncrementalAlterConfigs or AlterConfigs answer.
    async fn alter_outcome(&self, request: RequestKind) -> (i16, String) {
        let (code, message) = match self.call(ALICE, 1, request).await {
            ResponseKind::IncrementalAlterConfigs(answer) => (
                answer.responses[0].error_code,
                answer.responses[0].error_message.clone(),
            ),
            ResponseKind::AlterConfigs(answer) => (
                answer.responses[0].error_code,
                answer.responses[0].error_message.clone(),
            ),
            _ => panic!("not an alter answer"),
        };
        (code, message.map(|m| m.to_string()).unwrap_or_default())
    }

    async fn create_outcome(&self, request: RequestKind) -> (i16, String) {
        let ResponseKind::CreateTopics(answer) = self.call(ALICE, 7, request).await else {
            panic!("create topics");
        };
        let topic = &answer.topics[0];
        (
            topic.error_code,
            topic
                .error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default(),
        )
    }

    async fn high_watermark(&self, topic: &str) -> i64 {
        self.broker
            .engine
            .partition_info(topic, 0)
            .await
            .expect("partition")
            .high_watermark
    }
}

#[tokio::test]
async fn compacted_topics_refuse_batches_with_keyless_records() {
    let harness = Harness::start(StorageConfig::default()).await;
    let created = harness
        .create_outcome(create_with("latest", &[("cleanup.policy", "compact")]))
        .await;
    assert_eq!(created, (0, String::new()));

    let refused = harness
        .produce(9, "latest", &[keyed(0), keyless(1), keyed(2), keyless(3)])
        .await;
    assert_eq!(refused.error_code, INVALID_RECORD);
    assert_eq!(refused.base_offset, -1);
    assert_eq!(
        refused.error_message.as_deref(),
        Some("Compacted topic cannot accept message without key in topic partition latest-0.")
    );
    let indexes: Vec<i32> = refused
        .record_errors
        .iter()
        .map(|e| e.batch_index)
        .collect();
    assert_eq!(indexes, [1, 3]);
    // Before v8 the answer has only the code.
    let old = harness.produce(7, "latest", &[keyless(0)]).await;
    assert_eq!(old.error_code, INVALID_RECORD);
    assert_eq!(harness.high_watermark("latest").await, 0, "nothing stored");

    let taken = harness.produce(9, "latest", &[keyed(0), keyed(1)]).await;
    assert_eq!((taken.error_code, taken.base_offset), (0, 0));
    assert!(taken.record_errors.is_empty());

    // compact -> delete takes keyless records; delete -> compact refuses
    // them again.
    let switched = harness
        .alter_outcome(incremental(
            "latest",
            &[("cleanup.policy", SET, Some("delete"))],
            false,
        ))
        .await;
    assert_eq!(switched.0, 0, "{switched:?}");
    let taken = harness.produce(9, "latest", &[keyless(0)]).await;
    assert_eq!((taken.error_code, taken.base_offset), (0, 2));
    let switched = harness
        .alter_outcome(incremental(
            "latest",
            &[("cleanup.policy", SET, Some("compact,delete"))],
            false,
        ))
        .await;
    assert_eq!(switched.0, 0, "{switched:?}");
    let refused = harness.produce(9, "latest", &[keyless(0)]).await;
    assert_eq!(refused.error_code, INVALID_RECORD);
    assert_eq!(harness.high_watermark("latest").await, 3);
}

#[tokio::test]
async fn compaction_lags_are_checked_together_on_every_change() {
    let harness = Harness::start(StorageConfig::default()).await;
    let inverted = [
        ("min.compaction.lag.ms", "10"),
        ("max.compaction.lag.ms", "5"),
    ];
    let (code, message) = harness
        .create_outcome(create_with("lagged", &inverted))
        .await;
    assert_eq!(code, INVALID_CONFIG);
    assert!(message.contains("min.compaction.lag.ms"), "{message}");

    let created = harness
        .create_outcome(create_with("lagged", &[("max.compaction.lag.ms", "5")]))
        .await;
    assert_eq!(created.0, 0);
    for validate_only in [true, false] {
        let (code, message) = harness
            .alter_outcome(incremental(
                "lagged",
                &[("min.compaction.lag.ms", SET, Some("10"))],
                validate_only,
            ))
            .await;
        assert_eq!(code, INVALID_CONFIG, "validate_only={validate_only}");
        assert!(message.contains("min.compaction.lag.ms"), "{message}");
    }
    let (code, _) = harness.alter_outcome(alter("lagged", &inverted)).await;
    assert_eq!(code, INVALID_CONFIG);
    for (key, value) in [
        ("min.cleanable.dirty.ratio", "2"),
        ("delete.retention.ms", "-5"),
    ] {
        let (code, message) = harness
            .alter_outcome(incremental("lagged", &[(key, SET, Some(value))], false))
            .await;
        assert_eq!(code, INVALID_CONFIG, "{key}={value}");
        assert!(message.contains(key), "{message}");
    }
    let configs = harness.describe("lagged", false).await;
    assert_eq!(configs["max.compaction.lag.ms"].value.as_deref(), Some("5"));
    assert_eq!(configs["min.compaction.lag.ms"].value.as_deref(), Some("0"));

    // Removing max lets min be set: the rule holds for the result.
    let (code, message) = harness
        .alter_outcome(incremental(
            "lagged",
            &[
                ("max.compaction.lag.ms", DELETE, None),
                ("min.compaction.lag.ms", SET, Some("10")),
            ],
            false,
        ))
        .await;
    assert_eq!(code, 0, "{message}");
    let configs = harness.describe("lagged", false).await;
    assert_eq!(
        configs["min.compaction.lag.ms"].value.as_deref(),
        Some("10")
    );
}

#[tokio::test]
async fn describe_configs_reports_compaction_configs_with_types_and_sources() {
    let harness = Harness::start(StorageConfig::default()).await;
    let created = harness
        .create_outcome(create_with("latest", &[("cleanup.policy", "compact")]))
        .await;
    assert_eq!(created.0, 0);
    let configs = harness.describe("latest", true).await;
    const DYNAMIC_TOPIC_CONFIG: i8 = 1;
    const DEFAULT_CONFIG: i8 = 5;
    const LONG: i8 = 5;
    const DOUBLE: i8 = 6;
    const LIST: i8 = 7;
    for (name, value, source, config_type) in [
        ("cleanup.policy", "compact", DYNAMIC_TOPIC_CONFIG, LIST),
        ("delete.retention.ms", "86400000", DEFAULT_CONFIG, LONG),
        ("min.compaction.lag.ms", "0", DEFAULT_CONFIG, LONG),
        (
            "max.compaction.lag.ms",
            "9223372036854775807",
            DEFAULT_CONFIG,
            LONG,
        ),
        ("min.cleanable.dirty.ratio", "0.5", DEFAULT_CONFIG, DOUBLE),
        ("retention.ms", "604800000", DEFAULT_CONFIG, LONG),
    ] {
        let config = &configs[name];
        assert_eq!(
            (
                config.value.as_deref(),
                config.config_source,
                config.config_type
            ),
            (Some(value), source, config_type),
            "{name}"
        );
        assert!(
            config.documentation.as_ref().is_some_and(|d| !d.is_empty()),
            "{name}"
        );
    }
    let configs = harness.describe("latest", false).await;
    assert!(configs.values().all(|c| c.documentation.is_none()));
}
