use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use proptest::prelude::*;

use super::*;

fn frame_for(api_key: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
    let mut header = RequestHeader::default();
    header.request_api_key = api_key as i16;
    header.request_api_version = version;
    header.correlation_id = 42;
    header.client_id = Some(StrBytes::from_static_str("test"));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .expect("header");
    body.encode(&mut buf, version).expect("body");
    buf.freeze()
}

#[test]
fn decodes_a_request_in_old_and_flexible_versions() {
    for version in [0, 4, 9, 12] {
        let frame = frame_for(ApiKey::Metadata, version, &MetadataRequest::default());
        let request = decode_request(frame).expect("decode");
        assert_eq!(request.api_key, ApiKey::Metadata);
        assert_eq!(request.version, version);
        assert_eq!(request.header.correlation_id, 42);
        assert!(matches!(request.body, RequestKind::Metadata(_)));
    }
}

#[test]
fn rejects_short_unknown_and_unsupported_requests() {
    assert!(matches!(
        decode_request(Bytes::from_static(&[0, 3, 0])),
        Err(DecodeError::TooShort { len: 3 })
    ));
    let mut unknown = BytesMut::new();
    unknown.put_i16(9999);
    unknown.put_i16(0);
    unknown.put_i32(7);
    assert!(matches!(
        decode_request(unknown.freeze()),
        Err(DecodeError::UnknownApiKey {
            api_key: 9999,
            correlation_id: 7
        })
    ));
    let too_new = frame_for(ApiKey::ApiVersions, 4, &ApiVersionsRequest::default());
    let mut too_new = too_new.to_vec();
    too_new[3] = 99;
    assert!(matches!(
        decode_request(Bytes::from(too_new)),
        Err(DecodeError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            version: 99,
            correlation_id: 42
        })
    ));
}

#[test]
fn truncated_requests_are_errors_not_panics() {
    let frame = frame_for(ApiKey::Metadata, 12, &MetadataRequest::default());
    for len in 0..frame.len() {
        let _ = decode_request(frame.slice(..len));
    }
}

#[test]
fn huge_declared_array_is_rejected_without_allocating() {
    // Metadata v0: header, then a topic array that claims 2^31-1 entries.
    let mut frame = BytesMut::new();
    frame.put_i16(ApiKey::Metadata as i16);
    frame.put_i16(0);
    frame.put_i32(1);
    frame.put_i16(-1); // null client id
    frame.put_i32(i32::MAX);
    assert!(matches!(
        decode_request(frame.freeze()),
        Err(DecodeError::Malformed { .. })
    ));
}

fn limits(max_bytes: usize, budget: usize) -> FrameLimits {
    FrameLimits {
        max_bytes,
        budget: Arc::new(Semaphore::new(budget)),
        read_timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn frames_over_the_limit_or_negative_are_refused() {
    let limits = limits(999, 1 << 20);
    let mut big = Vec::new();
    big.extend_from_slice(&1000i32.to_be_bytes());
    big.extend_from_slice(&[0u8; 1000]);
    let mut reader = &big[..];
    assert!(matches!(
        read_frame(&mut reader, &limits).await,
        Err(FrameError::TooLarge { size: 1000, .. })
    ));
    let mut reader = &(-5i32).to_be_bytes()[..];
    assert!(matches!(
        read_frame(&mut reader, &limits).await,
        Err(FrameError::Negative { size: -5 })
    ));
    let mut truncated = Vec::new();
    truncated.extend_from_slice(&10i32.to_be_bytes());
    truncated.extend_from_slice(&[1, 2, 3]);
    let mut reader = &truncated[..];
    assert!(matches!(
        read_frame(&mut reader, &limits).await,
        Err(FrameError::Truncated)
    ));
    let mut empty: &[u8] = &[];
    assert!(matches!(read_frame(&mut empty, &limits).await, Ok(None)));
}

#[tokio::test]
async fn a_frame_holds_its_bytes_of_the_budget_until_dropped() {
    let limits = limits(1 << 20, 300_000);
    let mut data = Vec::new();
    data.extend_from_slice(&200_000i32.to_be_bytes());
    data.extend((0..200_000u32).map(|i| i as u8));
    let mut reader = &data[..];
    let frame = read_frame(&mut reader, &limits)
        .await
        .expect("read")
        .expect("a frame");
    assert_eq!(frame.bytes.len(), 200_000);
    assert_eq!(&frame.bytes[..], &data[4..]);
    assert_eq!(limits.budget.available_permits(), 100_000);
    drop(frame);
    assert_eq!(limits.budget.available_permits(), 300_000);
}

#[tokio::test]
async fn a_frame_waits_for_the_budget_instead_of_allocating() {
    let limits = limits(1 << 20, 100_000);
    let held = limits.budget.clone().acquire_many_owned(90_000).await;
    let mut data = Vec::new();
    data.extend_from_slice(&50_000i32.to_be_bytes());
    data.extend(std::iter::repeat_n(7u8, 50_000));
    let mut reader = &data[..];
    let read = read_frame(&mut reader, &limits);
    tokio::pin!(read);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut read)
            .await
            .is_err(),
        "the frame was read although the budget was used up"
    );
    drop(held);
    let frame = read.await.expect("read").expect("a frame");
    assert_eq!(frame.bytes.len(), 50_000);
}

#[tokio::test(start_paused = true)]
async fn a_half_sent_frame_times_out() {
    let limits = limits(1 << 20, 1 << 20);
    let (mut client, mut server) = tokio::io::duplex(1 << 16);
    use tokio::io::AsyncWriteExt;
    client
        .write_all(&1000i32.to_be_bytes())
        .await
        .expect("write");
    client.write_all(&[0u8; 500]).await.expect("write");
    let result = read_frame(&mut server, &limits).await;
    assert!(
        matches!(result, Err(FrameError::ReadTimeout { .. })),
        "{:?}",
        result.err()
    );
    drop(client);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Random bytes after a valid API key and version: every supported API
    /// and version is fed garbage and must answer with an error, not a panic
    /// or an abort.
    #[test]
    fn random_bodies_never_panic(
        api in 0..versions::SUPPORTED.len(),
        version_offset in 0i16..20,
        correlation in any::<i32>(),
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let (api_key, min, max) = versions::SUPPORTED[api];
        let version = min + version_offset % (max - min + 1);
        let mut frame = BytesMut::new();
        frame.put_i16(api_key as i16);
        frame.put_i16(version);
        frame.put_i32(correlation);
        frame.put_slice(&body);
        let _ = decode_request(frame.freeze());
    }

    #[test]
    fn random_frames_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_request(Bytes::from(frame));
    }

    /// Valid requests cut short at any length.
    #[test]
    fn truncated_valid_requests_never_panic(cut in 0usize..200, topics in 0usize..5) {
        let mut request = MetadataRequest::default();
        request.topics = Some(
            (0..topics)
                .map(|i| {
                    let mut t = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
                    t.name = Some(kafka_protocol::messages::TopicName(StrBytes::from_string(format!("topic-{i}"))));
                    t
                })
                .collect(),
        );
        for version in [1, 9, 12] {
            let frame = frame_for(ApiKey::Metadata, version, &request);
            let cut = cut.min(frame.len());
            let _ = decode_request(frame.slice(..cut));
        }
    }
}
