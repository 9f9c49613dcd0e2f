//! Transactions through the Kafka APIs: the coordinator's answers and
//! Kafka's error codes for requests out of place (a transactional batch
//! for a partition not in the transaction, a producer id no transactional
//! id was given, a stale epoch, EndTxn in the wrong state), and what
//! read_committed and read_uncommitted fetches return.

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::*;
use kafka_protocol::records::{
    Compression, Record as KafkaRecord, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType,
};
use streamhouse_storage::StorageConfig;

use super::*;

const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const PRODUCER_FENCED: i16 = 90;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const ADMIN: &str = "User:ANONYMOUS";

/// A transactional batch of `values` from the producer at `sequence`.
fn transactional_batch(producer: (i64, i16), sequence: i32, values: &[&str]) -> Bytes {
    let records: Vec<KafkaRecord> = values
        .iter()
        .enumerate()
        .map(|(i, value)| KafkaRecord {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: producer.0,
            producer_epoch: producer.1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: sequence + i as i32,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(value.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode");
    buf.freeze()
}

fn produce(transactional_id: &str, records: Bytes) -> RequestKind {
    RequestKind::Produce(
        ProduceRequest::default()
            .with_transactional_id(Some(TransactionalId(str_bytes(transactional_id))))
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name("t"))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(records)),
                    ]),
            ]),
    )
}

fn produce_code(response: ResponseKind) -> i16 {
    let ResponseKind::Produce(response) = response else {
        panic!("not a produce response");
    };
    response.responses[0].partition_responses[0].error_code
}

async fn init(harness: &Harness, id: &str, timeout_ms: i32) -> (i16, i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(str_bytes(id))))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    let ResponseKind::InitProducerId(response) = harness
        .call(ADMIN, 4, RequestKind::InitProducerId(request))
        .await
    else {
        panic!("not an InitProducerId response");
    };
    (
        response.error_code,
        response.producer_id.0,
        response.producer_epoch,
    )
}

/// AddPartitionsToTxn v3 for `partitions` of `topic`; each one's code.
async fn add_partitions(
    harness: &Harness,
    id: &str,
    producer: (i64, i16),
    topics: &[(&str, &[i32])],
) -> Vec<(String, i32, i16)> {
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(str_bytes(id)))
        .with_v3_and_below_producer_id(producer.0.into())
        .with_v3_and_below_producer_epoch(producer.1)
        .with_v3_and_below_topics(
            topics
                .iter()
                .map(|(name, partitions)| {
                    AddPartitionsToTxnTopic::default()
                        .with_name(topic_name(name))
                        .with_partitions(partitions.to_vec())
                })
                .collect(),
        );
    let ResponseKind::AddPartitionsToTxn(response) = harness
        .call(ADMIN, 3, RequestKind::AddPartitionsToTxn(request))
        .await
    else {
        panic!("not an AddPartitionsToTxn response");
    };
    response
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|topic| {
            topic.results_by_partition.iter().map(|p| {
                (
                    topic.name.0.to_string(),
                    p.partition_index,
                    p.partition_error_code,
                )
            })
        })
        .collect()
}

async fn end(harness: &Harness, id: &str, producer: (i64, i16), commit: bool) -> i16 {
    let request = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(str_bytes(id)))
        .with_producer_id(producer.0.into())
        .with_producer_epoch(producer.1)
        .with_committed(commit);
    let ResponseKind::EndTxn(response) = harness.call(ADMIN, 3, RequestKind::EndTxn(request)).await
    else {
        panic!("not an EndTxn response");
    };
    response.error_code
}

/// A Fetch of t-0 from offset 0 with `isolation_level`: the partition's
/// answer.
async fn fetch(harness: &Harness, isolation_level: i8) -> fetch_response::PartitionData {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(isolation_level)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name("t"))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let ResponseKind::Fetch(response) = harness.call(ADMIN, 12, RequestKind::Fetch(request)).await
    else {
        panic!("not a Fetch response");
    };
    response.responses[0].partitions[0].clone()
}

