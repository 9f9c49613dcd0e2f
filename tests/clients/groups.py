"""Consumer group helpers: members with short heartbeats, and a set of
members polled together so that each takes part in every rebalance."""

from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, NewTopic

from support import CLIENT_TIMEOUT, confluent_config, new_consumer, unique_name, wait_until

PARTITIONS = 4
ALL_PARTITIONS = set(range(PARTITIONS))
REBALANCE_TIMEOUT = 60.0


def create_topic(server, label: str) -> str:
    topic = unique_name(label)
    admin = AdminClient(confluent_config(server.bootstrap))
    (future,) = admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values()
    future.result(timeout=CLIENT_TIMEOUT)
    return topic


def group_member(server, group: str, strategy: str, topic: str, **overrides):
    config = {
        "partition.assignment.strategy": strategy,
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 250,
        "max.poll.interval.ms": 60000,
    }
    config.update(overrides)
    consumer = new_consumer(server.bootstrap, group, **config)
    consumer.subscribe([topic])
    return consumer


class Group:
    """Members of one group, polled together so every member takes part in
    each rebalance; keeps what each member consumed."""

    def __init__(self):
        self.members = []
        self.consumed = {}

    def add(self, consumer):
        self.members.append(consumer)
        self.consumed[id(consumer)] = []

    def poll_round(self) -> int:
        """Polls each member once; returns how many records all have read."""
        for member in self.members:
            message = member.poll(0.05)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, f"consume error: {error}"
                continue
            self.consumed[id(member)].append(message)
        return sum(map(len, self.consumed.values()))

    def assignments(self) -> list[set[int]]:
        return [{tp.partition for tp in member.assignment()} for member in self.members]

    def wait_for_split(self, sizes: list[int], timeout: float = REBALANCE_TIMEOUT):
        """Polls until the members own disjoint partitions, all of them
        together, in the given (sorted) numbers per member."""

        def split_done():
            self.poll_round()
            owned = self.assignments()
            union = set().union(*owned)
            disjoint = sum(len(o) for o in owned) == len(union)
            return disjoint and union == ALL_PARTITIONS and sorted(map(len, owned)) == sizes

        wait_until(
            split_done,
            timeout,
            lambda: f"assignments {self.assignments()}, expected sizes {sizes}",
            interval=0,
        )
        return self.assignments()

    def close(self):
        for member in self.members:
            member.close()
        self.members.clear()


def consume_until(consumer, done, consumed: list):
    def step():
        message = consumer.poll(0.1)
        if message is not None:
            error = message.error()
            if error is None:
                consumed.append(message)
            else:
                assert error.code() == KafkaError._PARTITION_EOF, f"consume error: {error}"
        return done()

    wait_until(step, CLIENT_TIMEOUT, lambda: f"consumed only {len(consumed)} records", interval=0)


def commit_some(server, topic: str, group_id: str, count: int) -> list:
    """A group member that reads `count` records, commits and leaves."""
    consumer = group_member(server, group_id, "range", topic)
    read: list = []
    try:
        consume_until(consumer, lambda: len(read) >= count, read)
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return read
