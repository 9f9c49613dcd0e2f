"""Transactions as confluent-kafka (librdkafka) and KafkaJS use them: a consume,
transform, produce loop with send_offsets_to_transaction that commits two
of every three transactions and aborts the third, read_committed and
read_uncommitted consumers, zombie fencing by a second producer with the
same transactional.id, and a transaction left open by a producer that went
away, aborted after its timeout."""

import json
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from security import run_kafkajs
from streamhouse import StreamHouse, binary
from support import (
    CLIENT_TIMEOUT,
    Rec,
    confluent_config,
    new_consumer,
    new_producer,
    produce_all,
    unique_name,
    wait_until,
)

# Each agent checks for timed-out transactions this often.
ENVIRONMENT = {"STREAMHOUSE_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS": "500"}


@pytest.fixture(scope="module")
def txn_server(request, tmp_path_factory, server_logs):
    data_dir = tmp_path_factory.mktemp(request.module.__name__)
    agent = StreamHouse(data_dir, data_dir / "streamhouse.log", environment=ENVIRONMENT)
    server_logs.append(agent)
    agent.start()
    yield agent
    assert agent.stop() == 0, agent.log_tail()


def create_topic(bootstrap: str, partitions: int = 1) -> str:
    name = unique_name("txn")
    admin = AdminClient(confluent_config(bootstrap))
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(timeout=CLIENT_TIMEOUT)
    return name


def transactional_producer(bootstrap: str, transactional_id: str, **overrides) -> Producer:
    producer = new_producer(bootstrap, **{"transactional.id": transactional_id, **overrides})
    producer.init_transactions(CLIENT_TIMEOUT)
    return producer


def read_all(bootstrap: str, topic: str, isolation: str, expected: int) -> list[bytes]:
    """Every value of the topic's partition 0 a consumer with `isolation`
    reads, once it has read `expected` of them and then found no more."""
    consumer = new_consumer(bootstrap, **{"isolation.level": isolation})
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes] = []
    idle = 0
    deadline = time.monotonic() + 3 * CLIENT_TIMEOUT
    try:
        while idle < 10 and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                idle += 1 if len(values) >= expected else 0
                continue
            assert message.error() is None, message.error()
            values.append(message.value())
    finally:
        consumer.close()
    return values


def test_consume_transform_produce_commits_two_of_three(txn_server: StreamHouse):
    bootstrap = txn_server.bootstrap
    source, sink = create_topic(bootstrap), create_topic(bootstrap)
    inputs = [f"in-{i}".encode() for i in range(30)]
    produce_all(new_producer(bootstrap), source, [Rec(None, v) for v in inputs], partition=0)

    group = unique_name("eos")
    consumer = new_consumer(bootstrap, group, **{"isolation.level": "read_committed"})
    consumer.assign([TopicPartition(source, 0, 0)])
    producer = transactional_producer(bootstrap, unique_name("txid"))
    committed_outputs: list[bytes] = []
    all_outputs: list[bytes] = []
    position = 0
    transaction = 0
    while position < len(inputs):
        batch = []
        while len(batch) < 5:
            message = consumer.poll(1.0)
            if message is None:
                continue
            assert message.error() is None, message.error()
            batch.append(message)
        producer.begin_transaction()
        outputs = [b"out-" + m.value() for m in batch]
        for value in outputs:
            producer.produce(sink, value, partition=0)
        next_offset = batch[-1].offset() + 1
        producer.send_offsets_to_transaction(
            [TopicPartition(source, 0, next_offset)],
            consumer.consumer_group_metadata(),
            CLIENT_TIMEOUT,
        )
        all_outputs.extend(outputs)
        if transaction % 3 == 2:
            # Sent first: librdkafka drops records still queued when a
            # transaction aborts, and these are to be stored, then aborted.
            producer.flush(CLIENT_TIMEOUT)
            producer.abort_transaction(CLIENT_TIMEOUT)
            # The batch is processed again.
            consumer.seek(TopicPartition(source, 0, batch[0].offset()))
        else:
            producer.commit_transaction(CLIENT_TIMEOUT)
            committed_outputs.extend(outputs)
            position = next_offset
        transaction += 1
    consumer.close()
    assert committed_outputs == [b"out-" + v for v in inputs]

    committed = read_all(bootstrap, sink, "read_committed", len(committed_outputs))
    assert committed == committed_outputs, "read_committed sees exactly the committed records"
    uncommitted = read_all(bootstrap, sink, "read_uncommitted", len(all_outputs))
    assert uncommitted == all_outputs, "read_uncommitted sees aborted records too"

    # The group's committed input offset is that of the last committed
    # transaction.
    checker = new_consumer(bootstrap, group)
    offsets = checker.committed([TopicPartition(source, 0)], timeout=CLIENT_TIMEOUT)
    checker.close()
    assert offsets[0].offset == len(inputs)


