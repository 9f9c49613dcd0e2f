"""confluent-kafka (librdkafka) writes records with every field a user can
set, in each compression codec, and reads every field back."""

import os
import time

import pytest
from confluent_kafka import TopicPartition

from support import (
    CLIENT_TIMEOUT,
    Rec,
    assert_records_equal,
    new_consumer,
    new_producer,
    produce_all,
    read_range,
    unique_name,
    wait_until,
    watermarks,
)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def sample_records() -> list[Rec]:
    now = int(time.time() * 1000)
    day = 86_400_000
    return [
        Rec(b"user-1", b"first", [("trace", b"a"), ("trace", b"b"), ("empty", b"")], now - 3 * day),
        Rec(None, b"no key", [("nullable", None)], now - 2 * day),
        Rec(b"user-2", b"", [], now - day),
        Rec(b"user-1", None, [("reason", b"tombstone")], now),
        Rec(b"", b"empty key", [], now + 1),
        Rec(None, None, [], now + 2),
        Rec(b"binary", bytes(range(256)) * 64, [("blob", bytes(range(256)))], now + 3),
        # An explicit timestamp older than the previous record's.
        Rec(
            "cl\u00e9".encode(),
            "h\u00e9llo \u2713".encode(),
            [("\u00fc", "\u00ff".encode())],
            now - 10 * day,
        ),
        Rec(b"repeat", b"x" * 20_000, [], 1),
    ]


@pytest.mark.parametrize("codec", CODECS)
def test_every_field_round_trips(server, codec):
    topic = unique_name(f"confluent-{codec}")
    records = sample_records()
    producer = new_producer(server.bootstrap, **{"compression.type": codec})
    # Two flushes put the records in at least two batches.
    half = len(records) // 2
    delivered = produce_all(producer, topic, records[:half])
    delivered += produce_all(producer, topic, records[half:])

    assert [(m.partition(), m.offset()) for m in delivered] == [
        (0, offset) for offset in range(len(records))
    ]
    assert watermarks(server.bootstrap, topic, 0) == (0, len(records))
    consumed = read_range(server.bootstrap, topic, 0, 0, len(records))
    assert [m.offset() for m in consumed] == [m.offset() for m in delivered]
    for record, report, message in zip(records, delivered, consumed, strict=True):
        assert_records_equal(record, message, f"{codec} offset {message.offset()}")
        assert message.timestamp() == report.timestamp()


def test_reading_from_the_middle_starts_at_that_offset(server):
    topic = unique_name("confluent-seek")
    records = [Rec(b"k%d" % i, b"v%d" % i, [], 1_700_000_000_000 + i) for i in range(50)]
    produce_all(new_producer(server.bootstrap, **{"compression.type": "lz4"}), topic, records)

    consumed = read_range(server.bootstrap, topic, 0, 37, 50)

    assert [m.offset() for m in consumed] == list(range(37, 50))
    for offset, message in zip(range(37, 50), consumed, strict=True):
        assert_records_equal(records[offset], message, f"offset {offset}")


def test_large_batches_keep_every_record_and_offset(server):
    topic = unique_name("confluent-batches")
    producer = new_producer(
        server.bootstrap,
        **{"linger.ms": 200, "batch.num.messages": 10000, "compression.type": "zstd"},
    )
    count = 30_000
    delivered = produce_all(producer, topic, [Rec(None, b"%d" % i) for i in range(count)])

    assert [m.offset() for m in delivered] == list(range(count))
    consumed = read_range(server.bootstrap, topic, 0, 0, count)
    assert [(m.offset(), m.value()) for m in consumed] == [(i, b"%d" % i) for i in range(count)]


def test_records_larger_than_the_fetch_limit_still_arrive(server):
    topic = unique_name("confluent-large")
    # Incompressible, close to the 1 MB default message.max.bytes.
    large = [Rec(b"large-%d" % i, os.urandom(900_000)) for i in range(3)]
    produce_all(new_producer(server.bootstrap, **{"compression.type": "zstd"}), topic, large)

    # As in Kafka (KIP-74), a fetch returns the first record batch even
    # when it is bigger than the consumer's fetch limits.
    consumer = new_consumer(
        server.bootstrap,
        **{"fetch.max.bytes": 1024, "max.partition.fetch.bytes": 1024, "message.max.bytes": 1000},
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        read = []

        def all_read():
            message = consumer.poll(0.2)
            if message is not None:
                assert message.error() is None, message.error()
                read.append(message)
            return len(read) == len(large)

        wait_until(all_read, CLIENT_TIMEOUT, lambda: f"read {len(read)} of {len(large)} records")
    finally:
        consumer.close()
    assert [(m.key(), m.value()) for m in read] == [(r.key, r.value) for r in large]


def test_log_append_time_topics_stamp_records_on_append(server):
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = unique_name("append-time")
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=1, config={"message.timestamp.type": "LogAppendTime"})]
    )
    futures[topic].result(CLIENT_TIMEOUT)
    before = int(time.time() * 1000)
    producer = new_producer(server.bootstrap)
    produce_all(producer, topic, [Rec(b"k", b"old", [], 1_000), Rec(None, b"older", [], 5)])
    after = int(time.time() * 1000)
    messages = read_range(server.bootstrap, topic, 0, 0, 2)
    assert [m.value() for m in messages] == [b"old", b"older"]
    for message in messages:
        kind, stamp = message.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME
        assert before - 1000 <= stamp <= after + 1000, "the append time, not the producer's"
