"""Outages seen by one agent: a TCP proxy between the agent and PostgreSQL,
another between it and the S3 server, each cut for a while as an
idempotent producer writes through the agent; and a third between the
agent and its clients, which drops the agent's answers and then resets
the connections, so that the producer retries batches already stored.

While a backend is unreachable the agent stays up (/health 200, /ready
503 naming the backend), answers produce requests with retriable errors
within seconds, and acknowledges nothing; once the backend is back it
recovers by itself, the producer's retries all land, and every
acknowledged record is stored exactly once (idempotence), in order, with
no gaps. The agent is alone in its cluster, so that clients cannot route
around it."""

import json
import os
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest
from confluent_kafka import KafkaError, TopicPartition

import cluster as cl
import kafka_wire as wire
from numbered import IDEMPOTENT, NumberedProducer, check_stored_exactly_once, longest_silence
from streamhouse import StreamHouse
from support import CLIENT_TIMEOUT, new_consumer, unique_name, wait_until
from tcp_proxy import TcpProxy

pytestmark = pytest.mark.cluster

OUTAGE_SECONDS = 15.0
PARTITIONS = 2
ACKS_BEFORE = 300
ACKS_AFTER = 300
# Produce errors a client retries: REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS,
# NOT_ENOUGH_REPLICAS_AFTER_APPEND, KAFKA_STORAGE_ERROR.
RETRIABLE_PRODUCE_ERRORS = {7, 19, 20, 56}
# Fetch errors a consumer retries: UNKNOWN_TOPIC_OR_PARTITION,
# LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT,
# KAFKA_STORAGE_ERROR.
RETRIABLE_FETCH_ERRORS = {3, 5, 6, 7, 56}
# How long the agent may take to answer a produce it cannot store.
ANSWER_LIMIT = 10.0
# How long /ready may take to notice (its checks time out after 5 s).
READY_LIMIT = 10.0
# Acknowledgements already on their way when the proxy is cut.
ACK_GRACE = 1.0
RECOVERY_LIMIT = 30.0
CLIENT_HOST = "127.0.0.2"
# Times the agent's answers are dropped and its client connections reset.
LOST_ANSWER_ROUNDS = 3
# How long a consumer gets to read the cached records during the outage.
READ_SECONDS = 3.0


@dataclass
class ProxiedAgent:
    agent: StreamHouse
    proxies: dict[str, TcpProxy]


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or {"http": 80, "https": 443}.get(
        parts.scheme, 5432
    )


@pytest.fixture(scope="module")
def proxied(tmp_path_factory, server_logs):
    """An agent whose metadata store and object store are reached through
    proxies, alone in the cluster."""
    metadata = os.environ["STREAMHOUSE_CLIENTS_METADATA"]
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    if not endpoint.startswith("http://"):
        pytest.skip(f"the S3 proxy needs a plain http:// AWS_ENDPOINT_URL, not {endpoint!r}")
    proxies = {
        "metadata": TcpProxy(_address(metadata)),
        "object_store": TcpProxy(_address(endpoint)),
    }
    parts = urlsplit(metadata)
    userinfo = parts.netloc.rpartition("@")[0]
    proxied_metadata = urlunsplit(
        parts._replace(netloc=f"{userinfo}@{proxies['metadata'].address}".lstrip("@"))
    )
    endpoint_parts = urlsplit(endpoint)
    proxied_endpoint = urlunsplit(endpoint_parts._replace(netloc=proxies["object_store"].address))
    # Clients are told to use 127.0.0.2, where the Kafka proxy listens on the
    # agent's port (Kafka metadata carries one port for both).
    agent = cl.new_agent(
        tmp_path_factory.mktemp("outages"),
        "proxied",
        metadata=proxied_metadata,
        environment={"AWS_ENDPOINT_URL": proxied_endpoint},
        advertised_host=CLIENT_HOST,
    )
    server_logs.append(agent)
    try:
        agent.start()
        proxies["kafka"] = TcpProxy(("127.0.0.1", agent.kafka_port), CLIENT_HOST, agent.kafka_port)
        # Agents of earlier modules that did not leave cleanly still count
        # until their heartbeats time out.
        cl.Cluster([agent]).wait_for_membership()
        yield ProxiedAgent(agent, proxies)
        assert agent.running(), f"the agent exited\n{agent.log_tail()}"
        status = agent.stop()
        assert status == 0, f"exit status {status} after SIGTERM\n{agent.log_tail()}"
    finally:
        agent.kill()
        for proxy in proxies.values():
            proxy.close()


def readiness(agent: StreamHouse) -> tuple[int | None, dict]:
    status, body = agent.http_get("/ready")
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {}


def produce_once(agent: StreamHouse, topic: str) -> tuple[int, float]:
    """One raw produce through `agent`: (error code, seconds to the answer)."""
    started = time.monotonic()
    with wire.Connection(agent.bootstrap, timeout=ANSWER_LIMIT + 20) as connection:
        answer = connection.round_trip(wire.produce_v3(topic, 0, 7, [b"during the outage"]))
    _, [(_topic, _partition, error, _offset)] = wire.parse_produce_v3(answer)
    return error, time.monotonic() - started