def test_a_second_producer_fences_the_first(txn_server: StreamHouse):
    bootstrap = txn_server.bootstrap
    topic = create_topic(bootstrap)
    transactional_id = unique_name("zombie")
    zombie = transactional_producer(bootstrap, transactional_id)
    zombie.begin_transaction()
    zombie.produce(topic, b"zombie", partition=0)
    zombie.flush(CLIENT_TIMEOUT)

    successor = transactional_producer(bootstrap, transactional_id)
    successor.begin_transaction()
    successor.produce(topic, b"successor", partition=0)
    successor.commit_transaction(CLIENT_TIMEOUT)

    with pytest.raises(KafkaException) as raised:
        zombie.commit_transaction(CLIENT_TIMEOUT)
    error = raised.value.args[0]
    assert error.fatal() or error.code() in (
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
    ), error
    assert read_all(bootstrap, topic, "read_committed", 1) == [b"successor"]


def test_an_abandoned_transaction_is_aborted_after_its_timeout(txn_server: StreamHouse):
    bootstrap = txn_server.bootstrap
    topic = create_topic(bootstrap)
    abandoned = transactional_producer(
        bootstrap,
        unique_name("gone"),
        **{"transaction.timeout.ms": 2000, "socket.timeout.ms": 2000, "message.timeout.ms": 2000},
    )
    abandoned.begin_transaction()
    abandoned.produce(topic, b"never committed", partition=0)
    abandoned.flush(CLIENT_TIMEOUT)
    # The producer goes away without ending its transaction: its records
    # hold the last stable offset back until the timeout aborts it.
    del abandoned
    plain = new_producer(bootstrap)
    produce_all(plain, topic, [Rec(None, b"after")], partition=0)

    def stable() -> bool:
        consumer = new_consumer(bootstrap, **{"isolation.level": "read_committed"})
        try:
            _, high = consumer.get_watermark_offsets(
                TopicPartition(topic, 0), timeout=CLIENT_TIMEOUT, cached=False
            )
            return high >= 3
        finally:
            consumer.close()

    wait_until(stable, 20, "the abandoned transaction was not aborted")
    assert read_all(bootstrap, topic, "read_committed", 1) == [b"after"]
    assert read_all(bootstrap, topic, "read_uncommitted", 2) == [b"never committed", b"after"]


def test_kafkajs_commits_and_aborts_and_confluent_kafka_agrees(txn_server: StreamHouse):
    bootstrap = txn_server.bootstrap
    topic = unique_name("kafkajs-txn")
    result = run_kafkajs(
        "transactions.js",
        {
            "brokers": [bootstrap],
            "topic": topic,
            "transactionalId": unique_name("kafkajs"),
            "group": unique_name("kafkajs-reader"),
        },
    )
    assert "error" not in result, result
    assert result["committed"] == ["c1", "c2", "c3"], "KafkaJS read_committed"
    assert read_all(bootstrap, topic, "read_committed", 3) == [b"c1", b"c2", b"c3"]
    assert read_all(bootstrap, topic, "read_uncommitted", 4) == [b"c1", b"c2", b"a1", b"c3"]


