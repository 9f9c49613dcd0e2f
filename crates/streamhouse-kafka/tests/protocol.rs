//! The protocol server driven with raw requests: error codes, bad input,
//! pipelining and long-poll fetches, on every backend.

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{Client, TestServer};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, FetchRequest, MetadataRequest, ProduceRequest, RequestKind,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder, TimestampType};
use streamhouse_core::{Record, TopicConfig};
use streamhouse_kafka::records::encode_records;
use streamhouse_metadata::NewTopic;

on_every_backend!(
    produce_errors_carry_kafka_codes,
    pipelined_produce_keeps_order_and_shares_flushes,
    acks_zero_gets_no_response_but_is_stored,
    long_poll_fetch_wakes_on_commit,
    a_fetch_asking_to_wait_forever_waits_at_most_30_seconds,
    fetch_honours_byte_limits,
    bad_frames_close_only_their_connection,
);

fn batch(values: &[&[u8]], compression: Compression) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            Record::new(1_700_000_000_000 + i as i64, Bytes::copy_from_slice(v))
                .with_key(Bytes::from(format!("k{i}")))
                .with_offset(i as i64)
        })
        .collect();
    encode_records(&records, TimestampType::Creation, compression).expect("encode")
}

fn produce(topic: &str, partition: i32, records: Bytes, acks: i16) -> RequestKind {
    let mut data = PartitionProduceData::default();
    data.index = partition;
    data.records = Some(records);
    let mut topic_data = TopicProduceData::default();
    topic_data.name = TopicName(StrBytes::from_string(topic.to_string()));
    topic_data.partition_data = vec![data];
    let mut request = ProduceRequest::default();
    request.acks = acks;
    request.timeout_ms = 10_000;
    request.topic_data = vec![topic_data];
    RequestKind::Produce(request)
}

