"""Helpers shared by the client suites: polling, names, and confluent-kafka
produce/consume loops that fail with a clear message instead of hanging."""

import re
import shutil
import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import (
    TIMESTAMP_CREATE_TIME,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

# Client timeouts that keep a broken server from stalling a test for long.
CLIENT_TIMEOUT = 30.0


def wait_until(condition, timeout: float, message, interval: float = 0.05):
    """Polls `condition` until it returns something truthy, and returns it.
    `message` (a string or a function giving one) explains a timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s: {message() if callable(message) else message}"
            )
        time.sleep(interval)


def die_with_parent(command: list[str]) -> list[str]:
    """`command`, made to get SIGKILL when the test process dies, so that no
    server or producer outlives a test run that was killed."""
    if shutil.which("setpriv"):
        return ["setpriv", "--pdeathsig", "KILL", *command]
    return command


def unique_name(label: str) -> str:
    """A topic or group name no other test uses, recognisable in server logs."""
    label = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-.")[:60]
    return f"{label}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Rec:
    """A record as a user writes it and expects to read it back."""

    key: bytes | None
    value: bytes | None
    headers: list = field(default_factory=list)
    timestamp: int | None = None


def confluent_config(bootstrap: str, **overrides) -> dict:
    config = {
        "bootstrap.servers": bootstrap,
        "socket.timeout.ms": 10000,
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 1000,
    }
    config.update(overrides)
    return config


def new_producer(bootstrap: str, **overrides) -> Producer:
    config = {"acks": "all", "linger.ms": 5, "message.timeout.ms": 30000}
    config.update(overrides)
    return Producer(confluent_config(bootstrap, **config))


def new_consumer(bootstrap: str, group: str | None = None, **overrides) -> Consumer:
    config = {
        "group.id": group or unique_name("reader"),
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
    }
    config.update(overrides)
    return Consumer(confluent_config(bootstrap, **config))


def produce_all(producer: Producer, topic: str, records, partition: int | None = None) -> list:
    """Produces `records` in order and returns one delivered Message per
    record, in the same order; fails on any delivery error."""
    delivered: list = [None] * len(records)
    errors = []

    def on_delivery(index):
        def report(error, message):
            if error is not None:
                errors.append((index, error))
            delivered[index] = message

        return report

    for index, record in enumerate(records):
        kwargs = {"key": record.key, "value": record.value, "on_delivery": on_delivery(index)}
        if record.headers:
            kwargs["headers"] = record.headers
        if record.timestamp is not None:
            kwargs["timestamp"] = record.timestamp
        if partition is not None:
            kwargs["partition"] = partition
        producer.produce(topic, **kwargs)
        producer.poll(0)
    remaining = producer.flush(CLIENT_TIMEOUT)
    assert remaining == 0, f"{remaining} record(s) still undelivered after {CLIENT_TIMEOUT} s"
    assert not errors, f"delivery errors: {errors}"
    return delivered


def read_range(bootstrap: str, topic: str, partition: int, start: int, end: int) -> list[Message]:
    """Reads offsets [start, end) of one partition with a fresh consumer."""
    if end <= start:
        return []
    consumer = new_consumer(bootstrap)
    try:
        consumer.assign([TopicPartition(topic, partition, start)])
        messages: list[Message] = []
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while len(messages) < end - start:
            assert time.monotonic() < deadline, (
                f"{topic}[{partition}]: read {len(messages)} of the {end - start} records "
                f"in offsets {start}..{end} within {CLIENT_TIMEOUT} s"
            )
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(f"{topic}[{partition}]: consume error {error}")
                if message.offset() < end:
                    messages.append(message)
        return messages
    finally:
        consumer.close()


def read_partition(bootstrap: str, topic: str, partition: int) -> list[Message]:
    """Every record of a partition, from the log start to the high watermark."""
    low, high = watermarks(bootstrap, topic, partition)
    return read_range(bootstrap, topic, partition, low, high)


def watermarks(bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
    consumer = new_consumer(bootstrap)
    try:
        return consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=CLIENT_TIMEOUT, cached=False
        )
    finally:
        consumer.close()


def assert_records_equal(expected: Rec, message: Message, where: str) -> None:
    """Compares every field a user sees. A record without headers reads back
    as no headers however the client spells that; a record produced without
    a timestamp is only checked for having a CreateTime one."""
    timestamp_type, timestamp = message.timestamp()
    assert timestamp_type == TIMESTAMP_CREATE_TIME, f"{where}: timestamp type {timestamp_type}"
    actual = Rec(
        key=message.key(),
        value=message.value(),
        headers=list(message.headers() or []),
        timestamp=timestamp if expected.timestamp is not None else None,
    )
    wanted = Rec(expected.key, expected.value, list(expected.headers or []), expected.timestamp)
    assert actual == wanted, f"{where}: read back {actual!r}, produced {wanted!r}"
