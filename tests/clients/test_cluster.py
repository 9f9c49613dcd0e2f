"""A cluster of three agents on one PostgreSQL database and one S3 prefix,
with real clients: an idempotent producer that keeps writing while agents
are SIGKILLed and restarted, two writers on one partition through two
agents, a consumer group whose coordinator dies, and a long poll on one
agent woken by a commit on another, through Kafka and through the HTTP API."""

import json
import select
import threading
import time

import pytest
from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

import cluster as cl
from consumer_members import (
    PARTITIONS,
    Member,
    describe,
    poll_for,
    produce,
    read_everything,
    split,
)
import kafka_wire as wire
from numbered import IDEMPOTENT, NumberedProducer, check_stored_exactly_once, longest_silence
from support import (
    CLIENT_TIMEOUT,
    Rec,
    confluent_config,
    new_consumer,
    new_producer,
    produce_all,
    read_partition,
    unique_name,
    wait_until,
)

pytestmark = pytest.mark.cluster

# --- an idempotent producer through agent kills ----------------------------

KILL_PARTITIONS = 8
# New acknowledgements to wait for before the first kill and at the end.
ACKS_PER_ROUND = 300
# How long the producer may take to write to every partition again once the
# agents it needs are back (or, for the second kill, gone from the cluster).
RESUME_TIMEOUT = 30.0


def describe_stall(
    producer: NumberedProducer,
    killed_at: float,
    resumed: dict[int, float],
    led: list[int],
    until: float,
) -> str:
    led_stall = max((resumed[p] for p in led), default=0.0)
    return (
        f"partitions {led} it led wrote again after {led_stall:.1f} s, "
        f"the producer was silent for at most "
        f"{longest_silence(producer.acks, killed_at, until):.1f} s"
    )


def test_idempotent_producer_loses_and_duplicates_nothing_through_agent_kills(
    cluster, tmp_path, record_property
):
    cluster.wait_for_membership()
    topic = unique_name("cluster-kills")
    cluster.create_topic(topic, KILL_PARTITIONS)
    producer = NumberedProducer(cluster.bootstrap, topic, KILL_PARTITIONS, tmp_path, **IDEMPOTENT)
    stalls = []
    try:
        producer.wait_for_acks(ACKS_PER_ROUND, RESUME_TIMEOUT)
        leaders = cl.leaders(cluster.agents[0], topic)

        # First kill: the leader of partition 0, back on its ports (and under
        # its agent id) once the producer has written through the others.
        first = cluster.by_port(leaders[0])
        led = sorted(p for p, port in leaders.items() if port == first.kafka_port)
        killed_at = time.monotonic()
        first.kill()
        producer.wait_for_acks(ACKS_PER_ROUND, RESUME_TIMEOUT)
        first.start()
        restarted_at = time.monotonic()
        resumed = producer.wait_for_every_partition_since(killed_at, RESUME_TIMEOUT)
        # Each partition must also write after the restart, not only before it.
        producer.wait_for_every_partition_since(restarted_at, RESUME_TIMEOUT)
        stalls.append(
            f"SIGKILL {first.agent_id}, restarted after {restarted_at - killed_at:.1f} s: "
            + describe_stall(producer, killed_at, resumed, led, time.monotonic())
        )

        # Second kill: another agent, left down until the cluster has dropped
        # it and the producer writes its partitions through the others.
        others = [a for a in cluster.agents if a is not first]
        second = next(
            (cluster.by_port(port) for port in leaders.values() if port != first.kafka_port),
            others[0],
        )
        led = sorted(p for p, port in leaders.items() if port == second.kafka_port)
        killed_at = time.monotonic()
        second.kill()
        dropped_after = cluster.wait_for_membership()
        resumed = producer.wait_for_every_partition_since(killed_at, RESUME_TIMEOUT)
        producer.wait_for_every_partition_since(killed_at + dropped_after, RESUME_TIMEOUT)
        second.start()
        restarted_at = time.monotonic()
        cluster.wait_for_membership()
        producer.wait_for_every_partition_since(restarted_at, RESUME_TIMEOUT)
        stalls.append(
            f"SIGKILL {second.agent_id}, dropped from the cluster after {dropped_after:.1f} s: "
            + describe_stall(producer, killed_at, resumed, led, restarted_at)
        )
        producer.wait_for_acks(ACKS_PER_ROUND, RESUME_TIMEOUT)
        produced = producer.stop()
    finally:
        producer.kill()
        for agent in cluster.agents:
            if not agent.running():
                agent.start()

    stored = check_stored_exactly_once(cluster.bootstrap, producer)
    record_property(
        "cluster",
        f"idempotent producer, {KILL_PARTITIONS} partitions: {produced} produced, "
        f"{len(producer.acks)} acknowledged, {stored} stored, 0 duplicates, no gaps; "
        + "; ".join(stalls),
    )


