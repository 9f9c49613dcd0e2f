"""kafka-python (a pure-Python client with its own protocol code) writes and
reads records in each compression codec, and resumes a group from its commit."""

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from support import CLIENT_TIMEOUT, Rec, unique_name

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]


def sample_records() -> list[Rec]:
    now = int(time.time() * 1000)
    # kafka-python cannot send a header with a null value.
    return [
        Rec(b"user-1", b"first", [("trace", b"a"), ("trace", b"b"), ("empty", b"")], now - 5000),
        Rec(None, b"no key", [], now - 4000),
        Rec(b"user-2", b"", [], now - 3000),
        Rec(b"user-1", None, [("reason", b"tombstone")], now),
        Rec(b"", b"empty key", [], now + 1),
        Rec(b"binary", bytes(range(256)) * 64, [("blob", bytes(range(256)))], now + 2),
        Rec("cl\u00e9".encode(), "h\u00e9llo \u2713".encode(), [("\u00fc", "\u00ff".encode())], 1),
    ]


def read_all(bootstrap: str, topic: str, count: int) -> list:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        records = []
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while len(records) < count:
            assert time.monotonic() < deadline, f"read {len(records)} of {count} records"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c or "none")
def test_every_field_round_trips(server, codec):
    topic = unique_name(f"kafka-python-{codec or 'none'}")
    records = sample_records()
    producer = KafkaProducer(
        bootstrap_servers=server.bootstrap, compression_type=codec, acks="all", linger_ms=5
    )
    try:
        futures = [
            producer.send(
                topic, key=r.key, value=r.value, headers=r.headers, timestamp_ms=r.timestamp
            )
            for r in records
        ]
        delivered = [future.get(timeout=CLIENT_TIMEOUT) for future in futures]
    finally:
        producer.close(timeout=CLIENT_TIMEOUT)

    assert [(m.partition, m.offset) for m in delivered] == [(0, o) for o in range(len(records))]
    consumed = read_all(server.bootstrap, topic, len(records))
    assert [c.offset for c in consumed] == list(range(len(records)))
    for record, message in zip(records, consumed, strict=True):
        actual = Rec(message.key, message.value, list(message.headers), message.timestamp)
        assert actual == record, f"offset {message.offset}"
        assert message.timestamp_type == 0, "expected CreateTime"


def test_group_consumer_resumes_from_its_commit(server):
    topic = unique_name("kafka-python-group")
    group = unique_name("kafka-python-group")
    producer = KafkaProducer(bootstrap_servers=server.bootstrap, acks="all")
    try:
        for i in range(20):
            producer.send(topic, value=b"%d" % i).get(timeout=CLIENT_TIMEOUT)
    finally:
        producer.close(timeout=CLIENT_TIMEOUT)

    def consume(count: int) -> list:
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=server.bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )
        try:
            read = []
            deadline = time.monotonic() + CLIENT_TIMEOUT
            while len(read) < count:
                assert time.monotonic() < deadline, f"read {len(read)} of {count} records"
                polled = consumer.poll(timeout_ms=500, max_records=count - len(read))
                for batch in polled.values():
                    read.extend(batch)
            consumer.commit()
            return [(r.offset, r.value) for r in read]
        finally:
            consumer.close()

    assert consume(12) == [(i, b"%d" % i) for i in range(12)]
    assert consume(8) == [(i, b"%d" % i) for i in range(12, 20)]
