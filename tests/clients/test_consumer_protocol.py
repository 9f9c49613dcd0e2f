"""Kafka 4's consumer group protocol (KIP-848, `group.protocol=consumer`)
with librdkafka: the coordinator assigns partitions itself, members move
between assignments one step at a time, and a member joining or leaving
moves only the partitions it must.

Members are polled together from this process; each records the
incremental assign and revoke callbacks librdkafka makes."""

import time

import pytest
from confluent_kafka import ConsumerGroupState, ConsumerGroupType, KafkaError
from confluent_kafka.admin import AdminClient, NewTopic

from consumer_members import (
    PARTITIONS,
    SETTLE,
    Member,
    committed,
    describe,
    poll_until,
    produce,
    read_everything,
    split,
)
from streamhouse import StreamHouse
from support import CLIENT_TIMEOUT, confluent_config, new_consumer, unique_name, wait_until

HEARTBEAT_INTERVAL_MS = 500


@pytest.fixture(scope="module")
def server(tmp_path_factory, server_logs):
    """An agent whose consumer-protocol members heartbeat every 500 ms, so
    that a rebalance takes a second or two instead of Kafka's ten."""
    data_dir = tmp_path_factory.mktemp("consumer-protocol")
    agent = StreamHouse(
        data_dir,
        data_dir / "streamhouse.log",
        extra_args=[
            "--group-consumer-heartbeat-interval-ms",
            str(HEARTBEAT_INTERVAL_MS),
            "--group-consumer-session-timeout-ms",
            "10000",
        ],
    )
    server_logs.append(agent)
    agent.start()
    yield agent
    status = agent.stop()
    assert status == 0, f"exit status {status} after SIGTERM\n{agent.log_tail()}"


def create_topics(server, *names: str, partitions: int = PARTITIONS) -> None:
    admin = AdminClient(confluent_config(server.bootstrap))
    for future in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).values():
        future.result(timeout=CLIENT_TIMEOUT)


def test_a_member_joining_takes_its_share_without_stopping_the_others(server):
    topic = unique_name("kip848")
    group = unique_name("kip848-group")
    create_topics(server, topic)
    m1 = Member(server.bootstrap, group, [topic], "m1")
    m2 = Member(server.bootstrap, group, [topic], "m2")
    members = [m1, m2]
    try:
        # Records come once the split settled: a partition that moves
        # before its first owner commits is read again by the next one, as
        # with Kafka.
        split(members, topic, [2, 2])
        first = produce(server.bootstrap, topic, "first", 10)
        read_everything(members, first)
        for member in members:
            member.consumer.commit(asynchronous=False)
        assert committed(server.bootstrap, group, topic) == dict.fromkeys(range(PARTITIONS), 10)

        # A third member joins. Only what it gets moves: nobody gives up a
        # partition it keeps, or gets one it did not have.
        before = {m.name: m.owned() for m in members}
        joined_at = time.monotonic()
        m3 = Member(server.bootstrap, group, [topic], "m3")
        members.append(m3)
        split(members, topic, [1, 1, 2])
        for m in (m1, m2):
            taken = m.taken_away(joined_at)
            assert taken <= m3.owned(), f"{m.name} gave up {taken}, but only {m3.owned()} moved"
            assert m.owned() <= before[m.name], f"{m.name} was given {m.owned() - before[m.name]}"
            assert before[m.name] - m.owned() == taken
        assert not [e for m in members for e in m.events if e[0] == "lost"]

        # New records are read once each, by their partition's owner.
        second = produce(server.bootstrap, topic, "second", 10)
        read_everything(members, second)
        for m in members:
            owned = {p for _, p in m.owned()}
            strays = [r for r in m.records if r in second and r[1] not in owned]
            assert not strays, f"{m.name} read partitions it does not own: {strays[:3]}"
            m.consumer.commit(asynchronous=False)
        assert committed(server.bootstrap, group, topic) == dict.fromkeys(range(PARTITIONS), 20)

        # m1 leaves: the other two share its partitions.
        m1.close()
        members.remove(m1)
        split(members, topic, [2, 2])
        while members:
            members.pop().close()

        # The committed offsets survive the group emptying and the agent
        # restarting: a new member reads on from them.
        assert server.stop() == 0
        server.start()
        third = produce(server.bootstrap, topic, "third", 3)
        m4 = Member(server.bootstrap, group, [topic], "m4")
        members.append(m4)
        split(members, topic, [PARTITIONS])
        read_everything(members, third)
        old = [r for r in m4.records if r not in third]
        assert not old, f"records before the committed offsets read again: {old[:5]}"
    finally:
        for m in members:
            m.close()


