"""Leader epochs (KIP-320) and the admin APIs around them, with real
clients and raw requests: the versions advertised, OffsetForLeaderEpoch as
librdkafka (v2) and Kafka 4's consumers (v4) send it, DescribeTopicPartitions
paging with its cursor, and committed offsets keeping their leader epoch.
test_leader_epochs_cluster.py moves a partition's leader under a consumer."""

import time

from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import kafka_wire as wire
from support import CLIENT_TIMEOUT, confluent_config, new_consumer, new_producer, unique_name

UNKNOWN_LEADER_EPOCH = 75
UNKNOWN_TOPIC_OR_PARTITION = 3


def ask(agent, data: bytes) -> bytes:
    with wire.Connection(agent.bootstrap) as connection:
        return connection.round_trip(data)


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient(confluent_config(bootstrap))
    (future,) = admin.create_topics([NewTopic(name, partitions, 1)]).values()
    future.result(timeout=CLIENT_TIMEOUT)


def produce_values(bootstrap: str, topic: str, partition: int, values: list[bytes]) -> None:
    producer = new_producer(bootstrap, **{"enable.idempotence": True})
    errors = []
    for value in values:
        producer.produce(
            topic,
            value=value,
            partition=partition,
            on_delivery=lambda error, _m: errors.append(error) if error else None,
        )
        producer.poll(0)
    assert producer.flush(CLIENT_TIMEOUT * 2) == 0, "records left undelivered"
    assert not errors, f"delivery errors: {errors}"


def test_the_new_apis_and_versions_are_advertised(server):
    _, error, keys = wire.parse_api_versions_v0(ask(server, wire.request(wire.API_VERSIONS, 0, 1)))
    assert error == 0
    assert keys[wire.API_OFFSET_FOR_LEADER_EPOCH] == (2, 4)
    assert keys[wire.API_DESCRIBE_TOPIC_PARTITIONS] == (0, 0)
    assert keys[wire.API_PRODUCE][1] == 13
    assert keys[wire.API_FETCH][1] == 18
    assert keys[wire.API_METADATA][1] == 13


def test_offset_for_leader_epoch_over_the_wire(server):
    topic = unique_name("epoch-ends")
    create_topic(server.bootstrap, topic, 1)
    produce_values(server.bootstrap, topic, 0, [b"v%d" % i for i in range(5)])
    # (partition, current leader epoch, leader epoch): a single agent never
    # moves its partitions, so epoch 0 is current and ends at the high
    # watermark.
    asked = [(0, 0, 0), (0, -1, 0), (0, 0, 3), (0, 2, 0), (0, -1, -1), (7, -1, 0)]
    expected = [
        (0, 0, 0, 5),
        (0, 0, 0, 5),
        (0, UNKNOWN_LEADER_EPOCH, -1, -1),
        (0, UNKNOWN_LEADER_EPOCH, -1, -1),
        (0, 0, -1, -1),
        (7, UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
    ]
    v2 = wire.parse_offset_for_leader_epoch(
        ask(server, wire.offset_for_leader_epoch_v2(2, topic, asked)), 2
    )
    v4 = wire.parse_offset_for_leader_epoch(
        ask(server, wire.offset_for_leader_epoch_v4(3, topic, asked)), 4
    )
    assert v2 == expected
    assert v4 == expected
    (missing,) = wire.parse_offset_for_leader_epoch(
        ask(server, wire.offset_for_leader_epoch_v4(4, unique_name("missing"), [(0, -1, 0)])), 4
    )
    assert missing[1] == UNKNOWN_TOPIC_OR_PARTITION


def test_describe_topic_partitions_pages_through_every_partition(server):
    prefix = unique_name("pages")
    first, second = f"{prefix}-a", f"{prefix}-b"
    create_topic(server.bootstrap, first, 3)
    create_topic(server.bootstrap, second, 2)

    def page(topics, limit, cursor=None):
        answer = ask(server, wire.describe_topic_partitions_v0(5, topics, limit, cursor))
        return wire.parse_describe_topic_partitions_v0(answer)

    def shown(topics):
        return [(error, name, [p[0] for p in partitions]) for error, name, _id, partitions in topics]

    named = [second, first, second]
    topics, cursor = page(named, 2)
    assert shown(topics) == [(0, first, [0, 1])]
    assert cursor == (first, 2)
    ids = {name: topic_id for _e, name, topic_id, _p in topics}
    topics, cursor = page(named, 2, cursor)
    assert shown(topics) == [(0, first, [2]), (0, second, [0])]
    assert cursor == (second, 1)
    ids.update({name: topic_id for _e, name, topic_id, _p in topics})
    topics, cursor = page(named, 2, cursor)
    assert shown(topics) == [(0, second, [1])]
    assert cursor is None
    assert len(set(ids.values())) == 2 and "0" * 32 not in ids.values(), ids

    # Each partition's leader is the agent, at epoch 0.
    _, brokers, _, _ = wire.parse_metadata_v1(ask(server, wire.metadata_v1(6, [first])))
    (node,) = brokers
    for _e, _name, _id, partitions in topics:
        assert all((leader, epoch) == (node, 0) for _p, leader, epoch in partitions)

    # Every topic: both are among them, in name order, whole.
    topics, cursor = page([], 2000)
    ours = [t for t in shown(topics) if t[1] in (first, second)]
    assert ours == [(0, first, [0, 1, 2]), (0, second, [0, 1])]
    # A cursor on a topic the request does not name is refused.
    topics, _ = page([first], 10, (second, 0))
    assert [(error, name) for error, name, _i, _p in topics] == [(42, first)]


def test_committed_offsets_keep_the_leader_epoch_of_what_was_read(server):
    topic = unique_name("committed-epoch")
    create_topic(server.bootstrap, topic, 1)
    produce_values(server.bootstrap, topic, 0, [b"a", b"b", b"c"])
    group = unique_name("epoch-group")
    consumer = new_consumer(server.bootstrap, group)
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        read = []
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while len(read) < 3 and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=10, timeout=0.5):
                if message.error() is None:
                    read.append(message)
        assert [m.value() for m in read] == [b"a", b"b", b"c"]
        assert all(m.leader_epoch() == 0 for m in read), [m.leader_epoch() for m in read]
        consumer.commit(asynchronous=False)
        (committed,) = consumer.committed([TopicPartition(topic, 0)], timeout=CLIENT_TIMEOUT)
        assert committed.offset == 3
        assert committed.leader_epoch == 0, "the epoch of the last record read is kept"
    finally:
        consumer.close()