/// The records of a fetch grouped as their batches were: (producer id,
/// transactional, control, values).
fn batches(data: &fetch_response::PartitionData) -> Vec<(i64, bool, bool, Vec<Vec<u8>>)> {
    let mut bytes = data.records.clone().unwrap_or_default();
    let mut batches: Vec<(i64, bool, bool, Vec<Vec<u8>>)> = Vec::new();
    while !bytes.is_empty() {
        let set = RecordBatchDecoder::decode(&mut bytes).expect("decode");
        for record in set.records {
            let value = record.value.as_deref().unwrap_or_default().to_vec();
            let attributes = (record.producer_id, record.transactional, record.control);
            match batches.last_mut() {
                Some(last) if (last.0, last.1, last.2) == attributes => last.3.push(value),
                _ => batches.push((attributes.0, attributes.1, attributes.2, vec![value])),
            }
        }
    }
    batches
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_requests_out_of_place_get_kafkas_errors() {
    let harness = Harness::start(StorageConfig::default()).await;
    harness.topic("t").await;
    let (code, _, _) = init(&harness, "tx", 16 * 60 * 1000).await;
    assert_eq!(code, INVALID_TRANSACTION_TIMEOUT);
    for timeout_ms in [i32::MAX, 0, -1] {
        assert_eq!(
            init(&harness, "tx", timeout_ms).await.0,
            INVALID_TRANSACTION_TIMEOUT
        );
    }
    let (code, first_id, first_epoch) = init(&harness, "tx", 60_000).await;
    assert_eq!((code, first_epoch), (0, 0));
    // A second InitProducerId: same producer id, the next epoch.
    let (code, producer_id, epoch) = init(&harness, "tx", 60_000).await;
    assert_eq!((code, producer_id, epoch), (0, first_id, 1));
    let producer = (producer_id, epoch);

    // No partition added yet.
    let batch = transactional_batch(producer, 0, &["a"]);
    assert_eq!(
        produce_code(harness.call(ADMIN, 9, produce("tx", batch)).await),
        INVALID_TXN_STATE
    );
    // A topic that does not exist: the others are not attempted.
    assert_eq!(
        add_partitions(&harness, "tx", producer, &[("t", &[0]), ("nope", &[0])]).await,
        [
            ("t".to_string(), 0, OPERATION_NOT_ATTEMPTED),
            ("nope".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION)
        ]
    );
    assert_eq!(
        add_partitions(&harness, "tx", (producer_id, epoch + 1), &[("t", &[0])]).await,
        [("t".to_string(), 0, PRODUCER_FENCED)]
    );
    assert_eq!(
        add_partitions(&harness, "tx", producer, &[("t", &[0])]).await,
        [("t".to_string(), 0, 0)]
    );
    // A producer id nobody was given, and a stale epoch.
    let stranger = transactional_batch((producer_id + 100, 0), 0, &["x"]);
    assert_eq!(
        produce_code(harness.call(ADMIN, 9, produce("tx", stranger)).await),
        INVALID_PRODUCER_ID_MAPPING
    );
    let stale = transactional_batch((producer_id, epoch - 1), 0, &["x"]);
    assert_eq!(
        produce_code(harness.call(ADMIN, 9, produce("tx", stale)).await),
        INVALID_PRODUCER_EPOCH
    );
    let batch = transactional_batch(producer, 0, &["a", "b"]);
    assert_eq!(
        produce_code(harness.call(ADMIN, 9, produce("tx", batch)).await),
        0
    );
    assert_eq!(
        end(&harness, "tx", (producer_id, epoch + 1), true).await,
        PRODUCER_FENCED
    );
    assert_eq!(end(&harness, "tx", producer, true).await, 0);
    // A retry of the same EndTxn succeeds; the other outcome does not.
    assert_eq!(end(&harness, "tx", producer, true).await, 0);
    assert_eq!(
        end(&harness, "tx", producer, false).await,
        INVALID_TXN_STATE
    );
    harness.broker.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_fetches_stop_at_open_transactions_and_list_aborted_ones() {
    let harness = Harness::start(StorageConfig::default()).await;
    harness.topic("t").await;
    let (_, producer_id, epoch) = init(&harness, "tx", 60_000).await;
    let producer = (producer_id, epoch);
    add_partitions(&harness, "tx", producer, &[("t", &[0])]).await;
    let batch = transactional_batch(producer, 0, &["a", "b"]);
    assert_eq!(
        produce_code(harness.call(ADMIN, 9, produce("tx", batch)).await),
        0
    );
    // Open: read_committed sees nothing, read_uncommitted both records.
    let committed = fetch(&harness, 1).await;
    assert_eq!(
        (committed.last_stable_offset, committed.high_watermark),
        (0, 2)
    );
    assert!(batches(&committed).is_empty());
    assert_eq!(batches(&fetch(&harness, 0).await).len(), 1);

    assert_eq!(end(&harness, "tx", producer, false).await, 0);
    let committed = fetch(&harness, 1).await;
    assert_eq!(
        (committed.last_stable_offset, committed.high_watermark),
        (3, 3)
    );
    let aborted = committed.aborted_transactions.clone().unwrap_or_default();
    assert_eq!(aborted.len(), 1);
    assert_eq!(
        (aborted[0].producer_id.0, aborted[0].first_offset),
        (producer_id, 0)
    );
    // The records come as the producer's transactional batch, the marker
    // as a control batch: what a client needs to drop them.
    let found = batches(&committed);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(
        found[0],
        (producer_id, true, false, vec![b"a".to_vec(), b"b".to_vec()])
    );
    assert_eq!(
        (found[1].0, found[1].1, found[1].2),
        (producer_id, true, true)
    );
    // read_uncommitted gets no aborted list.
    let uncommitted = fetch(&harness, 0).await;
    assert!(
        uncommitted
            .aborted_transactions
            .unwrap_or_default()
            .is_empty()
    );
    harness.broker.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_are_described_and_listed() {
    let harness = Harness::start(StorageConfig::default()).await;
    harness.topic("t").await;
    let (_, producer_id, epoch) = init(&harness, "tx", 60_000).await;
    add_partitions(&harness, "tx", (producer_id, epoch), &[("t", &[0])]).await;

    let request = DescribeTransactionsRequest::default().with_transactional_ids(vec![
        TransactionalId(str_bytes("tx")),
        TransactionalId(str_bytes("nobody")),
    ]);
    let ResponseKind::DescribeTransactions(described) = harness
        .call(ADMIN, 0, RequestKind::DescribeTransactions(request))
        .await
    else {
        panic!("not a DescribeTransactions response");
    };
    let tx = &described.transaction_states[0];
    assert_eq!(
        (
            tx.error_code,
            tx.transaction_state.as_str(),
            tx.producer_id.0,
            tx.transaction_timeout_ms
        ),
        (0, "Ongoing", producer_id, 60_000)
    );
    assert_eq!(tx.topics.len(), 1);
    assert_eq!(tx.topics[0].partitions, [0]);
    assert!(tx.transaction_start_time_ms > 0);
    // TRANSACTIONAL_ID_NOT_FOUND
    assert_eq!(described.transaction_states[1].error_code, 105);

    let list = |states: &[&str]| {
        RequestKind::ListTransactions(
            ListTransactionsRequest::default()
                .with_state_filters(states.iter().map(|s| str_bytes(*s)).collect())
                .with_duration_filter(-1),
        )
    };
    let ResponseKind::ListTransactions(listed) = harness.call(ADMIN, 1, list(&["Ongoing"])).await
    else {
        panic!("not a ListTransactions response");
    };
    assert_eq!(listed.transaction_states.len(), 1);
    assert_eq!(
        listed.transaction_states[0].transactional_id.0.as_str(),
        "tx"
    );
    let ResponseKind::ListTransactions(listed) = harness
        .call(ADMIN, 1, list(&["CompleteCommit", "Bogus"]))
        .await
    else {
        panic!("not a ListTransactions response");
    };
    assert!(listed.transaction_states.is_empty());
    assert_eq!(listed.unknown_state_filters.len(), 1);
    assert_eq!(listed.unknown_state_filters[0].as_str(), "Bogus");
    harness.broker.engine.shutdown().await;
}

fn txn_offset_commit(producer: (i64, i16), metadata: &[Option<String>]) -> RequestKind {
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    RequestKind::TxnOffsetCommit(
        TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(str_bytes("tx")))
            .with_group_id(GroupId(str_bytes("g")))
            .with_producer_id(producer.0.into())
            .with_producer_epoch(producer.1)
            .with_generation_id(-1)
            .with_topics(vec![
                TxnOffsetCommitRequestTopic::default()
                    .with_name(topic_name("t"))
                    .with_partitions(
                        metadata
                            .iter()
                            .enumerate()
                            .map(|(i, m)| {
                                TxnOffsetCommitRequestPartition::default()
                                    .with_partition_index(i as i32)
                                    .with_committed_offset(7)
                                    .with_committed_metadata(m.clone().map(str_bytes))
                            })
                            .collect(),
                    ),
            ]),
    )
}

/// AddOffsetsToTxn v3 of group "g" to "tx"; its error code.
async fn add_offsets(harness: &Harness, producer: (i64, i16)) -> i16 {
    let request = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(str_bytes("tx")))
        .with_producer_id(producer.0.into())
        .with_producer_epoch(producer.1)
        .with_group_id(GroupId(str_bytes("g")));
    let ResponseKind::AddOffsetsToTxn(added) = harness
        .call(ADMIN, 3, RequestKind::AddOffsetsToTxn(request))
        .await
    else {
        panic!("not an AddOffsetsToTxn response");
    };
    added.error_code
}

fn txn_offset_codes(response: ResponseKind) -> Vec<i16> {
    let ResponseKind::TxnOffsetCommit(response) = response else {
        panic!("not a TxnOffsetCommit response");
    };
    response.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_in_a_transaction_need_their_group_and_bounded_metadata() {
    const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    let harness = Harness::start(StorageConfig::default()).await;
    harness
        .broker
        .engine
        .create_topic(NewTopic::new("t", 2))
        .await
        .expect("create topic");
    let (_, producer_id, epoch) = init(&harness, "tx", 60_000).await;
    let producer = (producer_id, epoch);
    add_partitions(&harness, "tx", producer, &[("t", &[0])]).await;
    // The group was not added with AddOffsetsToTxn.
    let small = [Some("m".to_string()), None];
    assert_eq!(
        txn_offset_codes(
            harness
                .call(ADMIN, 3, txn_offset_commit(producer, &small))
                .await
        ),
        [INVALID_TXN_STATE, INVALID_TXN_STATE]
    );
    assert_eq!(add_offsets(&harness, (producer_id, epoch)).await, 0);
    // Metadata over offset.metadata.max.bytes is refused on its own.
    let mixed = [Some("x".repeat(4097)), Some("m".to_string())];
    assert_eq!(
        txn_offset_codes(
            harness
                .call(ADMIN, 3, txn_offset_commit(producer, &mixed))
                .await
        ),
        [OFFSET_METADATA_TOO_LARGE, 0]
    );
    assert_eq!(end(&harness, "tx", producer, true).await, 0);
    let committed = harness
        .broker
        .engine
        .committed_offsets("g")
        .await
        .expect("offsets");
    assert_eq!(
        committed
            .iter()
            .map(|c| (c.partition, c.offset, c.metadata.clone()))
            .collect::<Vec<_>>(),
        [(1, 7, Some("m".to_string()))]
    );
    harness.broker.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_commit_refuses_oversized_metadata() {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    let harness = Harness::start(StorageConfig::default()).await;
    harness.topic("t").await;
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes("plain")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic_name("t"))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(3)
                        .with_committed_metadata(Some(str_bytes("y".repeat(4097)))),
                ]),
        ]);
    let ResponseKind::OffsetCommit(response) = harness
        .call(ADMIN, 8, RequestKind::OffsetCommit(request))
        .await
    else {
        panic!("not an OffsetCommit response");
    };
    assert_eq!(response.topics[0].partitions[0].error_code, 12);
    assert!(
        harness
            .broker
            .engine
            .committed_offsets("plain")
            .await
            .expect("offsets")
            .is_empty()
    );
    harness.broker.engine.shutdown().await;
}

