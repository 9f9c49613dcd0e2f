"""Hostile and broken Kafka clients cannot take an agent down.

Each test runs one attack against a real `streamhouse serve` and checks
what an operator would: the process is alive, its resident memory stayed
within the configured budgets plus a stated margin (from /proc), its open
file count returns to where it was, a normal librdkafka producer and
consumer still work, and the refused request got Kafka's error code.

The agent runs with lowered timeouts and budgets (flags below) so that
the attacks finish in seconds; the limits are the same code at any size.
"""

import os
import socket
import struct
import threading
import time

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.record.memory_records import MemoryRecordsBuilder

import cluster as cl
import kafka_wire as wire
from streamhouse import StreamHouse
from support import new_consumer, new_producer, unique_name, wait_until

MIB = 1 << 20
IDLE_MS = 3000
READ_TIMEOUT_MS = 3000
REQUEST_BUDGET = 64 * MIB
FETCH_MAX = 16 * MIB
# What the agent may hold beyond its configured budgets (request budget,
# as much again for Fetch answers, the read cache) before a test fails:
# allocator slack and the buffers of the normal clients' traffic.
RSS_MARGIN = 160 * MIB
CACHE_BYTES = 32 * MIB
FLAGS = [
    "--connections-max-idle-ms", str(IDLE_MS),
    "--request-read-timeout-ms", str(READ_TIMEOUT_MS),
    "--queued-max-request-bytes", str(REQUEST_BUDGET),
    "--fetch-max-bytes", str(FETCH_MAX),
    "--cache-bytes", str(CACHE_BYTES),
]  # fmt: skip
MESSAGE_TOO_LARGE = 10
INVALID_RECORD = 87
API_JOIN_GROUP = 11
# Open files the agent may hold beyond its baseline once attackers left
# (a client connection or two, the metadata pool growing).
FD_SLACK = 8


@pytest.fixture(scope="module")
def agent(tmp_path_factory, server_logs):
    data_dir = tmp_path_factory.mktemp("hostile")
    agent = StreamHouse(data_dir, data_dir / "streamhouse.log", extra_args=FLAGS)
    server_logs.append(agent)
    agent.start()
    yield agent
    assert agent.running(), f"the agent died\n{agent.log_tail()}"
    status = agent.stop()
    assert status == 0, f"exit status {status} after SIGTERM\n{agent.log_tail()}"


def files_return_to(agent: StreamHouse, files: int, timeout: float) -> None:
    """Waits until the agent holds no more open files than `files` (plus
    FD_SLACK): the sockets of departed clients were released."""
    wait_until(
        lambda: agent.open_files() <= files + FD_SLACK,
        timeout=timeout,
        message=lambda: f"open files {agent.open_files()} did not return to {files}",
    )


def memory_bound(baseline: int) -> int:
    return baseline + 2 * REQUEST_BUDGET + CACHE_BYTES + RSS_MARGIN


def create_topic(agent: StreamHouse, partitions: int = 1, **config) -> str:
    topic = unique_name("hostile")
    admin = AdminClient({"bootstrap.servers": agent.bootstrap})
    futures = admin.create_topics([NewTopic(topic, partitions, config=config)])
    futures[topic].result(timeout=30)
    return topic


def normal_traffic_works(agent: StreamHouse, timeout: float = 30.0) -> None:
    """A librdkafka producer and consumer round-trip 20 records."""
    topic = create_topic(agent)
    producer = new_producer(agent.bootstrap, **{"message.timeout.ms": int(timeout * 1000)})
    errors = []
    for i in range(20):
        producer.produce(
            topic, f"v{i}".encode(), on_delivery=lambda e, _m: e and errors.append(e)
        )
    assert producer.flush(timeout) == 0, "produce did not finish"
    assert not errors, errors
    consumer = new_consumer(agent.bootstrap, unique_name("normal"))
    consumer.subscribe([topic])
    values = []
    deadline = time.monotonic() + timeout
    while len(values) < 20 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            values.append(message.value())
    consumer.close()
    assert sorted(values) == sorted(f"v{i}".encode() for i in range(20)), values


