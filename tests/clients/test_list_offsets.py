"""ListOffsets: offsets by timestamp (offsets_for_times) and the earliest
and latest offsets (watermarks) as confluent-kafka and kafka-python see them."""

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from support import (
    CLIENT_TIMEOUT,
    Rec,
    confluent_config,
    new_consumer,
    new_producer,
    produce_all,
    unique_name,
)

BASE = 1_700_000_000_000
# Non-decreasing CreateTime timestamps with repeats and gaps, written in
# three produce calls so that they span several batches.
TIMESTAMPS = [
    BASE,
    BASE + 10,
    BASE + 10,
    BASE + 20,
    BASE + 1000,
    BASE + 1000,
    BASE + 1000,
    BASE + 5000,
    BASE + 5001,
    BASE + 90_000,
]


def first_offset_at_or_after(timestamp: int) -> int:
    """The answer Kafka gives: the first offset whose timestamp is at or
    after `timestamp`, or -1 when there is none."""
    return next((o for o, t in enumerate(TIMESTAMPS) if t >= timestamp), -1)


QUERIES = [
    BASE - 1,
    BASE,
    BASE + 1,
    BASE + 10,
    BASE + 15,
    BASE + 20,
    BASE + 21,
    BASE + 999,
    BASE + 1000,
    BASE + 4999,
    BASE + 5001,
    BASE + 89_999,
    BASE + 90_000,
    BASE + 90_001,
]


def produce_timestamped(server) -> str:
    topic = unique_name("list-offsets")
    producer = new_producer(server.bootstrap, **{"compression.type": "zstd"})
    records = [Rec(b"k", b"at %d" % t, [], t) for t in TIMESTAMPS]
    for chunk in (records[:3], records[3:7], records[7:]):
        produce_all(producer, topic, chunk)
    return topic


def test_confluent_offsets_for_times_and_watermarks(server):
    topic = produce_timestamped(server)
    consumer = new_consumer(server.bootstrap)
    try:
        found = [
            consumer.offsets_for_times([TopicPartition(topic, 0, t)], timeout=CLIENT_TIMEOUT)[0]
            for t in QUERIES
        ]
        watermarks = consumer.get_watermark_offsets(
            TopicPartition(topic, 0), timeout=CLIENT_TIMEOUT, cached=False
        )
    finally:
        consumer.close()

    assert [f.error for f in found] == [None] * len(QUERIES)
    assert [f.offset for f in found] == [first_offset_at_or_after(t) for t in QUERIES]
    assert watermarks == (0, len(TIMESTAMPS))


def test_offsets_for_times_of_several_partitions_in_one_request(server):
    topic = unique_name("list-offsets-partitions")
    admin = AdminClient(confluent_config(server.bootstrap))
    (future,) = admin.create_topics([NewTopic(topic, 3, 1)]).values()
    future.result(timeout=CLIENT_TIMEOUT)
    producer = new_producer(server.bootstrap)
    for partition in range(3):
        # Partition p holds timestamps BASE + 100p, BASE + 100p + 10, ...
        produce_all(
            producer,
            topic,
            [Rec(None, b"%d" % i, [], BASE + 100 * partition + 10 * i) for i in range(5)],
            partition,
        )

    consumer = new_consumer(server.bootstrap)
    try:
        found = consumer.offsets_for_times(
            [
                TopicPartition(topic, 0, BASE + 15),
                TopicPartition(topic, 1, BASE + 100),
                TopicPartition(topic, 2, BASE + 241),
            ],
            timeout=CLIENT_TIMEOUT,
        )
    finally:
        consumer.close()

    assert sorted((f.partition, f.offset) for f in found) == [(0, 2), (1, 0), (2, -1)]


def test_kafka_python_offsets_for_times_and_watermarks(server):
    topic = produce_timestamped(server)
    consumer = KafkaConsumer(
        bootstrap_servers=server.bootstrap, request_timeout_ms=int(CLIENT_TIMEOUT * 1000)
    )
    partition = KpTopicPartition(topic, 0)
    try:
        found = [consumer.offsets_for_times({partition: t})[partition] for t in QUERIES]
        earliest = consumer.beginning_offsets([partition])[partition]
        latest = consumer.end_offsets([partition])[partition]
    finally:
        consumer.close()

    expected = [
        (first_offset_at_or_after(t), TIMESTAMPS[first_offset_at_or_after(t)])
        if first_offset_at_or_after(t) >= 0
        else None
        for t in QUERIES
    ]
    assert [(f.offset, f.timestamp) if f else None for f in found] == expected
    assert (earliest, latest) == (0, len(TIMESTAMPS))
