"""Retention and record deletion through Kafka clients: DeleteRecords,
IncrementalAlterConfigs and AlterConfigs change what is readable, and
consumers below the log start offset reset per their policy."""

import json
import os

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType

from streamhouse import StreamHouse
from support import (
    CLIENT_TIMEOUT,
    Rec,
    confluent_config,
    new_consumer,
    new_producer,
    produce_all,
    unique_name,
    wait_until,
    watermarks,
)


@pytest.fixture(scope="module")
def jobs_server(request, tmp_path_factory, server_logs):
    """A server whose retention and compaction run every 200 ms."""
    data_dir = tmp_path_factory.mktemp(request.module.__name__)
    agent = StreamHouse(
        data_dir,
        data_dir / "streamhouse.log",
        environment={
            "STREAMHOUSE_JOB_INTERVAL_MS": "200",
            "STREAMHOUSE_COMPACTION_SPAN_MS": "0",
        },
    )
    server_logs.append(agent)
    agent.start()
    yield agent
    assert agent.stop() == 0, agent.log_tail()


def create_topic(admin: AdminClient, topic: str, config: dict | None = None) -> None:
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=1, replication_factor=1, config=config or {})]
    )
    futures[topic].result(timeout=CLIENT_TIMEOUT)


def kept_segments(server: StreamHouse, topic: str) -> list[dict]:
    """Partition 0's segment rows, oldest first, from the HTTP API."""
    status, body = server.http_get(f"/api/v1/topics/{topic}/partitions/0/segments")
    assert status == 200, f"segments of {topic}: HTTP {status}: {body}"
    return json.loads(body)


def first_offset_read(bootstrap: str, topic: str, start: int, reset: str) -> int:
    """The offset of the first record a consumer assigned at `start` gets."""
    consumer = new_consumer(bootstrap, **{"auto.offset.reset": reset})
    try:
        consumer.assign([TopicPartition(topic, 0, start)])
        messages = []
        wait_until(
            lambda: messages.extend(
                m for m in consumer.consume(num_messages=10, timeout=0.2) if m.error() is None
            )
            or messages,
            CLIENT_TIMEOUT,
            f"{topic}: nothing read from offset {start} with reset {reset}",
        )
        return messages[0].offset()
    finally:
        consumer.close()


def test_delete_records_moves_the_log_start(jobs_server):
    admin = AdminClient(confluent_config(jobs_server.bootstrap))
    topic = unique_name("delete-records")
    create_topic(admin, topic)
    produce_all(new_producer(jobs_server.bootstrap), topic, [Rec(b"k", b"v%d" % n) for n in range(10)], 0)

    futures = admin.delete_records([TopicPartition(topic, 0, 4)])
    deleted = futures[TopicPartition(topic, 0)].result(timeout=CLIENT_TIMEOUT)
    assert deleted.low_watermark == 4
    assert watermarks(jobs_server.bootstrap, topic, 0) == (4, 10)
    # Below the log start: OFFSET_OUT_OF_RANGE, and the consumer resets.
    assert first_offset_read(jobs_server.bootstrap, topic, 1, "earliest") == 4

    # Past the high watermark: refused.
    futures = admin.delete_records([TopicPartition(topic, 0, 11)])
    with pytest.raises(Exception):
        futures[TopicPartition(topic, 0)].result(timeout=CLIENT_TIMEOUT)
    assert watermarks(jobs_server.bootstrap, topic, 0) == (4, 10)


def test_retention_bytes_set_with_incremental_alter_configs(jobs_server):
    admin = AdminClient(confluent_config(jobs_server.bootstrap))
    topic = unique_name("retention-bytes")
    create_topic(admin, topic, {"retention.ms": "-1"})
    producer = new_producer(jobs_server.bootstrap, **{"linger.ms": 0})
    # Twenty incompressible 1 KiB records, each its own flush.
    for n in range(20):
        produce_all(producer, topic, [Rec(None, os.urandom(1024))], 0)

    resource = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.bytes", "4096", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(timeout=CLIENT_TIMEOUT)
    described = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])
    (configs,) = [f.result(timeout=CLIENT_TIMEOUT) for f in described.values()]
    assert configs["retention.bytes"].value == "4096"

    # Kafka's rule: old segments go while what stays still holds at least
    # retention.bytes. Compaction runs alongside and merges the one-record
    # segments into larger ones, so the check is on the segments that stay.
    def retention_applied() -> bool:
        segments = kept_segments(jobs_server, topic)
        kept = sum(s["byte_length"] for s in segments)
        low, _ = watermarks(jobs_server.bootstrap, topic, 0)
        return (
            low > 0
            and low == segments[0]["base_offset"]
            and kept >= 4096
            and kept - segments[0]["byte_length"] < 4096
        )

    wait_until(
        retention_applied,
        30,
        lambda: f"{topic}: watermarks {watermarks(jobs_server.bootstrap, topic, 0)}, "
        f"segments {[(s['base_offset'], s['end_offset'], s['byte_length']) for s in kept_segments(jobs_server, topic)]}",
    )
    low, high = watermarks(jobs_server.bootstrap, topic, 0)
    assert high == 20
    # At least 4096 bytes of 1 KiB records stay: four or more.
    assert low <= 16, f"retention kept less than retention.bytes: log start {low}"
    assert first_offset_read(jobs_server.bootstrap, topic, 0, "earliest") == low
    # Still writable and readable after the log start moved.
    (delivered,) = produce_all(producer, topic, [Rec(b"k", b"after")], 0)
    assert delivered.offset() == 20


def test_kafka_python_alter_configs(jobs_server):
    admin = AdminClient(confluent_config(jobs_server.bootstrap))
    topic = unique_name("alter-configs")
    create_topic(admin, topic, {"retention.ms": "3600000"})
    kp = KafkaAdminClient(bootstrap_servers=jobs_server.bootstrap, request_timeout_ms=10000)
    try:
        kp.alter_configs(
            [KpConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "7200000"})]
        )
    finally:
        kp.close()
    described = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])
    (configs,) = [f.result(timeout=CLIENT_TIMEOUT) for f in described.values()]
    assert configs["retention.ms"].value == "7200000"
