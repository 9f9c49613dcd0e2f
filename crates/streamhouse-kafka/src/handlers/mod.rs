//! One module per Kafka API. Each handler takes its decoded request and
//! returns the response (or, for requests that wait, a future of it).

mod access;
mod acls;
mod alter_configs;
pub(crate) mod api_versions;
mod common;
mod consumer_groups;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_log_dirs;
mod describe_producers;
mod describe_topic_partitions;
mod fetch;
mod find_coordinator;
mod groups;
mod init_producer_id;
mod list_offsets;
mod metadata;
mod offset_delete;
mod offset_for_leader_epoch;
mod offsets;
mod produce;
pub(crate) mod sasl;
mod scram_credentials;
#[cfg(test)]
mod tests;
mod transactions;

use std::sync::Arc;

use futures::future::BoxFuture;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

use crate::broker::{Broker, RequestContext};

/// How a request is answered.
pub(crate) enum Reply {
    /// The response is ready.
    Now(Box<ResponseKind>),
    /// The response is ready when the future completes; it runs while the
    /// connection goes on reading requests.
    Later(BoxFuture<'static, ResponseKind>),
    /// No response at all (Produce with acks=0).
    Nothing,
}

impl Reply {
    pub(crate) fn now(response: ResponseKind) -> Self {
        Reply::Now(Box::new(response))
    }
}

pub(crate) async fn dispatch(
    broker: &Arc<Broker>,
    context: &RequestContext,
    request: RequestKind,
) -> Reply {
    let version = context.version;
    match request {
        RequestKind::ApiVersions(_) => {
            Reply::now(ResponseKind::ApiVersions(api_versions::handle(version)))
        }
        RequestKind::Metadata(request) => Reply::now(ResponseKind::Metadata(
            metadata::handle(broker, context, request).await,
        )),
        RequestKind::Produce(request) => produce::handle(broker, context, request).await,
        RequestKind::Fetch(request) => fetch::handle(broker, context, request),
        RequestKind::ListOffsets(request) => Reply::now(ResponseKind::ListOffsets(
            list_offsets::handle(broker, context, request).await,
        )),
        RequestKind::CreateTopics(request) => Reply::now(ResponseKind::CreateTopics(
            create_topics::handle(broker, context, request).await,
        )),
        RequestKind::DeleteTopics(request) => Reply::now(ResponseKind::DeleteTopics(
            delete_topics::handle(broker, context, request).await,
        )),
        RequestKind::CreatePartitions(request) => Reply::now(ResponseKind::CreatePartitions(
            create_partitions::handle(broker, context, request).await,
        )),
        RequestKind::DescribeConfigs(request) => Reply::now(ResponseKind::DescribeConfigs(
            describe_configs::handle(broker, context, request).await,
        )),
        RequestKind::FindCoordinator(request) => Reply::now(ResponseKind::FindCoordinator(
            find_coordinator::handle(broker, context, request),
        )),
        RequestKind::InitProducerId(request) => Reply::now(ResponseKind::InitProducerId(
            init_producer_id::handle(broker, context, request).await,
        )),
        RequestKind::AddPartitionsToTxn(request) => Reply::now(ResponseKind::AddPartitionsToTxn(
            transactions::add_partitions(broker, context, request).await,
        )),
        RequestKind::AddOffsetsToTxn(request) => Reply::now(ResponseKind::AddOffsetsToTxn(
            transactions::add_offsets(broker, context, request).await,
        )),
        RequestKind::TxnOffsetCommit(request) => Reply::now(ResponseKind::TxnOffsetCommit(
            transactions::txn_offset_commit(broker, context, request).await,
        )),
        RequestKind::EndTxn(request) => Reply::now(ResponseKind::EndTxn(
            transactions::end(broker, context, request).await,
        )),
        RequestKind::DescribeTransactions(request) => {
            Reply::now(ResponseKind::DescribeTransactions(
                transactions::describe(broker, context, request).await,
            ))
        }
        RequestKind::ListTransactions(request) => Reply::now(ResponseKind::ListTransactions(
            transactions::list(broker, context, request).await,
        )),
        RequestKind::DescribeCluster(request) => Reply::now(ResponseKind::DescribeCluster(
            describe_cluster::handle(broker, context, request),
        )),
        RequestKind::DescribeLogDirs(request) => Reply::now(ResponseKind::DescribeLogDirs(
            describe_log_dirs::handle(broker, context, request).await,
        )),
        RequestKind::DescribeProducers(request) => Reply::now(ResponseKind::DescribeProducers(
            describe_producers::handle(broker, context, request).await,
        )),
        RequestKind::OffsetForLeaderEpoch(request) => {
            Reply::now(ResponseKind::OffsetForLeaderEpoch(
                offset_for_leader_epoch::handle(broker, context, request).await,
            ))
        }
        RequestKind::DescribeTopicPartitions(request) => {
            Reply::now(ResponseKind::DescribeTopicPartitions(
                describe_topic_partitions::handle(broker, context, request).await,
            ))
        }
        // The connection loop handles the SASL exchange itself; these are
        // the requests it passes on: on a listener without SASL, or after
        // authentication.
        RequestKind::SaslHandshake(_) => {
            Reply::now(ResponseKind::SaslHandshake(sasl::handshake_not_allowed()))
        }
        RequestKind::SaslAuthenticate(_) => Reply::now(ResponseKind::SaslAuthenticate(
            sasl::authenticate_not_allowed(),
        )),
        RequestKind::OffsetCommit(request) => Reply::now(ResponseKind::OffsetCommit(
            offsets::commit(broker, context, request).await,
        )),
        RequestKind::OffsetFetch(request) => Reply::now(ResponseKind::OffsetFetch(
            offsets::fetch(broker, context, request).await,
        )),
        RequestKind::OffsetDelete(request) => Reply::now(ResponseKind::OffsetDelete(
            offset_delete::handle(broker, context, request).await,
        )),
        RequestKind::ConsumerGroupHeartbeat(request) => {
            Reply::now(ResponseKind::ConsumerGroupHeartbeat(
                consumer_groups::heartbeat(broker, context, request).await,
            ))
        }
        RequestKind::ConsumerGroupDescribe(request) => {
            Reply::now(ResponseKind::ConsumerGroupDescribe(
                consumer_groups::describe(broker, context, request).await,
            ))
        }
        RequestKind::JoinGroup(request) => groups::join(broker, context, request),
        RequestKind::SyncGroup(request) => groups::sync(broker, context, request),
        RequestKind::Heartbeat(request) => Reply::now(ResponseKind::Heartbeat(groups::heartbeat(
            broker, context, request,
        ))),
        RequestKind::LeaveGroup(request) => Reply::now(ResponseKind::LeaveGroup(groups::leave(
            broker, context, request,
        ))),
        RequestKind::ListGroups(request) => Reply::now(ResponseKind::ListGroups(
            groups::list(broker, context, request).await,
        )),
        RequestKind::DescribeGroups(request) => Reply::now(ResponseKind::DescribeGroups(
            groups::describe(broker, context, request).await,
        )),
        RequestKind::DeleteGroups(request) => Reply::now(ResponseKind::DeleteGroups(
            groups::delete(broker, context, request).await,
        )),
        RequestKind::DeleteRecords(request) => Reply::now(ResponseKind::DeleteRecords(
            delete_records::handle(broker, context, request).await,
        )),
        RequestKind::AlterConfigs(request) => Reply::now(ResponseKind::AlterConfigs(
            alter_configs::alter(broker, context, request).await,
        )),
        RequestKind::IncrementalAlterConfigs(request) => {
            Reply::now(ResponseKind::IncrementalAlterConfigs(
                alter_configs::incremental(broker, context, request).await,
            ))
        }
        RequestKind::CreateAcls(request) => Reply::now(ResponseKind::CreateAcls(
            acls::create(broker, context, request).await,
        )),
        RequestKind::DescribeAcls(request) => Reply::now(ResponseKind::DescribeAcls(
            acls::describe(broker, context, request).await,
        )),
        RequestKind::DeleteAcls(request) => Reply::now(ResponseKind::DeleteAcls(
            acls::delete(broker, context, request).await,
        )),
        RequestKind::DescribeUserScramCredentials(request) => {
            Reply::now(ResponseKind::DescribeUserScramCredentials(
                scram_credentials::describe(broker, context, request).await,
            ))
        }
        RequestKind::AlterUserScramCredentials(request) => {
            Reply::now(ResponseKind::AlterUserScramCredentials(
                scram_credentials::alter(broker, context, request).await,
            ))
        }
        other => {
            // The decoder only accepts the APIs in `versions::SUPPORTED`.
            tracing::error!(request = ?other, "request with no handler");
            Reply::Nothing
        }
    }
}

/// A short name for metrics labels.
pub(crate) fn api_name(api_key: ApiKey) -> &'static str {
    match api_key {
        ApiKey::Produce => "produce",
        ApiKey::Fetch => "fetch",
        ApiKey::ListOffsets => "list_offsets",
        ApiKey::Metadata => "metadata",
        ApiKey::OffsetCommit => "offset_commit",
        ApiKey::OffsetFetch => "offset_fetch",
        ApiKey::FindCoordinator => "find_coordinator",
        ApiKey::JoinGroup => "join_group",
        ApiKey::Heartbeat => "heartbeat",
        ApiKey::LeaveGroup => "leave_group",
        ApiKey::SyncGroup => "sync_group",
        ApiKey::DescribeGroups => "describe_groups",
        ApiKey::ListGroups => "list_groups",
        ApiKey::SaslHandshake => "sasl_handshake",
        ApiKey::ApiVersions => "api_versions",
        ApiKey::CreateTopics => "create_topics",
        ApiKey::DeleteTopics => "delete_topics",
        ApiKey::InitProducerId => "init_producer_id",
        ApiKey::DescribeConfigs => "describe_configs",
        ApiKey::SaslAuthenticate => "sasl_authenticate",
        ApiKey::CreatePartitions => "create_partitions",
        ApiKey::DeleteGroups => "delete_groups",
        ApiKey::DeleteRecords => "delete_records",
        ApiKey::AlterConfigs => "alter_configs",
        ApiKey::IncrementalAlterConfigs => "incremental_alter_configs",
        ApiKey::CreateAcls => "create_acls",
        ApiKey::DescribeAcls => "describe_acls",
        ApiKey::DeleteAcls => "delete_acls",
        ApiKey::DescribeUserScramCredentials => "describe_user_scram_credentials",
        ApiKey::AlterUserScramCredentials => "alter_user_scram_credentials",
        ApiKey::AddPartitionsToTxn => "add_partitions_to_txn",
        ApiKey::AddOffsetsToTxn => "add_offsets_to_txn",
        ApiKey::TxnOffsetCommit => "txn_offset_commit",
        ApiKey::EndTxn => "end_txn",
        ApiKey::DescribeTransactions => "describe_transactions",
        ApiKey::ListTransactions => "list_transactions",
        ApiKey::DescribeProducers => "describe_producers",
        ApiKey::OffsetDelete => "offset_delete",
        ApiKey::DescribeLogDirs => "describe_log_dirs",
        ApiKey::DescribeCluster => "describe_cluster",
        ApiKey::ConsumerGroupHeartbeat => "consumer_group_heartbeat",
        ApiKey::ConsumerGroupDescribe => "consumer_group_describe",
        ApiKey::OffsetForLeaderEpoch => "offset_for_leader_epoch",
        ApiKey::DescribeTopicPartitions => "describe_topic_partitions",
        _ => "other",
    }
}