def produce_request(topic: str, batch: bytes, correlation_id: int = 1) -> bytes:
    body = (
        wire.string(None)
        + struct.pack(">hi", -1, 10000)
        + struct.pack(">i", 1)
        + wire.string(topic)
        + struct.pack(">i", 1)
        + struct.pack(">i", 0)
        + struct.pack(">i", len(batch))
        + batch
    )
    return wire.request(wire.API_PRODUCE, 3, correlation_id, body)


def batch_of(values: list[bytes], compression: int) -> bytes:
    builder = MemoryRecordsBuilder(magic=2, compression_type=compression, batch_size=1 << 30)
    for value in values:
        builder.append(int(time.time() * 1000), None, value)
    builder.close()
    return bytes(builder.buffer())


def with_records(batch: bytes, records: bytes) -> bytes:
    """`batch` (uncompressed, magic 2) with its records section replaced by
    `records`, the snappy codec bit set, and length and CRC fixed."""
    from kafka.record.util import calc_crc32c

    header = bytearray(batch[:61])
    struct.pack_into(">i", header, 8, 49 + len(records))
    (attributes,) = struct.unpack_from(">h", header, 21)
    struct.pack_into(">h", header, 21, (attributes & ~7) | 2)
    body = bytes(header[21:]) + records
    struct.pack_into(">I", header, 17, calc_crc32c(body))
    return bytes(header[:21]) + body


def produce_error(connection: wire.Connection, topic: str, batch: bytes) -> int:
    _, results = wire.parse_produce_v3(connection.round_trip(produce_request(topic, batch)))
    [(_name, _partition, error, _offset)] = results
    return error


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_a_compression_bomb_gets_invalid_record(agent, codec):
    topic = create_topic(agent)
    baseline = agent.rss_bytes()
    if codec == "snappy":
        # A raw snappy block whose header claims 4 GiB, in a 134-byte batch.
        claim = b"\xff\xff\xff\xff\x0f" + b"\x00" * 24
        bomb = with_records(batch_of([b"x"], 0), claim)
    else:
        compression = {"gzip": 1, "lz4": 3, "zstd": 4}[codec]
        bomb = batch_of([bytes(64 * MIB)], compression)
    assert len(bomb) < MIB, f"{codec} bomb is {len(bomb)} bytes"
    with wire.Connection(agent.bootstrap, timeout=30) as connection:
        for _ in range(3):
            assert produce_error(connection, topic, bomb) == INVALID_RECORD
        # The connection keeps working.
        assert produce_error(connection, topic, batch_of([b"fine"], 0)) == 0
    assert agent.running(), agent.log_tail()
    rss = agent.rss_bytes()
    assert rss < baseline + RSS_MARGIN, f"RSS grew from {baseline} to {rss} on a {codec} bomb"
    normal_traffic_works(agent)


def test_max_message_bytes_applies_to_the_batch_as_sent(agent):
    topic = create_topic(agent)
    with wire.Connection(agent.bootstrap, timeout=30) as connection:
        # Five 400 KB records: a 2 MB batch, over the default 1048588.
        large = batch_of([os.urandom(400_000) for _ in range(5)], 0)
        assert len(large) > 2_000_000
        assert produce_error(connection, topic, large) == MESSAGE_TOO_LARGE
        # 3 MB of zeros gzip-compressed to a few KB: Kafka accepts it.
        zeros = batch_of([bytes(3_000_000)], 1)
        assert len(zeros) < 16_384
        assert produce_error(connection, topic, zeros) == 0
        _, [(_, error, high_watermark, records)] = wire.parse_fetch_v4(
            connection.round_trip(wire.fetch_v4(topic, 0, 0, 2, max_bytes=8 * MIB))
        )
    assert (error, high_watermark) == (0, 1)
    assert [(offset, len(value)) for offset, value in records] == [(0, 3_000_000)]


