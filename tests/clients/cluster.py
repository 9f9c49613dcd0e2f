"""Several agents on one PostgreSQL database and one S3 prefix: a cluster.

Agents can share only PostgreSQL + S3, so tests that need more than one
(or that cut an agent off from them) are marked `cluster`, and conftest
deselects them on the embedded backends. What a client sees of the cluster
is asked of one chosen agent with raw requests (kafka_wire), since clients
send each request wherever the cluster's metadata tells them."""

import os
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

import kafka_wire as wire
from streamhouse import StreamHouse
from support import CLIENT_TIMEOUT, confluent_config, wait_until

# An agent that stops heart-beating drops out of the live set after this
# long (heartbeats every 2 s), plus one heartbeat for the others to notice.
LIVENESS_TIMEOUT = 10.0
HEARTBEAT_INTERVAL = 2.0
MEMBERSHIP_SETTLE = LIVENESS_TIMEOUT + 2 * HEARTBEAT_INTERVAL


def shared_backends() -> bool:
    """Whether the runner chose backends that agents can share."""
    metadata = os.environ.get("STREAMHOUSE_CLIENTS_METADATA") or ""
    store = os.environ.get("STREAMHOUSE_CLIENTS_OBJECT_STORE") or ""
    return metadata.startswith(("postgres://", "postgresql://")) and store.startswith("s3://")


def new_agent(base_dir: Path, name: str, **settings) -> StreamHouse:
    """An agent (not started) with an id no other run uses, its data
    directory and log under `base_dir`."""
    data_dir = base_dir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    agent_id = f"{name}-{uuid.uuid4().hex[:6]}"
    return StreamHouse(data_dir, base_dir / f"{name}.log", agent_id=agent_id, **settings)


def ask(agent: StreamHouse, request: bytes) -> bytes:
    with wire.Connection(agent.bootstrap) as connection:
        return connection.round_trip(request)


def brokers(agent: StreamHouse) -> set[int]:
    """The Kafka ports of the brokers `agent` lists in Metadata."""
    _, listed, _, _ = wire.parse_metadata_v1(ask(agent, wire.metadata_v1(1, [])))
    return {port for _host, port in listed.values()}


def leaders(agent: StreamHouse, topic: str) -> dict[int, int]:
    """{partition: Kafka port of its leader}, as `agent` tells clients."""
    _, listed, placed, errors = wire.parse_metadata_v1(ask(agent, wire.metadata_v1(1, [topic])))
    assert errors == {topic: 0}, f"Metadata({topic}) on {agent.agent_id}: errors {errors}"
    return {partition: listed[leader][1] for (_t, partition), leader in placed.items()}


def topic_error(agent: StreamHouse, topic: str) -> int:
    """The error code `agent` answers Metadata for `topic` with."""
    _, _, _, errors = wire.parse_metadata_v1(ask(agent, wire.metadata_v1(1, [topic])))
    return errors[topic]


def high_watermark(agent: StreamHouse, topic: str, partition: int) -> int:
    """The partition's high watermark, asked of `agent` itself."""
    answer = ask(agent, wire.fetch_v4(topic, partition, 0, 1, max_bytes=1))
    _, [(_partition, error, high, _records)] = wire.parse_fetch_v4(answer)
    assert error == 0, f"Fetch({topic}[{partition}]) on {agent.agent_id}: error {error}"
    return high


def coordinator(agent: StreamHouse, group: str) -> int:
    """The Kafka port of the coordinator `agent` names for `group`."""
    _, error, _node, _host, port = wire.parse_find_coordinator_v0(
        ask(agent, wire.find_coordinator_v0(group, 1))
    )
    assert error == 0, f"FindCoordinator({group}) on {agent.agent_id}: error {error}"
    return port


def transaction_coordinator(agent: StreamHouse, transactional_id: str) -> int:
    """The Kafka port of the coordinator `agent` names for a transactional id."""
    error, _node, _host, port = wire.parse_find_coordinator_v1(
        ask(agent, wire.find_coordinator_v1(transactional_id, 1, 1))
    )
    assert error == 0, f"FindCoordinator({transactional_id}) on {agent.agent_id}: error {error}"
    return port


class Cluster:
    """Agents started together; each keeps its ports and agent id when it is
    restarted."""

    def __init__(self, agents: list[StreamHouse]):
        self.agents = agents

    @classmethod
    def start(cls, base_dir: Path, size: int, **settings) -> "Cluster":
        """`settings` go to every agent (see `StreamHouse`)."""
        cluster = cls([new_agent(base_dir, f"agent{i}", **settings) for i in range(size)])
        for agent in cluster.agents:
            agent.start()
        cluster.wait_for_membership()
        return cluster

    @property
    def bootstrap(self) -> str:
        return ",".join(a.bootstrap for a in self.agents if a.running())

    def running(self) -> list[StreamHouse]:
        return [a for a in self.agents if a.running()]

    def by_port(self, port: int) -> StreamHouse:
        (agent,) = [a for a in self.agents if a.kafka_port == port]
        return agent

    def wait_for_membership(self, timeout: float = MEMBERSHIP_SETTLE) -> float:
        """Waits until every running agent lists exactly the running agents
        as brokers; returns how long that took."""
        started = time.monotonic()
        expected = {a.kafka_port for a in self.running()}

        def views():
            return {a.agent_id: brokers(a) for a in self.running()}

        wait_until(
            lambda: all(seen == expected for seen in views().values()),
            timeout,
            lambda: f"brokers listed by each agent {views()}, running {sorted(expected)}",
            interval=0.2,
        )
        return time.monotonic() - started

    def create_topic(self, name: str, partitions: int) -> None:
        admin = AdminClient(confluent_config(self.bootstrap))
        (future,) = admin.create_topics([NewTopic(name, partitions, 1)]).values()
        future.result(timeout=CLIENT_TIMEOUT)

    def stop(self) -> dict[str, int | None]:
        """SIGTERMs every agent; returns the exit statuses of those that ran.
        An agent a failed test left dead is started and stopped once more, so
        that it leaves the cluster at once rather than after the liveness
        timeout, in the way of the modules that follow."""
        statuses = {}
        for agent in self.agents:
            if agent.running():
                statuses[agent.agent_id] = agent.stop()
            elif agent.process is not None:
                try:
                    agent.start()
                    agent.stop()
                except AssertionError:
                    agent.kill()
        return statuses

    def logs(self) -> str:
        return "\n".join(a.log_tail(60) for a in self.agents)
