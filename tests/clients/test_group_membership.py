"""Group membership when members vanish: a member that crashes, a static
member (group.instance.id) that restarts, and a server stopped while a
rebalance waits. Kafka resolves each within the session timeout or at once;
none may hold a group (or a shutdown) for the whole rebalance timeout.

Members run in processes of their own (group_member.py), so that a member
stuck in a rebalance can always be killed."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

import pytest

from groups import ALL_PARTITIONS, REBALANCE_TIMEOUT, create_topic
from streamhouse import StreamHouse
from support import CLIENT_TIMEOUT, confluent_config, die_with_parent, unique_name, wait_until

MEMBER = Path(__file__).with_name("group_member.py")
SESSION_TIMEOUT_MS = 3000
# The rebalance timeout is the members' max.poll.interval.ms; it is far above
# the session timeout so that the two cannot be confused.
SHORT_SESSION = {
    "session.timeout.ms": SESSION_TIMEOUT_MS,
    "heartbeat.interval.ms": 250,
    "max.poll.interval.ms": 20000,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory, server_logs):
    """An agent that accepts sessions shorter than Kafka's 6 s minimum
    (group.min.session.timeout.ms), so that expiry is quick to test."""
    data_dir = tmp_path_factory.mktemp("membership")
    agent = StreamHouse(
        data_dir,
        data_dir / "streamhouse.log",
        extra_args=["--group-min-session-timeout-ms", "1000"],
    )
    server_logs.append(agent)
    agent.start()
    yield agent
    status = agent.stop()
    assert status == 0, f"exit status {status} after SIGTERM\n{agent.log_tail()}"


# How long after the session timeout a rebalance may take to settle.
SETTLE_SECONDS = SESSION_TIMEOUT_MS / 1000 + 6
# How long a SIGTERMed server may take to exit with nothing to flush.
PROMPT_EXIT_SECONDS = 8
# Sessions that outlast PROMPT_EXIT_SECONDS, so that a rebalance cannot
# finish by itself while the server shuts down.
LONG_SESSION = {
    "session.timeout.ms": 20000,
    "heartbeat.interval.ms": 250,
    "max.poll.interval.ms": 30000,
}


class Member:
    """A group member process and the assignments it reported."""

    def __init__(self, server, group_id: str, topic: str, output: Path, config: dict):
        self.output = output
        settings = [f"{name}={value}" for name, value in config.items()]
        command = [sys.executable, str(MEMBER), server.bootstrap, group_id, topic, *settings]
        with open(output, "wb") as out:
            self.process = subprocess.Popen(
                die_with_parent(command), stdout=out, stderr=subprocess.DEVNULL
            )

    def events(self) -> list[dict]:
        """The rebalance callbacks the member reported, in order: each an
        "assign" or "revoke" of partitions, with the member's generation."""
        text = self.output.read_text() if self.output.exists() else ""
        # A line still being written is not an event yet.
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

    def history(self) -> list[set[int]]:
        """The partitions the member owned after each callback."""
        owned: set[int] = set()
        history = []
        for event in self.events():
            if event["event"] == "assign":
                owned = owned | set(event["partitions"])
            else:
                owned = owned - set(event["partitions"])
            history.append(owned)
        return history

    def partitions(self) -> set[int]:
        history = self.history()
        return history[-1] if history else set()

    def generation(self) -> int | None:
        """The generation of the member's latest assignment."""
        assigned = [e["generation"] for e in self.events() if e["event"] == "assign"]
        return assigned[-1] if assigned else None

    def close(self) -> None:
        """SIGTERM: the consumer closes as an application would close it."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=CLIENT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


class Members:
    def __init__(self, server, group_id: str, topic: str, tmp_path: Path, config: dict):
        self.server, self.group_id, self.topic = server, group_id, topic
        self.tmp_path, self.config = tmp_path, config
        self.started: list[Member] = []

    def start(self, **overrides) -> Member:
        output = self.tmp_path / f"member-{len(self.started)}.out"
        member = Member(
            self.server, self.group_id, self.topic, output, {**self.config, **overrides}
        )
        self.started.append(member)
        return member

    def kill_all(self) -> None:
        for member in self.started:
            member.kill()


def wait_for_split(members: list[Member], timeout: float) -> list[set[int]]:
    """Waits until the members own all four partitions, each exactly once,
    as evenly as they can (two each for two members; 2, 1, 1 for three)."""
    sizes = sorted(
        len(ALL_PARTITIONS) // len(members) + (i < len(ALL_PARTITIONS) % len(members))
        for i in range(len(members))
    )

    def split():
        owned = [m.partitions() for m in members]
        union = set().union(*owned)
        disjoint = sum(map(len, owned)) == len(union)
        return disjoint and sorted(map(len, owned)) == sizes and union == ALL_PARTITIONS

    wait_until(
        split, timeout, lambda: f"assignments {[m.partitions() for m in members]}", interval=0.02
    )
    return [m.partitions() for m in members]


def test_a_crashed_member_is_dropped_after_its_session_timeout(server, tmp_path):
    topic = create_topic(server, "crashed-member")
    members = Members(server, unique_name("crashed-member"), topic, tmp_path, SHORT_SESSION)
    try:
        staying, crashing = members.start(), members.start()
        wait_for_split([staying, crashing], REBALANCE_TIMEOUT)

        # No LeaveGroup: the member just stops heart-beating. The member that
        # joins now starts a rebalance the dead one never answers; Kafka
        # completes it once the dead member's session expires.
        crashing.kill()
        joining = members.start()
        wait_for_split([staying, joining], SETTLE_SECONDS)
    finally:
        members.kill_all()


def described_members(admin: AdminClient, group_id: str) -> tuple[object, dict[str, set[int]]]:
    """The group's state, and each static member's partitions, as
    DescribeGroups reports them."""
    (future,) = admin.describe_consumer_groups([group_id]).values()
    description = future.result(timeout=CLIENT_TIMEOUT)
    return description.state, {
        m.group_instance_id: {tp.partition for tp in m.assignment.topic_partitions}
        for m in description.members
    }


def test_restarted_static_leader_and_follower_keep_generation_and_assignments(server, tmp_path):
    topic = create_topic(server, "static-members")
    group_id = unique_name("static-members")
    # A session long enough that a member process restarting on a busy
    # machine is back well before it ends.
    members = Members(
        server, group_id, topic, tmp_path, {**SHORT_SESSION, "session.timeout.ms": 10000}
    )
    admin = AdminClient(confluent_config(server.bootstrap))
    instances = [unique_name(f"instance-{name}") for name in ("leader", "b", "c")]
    try:
        # The first member leads a group of one and stays its leader when
        # the others join (the coordinator keeps a leader that rejoins).
        current = [members.start(**{"group.instance.id": instances[0]})]
        wait_for_split(current, REBALANCE_TIMEOUT)
        current += [members.start(**{"group.instance.id": i}) for i in instances[1:]]
        owned = wait_for_split(current, REBALANCE_TIMEOUT)
        wait_until(
            lambda: len({m.generation() for m in current}) == 1,
            CLIENT_TIMEOUT,
            lambda: f"generations {[m.generation() for m in current]}",
        )
        generation = current[0].generation()
        state, assignments = described_members(admin, group_id)
        assert state == ConsumerGroupState.STABLE
        assert assignments == dict(zip(instances, owned, strict=True))

        # A static member sends no LeaveGroup on close (KIP-345); coming
        # back under its group.instance.id within the session timeout it
        # gets its partitions again, in the same generation, and no other
        # member sees a rebalance. The leader first, then a follower.
        for index, role in ((0, "leader"), (1, "follower")):
            events_before = [len(m.events()) for m in current]
            current[index].close()
            restarted = members.start(**{"group.instance.id": instances[index]})
            wait_until(
                lambda: restarted.partitions() == owned[index],
                SETTLE_SECONDS,
                lambda: f"restarted {role} owns {restarted.partitions()}, before {owned[index]}",
                interval=0.02,
            )
            assert restarted.generation() == generation, (
                f"the restarted {role} is in generation {restarted.generation()}, "
                f"the group was in {generation}"
            )
            for other, member in enumerate(current):
                if other != index:
                    changes = member.events()[events_before[other]:]
                    assert not changes, (
                        f"restarting the {role} rebalanced {instances[other]}: {changes}"
                    )
            current[index] = restarted
            assert described_members(admin, group_id) == (ConsumerGroupState.STABLE, assignments)
    finally:
        members.kill_all()


def test_sigterm_during_a_rebalance_exits_promptly(server, tmp_path):
    topic = create_topic(server, "shutdown-rebalance")
    group_id = unique_name("shutdown-rebalance")
    members = Members(server, group_id, topic, tmp_path, LONG_SESSION)
    admin = AdminClient(confluent_config(server.bootstrap))

    def preparing_rebalance():
        (future,) = admin.describe_consumer_groups([group_id]).values()
        state = future.result(timeout=CLIENT_TIMEOUT).state
        return state == ConsumerGroupState.PREPARING_REBALANCING

    status, elapsed = None, 0.0
    try:
        staying, crashing = members.start(), members.start()
        wait_for_split([staying, crashing], REBALANCE_TIMEOUT)
        crashing.kill()
        members.start()
        wait_until(preparing_rebalance, CLIENT_TIMEOUT, "the group never started rebalancing")

        # Kafka answers the JoinGroup requests waiting on a coordinator that
        # shuts down (NOT_COORDINATOR) rather than holding the shutdown.
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        try:
            status = server.process.wait(timeout=PROMPT_EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        elapsed = time.monotonic() - started
    finally:
        members.kill_all()
        # The server comes back, idle, for the module's clean SIGTERM check.
        server.kill()
        server.start()
    assert status == 0, (
        f"exit status {status} {elapsed:.1f} s after SIGTERM with a rebalance waiting "
        f"(expected 0 within {PROMPT_EXIT_SECONDS} s)"
    )