def test_pipelined_fetches_that_are_never_read_stay_bounded(agent):
    topic = create_topic(agent)
    producer = new_producer(agent.bootstrap, **{"linger.ms": 20})
    value = os.urandom(256 * 1024)
    for _ in range(240):  # 60 MiB
        producer.produce(topic, value)
    assert producer.flush(60) == 0
    baseline = agent.rss_bytes()
    files = agent.open_files()
    attacker = socket.create_connection(("127.0.0.1", agent.kafka_port))
    attacker.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    request = wire.fetch_v4(topic, 0, 0, 1, max_bytes=2**31 - 1)
    request = request[:-4] + struct.pack(">i", 2**31 - 1)  # partition max bytes too
    attacker.sendall(request * 50)
    peak = baseline
    for _ in range(20):
        time.sleep(0.1)
        peak = max(peak, agent.rss_bytes())
    normal_traffic_works(agent)
    peak = max(peak, agent.rss_bytes())
    assert peak < memory_bound(baseline), f"RSS grew from {baseline} to {peak}"
    # A client that does not take its answers is closed once the write
    # has waited for the read timeout.
    attacker.settimeout(0.5)
    closed = False
    deadline = time.monotonic() + READ_TIMEOUT_MS / 1000 * 4 + 10
    while not closed and time.monotonic() < deadline:
        try:
            closed = attacker.recv(1 << 20) == b""
        except TimeoutError:
            pass
        except ConnectionResetError:
            closed = True
    attacker.close()
    assert closed, "the agent kept a connection whose answers were never read"
    files_return_to(agent, files, timeout=10)


def test_half_sent_frames_on_50_connections_time_out_within_budget(agent):
    baseline = agent.rss_bytes()
    files = agent.open_files()
    announced = 100 * MIB - 1024
    stop = threading.Event()
    sockets = []

    def attack():
        sock = socket.create_connection(("127.0.0.1", agent.kafka_port))
        sockets.append(sock)
        sock.settimeout(1.0)
        try:
            sock.sendall(struct.pack(">i", announced))
            chunk = bytes(MIB)
            for _ in range(99):
                if stop.is_set():
                    return
                sock.sendall(chunk)
        except OSError:
            return

    threads = [threading.Thread(target=attack, daemon=True) for _ in range(50)]
    for thread in threads:
        thread.start()
    peak = baseline
    started = time.monotonic()
    while time.monotonic() - started < 2:
        peak = max(peak, agent.rss_bytes())
        time.sleep(0.05)
    # Normal clients get through once the attackers' frames time out.
    normal_traffic_works(agent, timeout=30)
    peak = max(peak, agent.rss_bytes())
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    assert peak < memory_bound(baseline), f"RSS grew from {baseline} to {peak}"

    def all_closed():
        for sock in sockets:
            try:
                sock.settimeout(0.01)
                if sock.recv(1) != b"":
                    return False
            except TimeoutError:
                return False
            except OSError:
                pass
        return True

    wait_until(all_closed, timeout=READ_TIMEOUT_MS / 1000 + 15, message="half-sent frames stayed open")
    for sock in sockets:
        sock.close()
    files_return_to(agent, files, timeout=10)
    assert agent.running()


def join_group_v2(group: str, correlation_id: int, session_ms: int = 10_000) -> bytes:
    """JoinGroup v2 of a new member with one `range` protocol."""
    body = (
        wire.string(group)
        + struct.pack(">ii", session_ms, max(session_ms, 30_000))
        + wire.string("")
        + wire.string("consumer")
        + struct.pack(">i", 1)
        + wire.string("range")
        + struct.pack(">i", 0)
    )
    return wire.request(API_JOIN_GROUP, 2, correlation_id, body)


def reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_abandoned_join_groups_release_their_sockets(agent):
    files = agent.open_files()
    group = unique_name("abandoned")
    # A first member joins and never comes back for the rebalances the
    # others start: every later JoinGroup waits for it (up to its minute of
    # session), so all 500 are waiting at once however slowly they are
    # accepted, and none is answered and closed as idle meanwhile.
    blocker = socket.create_connection(("127.0.0.1", agent.kafka_port))
    blocker.sendall(join_group_v2(group, 0, session_ms=60_000))
    blocker.recv(4)
    joiners = []
    for i in range(1, 501):
        sock = socket.create_connection(("127.0.0.1", agent.kafka_port))
        sock.sendall(join_group_v2(group, i))
        joiners.append(sock)
    wait_until(
        lambda: agent.open_files() >= files + 500,
        timeout=20,
        message=lambda: f"the agent holds {agent.open_files()} files, not {files} + 500",
    )
    for sock in joiners:
        reset(sock)
    files_return_to(agent, files, timeout=5)
    reset(blocker)
    # A normal group still forms and gets its partitions.
    topic = create_topic(agent, partitions=2)
    consumer = new_consumer(agent.bootstrap, unique_name("normal"))
    assigned = []
    consumer.subscribe([topic], on_assign=lambda _c, partitions: assigned.extend(partitions))
    deadline = time.monotonic() + 10
    while not assigned and time.monotonic() < deadline:
        consumer.poll(0.2)
    consumer.close()
    assert sorted(p.partition for p in assigned) == [0, 1]


def test_idle_connections_are_closed(agent):
    files = agent.open_files()
    idle = [socket.create_connection(("127.0.0.1", agent.kafka_port)) for _ in range(200)]
    talked = wire.Connection(agent.bootstrap, timeout=30)
    talked.round_trip(wire.request(wire.API_VERSIONS, 0, 1))
    started = time.monotonic()

    def closed(sock: socket.socket) -> bool:
        sock.settimeout(0.01)
        try:
            return sock.recv(1) == b""
        except TimeoutError:
            return False
        except OSError:
            return True

    wait_until(
        lambda: all(closed(s) for s in idle) and closed(talked.sock),
        timeout=IDLE_MS / 1000 + 10,
        message="idle connections were not closed",
    )
    assert time.monotonic() - started >= IDLE_MS / 1000 * 0.9, "closed before the idle timeout"
    for sock in idle:
        sock.close()
    talked.sock.close()
    files_return_to(agent, files, timeout=5)


def test_connections_per_ip_are_limited(tmp_path, server_logs):
    limited = StreamHouse(
        tmp_path, tmp_path / "streamhouse.log", extra_args=["--max-connections-per-ip", "20"]
    )
    server_logs.append(limited)
    limited.start()
    try:
        wait_until(lambda: limited.open_files() > 0, 5, "no /proc entry")
        held = [socket.create_connection(("127.0.0.1", limited.kafka_port)) for _ in range(20)]
        time.sleep(0.3)
        refused = socket.create_connection(("127.0.0.1", limited.kafka_port))
        refused.settimeout(5)
        try:
            assert refused.recv(1) == b"", "the 21st connection was served"
        except ConnectionResetError:
            pass
        refused.close()
        assert "max.connections.per.ip" in limited.log_since(0)
        for sock in held:
            sock.close()
        # Once they are gone, connections are accepted again.
        wait_until(
            lambda: _serves(limited),
            timeout=5,
            message="connections were refused after the held ones closed",
        )
    finally:
        assert limited.stop() == 0


def _serves(agent: StreamHouse) -> bool:
    try:
        with wire.Connection(agent.bootstrap, timeout=2) as connection:
            _, error, _ = wire.parse_api_versions_v0(
                connection.round_trip(wire.request(wire.API_VERSIONS, 0, 1))
            )
            return error == 0
    except (OSError, ConnectionError, struct.error):
        return False