def fetch_once(agent: StreamHouse, topic: str) -> tuple[int, int, float]:
    """A raw fetch of partition 0 from offset 0 through `agent`: (error code,
    records returned, seconds to the answer)."""
    started = time.monotonic()
    with wire.Connection(agent.bootstrap, timeout=CLIENT_TIMEOUT) as connection:
        answer = connection.round_trip(wire.fetch_v4(topic, 0, 0, 8))
    _, [(_partition, error, _high, records)] = wire.parse_fetch_v4(answer)
    return error, len(records), time.monotonic() - started


def distinct(errors: list[str]) -> str:
    unique = list(dict.fromkeys(errors))
    return "; ".join(e[:160] for e in unique[:2]) + (f" (+{len(unique) - 2})" if unique[2:] else "")


class Reader:
    """A consumer of partition 0 through one agent, assigned from offset 0."""

    def __init__(self, agent: StreamHouse, topic: str):
        self.topic = topic
        self.errors: list[str] = []
        self.consumer = new_consumer(agent.bootstrap, error_cb=lambda e: self.errors.append(str(e)))
        self.consumer.assign([TopicPartition(topic, 0, 0)])

    def read(self, seconds: float, enough: int | None = None) -> int:
        """How many records it reads within `seconds` (or until `enough`)."""
        read = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and (enough is None or read < enough):
            for message in self.consumer.consume(num_messages=1000, timeout=0.2):
                error = message.error()
                if error is None:
                    read += 1
                elif error.code() != KafkaError._PARTITION_EOF:
                    self.errors.append(str(error))
        return read

    def rewind(self) -> None:
        self.consumer.seek(TopicPartition(self.topic, 0, 0))

    def close(self) -> None:
        self.consumer.close()


def store_unanswered(agent: StreamHouse, kafka: TcpProxy, topic: str) -> tuple[dict, dict]:
    """Mutes the agent's answers until what the producer had in flight is
    stored; returns the high watermarks before and after."""

    def high_watermarks() -> dict[int, int]:
        return {p: cl.high_watermark(agent, topic, p) for p in range(PARTITIONS)}

    before = high_watermarks()
    dropped = kafka.dropped_bytes
    kafka.mute()
    seen = [before]

    def stored():
        # Once answers are being dropped, the producer's requests in flight
        # are all stored when the high watermarks stay put.
        seen.append(high_watermarks())
        return kafka.dropped_bytes > dropped and seen[-1] == seen[-2] and seen[-1]

    after = wait_until(
        stored,
        CLIENT_TIMEOUT,
        lambda: (
            f"high watermarks {seen[-1]}, when muted {before}; "
            f"{kafka.dropped_bytes - dropped} bytes of answers dropped"
        ),
        interval=0.3,
    )
    return before, after