def test_both_assignors_and_what_admin_clients_see(server):
    first, second = unique_name("assignors-a"), unique_name("assignors-b")
    create_topics(server, first, second)
    for assignor in ("range", "uniform"):
        group = unique_name(f"{assignor}-group")
        config = {"group.remote.assignor": assignor}
        members = [
            Member(server.bootstrap, group, [first, second], f"m{i}", **config) for i in (1, 2)
        ]
        try:

            def balanced():
                owned = [m.owned() for m in members]
                union = set().union(*owned)
                return len(union) == sum(map(len, owned)) == 2 * PARTITIONS and all(
                    len(o) == PARTITIONS for o in owned
                )

            poll_until(members, balanced, SETTLE, lambda: [sorted(m.owned()) for m in members])
            if assignor == "range":
                # Co-partitioned: each member has the same partition numbers
                # of both topics, a contiguous range.
                for m in members:
                    numbers = {t: sorted(p for tt, p in m.owned() if tt == t) for t in (first, second)}
                    assert numbers[first] == numbers[second], f"{m.name}: {numbers}"
                    assert numbers[first] in ([0, 1], [2, 3]), f"{m.name}: {numbers}"

            def stable():
                d = describe(server.bootstrap, group)
                return d if d.state == ConsumerGroupState.STABLE else None

            described = poll_until(members, stable, SETTLE, f"group {group} never Stable")
            assert described.type == ConsumerGroupType.CONSUMER
            assert described.partition_assignor == assignor
            seen = {
                frozenset((tp.topic, tp.partition) for tp in member.assignment.topic_partitions)
                for member in described.members
            }
            assert seen == {frozenset(m.owned()) for m in members}
            for member in described.members:
                target = {(tp.topic, tp.partition) for tp in member.target_assignment.topic_partitions}
                assert target == {(tp.topic, tp.partition) for tp in member.assignment.topic_partitions}

            admin = AdminClient(confluent_config(server.bootstrap))
            listed = admin.list_consumer_groups(types={ConsumerGroupType.CONSUMER}).result()
            assert group in {g.group_id for g in listed.valid}
            classic = admin.list_consumer_groups(types={ConsumerGroupType.CLASSIC}).result()
            assert group not in {g.group_id for g in classic.valid}
        finally:
            for m in members:
                m.close()


def test_a_pattern_subscription_takes_in_new_topics(server):
    prefix = unique_name("pattern")
    topics = [f"{prefix}-a", f"{prefix}-b"]
    create_topics(server, *topics, unique_name("other"))
    member = Member(server.bootstrap, unique_name("pattern-group"), [f"^{prefix}-.*"], "m1")
    try:
        everything = {(t, p) for t in topics for p in range(PARTITIONS)}
        poll_until([member], lambda: member.owned() == everything, SETTLE, member.owned)
        later = f"{prefix}-c"
        create_topics(server, later)
        expected = everything | {(later, p) for p in range(PARTITIONS)}
        poll_until([member], lambda: member.owned() == expected, SETTLE, member.owned)
        records = produce(server.bootstrap, later, "later", 2)
        read_everything([member], records)
    finally:
        member.close()


def test_a_static_member_restarting_keeps_its_partitions(server):
    topic = unique_name("static848")
    group = unique_name("static848-group")
    create_topics(server, topic)
    a = Member(server.bootstrap, group, [topic], "a", **{"group.instance.id": "instance-a"})
    b = Member(server.bootstrap, group, [topic], "b", **{"group.instance.id": "instance-b"})
    members = [a, b]
    try:
        split(members, topic, [2, 2])
        held_by_b = b.owned()
        a_events = len(a.events)
        # b restarts: it leaves as a static member (epoch -2) and a new
        # process with the same instance id takes its place.
        b.close()
        members.remove(b)
        b2 = Member(server.bootstrap, group, [topic], "b2", **{"group.instance.id": "instance-b"})
        members.append(b2)
        poll_until(members, lambda: b2.owned() == held_by_b, SETTLE, b2.owned)

        def stable():
            d = describe(server.bootstrap, group)
            return d if d.state == ConsumerGroupState.STABLE else None

        after = poll_until(members, stable, SETTLE, f"group {group} never Stable again")
        assert a.events[a_events:] == [], f"a saw a rebalance: {a.events[a_events:]}"
        assert {m.group_instance_id for m in after.members} == {"instance-a", "instance-b"}
        by_instance = {
            m.group_instance_id: {(tp.topic, tp.partition) for tp in m.assignment.topic_partitions}
            for m in after.members
        }
        assert by_instance == {"instance-a": a.owned(), "instance-b": held_by_b}
    finally:
        for m in members:
            m.close()


