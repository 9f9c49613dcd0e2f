"""Members of consumer groups of the consumer protocol (KIP-848,
`group.protocol=consumer`) polled together from one process, each
recording the incremental assign and revoke callbacks librdkafka makes and
the records it reads."""

import time

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from support import CLIENT_TIMEOUT, confluent_config, new_consumer, new_producer, wait_until

PARTITIONS = 4
# A rebalance takes a few heartbeats: the owner revokes, then the newcomer
# is given what was released.
SETTLE = 30.0


def produce(bootstrap: str, topic: str, label: str, per_partition: int) -> set[tuple]:
    """`per_partition` records to each partition; returns them as
    (topic, partition, value)."""
    producer = new_producer(bootstrap)
    records = set()
    for partition in range(PARTITIONS):
        for i in range(per_partition):
            value = f"{label}-{partition}-{i}".encode()
            producer.produce(topic, value=value, partition=partition)
            records.add((topic, partition, value))
    assert producer.flush(CLIENT_TIMEOUT) == 0
    return records


class Member:
    """A consumer of the consumer group protocol, and what happened to it:
    each rebalance callback and each record it read."""

    def __init__(self, bootstrap: str, group: str, topics: list[str], name: str, **config):
        self.name = name
        self.events: list[tuple[str, set, float]] = []
        self.records: list[tuple] = []
        self.errors: list = []
        settings = {"group.protocol": "consumer", **config}
        self.consumer = new_consumer(bootstrap, group, **settings)
        self.consumer.subscribe(
            topics, on_assign=self._on("assign"), on_revoke=self._on("revoke"), on_lost=self._on("lost")
        )

    def _on(self, kind: str):
        def callback(_consumer, partitions):
            parts = {(tp.topic, tp.partition) for tp in partitions}
            self.events.append((kind, parts, time.monotonic()))

        return callback

    def poll(self):
        message = self.consumer.poll(0.02)
        if message is None:
            return
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                self.errors.append(error)
            return
        self.records.append((message.topic(), message.partition(), message.value()))

    def owned(self) -> set[tuple]:
        return {(tp.topic, tp.partition) for tp in self.consumer.assignment()}

    def taken_away(self, since: float = 0.0) -> set[tuple]:
        """Partitions revoked or lost since `since`."""
        return set().union(
            *(p for kind, p, at in self.events if kind != "assign" and at >= since)
        )

    def close(self):
        self.consumer.close()


def poll_until(members: list[Member], done, timeout: float, what):
    def step():
        for member in members:
            member.poll()
        return done()

    return wait_until(step, timeout, what, interval=0)


def poll_for(members: list[Member], seconds: float):
    """Polls every member for `seconds`, so that late callbacks arrive."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for member in members:
            member.poll()


def split(members: list[Member], topic: str, sizes: list[int], timeout: float = SETTLE):
    """Polls until the members own every partition of `topic` once, in the
    given (sorted) numbers per member."""
    every = {(topic, p) for p in range(PARTITIONS)}

    def done():
        owned = [m.owned() for m in members]
        union = set().union(*owned)
        return sum(map(len, owned)) == len(union) and union == every and sorted(map(len, owned)) == sizes

    poll_until(
        members,
        done,
        timeout,
        lambda: (
            f"owned {[sorted(p for _, p in m.owned()) for m in members]}, expected sizes {sizes}; "
            f"errors {[e for m in members for e in m.errors][-3:]}"
        ),
    )


def read_everything(members: list[Member], expected: set[tuple], timeout: float = CLIENT_TIMEOUT):
    """Polls until the members together read `expected`, each record once."""

    def read():
        return {r for m in members for r in m.records}

    poll_until(
        members,
        lambda: read() >= expected,
        timeout,
        lambda: f"read {len(read() & expected)} of {len(expected)} records",
    )
    every = [r for m in members for r in m.records if r in expected]
    assert len(every) == len(expected), f"{len(every) - len(expected)} records read twice"


def describe(bootstrap: str, group: str):
    admin = AdminClient(confluent_config(bootstrap))
    (future,) = admin.describe_consumer_groups([group]).values()
    return future.result(timeout=CLIENT_TIMEOUT)


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = AdminClient(confluent_config(bootstrap))
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])
    (future,) = admin.list_consumer_group_offsets([request]).values()
    return {tp.partition: tp.offset for tp in future.result(timeout=CLIENT_TIMEOUT).topic_partitions}
