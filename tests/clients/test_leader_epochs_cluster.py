"""A consumer in a three-agent cluster that goes on from its position when
the agent leading its partition is SIGKILLed: the surviving agents move the
partition and bump its leader epoch, librdkafka checks its position against
the new epoch (OffsetForLeaderEpoch) and resets nothing, the records
written since carry the new epoch, and a new member of the group starts
from the offset (and epoch) committed before the kill."""

import logging
import threading
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

import cluster as cl
import kafka_wire as wire
from support import CLIENT_TIMEOUT, new_consumer, unique_name, wait_until
from test_leader_epochs import ask, produce_values

pytestmark = pytest.mark.cluster


def leader_epochs(agent, topic: str) -> dict[int, tuple[int, int]]:
    """{partition: (leader node id, leader epoch)}, as `agent` tells clients."""
    error, partitions = wire.parse_metadata_v7(ask(agent, wire.metadata_v7(1, [topic])))[topic]
    assert error == 0, f"Metadata({topic}) on {agent.agent_id}: error {error}"
    return partitions


RECORDS_BEFORE = 200
RECORDS_AFTER = 200


class ClientLog(logging.Handler):
    """librdkafka's log lines, kept to look for offset validation and
    resets. The consumer's logs arrive in the thread that polls it
    (`logging.Handler` serialises `emit` itself)."""

    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())

    def mark(self) -> int:
        return len(self.lines)

    def matching(self, *words: str, since: int = 0) -> list[str]:
        return [line for line in self.lines[since:] if any(w in line for w in words)]


def logged_consumer(bootstrap: str, group: str, log: ClientLog):
    logger = logging.getLogger(f"librdkafka-{group}")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(log)
    return new_consumer(
        bootstrap,
        group,
        logger=logger,
        debug="fetch,topic",
        # Small fetches, so that the consumer is still reading when its
        # partition's leader goes.
        **{"fetch.max.bytes": 4096, "message.max.bytes": 4096, "max.partition.fetch.bytes": 1024},
    )


def consume(consumer, count: int, timeout: float) -> list:
    """(offset, value, leader epoch) of the next `count` records."""
    read = []
    deadline = time.monotonic() + timeout
    while len(read) < count:
        assert time.monotonic() < deadline, (
            f"read {len(read)} of {count} records in {timeout:.0f} s; last {read[-3:]}"
        )
        for message in consumer.consume(num_messages=50, timeout=0.5):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise AssertionError(f"consume error {error}")
            read.append((message.offset(), message.value(), message.leader_epoch()))
    return read


# What librdkafka logs when it gives up a position: an offset reset (after
# an error, or a truncation found by validation).
RESETS = ("offset reset", "truncation")


def test_a_consumer_goes_on_when_the_leader_of_its_partition_is_killed(cluster, record_property):
    cluster.wait_for_membership()
    topic = unique_name("leader-killed")
    cluster.create_topic(topic, 4)
    leader_port = cl.leaders(cluster.agents[0], topic)[0]
    leader = cluster.by_port(leader_port)
    survivor = next(a for a in cluster.agents if a is not leader)
    node_before, epoch_before = leader_epochs(survivor, topic)[0]
    before = [b"before-%d" % i for i in range(RECORDS_BEFORE)]
    after = [b"after-%d" % i for i in range(RECORDS_AFTER)]
    produce_values(cluster.bootstrap, topic, 0, before)

    group = unique_name("leader-killed-group")
    log = ClientLog()
    consumer = logged_consumer(cluster.bootstrap, group, log)
    writer = None
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        read = consume(consumer, RECORDS_BEFORE // 2, CLIENT_TIMEOUT)
        consumer.commit(asynchronous=False)
        committed_at = read[-1][0] + 1

        killed_at = time.monotonic()
        since_kill = log.mark()
        leader.kill()
        # The rest of the records, through the agents left.
        writer = threading.Thread(
            target=produce_values, args=(cluster.bootstrap, topic, 0, after), daemon=True
        )
        writer.start()
        read += consume(consumer, RECORDS_BEFORE // 2 + RECORDS_AFTER, 90.0)
        resumed_after = time.monotonic() - killed_at
        writer.join(timeout=60)
        assert not writer.is_alive(), "the producer did not finish"

        # Every record once, in order, from where the consumer was.
        assert [offset for offset, _v, _e in read] == list(range(RECORDS_BEFORE + RECORDS_AFTER))
        assert [value for _o, value, _e in read] == before + after
        resets = log.matching(*RESETS, since=since_kill)
        assert not resets, f"the consumer reset its position: {resets[:5]}"
        # The partition moved: a new leader at a newer epoch, which the
        # records written since carry.
        node_after, epoch_after = leader_epochs(survivor, topic)[0]
        assert node_after != node_before
        assert epoch_after > epoch_before
        assert {e for _o, v, e in read if v.startswith(b"before-")} == {epoch_before}
        assert {e for _o, v, e in read if v.startswith(b"after-")} == {epoch_after}
        validated = log.matching("validation succeeded", since=since_kill)
        assert validated, "the consumer never checked its position against the new epoch"
    finally:
        consumer.close()

    # A new member of the group starts at the committed offset, checked
    # against the epoch committed with it.
    log = ClientLog()
    resumed = logged_consumer(cluster.bootstrap, group, log)
    try:
        (committed,) = resumed.committed([TopicPartition(topic, 0)], timeout=CLIENT_TIMEOUT)
        assert (committed.offset, committed.leader_epoch) == (committed_at, epoch_before)
        resumed.assign([committed])
        rest = consume(resumed, RECORDS_BEFORE + RECORDS_AFTER - committed_at, 60.0)
        assert rest[0][0] == committed_at
        assert [o for o, _v, _e in rest] == list(range(committed_at, RECORDS_BEFORE + RECORDS_AFTER))
        resets = log.matching(*RESETS)
        assert not resets, f"the new member reset its position: {resets[:5]}"
    finally:
        resumed.close()
        if not leader.running():
            leader.start()
        cluster.wait_for_membership()
    # The agent is back and leads the partition again, at a newer epoch
    # still.
    wait_until(
        lambda: leader_epochs(survivor, topic)[0][1] > epoch_after,
        2 * cl.HEARTBEAT_INTERVAL + 5,
        lambda: f"epochs after the restart: {leader_epochs(survivor, topic)}",
    )
    record_property(
        "cluster",
        f"consumer of {topic}[0] whose leader was SIGKILLed: read every record once, "
        f"went on after {resumed_after:.1f} s, leader epoch {epoch_before} -> {epoch_after}, "
        f"position validated with OffsetForLeaderEpoch, no reset",
    )