def test_classic_and_consumer_groups_share_a_topic(server):
    topic = unique_name("mixed")
    create_topics(server, topic)
    records = produce(server.bootstrap, topic, "mixed", 5)
    modern_group, classic_group = unique_name("modern"), unique_name("classic")
    modern = Member(server.bootstrap, modern_group, [topic], "modern")
    classic = new_consumer(server.bootstrap, classic_group)
    classic.subscribe([topic])
    classic_read = []
    try:
        read_everything([modern], records)

        def classic_done():
            message = classic.poll(0.05)
            modern.poll()
            if message is not None and message.error() is None:
                classic_read.append((message.topic(), message.partition(), message.value()))
            return set(classic_read) >= records

        wait_until(classic_done, CLIENT_TIMEOUT, lambda: f"classic read {len(classic_read)}")
        modern.consumer.commit(asynchronous=False)
        classic.commit(asynchronous=False)
        admin = AdminClient(confluent_config(server.bootstrap))
        listed = {g.group_id: g.type for g in admin.list_consumer_groups().result().valid}
        assert listed.get(modern_group) == ConsumerGroupType.CONSUMER
        assert listed.get(classic_group) == ConsumerGroupType.CLASSIC
        for group in (modern_group, classic_group):
            assert committed(server.bootstrap, group, topic) == dict.fromkeys(range(PARTITIONS), 5)

        # A classic member cannot join the consumer-protocol group while it
        # has members.
        intruder = new_consumer(server.bootstrap, modern_group)
        intruder.subscribe([topic])
        errors = []
        try:

            def refused():
                message = intruder.poll(0.1)
                modern.poll()
                if message is not None and message.error() is not None:
                    errors.append(message.error())
                return any(e.code() == KafkaError.INCONSISTENT_GROUP_PROTOCOL for e in errors)

            wait_until(refused, CLIENT_TIMEOUT, lambda: f"classic join errors {errors}")
        finally:
            intruder.close()
    finally:
        modern.close()
        classic.close()


def test_the_offsets_of_a_consumer_group_are_administered_like_any_groups(server):
    """kafka-python and confluent-kafka list the group and its offsets, and
    delete offsets as Kafka does: not those of a topic a member subscribes
    to, any once the group is empty."""
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KTopicPartition
    from kafka import errors as kafka_errors

    topic = unique_name("kip848-admin")
    group = unique_name("kip848-admin-group")
    create_topics(server, topic)
    records = produce(server.bootstrap, topic, "admin", 2)
    member = Member(server.bootstrap, group, [topic], "m1")
    old_admin = KafkaAdminClient(
        bootstrap_servers=server.bootstrap, request_timeout_ms=int(CLIENT_TIMEOUT * 1000)
    )
    try:
        read_everything([member], records)
        member.consumer.commit(asynchronous=False)
        listed = old_admin.list_groups(types_filter=["consumer"])
        assert [(g["group_id"], g["group_state"]) for g in listed if g["group_id"] == group] == [
            (group, "Stable")
        ], listed
        offsets = old_admin.list_group_offsets({group: None})[group]
        assert {tp.partition: meta.offset for tp, meta in offsets.items()} == dict.fromkeys(
            range(PARTITIONS), 2
        )

        refused = old_admin.delete_group_offsets(group, [KTopicPartition(topic, 0)])
        assert list(refused.values()) == [kafka_errors.GroupSubscribedToTopicError], refused
        member.close()
        member = None
        deleted = old_admin.delete_group_offsets(group, [KTopicPartition(topic, 0)])
        assert all(error is kafka_errors.NoError for error in deleted.values()), deleted
        assert committed(server.bootstrap, group, topic) == {0: -1001, 1: 2, 2: 2, 3: 2}
    finally:
        if member is not None:
            member.close()
        old_admin.close()