fn describe_producers(topic: &str, partitions: Vec<i32>) -> RequestKind {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    RequestKind::DescribeProducers(DescribeProducersRequest::default().with_topics(vec![
        TopicRequest::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(partitions),
    ]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_are_described_with_their_open_transaction() {
    let harness = Harness::start(StorageConfig::default()).await;
    harness.topic("t").await;
    let (_, producer_id, epoch) = init(&harness, "tx", 60_000).await;
    add_partitions(&harness, "tx", (producer_id, epoch), &[("t", &[0])]).await;
    let batch = transactional_batch((producer_id, epoch), 0, &["a", "b", "c"]);
    assert_eq!(
        produce_code(harness.call(ADMIN, 7, produce("tx", batch)).await),
        0
    );

    let ResponseKind::DescribeProducers(described) = harness
        .call(ADMIN, 0, describe_producers("t", vec![0, 7]))
        .await
    else {
        panic!("not a DescribeProducers response");
    };
    let partitions = &described.topics[0].partitions;
    assert_eq!(partitions[0].error_code, 0);
    let [producer] = partitions[0].active_producers.as_slice() else {
        panic!(
            "one producer expected: {:?}",
            partitions[0].active_producers
        );
    };
    assert_eq!(
        (
            producer.producer_id.0,
            producer.producer_epoch,
            producer.last_sequence,
            producer.last_timestamp,
            producer.current_txn_start_offset,
        ),
        (producer_id, i32::from(epoch), 2, 1_700_000_000_000, 0),
        "the open transaction starts at offset 0"
    );
    assert_eq!(partitions[1].error_code, UNKNOWN_TOPIC_OR_PARTITION);

    // Once the transaction commits, the producer has no open transaction.
    assert_eq!(end(&harness, "tx", (producer_id, epoch), true).await, 0);
    let ResponseKind::DescribeProducers(described) = harness
        .call(ADMIN, 0, describe_producers("t", vec![0]))
        .await
    else {
        panic!("not a DescribeProducers response");
    };
    let producers = &described.topics[0].partitions[0].active_producers;
    assert_eq!(producers.len(), 1);
    assert_eq!(producers[0].current_txn_start_offset, -1);

    let ResponseKind::DescribeProducers(described) = harness
        .call(ADMIN, 0, describe_producers("missing", vec![0]))
        .await
    else {
        panic!("not a DescribeProducers response");
    };
    assert_eq!(
        described.topics[0].partitions[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    harness.broker.engine.shutdown().await;
}

/// TxnOffsetCommit v3 for "g" at `generation` by `member`.
fn member_txn_offset_commit(
    producer: (i64, i16),
    generation: i32,
    member: &str,
    instance: Option<&str>,
) -> RequestKind {
    let RequestKind::TxnOffsetCommit(request) = txn_offset_commit(producer, &[None]) else {
        unreachable!()
    };
    RequestKind::TxnOffsetCommit(
        request
            .with_generation_id(generation)
            .with_member_id(str_bytes(member))
            .with_group_instance_id(instance.map(str_bytes)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_in_a_transaction_are_fenced_by_generation_and_member() {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    const ILLEGAL_GENERATION: i16 = 22;
    const UNKNOWN_MEMBER_ID: i16 = 25;
    const FENCED_INSTANCE_ID: i16 = 82;
    let harness = Harness::start(StorageConfig::default()).await;
    harness.topic("t").await;
    let (_, producer_id, epoch) = init(&harness, "tx", 60_000).await;
    let producer = (producer_id, epoch);
    assert_eq!(add_offsets(&harness, (producer_id, epoch)).await, 0);

    // Before anyone joined, a member and a generation are unknown.
    let commit = |generation, member: &str, instance| {
        member_txn_offset_commit(producer, generation, member, instance)
    };
    let codes = |response| txn_offset_codes(response)[0];
    assert_eq!(
        codes(harness.call(ADMIN, 3, commit(1, "ghost", None)).await),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        codes(harness.call(ADMIN, 3, commit(1, "", None)).await),
        ILLEGAL_GENERATION
    );

    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(str_bytes("g")))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_group_instance_id(Some(str_bytes("instance-1")))
        .with_protocol_type(str_bytes("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(str_bytes("range"))
                .with_metadata(Bytes::new()),
        ]);
    let ResponseKind::JoinGroup(joined) = harness
        .call(ADMIN, 5, RequestKind::JoinGroup(join.clone()))
        .await
    else {
        panic!("not a JoinGroup response");
    };
    assert_eq!(joined.error_code, 0);
    let (generation, member) = (joined.generation_id, joined.member_id.as_str());

    // A zombie of an older generation, a member id the group does not
    // have, and a static member replaced by a newer one are refused.
    assert_eq!(
        codes(
            harness
                .call(ADMIN, 3, commit(generation - 1, member, None))
                .await
        ),
        ILLEGAL_GENERATION
    );
    assert_eq!(
        codes(
            harness
                .call(ADMIN, 3, commit(generation, "ghost", None))
                .await
        ),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        codes(
            harness
                .call(ADMIN, 3, commit(generation, "ghost", Some("instance-1")))
                .await
        ),
        FENCED_INSTANCE_ID
    );
    // The member at its generation, and a producer that names no member
    // (TxnOffsetCommit v0–v2), may commit.
    assert_eq!(
        codes(
            harness
                .call(ADMIN, 3, commit(generation, member, Some("instance-1")))
                .await
        ),
        0
    );
    assert_eq!(codes(harness.call(ADMIN, 3, commit(-1, "", None)).await), 0);
    harness.broker.engine.shutdown().await;
}

/// A request naming a topic and a partition many times is answered once
/// for each: the work and the answer stay bounded by what exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_producers_answers_each_partition_once() {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    let harness = Harness::start(StorageConfig::default()).await;
    harness.topic("t").await;
    let (_, producer_id, epoch) = init(&harness, "tx", 60_000).await;
    add_partitions(&harness, "tx", (producer_id, epoch), &[("t", &[0])]).await;
    let batch = transactional_batch((producer_id, epoch), 0, &["a"]);
    assert_eq!(
        produce_code(harness.call(ADMIN, 7, produce("tx", batch)).await),
        0
    );
    let repeated = TopicRequest::default()
        .with_name(topic_name("t"))
        .with_partition_indexes(vec![0; 50_000].into_iter().chain([3, 3]).collect());
    let request = DescribeProducersRequest::default().with_topics(vec![repeated.clone(), repeated]);
    let ResponseKind::DescribeProducers(described) = harness
        .call(ADMIN, 0, RequestKind::DescribeProducers(request))
        .await
    else {
        panic!("not a DescribeProducers response");
    };
    let [topic] = described.topics.as_slice() else {
        panic!("one topic: {:?}", described.topics.len());
    };
    let answered: Vec<(i32, i16, usize)> = topic
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.error_code, p.active_producers.len()))
        .collect();
    assert_eq!(answered, [(0, 0, 1), (3, UNKNOWN_TOPIC_OR_PARTITION, 0)]);
    harness.broker.engine.shutdown().await;
}
