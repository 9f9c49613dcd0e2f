"""Compacted topics through confluent-kafka, as an operator and a producer
see them: cleanup.policy=compact refuses records without a key
(INVALID_RECORD) and takes keyed ones, switching the policy with
IncrementalAlterConfigs switches the rule, DescribeConfigs reports the
compaction configs with Kafka's defaults, and invalid values are refused
with INVALID_CONFIG without changing the topic."""

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
    ResourceType,
)

from support import CLIENT_TIMEOUT, confluent_config, new_producer, unique_name, watermarks

COMPACTION_DEFAULTS = {
    "delete.retention.ms": "86400000",
    "min.compaction.lag.ms": "0",
    "max.compaction.lag.ms": "9223372036854775807",
    "min.cleanable.dirty.ratio": "0.5",
}


def admin_client(server) -> AdminClient:
    return AdminClient(confluent_config(server.bootstrap))


def result_of(futures: dict):
    (future,) = futures.values()
    return future.result(timeout=CLIENT_TIMEOUT)


def error_code_of(futures: dict) -> int:
    with pytest.raises(KafkaException) as raised:
        result_of(futures)
    return raised.value.args[0].code()


def create_topic(admin: AdminClient, topic: str, config: dict) -> None:
    result_of(
        admin.create_topics(
            [NewTopic(topic, num_partitions=1, replication_factor=1, config=config)],
            operation_timeout=10,
        )
    )


def describe(admin: AdminClient, topic: str) -> dict:
    return result_of(admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]))


def set_configs(admin: AdminClient, topic: str, configs: dict):
    """IncrementalAlterConfigs SET of each config; the futures."""
    entries = [
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        for name, value in configs.items()
    ]
    return admin.incremental_alter_configs(
        [ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)]
    )


def deliver(server, topic: str, key: bytes | None, value: bytes):
    """Produces one record and waits for its delivery report: (error, offset)."""
    producer = new_producer(server.bootstrap, **{"message.timeout.ms": 10000, "retries": 0})
    reports = []
    producer.produce(
        topic, key=key, value=value, on_delivery=lambda e, m: reports.append((e, m.offset()))
    )
    remaining = producer.flush(CLIENT_TIMEOUT)
    assert remaining == 0, f"{remaining} record(s) without a delivery report"
    (report,) = reports
    return report


def assert_keyless_refused(server, topic: str) -> None:
    error, _ = deliver(server, topic, None, b"no key")
    assert error is not None, "a keyless record was stored in a compacted topic"
    assert error.code() == KafkaError.INVALID_RECORD, error


def assert_accepted(server, topic: str, key: bytes | None) -> int:
    error, offset = deliver(server, topic, key, b"value")
    assert error is None, error
    return offset


def test_compacted_topic_needs_keys(server):
    admin = admin_client(server)
    topic = unique_name("compact-keys")
    create_topic(admin, topic, {"cleanup.policy": "compact"})

    assert_keyless_refused(server, topic)
    assert watermarks(server.bootstrap, topic, 0) == (0, 0), "nothing of the refused record stored"
    assert assert_accepted(server, topic, b"k1") == 0
    assert assert_accepted(server, topic, b"") == 1, "an empty key is a key"


def test_switching_the_policy_switches_the_key_rule(server):
    admin = admin_client(server)
    topic = unique_name("compact-switch")
    create_topic(admin, topic, {"cleanup.policy": "delete"})
    assert assert_accepted(server, topic, None) == 0

    result_of(set_configs(admin, topic, {"cleanup.policy": "compact"}))
    assert describe(admin, topic)["cleanup.policy"].value == "compact"
    assert_keyless_refused(server, topic)

    result_of(set_configs(admin, topic, {"cleanup.policy": "delete"}))
    assert assert_accepted(server, topic, None) == 1
    assert watermarks(server.bootstrap, topic, 0) == (0, 2)


def test_describe_configs_shows_compaction_defaults(server):
    admin = admin_client(server)
    topic = unique_name("compact-describe")
    create_topic(admin, topic, {"cleanup.policy": "compact"})

    configs = describe(admin, topic)
    policy = configs["cleanup.policy"]
    assert (policy.value, ConfigSource(policy.source)) == (
        "compact",
        ConfigSource.DYNAMIC_TOPIC_CONFIG,
    )
    assert not policy.is_default
    for name, value in COMPACTION_DEFAULTS.items():
        config = configs[name]
        assert (config.value, ConfigSource(config.source)) == (
            value,
            ConfigSource.DEFAULT_CONFIG,
        ), name
        assert config.is_default, name


@pytest.mark.parametrize(
    "configs",
    [
        {"min.cleanable.dirty.ratio": "2"},
        {"delete.retention.ms": "-5"},
        {"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"},
    ],
    ids=["dirty-ratio-2", "negative-delete-retention", "min-lag-above-max"],
)
def test_invalid_compaction_configs_are_refused(server, configs):
    admin = admin_client(server)
    refused = unique_name("compact-refused")
    code = error_code_of(
        admin.create_topics(
            [NewTopic(refused, num_partitions=1, replication_factor=1, config=configs)],
            operation_timeout=10,
        )
    )
    assert code == KafkaError.INVALID_CONFIG
    assert refused not in admin.list_topics(timeout=CLIENT_TIMEOUT).topics

    topic = unique_name("compact-unchanged")
    create_topic(admin, topic, {"cleanup.policy": "compact", "max.compaction.lag.ms": "5"})
    before = {name: (c.value, c.source) for name, c in describe(admin, topic).items()}
    assert error_code_of(set_configs(admin, topic, configs)) == KafkaError.INVALID_CONFIG
    if "max.compaction.lag.ms" in configs:
        # Setting only the min lag above the stored max is refused too.
        only_min = {"min.compaction.lag.ms": configs["min.compaction.lag.ms"]}
        assert error_code_of(set_configs(admin, topic, only_min)) == KafkaError.INVALID_CONFIG
    after = {name: (c.value, c.source) for name, c in describe(admin, topic).items()}
    assert after == before
