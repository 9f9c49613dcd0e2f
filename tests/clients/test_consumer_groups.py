"""Consumer groups with confluent-kafka: partitions split across members,
rebalances on join and leave, committed offsets that survive a consumer or
server restart, and listing and deleting groups."""

import pytest
from confluent_kafka import ConsumerGroupState, TopicPartition
from confluent_kafka.admin import AdminClient

from groups import PARTITIONS, Group, commit_some, consume_until, create_topic, group_member
from support import (
    CLIENT_TIMEOUT,
    Rec,
    confluent_config,
    new_producer,
    produce_all,
    unique_name,
    wait_until,
)

STRATEGIES = ["range", "roundrobin", "cooperative-sticky"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_members_split_partitions_and_rebalance(server, strategy):
    topic = create_topic(server, f"groups-{strategy}")
    group_id = unique_name(f"group-{strategy}")
    group = Group()
    try:
        group.add(group_member(server, group_id, strategy, topic))
        group.add(group_member(server, group_id, strategy, topic))
        first, second = group.wait_for_split([2, 2])

        # Each member reads exactly the records of the partitions it owns.
        records = [Rec(b"k", b"%d-%d" % (p, i)) for p in range(PARTITIONS) for i in range(5)]
        producer = new_producer(server.bootstrap)
        for partition in range(PARTITIONS):
            produce_all(
                producer,
                topic,
                [r for r in records if r.value.startswith(b"%d-" % partition)],
                partition,
            )
        wait_until(
            lambda: group.poll_round() >= len(records),
            CLIENT_TIMEOUT,
            "the group did not read every record",
            interval=0,
        )
        for member, owned in zip(group.members, (first, second), strict=True):
            read = group.consumed[id(member)]
            assert {m.partition() for m in read} <= owned
        read_values = sorted(m.value() for ms in group.consumed.values() for m in ms)
        assert read_values == sorted(r.value for r in records)

        describe_admin = AdminClient(confluent_config(server.bootstrap))
        (future,) = describe_admin.describe_consumer_groups([group_id]).values()
        description = future.result(timeout=CLIENT_TIMEOUT)
        assert description.state == ConsumerGroupState.STABLE
        assert len(description.members) == 2
        described = sorted(
            sorted(tp.partition for tp in m.assignment.topic_partitions)
            for m in description.members
        )
        assert described == sorted(sorted(o) for o in (first, second))

        group.add(group_member(server, group_id, strategy, topic))
        group.wait_for_split([1, 1, 2])

        leaving = group.members.pop(0)
        leaving.close()
        group.wait_for_split([2, 2])
    finally:
        group.close()


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_committed_offsets_survive_a_consumer_restart(server, strategy):
    topic = create_topic(server, f"commit-{strategy}")
    group_id = unique_name(f"commit-{strategy}")
    per_partition = 25
    producer = new_producer(server.bootstrap)
    for partition in range(PARTITIONS):
        produce_all(
            producer,
            topic,
            [Rec(None, b"%d-%d" % (partition, i)) for i in range(per_partition)],
            partition,
        )
    total = PARTITIONS * per_partition

    first = group_member(server, group_id, strategy, topic)
    before: list = []
    try:
        consume_until(first, lambda: len(before) >= 37, before)
        first.commit(asynchronous=False)
        committed = {
            tp.partition: tp.offset
            for tp in first.committed(
                [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=CLIENT_TIMEOUT
            )
        }
    finally:
        first.close()

    # What was committed is exactly where the first consumer stopped.
    last_read = {}
    for message in before:
        last_read[message.partition()] = max(
            last_read.get(message.partition(), -1), message.offset()
        )
    assert {p: o for p, o in committed.items() if o >= 0} == {
        p: o + 1 for p, o in last_read.items()
    }

    second = group_member(server, group_id, strategy, topic)
    after: list = []
    try:

        def read_to_the_end():
            last = {(m.partition(), m.offset()) for m in before + after}
            return all((p, per_partition - 1) in last for p in range(PARTITIONS))

        consume_until(second, read_to_the_end, after)
    finally:
        second.close()

    for partition in range(PARTITIONS):
        resumed = [m.offset() for m in after if m.partition() == partition]
        start = max(committed[partition], 0)
        assert resumed == list(range(start, per_partition)), f"partition {partition}"
    read = sorted((m.partition(), m.offset()) for m in before + after)
    assert read == sorted((p, o) for p in range(PARTITIONS) for o in range(per_partition))
    assert len(read) == total


def test_listed_and_deleted_groups(server):
    topic = create_topic(server, "delete-group")
    group_id = unique_name("delete-group")
    producer = new_producer(server.bootstrap)
    for partition in range(PARTITIONS):
        produce_all(producer, topic, [Rec(None, b"%d" % i) for i in range(5)], partition)
    commit_some(server, topic, group_id, PARTITIONS * 5)
    admin = AdminClient(confluent_config(server.bootstrap))

    listed = admin.list_consumer_groups().result(timeout=CLIENT_TIMEOUT)
    assert group_id in {g.group_id for g in listed.valid}
    (deleted,) = admin.delete_consumer_groups([group_id]).values()
    deleted.result(timeout=CLIENT_TIMEOUT)

    listed = admin.list_consumer_groups().result(timeout=CLIENT_TIMEOUT)
    assert group_id not in {g.group_id for g in listed.valid}
    # Its committed offsets went with it: a new member starts over.
    again = commit_some(server, topic, group_id, PARTITIONS * 5)
    assert sorted((m.partition(), m.offset()) for m in again) == [
        (p, o) for p in range(PARTITIONS) for o in range(5)
    ]


def test_group_consumer_carries_on_across_a_server_restart(server):
    topic = create_topic(server, "restart-group")
    group_id = unique_name("restart-group")
    producer = new_producer(server.bootstrap)
    produce_all(producer, topic, [Rec(None, b"before-%d" % i) for i in range(8)], 0)

    consumer = group_member(server, group_id, "range", topic)
    read: list = []
    try:
        consume_until(consumer, lambda: len(read) >= 8, read)
        consumer.commit(asynchronous=False)
        status = server.stop()
        assert status == 0, f"streamhouse exited {status} on SIGTERM\n" + server.log_tail()
        server.start()
        produce_all(
            new_producer(server.bootstrap), topic, [Rec(None, b"after-%d" % i) for i in range(8)], 0
        )
        consume_until(consumer, lambda: len(read) >= 16, read)
    finally:
        consumer.close()

    assert [(m.partition(), m.offset()) for m in read] == [(0, o) for o in range(16)]
    assert [m.value() for m in read] == [b"before-%d" % i for i in range(8)] + [
        b"after-%d" % i for i in range(8)
    ]
