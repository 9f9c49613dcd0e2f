"""Transactions in a cluster of three agents on PostgreSQL + S3.

The agent coordinating a transaction is SIGKILLed mid-transaction: the
transaction it acknowledged stays committed, the open one is aborted by the
agent that takes over, and read_committed consumers on the other agents go
on. Then a history check in the style of Jepsen's Kafka workload: several
transactional producers run hundreds of random transactions (some
committed, some aborted) across partitions while agents are killed and
restarted, and the records read back afterwards are checked for aborted
reads, lost committed writes, duplicates, torn transactions, inconsistent
offsets and producer order."""

import json
import random
import threading
import time
from dataclasses import dataclass, field

import pytest
from confluent_kafka import KafkaException, Producer, TopicPartition

import cluster as cl
from cluster import MEMBERSHIP_SETTLE, Cluster
from support import CLIENT_TIMEOUT, Rec, new_consumer, new_producer, produce_all, unique_name
from support import wait_until

pytestmark = pytest.mark.cluster

# Each agent checks for timed-out transactions this often.
ENVIRONMENT = {"STREAMHOUSE_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS": "500"}
TRANSACTION_TIMEOUT_MS = 8000
TRANSACTIONAL = {
    "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
    # librdkafka requires message.timeout.ms <= transaction.timeout.ms.
    "message.timeout.ms": TRANSACTION_TIMEOUT_MS - 1000,
    "socket.timeout.ms": 5000,
}
# How long an open transaction of a dead coordinator may hold a partition's
# last stable offset: the dead agent leaves the cluster, then the timeout
# passes and the new coordinator aborts it.
TAKEOVER_TIMEOUT = MEMBERSHIP_SETTLE + TRANSACTION_TIMEOUT_MS / 1000 + 10


@pytest.fixture(scope="module")
def txn_cluster(tmp_path_factory, server_logs):
    cluster = Cluster.start(tmp_path_factory.mktemp("txn-cluster"), 3, environment=ENVIRONMENT)
    server_logs.extend(cluster.agents)
    yield cluster
    statuses = cluster.stop()
    failed = {agent: status for agent, status in statuses.items() if status != 0}
    assert not failed, f"exit statuses after SIGTERM (expected 0): {failed}\n{cluster.logs()}"


def transactional_producer(bootstrap: str, transactional_id: str) -> Producer:
    producer = new_producer(bootstrap, **{"transactional.id": transactional_id, **TRANSACTIONAL})
    producer.init_transactions(CLIENT_TIMEOUT)
    return producer


def stable_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, tuple[int, int]]:
    """{partition: (last stable offset, high watermark)}."""
    committed = new_consumer(bootstrap, **{"isolation.level": "read_committed"})
    uncommitted = new_consumer(bootstrap)
    try:
        return {
            p: (
                committed.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=CLIENT_TIMEOUT, cached=False
                )[1],
                uncommitted.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=CLIENT_TIMEOUT, cached=False
                )[1],
            )
            for p in range(partitions)
        }
    finally:
        committed.close()
        uncommitted.close()


def read_everything(
    bootstrap: str, topic: str, partitions: int, isolation: str
) -> dict[int, list[tuple[int, bytes]]]:
    """Every (offset, value) of each partition up to its end for `isolation`
    (the last stable offset for read_committed)."""
    ends = stable_offsets(bootstrap, topic, partitions)
    end_of = {p: (lso if isolation == "read_committed" else high) for p, (lso, high) in ends.items()}
    consumer = new_consumer(bootstrap, **{"isolation.level": isolation})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    read: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
    done = {p for p, end in end_of.items() if end == 0}
    deadline = time.monotonic() + 6 * CLIENT_TIMEOUT
    try:
        while len(done) < partitions:
            assert time.monotonic() < deadline, (
                f"{isolation}: read up to {[r[-1][0] if r else None for r in read.values()]}, "
                f"ends {end_of}"
            )
            message = consumer.poll(0.5)
            if message is None:
                # Aborted records and markers end a partition without a
                # record at its last offset.
                for p in range(partitions):
                    position = consumer.position([TopicPartition(topic, p)])[0].offset
                    if position >= end_of[p]:
                        done.add(p)
                continue
            assert message.error() is None, message.error()
            read[message.partition()].append((message.offset(), message.value()))
            if message.offset() + 1 >= end_of[message.partition()]:
                done.add(message.partition())
    finally:
        consumer.close()
    return read


