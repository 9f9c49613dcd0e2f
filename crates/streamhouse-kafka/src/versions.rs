//! The API versions this server speaks, as advertised in ApiVersions.
//!
//! Ranges follow what the handlers implement: record batches v2 only
//! (Produce ≥ 3, Fetch ≥ 4, as Kafka 4 requires); topic ids in Produce 13,
//! Fetch 13+ and Metadata 12+; Produce 12 is 11 without KIP-890's implicit
//! partition add (no `transaction.version` feature is finalized, so
//! producers in a transaction keep to 11); Fetch 15-18 add only fields of
//! replicas, which a consumer leaves at their defaults.
//! The ACL APIs start at v1, as in Kafka 4 (v0 cannot express pattern
//! types).

use kafka_protocol::messages::ApiKey;

pub(crate) const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 6),
    (ApiKey::Metadata, 0, 13),
    // v9: member epochs of consumer-protocol groups (KIP-848).
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    // v5 adds group types: every group here is a classic one.
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 4),
    // v2+: the current leader epoch is checked (KIP-320).
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // Transactions: the versions producers send. AddPartitionsToTxn v4 is
    // the brokers' own (KIP-890); the next versions of the others add
    // TRANSACTION_ABORTABLE (KIP-890).
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::DescribeTransactions, 0, 0),
    // v2 adds a regular expression over ids.
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeProducers, 0, 0),
    // KIP-848's consumer group protocol.
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::DescribeTopicPartitions, 0, 0),
];

pub(crate) fn range(api_key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(key, _, _)| *key == api_key)
        .map(|&(_, min, max)| (min, max))
}

pub(crate) fn is_supported(api_key: ApiKey, version: i16) -> bool {
    range(api_key).is_some_and(|(min, max)| (min..=max).contains(&version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_document_lists_exactly_what_is_advertised() {
        let document = include_str!("../../../docs/PROTOCOL.md");
        let rows: Vec<(String, i16, i16, i16)> = document
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let key = cells.get(2)?.parse().ok()?;
                let (min, max) = cells.get(3)?.split_once('–')?;
                Some((
                    cells[1].to_string(),
                    key,
                    min.parse().ok()?,
                    max.parse().ok()?,
                ))
            })
            .collect();
        let mut advertised: Vec<(String, i16, i16, i16)> = SUPPORTED
            .iter()
            .map(|&(api_key, min, max)| (format!("{api_key:?}"), api_key as i16, min, max))
            .collect();
        advertised.sort_by_key(|row| row.1);
        assert_eq!(rows, advertised, "docs/PROTOCOL.md is out of date");
    }

    #[test]
    fn every_advertised_version_is_known_to_the_codec() {
        for &(api_key, min, max) in SUPPORTED {
            let codec = api_key.valid_versions();
            assert!(
                codec.min <= min && max <= codec.max,
                "{api_key:?} {min}..={max} outside the codec's {}..={}",
                codec.min,
                codec.max
            );
        }
    }
}