/// (error code, base offset) of the single partition in a produce response.
fn produced(response: ResponseKind) -> (i16, i64) {
    let ResponseKind::Produce(response) = response else {
        panic!("not a produce response");
    };
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

fn fetch_request(
    topic: &str,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
    max_bytes: i32,
    partition_max: i32,
) -> RequestKind {
    let mut partition = FetchPartition::default();
    partition.partition = 0;
    partition.fetch_offset = offset;
    partition.partition_max_bytes = partition_max;
    let mut fetch_topic = FetchTopic::default();
    fetch_topic.topic = TopicName(StrBytes::from_string(topic.to_string()));
    fetch_topic.partitions = vec![partition];
    let mut request = FetchRequest::default();
    request.replica_id = (-1).into();
    request.max_wait_ms = max_wait_ms;
    request.min_bytes = min_bytes;
    request.max_bytes = max_bytes;
    request.topics = vec![fetch_topic];
    RequestKind::Fetch(request)
}

/// (error code, high watermark, values) of the single fetched partition.
fn fetched(response: ResponseKind) -> (i16, i64, Vec<Bytes>) {
    let ResponseKind::Fetch(response) = response else {
        panic!("not a fetch response");
    };
    let partition = &response.responses[0].partitions[0];
    let mut values = Vec::new();
    if let Some(records) = &partition.records {
        let mut buf = records.clone();
        for set in RecordBatchDecoder::decode_all(&mut buf).expect("valid batches") {
            values.extend(set.records.into_iter().filter_map(|r| r.value));
        }
    }
    (partition.error_code, partition.high_watermark, values)
}

async fn produce_errors_carry_kafka_codes(server: &TestServer) {
    let config = TopicConfig::from_pairs([("max.message.bytes", "100")]).expect("config");
    server
        .engine
        .create_topic(NewTopic::new("codes", 1).with_config(config))
        .await
        .expect("topic");
    let mut client = Client::connect(server.addr).await;
    let ok = client
        .call(
            ApiKey::Produce,
            9,
            produce("codes", 0, batch(&[b"a"], Compression::None), -1),
        )
        .await;
    assert_eq!(produced(ok), (0, 0), "{}", server.name);

    let unknown_topic = client
        .call(
            ApiKey::Produce,
            9,
            produce("no-such-topic", 0, batch(&[b"a"], Compression::None), -1),
        )
        .await;
    assert_eq!(produced(unknown_topic).0, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    let unknown_partition = client
        .call(
            ApiKey::Produce,
            9,
            produce("codes", 7, batch(&[b"a"], Compression::None), -1),
        )
        .await;
    assert_eq!(
        produced(unknown_partition).0,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );

    let mut corrupt = batch(&[b"abc", b"def"], Compression::None).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let corrupt_crc = client
        .call(
            ApiKey::Produce,
            9,
            produce("codes", 0, Bytes::from(corrupt), -1),
        )
        .await;
    assert_eq!(produced(corrupt_crc).0, 2, "CORRUPT_MESSAGE");

    let too_large = client
        .call(
            ApiKey::Produce,
            9,
            produce("codes", 0, batch(&[&[7u8; 200]], Compression::None), -1),
        )
        .await;
    assert_eq!(produced(too_large).0, 10, "MESSAGE_TOO_LARGE");

    let bad_acks = client
        .call(
            ApiKey::Produce,
            9,
            produce("codes", 0, batch(&[b"a"], Compression::None), 2),
        )
        .await;
    assert_eq!(produced(bad_acks).0, 21, "INVALID_REQUIRED_ACKS");

    // Nothing rejected consumed an offset; the connection still works.
    let after = client
        .call(
            ApiKey::Produce,
            3,
            produce("codes", 0, batch(&[b"b"], Compression::Zstd), 1),
        )
        .await;
    assert_eq!(produced(after), (0, 1));
}

async fn pipelined_produce_keeps_order_and_shares_flushes(server: &TestServer) {
    server
        .engine
        .create_topic(NewTopic::new("pipelined", 1))
        .await
        .expect("topic");
    let mut client = Client::connect(server.addr).await;
    let puts_before = server.engine.object_store_stats().puts;
    let mut sent = Vec::new();
    for i in 0..20u8 {
        let value = [i; 3];
        sent.push(
            client
                .send(
                    ApiKey::Produce,
                    9,
                    produce("pipelined", 0, batch(&[&value], Compression::Lz4), -1),
                )
                .await,
        );
    }
    let mut offsets = Vec::new();
    for correlation_id in sent {
        let (received, response) = client.receive(ApiKey::Produce, 9).await.expect("response");
        assert_eq!(
            received, correlation_id,
            "responses come back in request order"
        );
        let (code, offset) = produced(response);
        assert_eq!(code, 0);
        offsets.push(offset);
    }
    assert_eq!(offsets, (0..20).collect::<Vec<_>>(), "{}", server.name);
    let puts = server.engine.object_store_stats().puts - puts_before;
    assert!(
        puts < 20,
        "{}: twenty pipelined requests must share flushes, took {puts} PUTs",
        server.name
    );
    let (_, _, values) = fetched(
        client
            .call(
                ApiKey::Fetch,
                11,
                fetch_request("pipelined", 0, 0, 0, 1 << 20, 1 << 20),
            )
            .await,
    );
    let expected: Vec<Bytes> = (0..20u8).map(|i| Bytes::copy_from_slice(&[i; 3])).collect();
    assert_eq!(values, expected);
}

async fn acks_zero_gets_no_response_but_is_stored(server: &TestServer) {
    server
        .engine
        .create_topic(NewTopic::new("fire", 1))
        .await
        .expect("topic");
    let mut client = Client::connect(server.addr).await;
    client
        .send(
            ApiKey::Produce,
            9,
            produce("fire", 0, batch(&[b"x", b"y"], Compression::Gzip), 0),
        )
        .await;
    // The next response on the connection answers the metadata request,
    // proving no produce response was written.
    let correlation_id = client
        .send(
            ApiKey::Metadata,
            12,
            RequestKind::Metadata(MetadataRequest::default()),
        )
        .await;
    let (received, _) = client
        .receive(ApiKey::Metadata, 12)
        .await
        .expect("metadata");
    assert_eq!(received, correlation_id);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, hw, values) = fetched(
            client
                .call(
                    ApiKey::Fetch,
                    11,
                    fetch_request("fire", 0, 100, 1, 1 << 20, 1 << 20),
                )
                .await,
        );
        if hw == 2 {
            assert_eq!(
                values,
                vec![Bytes::from_static(b"x"), Bytes::from_static(b"y")]
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: acks=0 records never appeared",
            server.name
        );
    }
}

async fn long_poll_fetch_wakes_on_commit(server: &TestServer) {
    server
        .engine
        .create_topic(NewTopic::new("poll", 1))
        .await
        .expect("topic");
    let mut waiting = Client::connect(server.addr).await;
    let started = Instant::now();
    let correlation = waiting
        .send(
            ApiKey::Fetch,
            11,
            fetch_request("poll", 0, 10_000, 1, 1 << 20, 1 << 20),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut producer = Client::connect(server.addr).await;
    let (code, _) = produced(
        producer
            .call(
                ApiKey::Produce,
                9,
                produce("poll", 0, batch(&[b"wake"], Compression::Snappy), -1),
            )
            .await,
    );
    assert_eq!(code, 0);
    let (received, response) = waiting.receive(ApiKey::Fetch, 11).await.expect("fetch");
    let elapsed = started.elapsed();
    assert_eq!(received, correlation);
    let (code, hw, values) = fetched(response);
    assert_eq!((code, hw), (0, 1));
    assert_eq!(values, vec![Bytes::from_static(b"wake")]);
    assert!(
        elapsed < Duration::from_secs(5),
        "{}: the fetch must return when data arrives, not at max_wait ({elapsed:?})",
        server.name
    );

    // With nothing arriving it returns empty after max_wait.
    let started = Instant::now();
    let (code, _, values) = fetched(
        waiting
            .call(
                ApiKey::Fetch,
                11,
                fetch_request("poll", 1, 300, 1, 1 << 20, 1 << 20),
            )
            .await,
    );
    assert_eq!(code, 0);
    assert!(values.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(250));
}

/// `max_wait_ms` of 2^31-1 (what some clients send for "forever") is cut
/// to 30 s: the fetch answers empty then, and the connection serves other
/// requests meanwhile.
async fn a_fetch_asking_to_wait_forever_waits_at_most_30_seconds(server: &TestServer) {
    server
        .engine
        .create_topic(NewTopic::new("forever", 1))
        .await
        .expect("topic");
    server
        .engine
        .create_topic(NewTopic::new("forever-other", 1))
        .await
        .expect("topic");
    let mut client = Client::connect(server.addr).await;
    let started = Instant::now();
    let correlation = client
        .send(
            ApiKey::Fetch,
            11,
            fetch_request("forever", 0, i32::MAX, 1, 1 << 20, 1 << 20),
        )
        .await;
    // Another client is served while the fetch waits.
    let mut other = Client::connect(server.addr).await;
    let (code, _) = produced(
        other
            .call(
                ApiKey::Produce,
                9,
                produce("forever-other", 0, batch(&[b"x"], Compression::None), -1),
            )
            .await,
    );
    assert_eq!(
        code, 0,
        "{}: the other client's produce is stored",
        server.name
    );
    let (received, response) =
        tokio::time::timeout(Duration::from_secs(40), client.receive(ApiKey::Fetch, 11))
            .await
            .expect("the fetch answered within 40 s")
            .expect("fetch");
    let elapsed = started.elapsed();
    assert_eq!(received, correlation);
    let (code, hw, values) = fetched(response);
    assert_eq!((code, hw), (0, 0));
    assert!(values.is_empty());
    assert!(
        (Duration::from_secs(29)..Duration::from_secs(35)).contains(&elapsed),
        "{}: a fetch asking to wait 2^31-1 ms answered after {elapsed:?}, not 30 s",
        server.name
    );
}

async fn fetch_honours_byte_limits(server: &TestServer) {
    server
        .engine
        .create_topic(NewTopic::new("limits", 1))
        .await
        .expect("topic");
    let mut client = Client::connect(server.addr).await;
    let values: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 1000]).collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    assert_eq!(
        produced(
            client
                .call(
                    ApiKey::Produce,
                    9,
                    produce("limits", 0, batch(&refs, Compression::None), -1)
                )
                .await
        )
        .0,
        0
    );
    let (_, _, small) = fetched(
        client
            .call(
                ApiKey::Fetch,
                11,
                fetch_request("limits", 0, 0, 0, 1 << 20, 3000),
            )
            .await,
    );
    assert!(
        (2..=3).contains(&small.len()),
        "{}: partition_max_bytes 3000 admits two or three 1 KB records, got {}",
        server.name,
        small.len()
    );
    let (_, _, tiny) = fetched(
        client
            .call(ApiKey::Fetch, 11, fetch_request("limits", 4, 0, 0, 10, 10))
            .await,
    );
    assert_eq!(
        tiny,
        vec![Bytes::from(vec![4u8; 1000])],
        "the first record always comes"
    );
    let (code, hw, _) = fetched(
        client
            .call(
                ApiKey::Fetch,
                11,
                fetch_request("limits", 11, 0, 0, 1 << 20, 1 << 20),
            )
            .await,
    );
    assert_eq!(
        (code, hw),
        (1, 10),
        "OFFSET_OUT_OF_RANGE with the high watermark"
    );
}

