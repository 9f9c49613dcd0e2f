"""Topic administration through confluent-kafka's AdminClient and
kafka-python's KafkaAdminClient: what an operator does and checks."""

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic, ResourceType
from kafka import KafkaAdminClient
from kafka import errors as kafka_errors
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType

from support import (
    CLIENT_TIMEOUT,
    Rec,
    confluent_config,
    new_producer,
    produce_all,
    read_partition,
    unique_name,
    wait_until,
)

RETENTION_MS = "3600000"
INVALID_NAMES = ["has space", "bad/slash", "..", "x" * 250]


def admin_client(server) -> AdminClient:
    return AdminClient(confluent_config(server.bootstrap))


def result_of(futures: dict):
    (future,) = futures.values()
    return future.result(timeout=CLIENT_TIMEOUT)


def error_code_of(futures: dict) -> int:
    with pytest.raises(KafkaException) as raised:
        result_of(futures)
    return raised.value.args[0].code()


def partition_count(admin: AdminClient, topic: str) -> int | None:
    topics = admin.list_topics(timeout=CLIENT_TIMEOUT).topics
    return len(topics[topic].partitions) if topic in topics else None


# confluent-kafka --------------------------------------------------------


def test_confluent_topic_lifecycle(server):
    admin = admin_client(server)
    topic = unique_name("admin-confluent")

    result_of(
        admin.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=2,
                    replication_factor=1,
                    config={"retention.ms": RETENTION_MS, "cleanup.policy": "delete"},
                )
            ],
            operation_timeout=10,
        )
    )
    assert partition_count(admin, topic) == 2

    configs = result_of(admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]))
    assert configs["retention.ms"].value == RETENTION_MS
    assert configs["cleanup.policy"].value == "delete"
    assert not configs["retention.ms"].is_default
    assert configs["retention.bytes"].is_default

    result_of(admin.create_partitions([NewPartitions(topic, 4)]))
    wait_until(
        lambda: partition_count(admin, topic) == 4,
        10,
        lambda: f"{topic} has {partition_count(admin, topic)} partitions, expected 4",
    )
    # Every partition, old and new, takes writes.
    producer = new_producer(server.bootstrap)
    for partition in range(4):
        (delivered,) = produce_all(producer, topic, [Rec(b"k", b"p%d" % partition)], partition)
        assert (delivered.partition(), delivered.offset()) == (partition, 0)

    result_of(admin.delete_topics([topic], operation_timeout=10))
    wait_until(
        lambda: partition_count(admin, topic) is None,
        10,
        f"{topic} is still listed after DeleteTopics",
    )

    # As in Kafka with auto.create.topics.enable, writing to the deleted
    # name creates a new, empty, one-partition topic.
    (delivered,) = produce_all(new_producer(server.bootstrap), topic, [Rec(b"k", b"after delete")])
    assert (delivered.partition(), delivered.offset()) == (0, 0)
    assert partition_count(admin, topic) == 1
    assert [m.value() for m in read_partition(server.bootstrap, topic, 0)] == [b"after delete"]


def test_confluent_create_existing_topic_is_topic_already_exists(server):
    admin = admin_client(server)
    topic = unique_name("admin-exists")
    result_of(admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)]))

    code = error_code_of(
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    )

    assert code == KafkaError.TOPIC_ALREADY_EXISTS
    assert partition_count(admin, topic) == 3


@pytest.mark.parametrize("name", INVALID_NAMES, ids=["space", "slash", "dotdot", "too-long"])
def test_confluent_invalid_topic_name_is_invalid_topic(server, name):
    admin = admin_client(server)

    code = error_code_of(
        admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    )

    assert code == KafkaError.TOPIC_EXCEPTION
    assert name not in admin.list_topics(timeout=CLIENT_TIMEOUT).topics


def test_confluent_admin_errors(server):
    admin = admin_client(server)
    topic = unique_name("admin-errors")
    result_of(admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)]))

    assert error_code_of(admin.create_partitions([NewPartitions(topic, 1)])) == (
        KafkaError.INVALID_PARTITIONS
    )
    assert error_code_of(admin.delete_topics([unique_name("never-created")])) == (
        KafkaError.UNKNOWN_TOPIC_OR_PART
    )
    assert (
        error_code_of(
            admin.create_topics(
                [NewTopic(unique_name("bad-config"), 1, 1, config={"retention.ms": "soon"})]
            )
        )
        == KafkaError.INVALID_CONFIG
    )
    assert partition_count(admin, topic) == 2


# kafka-python -----------------------------------------------------------


@pytest.fixture
def kafka_python_admin(server):
    admin = KafkaAdminClient(
        bootstrap_servers=server.bootstrap, request_timeout_ms=int(CLIENT_TIMEOUT * 1000)
    )
    yield admin
    admin.close()


def test_kafka_python_topic_lifecycle(server, kafka_python_admin):
    admin = kafka_python_admin
    topic = unique_name("admin-kafka-python")

    admin.create_topics(
        {
            topic: {
                "num_partitions": 2,
                "replication_factor": 1,
                "configs": {"retention.ms": RETENTION_MS},
            }
        }
    )
    assert topic in admin.list_topics()
    (described,) = admin.describe_topics([topic])
    assert len(described["partitions"]) == 2

    configs = admin.describe_configs(
        [KpConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"
    )
    assert configs["topic"][topic]["retention.ms"]["value"] == RETENTION_MS

    admin.create_partitions({topic: 4})
    wait_until(
        lambda: len(admin.describe_topics([topic])[0]["partitions"]) == 4,
        10,
        f"{topic} did not grow to 4 partitions",
    )

    admin.delete_topics([topic])
    wait_until(
        lambda: topic not in admin.list_topics(), 10, f"{topic} is still listed after DeleteTopics"
    )


def test_kafka_python_create_existing_topic_raises(server, kafka_python_admin):
    topic = unique_name("admin-kp-exists")
    kafka_python_admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})

    with pytest.raises(kafka_errors.TopicAlreadyExistsError):
        kafka_python_admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})


@pytest.mark.parametrize("name", INVALID_NAMES, ids=["space", "slash", "dotdot", "too-long"])
def test_kafka_python_invalid_topic_name_raises(server, kafka_python_admin, name):
    with pytest.raises(kafka_errors.InvalidTopicError):
        kafka_python_admin.create_topics({name: {"num_partitions": 1, "replication_factor": 1}})
    assert name not in kafka_python_admin.list_topics()