def test_killing_the_coordinator_mid_transaction_aborts_it_on_another_agent(txn_cluster):
    cluster = txn_cluster
    cluster.wait_for_membership()
    topic = unique_name("txn-kill")
    cluster.create_topic(topic, 2)
    transactional_id = unique_name("txn-kill")
    coordinator = cluster.by_port(
        cl.transaction_coordinator(cluster.agents[0], transactional_id)
    )
    producer = transactional_producer(cluster.bootstrap, transactional_id)
    producer.begin_transaction()
    for partition in (0, 1):
        producer.produce(topic, b"committed", partition=partition)
    producer.commit_transaction(CLIENT_TIMEOUT)
    producer.begin_transaction()
    for partition in (0, 1):
        producer.produce(topic, b"open", partition=partition)
    producer.flush(CLIENT_TIMEOUT)

    coordinator.kill()
    survivors = [a for a in cluster.agents if a.running()]
    bootstrap = ",".join(a.bootstrap for a in survivors)
    killed_at = time.monotonic()
    plain = new_producer(bootstrap)
    for partition in (0, 1):
        produce_all(plain, topic, [Rec(None, b"after")], partition=partition)

    # Each partition holds "committed", its marker, "open" and "after": an
    # agent whose view of the partition is older than "after" (its cache of
    # the watermarks lags) must not count as having moved on.
    def moved_on() -> bool:
        return all(
            lso == high >= 4 for lso, high in stable_offsets(bootstrap, topic, 2).values()
        )

    try:
        wait_until(
            moved_on,
            TAKEOVER_TIMEOUT,
            lambda: f"last stable offsets stuck: {stable_offsets(bootstrap, topic, 2)}",
            interval=0.5,
        )
        took = time.monotonic() - killed_at
        committed = read_everything(bootstrap, topic, 2, "read_committed")
        uncommitted = read_everything(bootstrap, topic, 2, "read_uncommitted")
        for partition in (0, 1):
            assert [v for _, v in committed[partition]] == [b"committed", b"after"], (
                f"partition {partition}: the acknowledged commit stays, the open "
                f"transaction is aborted (read_committed after {took:.1f} s)"
            )
            assert [v for _, v in uncommitted[partition]] == [b"committed", b"open", b"after"]
        print(f"open transaction of the killed coordinator aborted after {took:.1f} s")
    finally:
        del producer
        coordinator.start()
        cluster.wait_for_membership()


# --- a history check over random transactions through agent kills ----------

HISTORY_PARTITIONS = 4
HISTORY_WORKERS = 3
# How long the workers run; several hundred transactions at least end.
HISTORY_SECONDS = 75
HISTORY_MIN_TRANSACTIONS = 300
KILL_EVERY = (4.0, 7.0)
MIN_KILLS = 5


def down_for(chooser: random.Random) -> float:
    """Mostly a quick restart under the same agent id; sometimes long
    enough for the agent to leave the cluster, so that its transactions'
    coordinator moves to another agent and back."""
    return MEMBERSHIP_SETTLE if chooser.random() < 0.25 else chooser.uniform(1.0, 3.0)


@dataclass
class Transaction:
    worker: int
    number: int
    records: list[tuple[int, bytes]]
    outcome: str = "unknown"  # committed, aborted or unknown
    errors: list[str] = field(default_factory=list)


