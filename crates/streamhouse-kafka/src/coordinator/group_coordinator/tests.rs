use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::ConsumerProtocolAssignment;
use tokio_util::sync::CancellationToken;

use super::decode_assignment;
use crate::coordinator::GroupError;
use crate::coordinator::testing::{answer, coordinator, join_new, later};

#[test]
fn consumer_assignments_decode() {
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let mut assignment = ConsumerProtocolAssignment::default();
    assignment.assigned_partitions = vec![{
        let mut tp = TopicPartition::default();
        tp.topic = kafka_protocol::messages::TopicName(StrBytes::from_static_str("orders"));
        tp.partitions = vec![0, 2];
        tp
    }];
    let mut buf = bytes::BytesMut::new();
    bytes::BufMut::put_i16(&mut buf, 1);
    assignment.encode(&mut buf, 1).expect("encode");
    assert_eq!(
        decode_assignment(&buf.freeze()),
        vec![("orders".to_string(), vec![0, 2])]
    );
    assert!(decode_assignment(&Bytes::from_static(b"\x00")).is_empty());
    assert!(decode_assignment(&Bytes::from_static(b"\x00\x01\xff\xff\xff")).is_empty());
}

#[tokio::test]
async fn stopping_answers_waiting_requests() {
    let coordinator = coordinator();
    let (a, wait_a) = join_new(&coordinator, "a");
    later(wait_a).await.expect("answer").expect("joined");
    answer(coordinator.sync("g", 1, &a, None, None, vec![]))
        .await
        .expect("synced");
    let (_b, wait_b) = join_new(&coordinator, "b");
    let wait_b = later(wait_b);
    let stop = CancellationToken::new();
    let timer = coordinator.start(stop.clone());
    stop.cancel();
    let answered = tokio::time::timeout(Duration::from_secs(5), wait_b)
        .await
        .expect("answered promptly")
        .expect("answer");
    assert_eq!(
        answered.expect_err("refused").error,
        GroupError::NotCoordinator
    );
    timer.await.expect("timer stops");
}