def test_kafka_python_commits_and_aborts_and_confluent_kafka_agrees(txn_server: StreamHouse):
    """kafka-python's transactional producer: two committed transactions
    around an aborted one, input offsets sent with the committed ones; its
    read_committed consumer and confluent-kafka's see the same records."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTopicPartition
    from kafka.structs import OffsetAndMetadata

    bootstrap = txn_server.bootstrap
    source, sink = create_topic(bootstrap), create_topic(bootstrap)
    group = unique_name("kafka-python-eos")
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=unique_name("kafka-python"),
        request_timeout_ms=int(CLIENT_TIMEOUT * 1000),
    )
    try:
        producer.init_transactions()
        plan = [("c1", True), ("a1", False), ("c2", True), ("c3", True)]
        for position, (value, commit) in enumerate(plan):
            producer.begin_transaction()
            producer.send(sink, value.encode(), partition=0).get(timeout=CLIENT_TIMEOUT)
            producer.send_offsets_to_transaction(
                {KTopicPartition(source, 0): OffsetAndMetadata(position + 1, "", -1)}, group
            )
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
    finally:
        producer.close()

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    try:
        partition = KTopicPartition(sink, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        values: list[bytes] = []
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while len(values) < 3 and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                values.extend(record.value for record in batch)
        # Nothing after the three committed values either.
        for batch in consumer.poll(timeout_ms=1000).values():
            values.extend(record.value for record in batch)
        assert values == [b"c1", b"c2", b"c3"], "kafka-python read_committed"
        assert consumer.end_offsets([partition])[partition] >= 4
    finally:
        consumer.close()
    assert read_all(bootstrap, sink, "read_committed", 3) == [b"c1", b"c2", b"c3"]
    assert read_all(bootstrap, sink, "read_uncommitted", 4) == [b"c1", b"a1", b"c2", b"c3"]

    # The committed transactions' offsets are the group's; the aborted
    # one's are not, and the last commit wins.
    checker = new_consumer(bootstrap, group)
    offsets = checker.committed([TopicPartition(source, 0)], timeout=CLIENT_TIMEOUT)
    checker.close()
    assert offsets[0].offset == 4


def rest_values(server: StreamHouse, topic: str, isolation: str | None) -> tuple[list[str], dict]:
    """The values a REST read of partition 0 from offset 0 returns, following
    next_offset to the end, and the last answer."""
    values, offset = [], 0
    for _ in range(20):
        query = f"offset={offset}&max_records=2" + (
            f"&isolation_level={isolation}" if isolation else ""
        )
        status, body = server.http_get(f"/api/v1/topics/{topic}/partitions/0/records?{query}")
        assert status == 200, body
        answer = json.loads(body)
        values += [r["value"] for r in answer["records"]]
        if answer["next_offset"] == offset:
            return values, answer
        offset = answer["next_offset"]
    raise AssertionError(f"no end after 20 reads: {values}")


def streamctl_values(server: StreamHouse, topic: str, *flags: str) -> list[str]:
    command = [
        str(Path(binary()).with_name("streamctl")),
        "--server",
        server.http_url,
        "--output",
        "json",
        "consume",
        topic,
        *flags,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=CLIENT_TIMEOUT)
    assert done.returncode == 0, done.stderr
    return [json.loads(line)["value"] for line in done.stdout.splitlines()]


def test_rest_reads_and_streamctl_take_an_isolation_level(txn_server: StreamHouse):
    """Markers are never shown; read_committed leaves out aborted records
    and stops at an open transaction; read_uncommitted (the default, as
    Kafka's) shows aborted and open records."""
    bootstrap = txn_server.bootstrap
    topic = create_topic(bootstrap)
    producer = transactional_producer(bootstrap, unique_name("rest"))
    for value, commit in (("c1", True), ("a1", False), ("c2", True)):
        producer.begin_transaction()
        producer.produce(topic, value.encode(), partition=0)
        producer.flush(CLIENT_TIMEOUT)
        if commit:
            producer.commit_transaction(CLIENT_TIMEOUT)
        else:
            producer.abort_transaction(CLIENT_TIMEOUT)
    # c1, marker, a1, marker, c2, marker: six offsets.
    committed, answer = rest_values(txn_server, topic, "read_committed")
    assert committed == ["c1", "c2"]
    assert (answer["next_offset"], answer["high_watermark"], answer["last_stable_offset"]) == (
        6,
        6,
        6,
    )
    assert rest_values(txn_server, topic, None)[0] == ["c1", "a1", "c2"]
    assert rest_values(txn_server, topic, "read_uncommitted")[0] == ["c1", "a1", "c2"]
    status, body = txn_server.http_get(
        f"/api/v1/topics/{topic}/partitions/0/records?isolation_level=committed"
    )
    assert status == 400, body

    # An open transaction: read_committed stops before it.
    producer.begin_transaction()
    producer.produce(topic, b"open", partition=0)
    producer.flush(CLIENT_TIMEOUT)
    committed, answer = rest_values(txn_server, topic, "read_committed")
    assert committed == ["c1", "c2"]
    assert (answer["last_stable_offset"], answer["high_watermark"]) == (6, 7)
    assert rest_values(txn_server, topic, "read_uncommitted")[0] == ["c1", "a1", "c2", "open"]
    assert streamctl_values(txn_server, topic, "--isolation-level", "read-committed") == ["c1", "c2"]
    assert streamctl_values(txn_server, topic) == ["c1", "a1", "c2", "open"]
    producer.commit_transaction(CLIENT_TIMEOUT)
    assert streamctl_values(txn_server, topic, "--isolation-level", "read-committed") == [
        "c1",
        "c2",
        "open",
    ]


def test_offsets_of_a_subscribed_consumer_commit_with_its_generation(txn_server: StreamHouse):
    """send_offsets_to_transaction with the metadata of a consumer that
    subscribed: TxnOffsetCommit v3 names its member id and generation
    (KIP-447), which the group coordinator checks, and the offsets become
    the group's when the transaction commits."""
    bootstrap = txn_server.bootstrap
    source, sink = create_topic(bootstrap), create_topic(bootstrap)
    produce_all(new_producer(bootstrap), source, [Rec(None, b"x"), Rec(None, b"y")], partition=0)
    group = unique_name("eos-subscribed")
    consumer = new_consumer(bootstrap, group, **{"isolation.level": "read_committed"})
    consumer.subscribe([source])
    messages = []
    deadline = time.monotonic() + 3 * CLIENT_TIMEOUT
    while len(messages) < 2 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None:
            assert message.error() is None, message.error()
            messages.append(message)
    assert len(messages) == 2, "the subscribed consumer got its assignment and read"
    producer = transactional_producer(bootstrap, unique_name("subscribed"))
    producer.begin_transaction()
    producer.produce(sink, b"out", partition=0)
    producer.send_offsets_to_transaction(
        [TopicPartition(source, 0, messages[-1].offset() + 1)],
        consumer.consumer_group_metadata(),
        CLIENT_TIMEOUT,
    )
    producer.commit_transaction(CLIENT_TIMEOUT)
    committed = consumer.committed([TopicPartition(source, 0)], timeout=CLIENT_TIMEOUT)
    consumer.close()
    assert committed[0].offset == 2
    assert read_all(bootstrap, sink, "read_committed", 1) == [b"out"]