class Worker(threading.Thread):
    """A transactional producer running random transactions until stopped;
    each transaction's records and what the client said of its end."""

    def __init__(self, cluster: Cluster, topic: str, number: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.cluster, self.topic, self.number, self.stop = cluster, topic, number, stop
        self.transactional_id = unique_name(f"history-{number}")
        self.random = random.Random(number)
        self.history: list[Transaction] = []
        self.failure: str | None = None

    def new_producer(self) -> Producer:
        deadline = time.monotonic() + 120
        while True:
            try:
                return transactional_producer(self.cluster.bootstrap, self.transactional_id)
            except KafkaException as error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def run(self) -> None:
        try:
            producer = self.new_producer()
            while not self.stop.is_set():
                if not self.one_transaction(producer):
                    # The producer is fatally failed or fenced: a new one
                    # with the same id completes or aborts what it left.
                    producer = self.new_producer()
        except Exception as error:  # reported by the test
            self.failure = f"worker {self.number}: {error!r}"

    def one_transaction(self, producer: Producer) -> bool:
        """Runs one transaction; False when the producer must be replaced."""
        number = len(self.history)
        records = [
            (self.random.randrange(HISTORY_PARTITIONS), f"{self.number}:{number}:{i}".encode())
            for i in range(self.random.randint(1, 6))
        ]
        txn = Transaction(self.number, number, records)
        self.history.append(txn)
        commit = self.random.random() < 0.7
        try:
            producer.begin_transaction()
            for partition, value in records:
                producer.produce(self.topic, value, partition=partition)
            if commit:
                self.end(producer, commit=True)
                txn.outcome = "committed"
            else:
                # Sent before the abort: aborted records are stored, then
                # must stay invisible to read_committed.
                producer.flush(TRANSACTION_TIMEOUT_MS / 1000)
                self.end(producer, commit=False)
                txn.outcome = "aborted"
            return True
        except KafkaException as raised:
            error = raised.args[0]
            txn.errors.append(str(error))
            if error.txn_requires_abort() and not error.fatal():
                try:
                    self.end(producer, commit=False)
                    txn.outcome = "aborted"
                    return True
                except KafkaException as again:
                    txn.errors.append(str(again.args[0]))
            return False
        except BufferError as error:
            txn.errors.append(repr(error))
            return False

    @staticmethod
    def end(producer: Producer, commit: bool) -> None:
        """Commits or aborts, retrying what librdkafka calls retriable."""
        for attempt in range(20):
            try:
                if commit:
                    producer.commit_transaction(CLIENT_TIMEOUT)
                else:
                    producer.abort_transaction(CLIENT_TIMEOUT)
                return
            except KafkaException as raised:
                if not raised.args[0].retriable() or attempt == 19:
                    raise
                time.sleep(0.2)


def check_history(
    history: list[Transaction],
    committed: dict[int, list[tuple[int, bytes]]],
    uncommitted: dict[int, list[tuple[int, bytes]]],
) -> dict:
    """Jepsen's Kafka anomalies for this workload; returns the report."""
    anomalies: dict[str, list] = {
        "aborted-read": [],
        "lost-write": [],
        "duplicate": [],
        "torn-transaction": [],
        "inconsistent-offsets": [],
        "committed-not-stored": [],
        "producer-order": [],
    }
    owner = {value: txn for txn in history for _, value in txn.records}
    seen_committed: dict[bytes, list[tuple[int, int]]] = {}
    seen_stored: dict[bytes, list[tuple[int, int]]] = {}
    for partition, records in committed.items():
        for offset, value in records:
            seen_committed.setdefault(value, []).append((partition, offset))
    for partition, records in uncommitted.items():
        for offset, value in records:
            seen_stored.setdefault(value, []).append((partition, offset))
    for seen in (seen_committed, seen_stored):
        for value, places in seen.items():
            if len(places) > 1:
                anomalies["duplicate"].append((value.decode(), places))
    stored_at = {
        (p, o): v for p, records in uncommitted.items() for o, v in records
    }
    for value, places in seen_committed.items():
        for place in places:
            if stored_at.get(place) != value:
                anomalies["inconsistent-offsets"].append((value.decode(), place))
        if value not in owner:
            anomalies["committed-not-stored"].append(value.decode())
    for txn in history:
        values = [v for _, v in txn.records]
        visible = [v for v in values if v in seen_committed]
        if txn.outcome == "aborted" and visible:
            anomalies["aborted-read"].append((txn.worker, txn.number, [v.decode() for v in visible]))
        if txn.outcome == "committed" and len(visible) < len(values):
            missing = [v.decode() for v in values if v not in seen_committed]
            anomalies["lost-write"].append((txn.worker, txn.number, missing))
        if txn.outcome == "unknown" and 0 < len(visible) < len(values):
            anomalies["torn-transaction"].append((txn.worker, txn.number, len(visible), len(values)))
        for partition, value in txn.records:
            if value in seen_committed and seen_committed[value][0][0] != partition:
                anomalies["inconsistent-offsets"].append((value.decode(), seen_committed[value]))
    # Within a partition each producer's committed records keep the order
    # in which it sent them.
    for partition, records in committed.items():
        last: dict[int, tuple[int, int]] = {}
        for _, value in records:
            worker, number, index = (int(x) for x in value.decode().split(":"))
            if worker in last and last[worker] >= (number, index):
                anomalies["producer-order"].append((partition, value.decode(), last[worker]))
            last[worker] = (number, index)
    outcomes = {o: sum(1 for t in history if t.outcome == o) for o in ("committed", "aborted", "unknown")}
    return {
        "transactions": len(history),
        "outcomes": outcomes,
        "records_committed": sum(len(r) for r in committed.values()),
        "records_stored": sum(len(r) for r in uncommitted.values()),
        "anomalies": {k: v[:10] for k, v in anomalies.items() if v},
        "anomaly_counts": {k: len(v) for k, v in anomalies.items() if v},
    }


def test_random_transactions_through_agent_kills_show_no_anomaly(txn_cluster, record_property):
    cluster = txn_cluster
    cluster.wait_for_membership()
    topic = unique_name("txn-history")
    cluster.create_topic(topic, HISTORY_PARTITIONS)
    stop = threading.Event()
    workers = [Worker(cluster, topic, n, stop) for n in range(HISTORY_WORKERS)]
    chooser = random.Random(7)
    kills = 0
    started = time.monotonic()
    for worker in workers:
        worker.start()
    try:
        next_kill = started + chooser.uniform(*KILL_EVERY)
        while time.monotonic() - started < HISTORY_SECONDS:
            if any(w.failure for w in workers):
                break
            if time.monotonic() >= next_kill:
                victim = chooser.choice(cluster.running())
                victim.kill()
                kills += 1
                time.sleep(down_for(chooser))
                victim.start()
                next_kill = time.monotonic() + chooser.uniform(*KILL_EVERY)
            time.sleep(0.2)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=3 * CLIENT_TIMEOUT)
        for agent in cluster.agents:
            if not agent.running():
                agent.start()
    elapsed = time.monotonic() - started
    failures = [w.failure for w in workers if w.failure]
    assert not failures, failures
    assert not any(w.is_alive() for w in workers), "a worker did not stop"
    cluster.wait_for_membership()

    # Transactions the workers left open end by their timeout.
    wait_until(
        lambda: all(
            lso == high
            for lso, high in stable_offsets(cluster.bootstrap, topic, HISTORY_PARTITIONS).values()
        ),
        TAKEOVER_TIMEOUT,
        lambda: f"last stable offsets stuck: {stable_offsets(cluster.bootstrap, topic, HISTORY_PARTITIONS)}",
        interval=0.5,
    )
    history = [t for w in workers for t in w.history]
    committed = read_everything(cluster.bootstrap, topic, HISTORY_PARTITIONS, "read_committed")
    uncommitted = read_everything(cluster.bootstrap, topic, HISTORY_PARTITIONS, "read_uncommitted")
    report = check_history(history, committed, uncommitted)
    report.update({"kills": kills, "seconds": round(elapsed, 1)})
    print("transaction history:", json.dumps(report))
    record_property("cluster", f"transaction history: {json.dumps(report)}")
    assert not report["anomalies"], json.dumps(report, indent=2)
    known = report["outcomes"]["committed"] + report["outcomes"]["aborted"]
    assert known >= HISTORY_MIN_TRANSACTIONS, report
    assert report["outcomes"]["committed"] > 0 and report["outcomes"]["aborted"] > 0, report
    assert kills >= MIN_KILLS, report


