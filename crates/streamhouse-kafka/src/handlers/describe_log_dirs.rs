//! DescribeLogDirs (35): the log directories of a broker and what each
//! partition holds in them, as `kafka-log-dirs.sh` and admin clients'
//! `describe_log_dirs` show. An agent has no local log: it reports one
//! logical directory, the object store (bucket and prefix), with each
//! partition's bytes there (its segment rows' byte lengths) and an offset
//! lag of 0. Every agent gives the same answer. Needs Describe on the
//! cluster, as in Kafka.

use std::collections::HashMap;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use streamhouse_storage::security::AclOperation;

use super::access::Access;
use super::common::str_bytes;
use crate::broker::{Broker, RequestContext};
use crate::error::storage_error_code;

/// A known topic's partition count and each partition's bytes.
type Measured = (i32, Vec<(i32, i64)>);

pub(crate) async fn handle(
    broker: &Broker,
    context: &RequestContext,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    if let Err(code) = Access::of(broker, context).cluster(AclOperation::Describe) {
        return DescribeLogDirsResponse::default().with_error_code(code);
    }
    let result = DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(broker.engine.storage_location()))
        // Object storage has no capacity to report.
        .with_total_bytes(-1)
        .with_usable_bytes(-1);
    let wanted: Vec<(String, Option<Vec<i32>>)> = match request.topics {
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.topic.0.to_string(), Some(t.partitions)))
            .collect(),
        None => match broker.engine.list_topics().await {
            Ok(topics) => topics.into_iter().map(|t| (t.name.clone(), None)).collect(),
            Err(error) => {
                return DescribeLogDirsResponse::default()
                    .with_results(vec![result.with_error_code(storage_error_code(&error))]);
            }
        },
    };
    // Each topic is looked up and measured once however often the request
    // names it.
    let mut measured: HashMap<String, Option<Measured>> = HashMap::new();
    let mut topics = Vec::with_capacity(wanted.len());
    for (name, partitions) in wanted {
        let entry = match measured.get(&name) {
            Some(entry) => entry.clone(),
            None => {
                // Unknown topics and partitions are left out, as Kafka does.
                let entry = match broker.engine.topic(&name).await {
                    Ok(topic) => match broker.engine.partition_bytes(&name).await {
                        Ok(bytes) => Some((topic.partition_count, bytes)),
                        Err(error) => {
                            return DescribeLogDirsResponse::default().with_results(vec![
                                result.with_error_code(storage_error_code(&error)),
                            ]);
                        }
                    },
                    Err(_) => None,
                };
                measured.insert(name.clone(), entry.clone());
                entry
            }
        };
        let Some((partition_count, bytes)) = entry else {
            continue;
        };
        let size_of = |partition: i32| {
            bytes
                .iter()
                .find(|(p, _)| *p == partition)
                .map_or(0, |(_, size)| *size)
        };
        let listed: Vec<i32> = match partitions {
            Some(partitions) => partitions
                .into_iter()
                .filter(|p| (0..partition_count).contains(p))
                .collect(),
            None => (0..partition_count).collect(),
        };
        topics.push(
            DescribeLogDirsTopic::default()
                .with_name(TopicName(str_bytes(name)))
                .with_partitions(
                    listed
                        .into_iter()
                        .map(|p| {
                            DescribeLogDirsPartition::default()
                                .with_partition_index(p)
                                .with_partition_size(size_of(p))
                                .with_offset_lag(0)
                        })
                        .collect(),
                ),
        );
    }
    DescribeLogDirsResponse::default().with_results(vec![result.with_topics(topics)])
}