@pytest.mark.parametrize("backend", ["metadata", "object_store"])
def test_an_agent_rides_out_a_backend_outage(proxied, backend, tmp_path, record_property):
    agent, proxy = proxied.agent, proxied.proxies[backend]
    other = "object_store" if backend == "metadata" else "metadata"
    topic = unique_name(f"outage-{backend}")
    cl.Cluster([agent]).create_topic(topic, PARTITIONS)
    producer = NumberedProducer(
        proxied.proxies["kafka"].address, topic, PARTITIONS, tmp_path, **IDEMPOTENT
    )
    running = None
    try:
        producer.wait_for_acks(ACKS_BEFORE, CLIENT_TIMEOUT)
        # Read once, so that the agent's cache holds what was written so far,
        # and start a consumer that has its metadata before the outage.
        error, cached, _ = fetch_once(agent, topic)
        assert error == 0 and cached > 0, (
            f"fetch before the outage: error {error}, {cached} records"
        )
        running = Reader(agent, topic)
        assert running.read(CLIENT_TIMEOUT, enough=cached) >= cached, running.errors

        proxy.cut()
        cut_at = time.monotonic()
        status, ready = wait_until(
            lambda: (r := readiness(agent))[0] == 503 and r,
            READY_LIMIT,
            lambda: f"/ready still answers {readiness(agent)} with the {backend} cut off",
        )
        ready_after = time.monotonic() - cut_at
        assert ready.get(backend) not in (None, "ok") and ready.get(other) == "ok", (
            f"/ready with the {backend} cut off: {ready}"
        )

        produce_error, answered_after = produce_once(agent, topic)
        assert produce_error in RETRIABLE_PRODUCE_ERRORS, (
            f"produce with the {backend} cut off: error {produce_error} "
            f"(expected one of the retriable {sorted(RETRIABLE_PRODUCE_ERRORS)})"
        )
        assert answered_after < ANSWER_LIMIT, f"produce answered after {answered_after:.1f} s"
        # Reads of what the agent has cached: a raw fetch, the consumer that
        # was running (sent back to the start), and a consumer that starts
        # now and so needs the topic's metadata first.
        # The agent serves what it has cached from the last known watermarks
        # and topic metadata, so these reads succeed through either outage.
        fetch_error, fetched, _ = fetch_once(agent, topic)
        assert fetch_error == 0 and fetched > 0, (
            f"fetch of cached records with the {backend} cut off: error {fetch_error}, "
            f"{fetched} records"
        )
        running.rewind()
        reread = running.read(READ_SECONDS, enough=cached)
        assert reread >= cached, (
            f"a running consumer sent back to offset 0 read {reread} of {cached} cached records"
        )
        metadata_error = cl.topic_error(agent, topic)
        assert metadata_error == 0, (
            f"Metadata for the topic with the {backend} cut off: error {metadata_error}"
        )
        fresh = Reader(agent, topic)
        try:
            fresh_read = fresh.read(READ_SECONDS, enough=cached)
        finally:
            fresh.close()
        raw_fetch = f"got error {fetch_error}" if fetch_error else f"returned {fetched}"
        metadata = f"answered error {metadata_error}" if metadata_error else "worked"
        reads = (
            f"a raw fetch of cached records {raw_fetch}, a running consumer sent back to "
            f"offset 0 read {reread} (of {cached} cached), Metadata for the topic {metadata}, "
            f"a new consumer read {fresh_read} (client errors: "
            f"{distinct(running.errors + fresh.errors)})"
        )

        # The agent stays up for the rest of the outage.
        def outage_over():
            assert agent.running(), f"the agent exited during the outage\n{agent.log_tail()}"
            status = agent.http_status("/health")
            assert status == 200, f"/health answered {status} during the outage"
            return time.monotonic() >= cut_at + OUTAGE_SECONDS

        wait_until(outage_over, OUTAGE_SECONDS + 10, "the outage did not end", interval=0.5)
        proxy.restore()
        restored_at = time.monotonic()

        recovered = producer.wait_for_every_partition_since(restored_at, RECOVERY_LIMIT)
        wait_until(
            lambda: readiness(agent)[0] == 200,
            READY_LIMIT,
            lambda: f"/ready after the outage: {readiness(agent)}",
        )
        producer.wait_for_acks(ACKS_AFTER, RECOVERY_LIMIT)
        produced = producer.stop()
    finally:
        proxy.restore()
        producer.kill()
        if running is not None:
            running.close()

    during = [a for a in producer.acks if cut_at + ACK_GRACE < a.time < restored_at]
    assert not during, (
        f"{len(during)} record(s) acknowledged while the {backend} was cut off, e.g. {during[:5]}"
    )
    stored = check_stored_exactly_once(agent.bootstrap, producer)
    assert agent.running(), f"the agent exited\n{agent.log_tail()}"
    silent = longest_silence(producer.acks, cut_at, restored_at + max(recovered.values()))
    record_property(
        "outage",
        f"{backend} cut off for {OUTAGE_SECONDS:.0f} s: /ready 503 after {ready_after:.1f} s, "
        f"produce answered error {produce_error} after {answered_after:.1f} s; {reads}; "
        f"producer acknowledged again {max(recovered.values()):.1f} s "
        f"after the restore (silent {silent:.1f} s); {produced} produced, {stored} stored "
        f"exactly once",
    )


def test_answers_lost_after_the_commit_are_retried_and_stored_once(
    proxied, tmp_path, record_property
):
    """The agent stores batches but its answers never arrive; the producer's
    connections are then reset. librdkafka sends the batches again with
    their sequence numbers, and the agent answers with the offsets they were
    stored at rather than storing them twice."""
    agent, kafka = proxied.agent, proxied.proxies["kafka"]
    topic = unique_name("lost-answers")
    cl.Cluster([agent]).create_topic(topic, PARTITIONS)
    producer = NumberedProducer(kafka.address, topic, PARTITIONS, tmp_path, **IDEMPOTENT)
    resets = []  # (reset time, {partition: (high watermark when muted, at the reset)})
    try:
        producer.wait_for_acks(ACKS_BEFORE, CLIENT_TIMEOUT)
        for _ in range(LOST_ANSWER_ROUNDS):
            before, after = store_unanswered(agent, kafka, topic)
            kafka.cut()
            reset_at = time.monotonic()
            kafka.restore()
            resets.append((reset_at, {p: (before[p], after[p]) for p in before}))
            producer.wait_for_every_partition_since(reset_at, RECOVERY_LIMIT)
        producer.wait_for_acks(ACKS_AFTER, RECOVERY_LIMIT)
        produced = producer.stop()
    finally:
        kafka.restore()
        producer.kill()

    stored = check_stored_exactly_once(agent.bootstrap, producer)
    # Records stored while the answers were dropped and acknowledged after a
    # reset: each one's batch was sent again (or the test proved nothing).
    retried = [
        a
        for a in producer.acks
        for reset_at, ranges in resets
        if a.time > reset_at and ranges[a.partition][0] <= a.offset < ranges[a.partition][1]
    ]
    assert retried, f"no record stored unanswered was acknowledged after a reset: {resets}"
    record_property(
        "outage",
        f"answers dropped then connections reset {LOST_ANSWER_ROUNDS} times: {len(retried)} "
        f"records stored before the reset were acknowledged after it (retried batches, "
        f"{kafka.dropped_bytes} bytes of answers dropped); {produced} produced, {stored} "
        f"stored exactly once",
    )