async fn bad_frames_close_only_their_connection(server: &TestServer) {
    let mut healthy = Client::connect(server.addr).await;

    // An ApiVersions from the future gets the v0 answer with error 35.
    let mut future = Client::connect(server.addr).await;
    future
        .send(
            ApiKey::ApiVersions,
            3,
            RequestKind::ApiVersions(ApiVersionsRequest::default()),
        )
        .await;
    let mut raw = BytesMut::new();
    bytes::BufMut::put_i32(&mut raw, 8);
    bytes::BufMut::put_i16(&mut raw, ApiKey::ApiVersions as i16);
    bytes::BufMut::put_i16(&mut raw, 77);
    bytes::BufMut::put_i32(&mut raw, 99);
    let _ = future
        .receive(ApiKey::ApiVersions, 3)
        .await
        .expect("v3 answer");
    future.send_raw(&raw).await;
    let (correlation, response) = future
        .receive(ApiKey::ApiVersions, 0)
        .await
        .expect("v0 answer");
    assert_eq!(correlation, 99);
    let ResponseKind::ApiVersions(response) = response else {
        panic!("not ApiVersions");
    };
    assert_eq!(response.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(
        response
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Produce as i16)
    );

    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "frame over the maximum",
            (64i32 << 20).to_be_bytes().to_vec(),
        ),
        ("negative length", (-1i32).to_be_bytes().to_vec()),
        ("unknown api key", {
            let mut f = 8i32.to_be_bytes().to_vec();
            f.extend_from_slice(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1]);
            f
        }),
        ("unsupported metadata version", {
            let mut f = 8i32.to_be_bytes().to_vec();
            f.extend_from_slice(&[0, 3, 0x7f, 0, 0, 0, 0, 1]);
            f
        }),
        ("garbage body", {
            let mut f = 12i32.to_be_bytes().to_vec();
            f.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]);
            f
        }),
    ];
    for (what, bytes) in cases {
        let mut bad = Client::connect(server.addr).await;
        bad.send_raw(&bytes).await;
        assert!(
            bad.is_closed().await,
            "{}: {what} closes the connection",
            server.name
        );
    }
    // A truncated frame followed by a disconnect.
    let mut truncated = Client::connect(server.addr).await;
    truncated.send_raw(&[0, 0, 0, 50, 0, 3]).await;
    drop(truncated);

    let ResponseKind::Metadata(metadata) = healthy
        .call(
            ApiKey::Metadata,
            12,
            RequestKind::Metadata(MetadataRequest::default()),
        )
        .await
    else {
        panic!("not metadata");
    };
    assert_eq!(
        metadata.brokers.len(),
        1,
        "other connections keep being served"
    );
}