@pytest.mark.cluster
def test_an_s3_stall_does_not_multiply_a_producers_records(tmp_path, server_logs):
    """A non-idempotent producer keeps sending through a 60 s S3 stall: the
    agent refuses what it cannot buffer instead of queueing the client's
    retries, so what is stored is what was sent plus at most one buffer's
    worth of records retried after a timeout."""
    from tcp_proxy import TcpProxy
    from urllib.parse import urlsplit, urlunsplit

    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    if not endpoint.startswith("http://"):
        pytest.fail(f"the S3 proxy needs a plain http:// AWS_ENDPOINT_URL, not {endpoint!r}")
    parts = urlsplit(endpoint)
    proxy = TcpProxy((parts.hostname, parts.port or 80))
    max_unflushed = 2 * MIB
    value_size = 1024
    agent = cl.new_agent(
        tmp_path,
        "stalled",
        environment={"AWS_ENDPOINT_URL": urlunsplit(parts._replace(netloc=proxy.address))},
        extra_args=["--max-unflushed-bytes", str(max_unflushed)],
    )
    server_logs.append(agent)
    try:
        agent.start()
        topic = create_topic(agent)
        producer = new_producer(
            agent.bootstrap,
            **{
                "enable.idempotence": False,
                "acks": "all",
                "linger.ms": 5,
                "request.timeout.ms": 5000,
                "message.timeout.ms": 180000,
                "retry.backoff.ms": 200,
            },
        )
        delivered = []
        failed = []

        def on_delivery(error, _message):
            (failed if error else delivered).append(error)

        sent = 0
        value = os.urandom(value_size)

        def send_for(seconds: float, rate: int = 1000):
            nonlocal sent
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for _ in range(rate // 20):
                    try:
                        producer.produce(topic, value, on_delivery=on_delivery)
                        sent += 1
                    except BufferError:
                        break
                producer.poll(0.05)

        send_for(3)
        proxy.mute()
        send_for(60)
        proxy.restore()
        send_for(3)
        assert producer.flush(180) == 0, "the producer did not finish"
        low, high = _watermarks(agent, topic)
        stored = high - low
        assert stored >= len(delivered), f"{len(delivered)} acknowledged, {stored} stored"
        allowed = sent + 2 * max_unflushed // value_size
        assert stored <= allowed, (
            f"{sent} records sent, {stored} stored: retries were buffered behind the stall "
            f"(at most {allowed} allowed)"
        )
        assert agent.running(), agent.log_tail()
        normal_traffic_works(agent)
        assert agent.stop() == 0
    finally:
        agent.kill()
        proxy.close()


def _watermarks(agent: StreamHouse, topic: str) -> tuple[int, int]:
    consumer = new_consumer(agent.bootstrap, None)
    try:
        from confluent_kafka import TopicPartition

        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
    finally:
        consumer.close()



def test_partitions_and_auto_creation_are_bounded(tmp_path, server_logs):
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewPartitions

    # The limit counts the cluster's partitions: its own metadata store, so
    # that topics of other tests sharing the PostgreSQL database do not count.
    limited = StreamHouse(
        tmp_path,
        tmp_path / "streamhouse.log",
        metadata=f"sqlite://{tmp_path}/metadata.db",
        extra_args=["--max-partitions", "6", "--auto-create-topics-enable", "false"],
    )
    server_logs.append(limited)
    limited.start()
    try:
        admin = AdminClient({"bootstrap.servers": limited.bootstrap})
        four = unique_name("four")
        admin.create_topics([NewTopic(four, 4)])[four].result(timeout=30)
        three = unique_name("three")
        with pytest.raises(KafkaException) as refused:
            admin.create_topics([NewTopic(three, 3)])[three].result(timeout=30)
        assert refused.value.args[0].code() == KafkaError.POLICY_VIOLATION
        assert "--max-partitions" in refused.value.args[0].str()
        with pytest.raises(KafkaException) as refused:
            admin.create_partitions([NewPartitions(four, 7)])[four].result(timeout=30)
        assert refused.value.args[0].code() == KafkaError.POLICY_VIOLATION
        admin.create_partitions([NewPartitions(four, 6)])[four].result(timeout=30)
        # Auto-creation is off: asking for an unknown topic creates nothing.
        with wire.Connection(limited.bootstrap) as connection:
            missing = unique_name("missing")
            _, _, _, errors = wire.parse_metadata_v1(
                connection.round_trip(wire.metadata_v1(1, [missing]))
            )
        assert errors[missing] == wire.UNKNOWN_TOPIC_OR_PARTITION, errors
        listed = admin.list_topics(timeout=10).topics
        assert missing not in listed and three not in listed
        assert len(listed[four].partitions) == 6
    finally:
        assert limited.stop() == 0