def test_the_history_checker_finds_each_anomaly():
    """The checker above, on made-up histories that each hold one anomaly."""

    def txn(worker, number, outcome, *records):
        return Transaction(worker, number, [(p, v.encode()) for p, v in records], outcome)

    history = [
        txn(0, 0, "committed", (0, "0:0:0"), (1, "0:0:1")),
        txn(0, 1, "aborted", (0, "0:1:0")),
        txn(1, 0, "unknown", (0, "1:0:0"), (1, "1:0:1")),
    ]
    stored = {0: [(0, b"0:0:0"), (1, b"0:1:0"), (2, b"1:0:0")], 1: [(0, b"0:0:1"), (1, b"1:0:1")]}
    clean = {0: [(0, b"0:0:0"), (2, b"1:0:0")], 1: [(0, b"0:0:1"), (1, b"1:0:1")]}
    assert check_history(history, clean, stored)["anomalies"] == {}

    def found(committed, uncommitted=stored) -> set[str]:
        return set(check_history(history, committed, uncommitted)["anomaly_counts"])

    assert found({0: [(0, b"0:0:0"), (1, b"0:1:0"), (2, b"1:0:0")], 1: clean[1]}) == {
        "aborted-read"
    }
    assert found({0: [(2, b"1:0:0")], 1: clean[1]}) == {"lost-write"}
    assert found({0: [(0, b"0:0:0")], 1: [(0, b"0:0:1"), (1, b"1:0:1")]}) == {
        "torn-transaction"
    }
    assert found({0: clean[0] + [(3, b"0:0:0")], 1: clean[1]}, stored) >= {"duplicate"}
    moved = {0: [(0, b"0:0:0"), (1, b"1:0:0")], 1: clean[1]}
    assert "inconsistent-offsets" in found(moved)
    assert "committed-not-stored" in found({0: clean[0] + [(5, b"9:9:9")], 1: clean[1]})
    history.append(txn(0, 2, "committed", (0, "0:2:0")))
    reordered_store = {0: stored[0] + [(3, b"0:2:0")], 1: stored[1]}
    reordered = {0: [(0, b"0:0:0"), (2, b"1:0:0"), (3, b"0:2:0")], 1: clean[1]}
    assert check_history(history, reordered, reordered_store)["anomalies"] == {}
    backwards_store = {0: [(0, b"0:2:0"), (1, b"0:1:0"), (2, b"1:0:0"), (3, b"0:0:0")], 1: stored[1]}
    backwards = {0: [(0, b"0:2:0"), (2, b"1:0:0"), (3, b"0:0:0")], 1: clean[1]}
    assert found(backwards, backwards_store) == {"producer-order"}