# --- two writers, one partition, two agents --------------------------------

WRITER_BATCHES = 40
WRITER_BATCH_SIZE = 25


def write_batches(agent, topic: str, name: bytes, acknowledged: list, errors: list) -> None:
    """Produces WRITER_BATCHES batches one after the other through `agent`,
    keeping (base offset, values) of each."""
    try:
        with wire.Connection(agent.bootstrap, timeout=CLIENT_TIMEOUT) as connection:
            for batch in range(WRITER_BATCHES):
                values = [
                    b"%s-%d" % (name, batch * WRITER_BATCH_SIZE + i)
                    for i in range(WRITER_BATCH_SIZE)
                ]
                answer = connection.round_trip(wire.produce_v3(topic, 0, batch, values))
                _, [(_topic, _partition, error, base_offset)] = wire.parse_produce_v3(answer)
                assert error == 0, f"{name!r} batch {batch}: error {error}"
                acknowledged.append((base_offset, values))
    except Exception as error:  # noqa: BLE001 - reported by the test thread
        errors.append(f"{name!r}: {error!r}")


def test_two_writers_through_two_agents_never_share_an_offset(cluster, record_property):
    topic = unique_name("cluster-two-writers")
    cluster.create_topic(topic, 1)
    writers = {b"a": cluster.agents[0], b"b": cluster.agents[1]}
    acknowledged = {name: [] for name in writers}
    errors: list = []
    threads = [
        threading.Thread(
            target=write_batches, args=(agent, topic, name, acknowledged[name], errors)
        )
        for name, agent in writers.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors

    # Read through the third agent: what either writer stored, each offset once.
    messages = read_partition(cluster.agents[2].bootstrap, topic, 0)
    total = 2 * WRITER_BATCHES * WRITER_BATCH_SIZE
    assert [m.offset() for m in messages] == list(range(total)), "offsets are not 0..n-1"
    stored = [m.value() for m in messages]
    for name, batches in acknowledged.items():
        for base_offset, values in batches:
            assert stored[base_offset : base_offset + len(values)] == values, (
                f"writer {name!r}: batch acknowledged at offset {base_offset} is not stored there"
            )
        mine = [v for v in stored if v.startswith(name + b"-")]
        expected = [b"%s-%d" % (name, i) for i in range(WRITER_BATCHES * WRITER_BATCH_SIZE)]
        assert mine == expected, f"writer {name!r}: records out of order or missing"

    # The writers really did write at the same time: their batches interleave.
    owners = [v.split(b"-")[0] for v in stored[::WRITER_BATCH_SIZE]]
    switches = sum(a != b for a, b in zip(owners, owners[1:], strict=False))
    assert switches >= 4, f"batches barely interleaved ({switches} switches): {owners}"
    record_property(
        "cluster",
        f"two writers, one partition, two agents: {total} records at offsets 0..{total - 1}, "
        f"each once, {switches} switches between the writers' batches",
    )


# --- an idempotent producer's retry through another agent -----------------

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47


def produce_idempotent(agent, topic: str, values: list[bytes], producer: tuple) -> tuple[int, int]:
    """One idempotent batch through `agent`: (error code, base offset)."""
    answer = cl.ask(agent, wire.produce_v3(topic, 0, 3, values, producer=producer))
    _, [(_topic, _partition, error, base_offset)] = wire.parse_produce_v3(answer)
    return error, base_offset


def init_producer_id(agent, producer_id: int = -1, epoch: int = -1) -> tuple[int, int]:
    answer = cl.ask(agent, wire.init_producer_id_v3(4, producer_id, epoch))
    _, error, producer_id, epoch = wire.parse_init_producer_id_v3(answer)
    assert error == 0, f"InitProducerId on {agent.agent_id}: error {error}"
    return producer_id, epoch


def test_a_batch_retried_through_another_agent_is_stored_once(cluster):
    """What a client does after losing the answer to a produce: send the same
    batch again, maybe to another agent. Sequences are checked in the commit,
    so every agent knows the batch is stored and answers its offsets."""
    topic = unique_name("cluster-retry")
    cluster.create_topic(topic, 1)
    first, second, third = cluster.agents
    producer_id, epoch = init_producer_id(first)
    batch = [b"first-%d" % i for i in range(5)]

    assert produce_idempotent(first, topic, batch, (producer_id, epoch, 0)) == (0, 0)
    for agent in (second, third):
        assert produce_idempotent(agent, topic, batch, (producer_id, epoch, 0)) == (0, 0), (
            f"the same batch again through {agent.agent_id}: expected its original offset 0"
        )
    following = [b"second-%d" % i for i in range(5)]
    assert produce_idempotent(second, topic, following, (producer_id, epoch, 5)) == (0, 5)
    error, _ = produce_idempotent(third, topic, [b"gap"], (producer_id, epoch, 20))
    assert error == OUT_OF_ORDER_SEQUENCE_NUMBER, f"a sequence gap: error {error}"

    # A new epoch (KIP-360) starts over at sequence 0; once it has written to
    # the partition, the old epoch is fenced there, whichever agent it uses.
    _, bumped = init_producer_id(third, producer_id, epoch)
    assert bumped == epoch + 1, f"InitProducerId bumped epoch {epoch} to {bumped}"
    last = [b"third-%d" % i for i in range(5)]
    assert produce_idempotent(third, topic, last, (producer_id, bumped, 0)) == (0, 10)
    error, _ = produce_idempotent(first, topic, [b"fenced"], (producer_id, epoch, 10))
    assert error == INVALID_PRODUCER_EPOCH, f"a batch of the fenced epoch: error {error}"

    messages = read_partition(cluster.agents[1].bootstrap, topic, 0)
    assert [(m.offset(), m.value()) for m in messages] == list(enumerate(batch + following + last))


# --- a consumer group whose coordinator dies --------------------------------

GROUP_PARTITIONS = 6
BEFORE_KILL = 20
AFTER_KILL = 20
# The members' sessions outlast the coordinator's death; the group must
# re-form once the cluster has dropped the dead agent (MEMBERSHIP_SETTLE)
# plus a rebalance.
REFORM_TIMEOUT = 25.0


class Members:
    """Group members, each bootstrapped with one agent and polled together;
    records what each consumed and when each got its assignments."""

    def __init__(self, agents, group_id: str, topic: str):
        self.members = []
        self.consumed: list[tuple[float, int, int, int]] = []  # (time, member, partition, offset)
        self.assigned: list[tuple[float, int, set[int]]] = []  # (time, member, partitions)
        self.errors: list[str] = []
        for index, agent in enumerate(agents):
            consumer = new_consumer(
                agent.bootstrap,
                group_id,
                **{
                    "session.timeout.ms": 30000,
                    "heartbeat.interval.ms": 500,
                    "max.poll.interval.ms": 60000,
                    "partition.assignment.strategy": "range",
                    "error_cb": lambda error, i=index: self.errors.append(f"member {i}: {error}"),
                },
            )
            consumer.subscribe([topic], on_assign=self._on_assign(index))
            self.members.append(consumer)

    def _on_assign(self, index: int):
        def on_assign(_consumer, partitions):
            self.assigned.append((time.monotonic(), index, {tp.partition for tp in partitions}))

        return on_assign

    def poll(self) -> None:
        for index, member in enumerate(self.members):
            message = member.poll(0.02)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF or not error.fatal(), (
                    f"member {index}: {error}"
                )
                continue
            self.consumed.append((time.monotonic(), index, message.partition(), message.offset()))

    def poll_until(self, condition, timeout: float, message) -> None:
        def step():
            self.poll()
            return condition()

        wait_until(step, timeout, message, interval=0)

    def owners(self) -> list[set[int]]:
        return [{tp.partition for tp in m.assignment()} for m in self.members]

    def read(self, since: float = 0.0) -> set[tuple[int, int]]:
        return {(p, o) for t, _m, p, o in self.consumed if t >= since}

    def commit(self) -> None:
        for member in self.members:
            if member.assignment():
                member.commit(asynchronous=False)

    def committed(self, topic: str) -> dict[int, int]:
        partitions = [TopicPartition(topic, p) for p in range(GROUP_PARTITIONS)]
        answer = self.members[0].committed(partitions, timeout=CLIENT_TIMEOUT)
        return {tp.partition: tp.offset for tp in answer}

    def close(self) -> None:
        for member in self.members:
            member.close()


def produce_round(bootstrap: str, topic: str, label: str, count: int) -> None:
    producer = new_producer(bootstrap)
    for partition in range(GROUP_PARTITIONS):
        records = [Rec(None, b"%s-%d" % (label.encode(), i)) for i in range(count)]
        produce_all(producer, topic, records, partition)


def test_group_reforms_on_another_agent_when_its_coordinator_dies(cluster, record_property):
    cluster.wait_for_membership()
    topic = unique_name("cluster-group")
    group_id = unique_name("cluster-group")
    cluster.create_topic(topic, GROUP_PARTITIONS)

    # Every agent names the same coordinator, and so does the admin API.
    named = {agent.agent_id: cl.coordinator(agent, group_id) for agent in cluster.agents}
    assert len(set(named.values())) == 1, f"agents disagree on the coordinator: {named}"
    coordinator = cluster.by_port(next(iter(named.values())))
    survivors = [a for a in cluster.agents if a is not coordinator]

    produce_round(cluster.bootstrap, topic, "before", BEFORE_KILL)
    members = Members(cluster.agents, group_id, topic)
    every_record = {(p, o) for p in range(GROUP_PARTITIONS) for o in range(BEFORE_KILL)}
    try:
        members.poll_until(
            lambda: members.read() >= every_record,
            CLIENT_TIMEOUT * 2,
            lambda: f"the group read {len(members.read())} of {len(every_record)} records",
        )
        members.commit()
        committed = members.committed(topic)
        assert committed == dict.fromkeys(range(GROUP_PARTITIONS), BEFORE_KILL), committed
        admin = AdminClient(confluent_config(survivors[0].bootstrap))
        (future,) = admin.describe_consumer_groups([group_id]).values()
        described = future.result(timeout=CLIENT_TIMEOUT).coordinator
        assert described.port == coordinator.kafka_port, (
            f"DescribeGroups names {described}, FindCoordinator {coordinator.agent_id}"
        )

        killed_at = time.monotonic()
        coordinator.kill()

        def reformed():
            moved = all(cl.coordinator(a, group_id) != coordinator.kafka_port for a in survivors)
            fresh = {m for t, m, _ in members.assigned if t > killed_at}
            owners = members.owners()
            disjoint = sum(map(len, owners)) == GROUP_PARTITIONS
            return (
                moved
                and fresh == set(range(len(members.members)))
                and disjoint
                and (set().union(*owners) == set(range(GROUP_PARTITIONS)))
            )

        members.poll_until(
            reformed,
            REFORM_TIMEOUT,
            lambda: (
                f"coordinators named by the survivors "
                f"{[cl.coordinator(a, group_id) for a in survivors]} (dead: "
                f"{coordinator.kafka_port}); assignments (s after the kill, member, "
                f"partitions) {[(round(t - killed_at, 1), m, p) for t, m, p in members.assigned]}"
                f"; owners {members.owners()}; client errors {members.errors[-5:]}"
            ),
        )
        reformed_after = time.monotonic() - killed_at
        new_coordinator = cluster.by_port(cl.coordinator(survivors[0], group_id))

        # The new coordinator serves what the group committed, and the group
        # carries on from there: nothing before it read again, nothing lost.
        assert members.committed(topic) == committed
        produce_round(survivors[0].bootstrap, topic, "after", AFTER_KILL)
        total = BEFORE_KILL + AFTER_KILL
        every_record = {(p, o) for p in range(GROUP_PARTITIONS) for o in range(total)}
        members.poll_until(
            lambda: members.read() >= every_record,
            CLIENT_TIMEOUT,
            lambda: (
                f"read {len(members.read())} of {len(every_record)}; errors {members.errors[-5:]}"
            ),
        )
        after = sorted((p, o, m) for t, m, p, o in members.consumed if t > killed_at)
        reread = [(p, o) for p, o, _ in after if o < committed[p]]
        assert not reread, f"records before the committed offsets read again: {reread[:20]}"
        resumed_at = {}
        for p, o, _ in after:
            resumed_at.setdefault(p, o)
        assert resumed_at == committed, (
            f"first offsets read after the kill {resumed_at}, committed {committed}"
        )
        members.commit()
        assert members.committed(topic) == dict.fromkeys(range(GROUP_PARTITIONS), total)
    finally:
        members.close()
        if not coordinator.running():
            coordinator.start()

    record_property(
        "cluster",
        f"group coordinator {coordinator.agent_id} SIGKILLed: the group re-formed on "
        f"{new_coordinator.agent_id} after {reformed_after:.1f} s and resumed at the committed "
        f"offsets ({BEFORE_KILL} per partition); client errors meanwhile: {len(members.errors)}",
    )


def test_a_consumer_protocol_group_keeps_its_assignment_when_its_coordinator_dies(
    cluster, record_property
):
    """KIP-848: the group's state is in the metadata store, so the agent
    that takes the group over carries on at the same epochs: the members
    keep their partitions and read on, without a rebalance."""
    cluster.wait_for_membership()
    topic = unique_name("cluster-kip848")
    group_id = unique_name("cluster-kip848")
    cluster.create_topic(topic, PARTITIONS)
    named = {agent.agent_id: cl.coordinator(agent, group_id) for agent in cluster.agents}
    assert len(set(named.values())) == 1, f"agents disagree on the coordinator: {named}"
    coordinator = cluster.by_port(next(iter(named.values())))
    survivors = [a for a in cluster.agents if a is not coordinator]

    members = [Member(cluster.bootstrap, group_id, [topic], f"m{i}") for i in (1, 2)]
    try:
        # Kafka's default heartbeat interval (5 s): a rebalance takes longer.
        split(members, topic, [2, 2], timeout=60.0)
        before = produce(cluster.bootstrap, topic, "before", 10)
        read_everything(members, before)
        owned = [m.owned() for m in members]

        killed_at = time.monotonic()
        coordinator.kill()
        during = produce(survivors[0].bootstrap, topic, "during", 10)
        read_everything(members, during, timeout=60.0)

        def taken_over():
            for member in members:
                member.poll()
            moved = all(cl.coordinator(a, group_id) != coordinator.kafka_port for a in survivors)
            if not moved:
                return False
            described = describe(survivors[0].bootstrap, group_id)
            return described.coordinator.port != coordinator.kafka_port and described

        described = wait_until(
            taken_over,
            REFORM_TIMEOUT,
            lambda: f"survivors name {[cl.coordinator(a, group_id) for a in survivors]}",
            interval=0,
        )
        moved_after = time.monotonic() - killed_at
        by_member = {
            frozenset((tp.topic, tp.partition) for tp in m.assignment.topic_partitions)
            for m in described.members
        }
        assert by_member == {frozenset(o) for o in owned}, (
            f"the new coordinator has {by_member}, the members owned {owned}"
        )
        # Heartbeats reach the new coordinator, and the members read on.
        after = produce(survivors[0].bootstrap, topic, "after", 10)
        read_everything(members, after, timeout=60.0)
        poll_for(members, 1.0)
        for member, had in zip(members, owned):
            assert member.owned() == had, f"{member.name} now owns {member.owned()}, had {had}"
            taken = member.taken_away(killed_at)
            assert not taken, f"{member.name} gave up {taken} after the coordinator died"
    finally:
        for member in members:
            member.close()
        if not coordinator.running():
            coordinator.start()

    record_property(
        "cluster",
        f"consumer-protocol group coordinator {coordinator.agent_id} SIGKILLed: the group "
        f"moved after {moved_after:.1f} s with both members keeping their partitions",
    )


# --- a long poll woken by another agent's commit ---------------------------

# The wait a consumer asks for; the answer must come long before it ends.
LONG_POLL_MS = 10000
WAKE_LIMIT = 3.0


@pytest.mark.parametrize(
    ("waiting", "writing"), [(0, 1), (2, 0)], ids=["0-wakes-on-1", "2-wakes-on-0"]
)
def test_a_long_poll_on_one_agent_wakes_when_another_commits(
    cluster, waiting, writing, record_property
):
    topic = unique_name("cluster-long-poll")
    cluster.create_topic(topic, 1)
    reader, writer = cluster.agents[waiting], cluster.agents[writing]
    with wire.Connection(reader.bootstrap, timeout=LONG_POLL_MS / 1000 + 10) as connection:
        sent_at = time.monotonic()
        connection.send(wire.fetch_v4(topic, 0, 0, 1, max_wait_ms=LONG_POLL_MS, min_bytes=1))
        # The fetch is waiting on `reader` (nothing came back yet) when the
        # record is written through `writer`.
        assert not wait_for_data(connection, 0.5), "the fetch answered before any record existed"
        with wire.Connection(writer.bootstrap) as producer:
            answer = producer.round_trip(wire.produce_v3(topic, 0, 2, [b"wake up"]))
        acknowledged_at = time.monotonic()
        _, [(_t, _p, error, base_offset)] = wire.parse_produce_v3(answer)
        assert (error, base_offset) == (0, 0)
        _, partitions = wire.parse_fetch_v4(connection.read_response())
        answered_at = time.monotonic()
    assert partitions == [(0, 0, 1, [(0, b"wake up")])], partitions
    woke_after = answered_at - acknowledged_at
    assert woke_after < WAKE_LIMIT, (
        f"the fetch on {reader.agent_id} answered {woke_after:.2f} s after {writer.agent_id} "
        f"acknowledged the record ({answered_at - sent_at:.2f} s after it was sent, "
        f"max_wait_ms={LONG_POLL_MS})"
    )
    record_property(
        "cluster",
        f"a fetch waiting on {reader.agent_id} (max_wait_ms={LONG_POLL_MS}) answered "
        f"{woke_after * 1000:.0f} ms after {writer.agent_id} acknowledged a record",
    )


def wait_for_data(connection: wire.Connection, seconds: float) -> bool:
    """Whether anything arrives on `connection` within `seconds`."""
    readable, _, _ = select.select([connection.sock], [], [], seconds)
    return bool(readable)


@pytest.mark.parametrize(
    ("waiting", "writing"), [(1, 2), (0, 1)], ids=["1-wakes-on-2", "0-wakes-on-1"]
)
def test_a_rest_long_poll_on_one_agent_wakes_when_another_commits(
    cluster, waiting, writing, record_property
):
    """The HTTP API's long poll waits like a Kafka fetch: a consume with
    wait_ms on one agent answers as soon as another agent commits."""
    topic = unique_name("cluster-rest-long-poll")
    cluster.create_topic(topic, 1)
    reader, writer = cluster.agents[waiting], cluster.agents[writing]
    answer: dict = {}

    def consume() -> None:
        status, body = reader.http_get(
            f"/api/v1/topics/{topic}/partitions/0/records?offset=0&wait_ms={LONG_POLL_MS}",
            timeout=LONG_POLL_MS / 1000 + 10,
        )
        answer.update(status=status, body=body, at=time.monotonic())

    poll = threading.Thread(target=consume, daemon=True)
    sent_at = time.monotonic()
    poll.start()
    poll.join(0.5)
    assert not answer, f"the long poll answered before any record existed: {answer}"
    with wire.Connection(writer.bootstrap) as producer:
        reply = producer.round_trip(wire.produce_v3(topic, 0, 2, [b"wake up"]))
    acknowledged_at = time.monotonic()
    _, [(_t, _p, error, base_offset)] = wire.parse_produce_v3(reply)
    assert (error, base_offset) == (0, 0)
    poll.join(LONG_POLL_MS / 1000 + 10)
    assert answer.get("status") == 200, answer
    body = json.loads(answer["body"])
    assert [(r["offset"], r["value"]) for r in body["records"]] == [(0, "wake up")], body
    assert body["next_offset"] == 1, body
    woke_after = answer["at"] - acknowledged_at
    assert woke_after < WAKE_LIMIT, (
        f"the long poll on {reader.agent_id} answered {woke_after:.2f} s after "
        f"{writer.agent_id} acknowledged the record ({answer['at'] - sent_at:.2f} s after "
        f"it was sent, wait_ms={LONG_POLL_MS})"
    )
    record_property(
        "cluster",
        f"a REST long poll waiting on {reader.agent_id} (wait_ms={LONG_POLL_MS}) answered "
        f"{woke_after * 1000:.0f} ms after {writer.agent_id} acknowledged a record",
    )
