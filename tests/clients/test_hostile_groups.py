"""Consumer group requests from a hostile client, sent raw on the Kafka
port: a JoinGroup with absurd timeouts and floods of JoinGroups that cannot
work. Kafka refuses each with its documented error code, keeps nothing for
them, and carries on serving real consumer groups; so must StreamHouse,
with the default group limits (`group.min.session.timeout.ms` 6000,
`group.max.session.timeout.ms` 1800000)."""

import struct
from collections import Counter
from pathlib import Path

from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

import kafka_wire as wire
from groups import Group, create_topic, group_member
from support import CLIENT_TIMEOUT, confluent_config, unique_name

API_JOIN_GROUP = 11
API_LEAVE_GROUP = 13
API_LIST_GROUPS = 16
INVALID_GROUP_ID = 24
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_SESSION_TIMEOUT = 26
INVALID_REQUEST = 42
I32_MAX = 2**31 - 1
# A well-behaved session timeout, inside the broker's bounds.
SESSION_TIMEOUT_MS = 10000
# How long a normal group may take to form after the hostile join.
FORM_SECONDS = 10.0
FLOOD = 10000
# Requests written before their answers are read, per connection.
PIPELINE = 250
# Resident memory of the (debug) server: idle it uses about 40 MiB, and
# 10,000 refused joins add about 2 (before the limits, 200,000 added 67 and
# left 200,000 groups listed). The floods may not make it grow by more than
# GROWTH_BOUND_MIB, nor the whole process pass RSS_BOUND_MIB.
RSS_BOUND_MIB = 256
GROWTH_BOUND_MIB = 32


def join_group_v5(
    group_id: str,
    correlation_id: int,
    session_timeout_ms: int = SESSION_TIMEOUT_MS,
    rebalance_timeout_ms: int = 60000,
    protocol_type: str = "consumer",
    protocols: list[tuple[str, bytes]] = (("range", b""),),
) -> bytes:
    """JoinGroup v5 of a new member (no member id, no group instance id)."""
    body = (
        wire.string(group_id)
        + struct.pack(">ii", session_timeout_ms, rebalance_timeout_ms)
        + wire.string("")
        + wire.string(None)
        + wire.string(protocol_type)
        + struct.pack(">i", len(protocols))
        + b"".join(
            wire.string(name) + struct.pack(">i", len(metadata)) + metadata
            for name, metadata in protocols
        )
    )
    return wire.request(API_JOIN_GROUP, 5, correlation_id, body)


def parse_join_group_v5(payload: bytes) -> tuple[int, int, str]:
    """(correlation id, error code, member id)."""
    r = wire.Reader(payload)
    correlation_id, _throttle, error_code, _generation = r.unpack("iihi")
    r.string()  # protocol name
    r.string()  # leader
    return correlation_id, error_code, r.string()


def listed_groups(server) -> set[str]:
    """The groups ListGroups (v2) reports."""
    with wire.Connection(server.bootstrap) as connection:
        payload = connection.round_trip(wire.request(API_LIST_GROUPS, 2, 1))
    r = wire.Reader(payload)
    correlation_id, _throttle, error_code = r.unpack("iih")
    assert (correlation_id, error_code) == (1, 0), "ListGroups failed"
    return {group_id for group_id, _type in r.array(lambda: (r.string(), r.string()))}


def join_all(server, requests: list[bytes]) -> list[tuple[int, str]]:
    """Sends JoinGroup requests (correlation ids 0..n-1) over one connection,
    PIPELINE at a time, and returns each one's (error code, member id)."""
    answers = []
    with wire.Connection(server.bootstrap, timeout=CLIENT_TIMEOUT) as connection:
        for start in range(0, len(requests), PIPELINE):
            batch = requests[start : start + PIPELINE]
            connection.send(b"".join(batch))
            for expected in range(start, start + len(batch)):
                correlation_id, error_code, member_id = parse_join_group_v5(
                    connection.read_response()
                )
                assert correlation_id == expected, "answers out of order"
                answers.append((error_code, member_id))
    return answers


def resident_mib(server) -> float:
    """The server's resident memory (VmRSS) in MiB."""
    pid = server.process.pid
    proc = Path(f"/proc/{pid}")
    # The fixture may start the server through setpriv, which execs it.
    assert (proc / "comm").read_text().strip() == "streamhouse", f"pid {pid} is not the server"
    for line in (proc / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def test_a_join_with_absurd_timeouts_is_refused_and_the_group_still_forms(server):
    topic = create_topic(server, "absurd-timeouts")
    group_id = unique_name("absurd-timeouts")
    request = join_group_v5(group_id, 7, session_timeout_ms=I32_MAX, rebalance_timeout_ms=I32_MAX)
    with wire.Connection(server.bootstrap) as connection:
        correlation_id, error_code, _ = parse_join_group_v5(connection.round_trip(request))
    assert (correlation_id, error_code) == (7, INVALID_SESSION_TIMEOUT)
    assert group_id not in listed_groups(server), "the refused join left a group behind"

    # The group it named forms as usual: two members share the partitions.
    group = Group()
    try:
        group.add(group_member(server, group_id, "range", topic))
        group.add(group_member(server, group_id, "range", topic))
        group.wait_for_split([2, 2], timeout=FORM_SECONDS)
    finally:
        group.close()


def test_a_v0_join_waits_its_session_timeout_and_its_group_goes_with_it(server):
    """JoinGroup v0 has no rebalance timeout: Kafka uses the session
    timeout, which is no reason to refuse it. Once its only member leaves,
    the group (which committed nothing) is gone at once."""
    group_id = unique_name("v0-join")
    body = (
        wire.string(group_id)
        + struct.pack(">i", SESSION_TIMEOUT_MS)
        + wire.string("")
        + wire.string("consumer")
        + struct.pack(">i", 1)
        + wire.string("range")
        + struct.pack(">i", 0)
    )
    with wire.Connection(server.bootstrap) as connection:
        r = wire.Reader(connection.round_trip(wire.request(API_JOIN_GROUP, 0, 3, body)))
        correlation_id, error_code, generation = r.unpack("ihi")
        protocol, leader, member_id = r.string(), r.string(), r.string()
        assert (correlation_id, error_code, generation, protocol) == (3, 0, 1, "range")
        assert member_id and leader == member_id
        assert group_id in listed_groups(server)

        leave = wire.request(API_LEAVE_GROUP, 0, 4, wire.string(group_id) + wire.string(member_id))
        correlation_id, error_code = struct.unpack(">ih", connection.round_trip(leave))
        assert (correlation_id, error_code) == (4, 0)
    assert group_id not in listed_groups(server), "an empty group without offsets stayed"


def test_joins_without_protocols_are_refused_and_leave_no_groups(server):
    before = listed_groups(server)
    prefix = unique_name("no-protocols")
    group_ids = [f"{prefix}-{i}" for i in range(FLOOD)]
    requests = [join_group_v5(g, i, protocols=[]) for i, g in enumerate(group_ids)]

    answers = join_all(server, requests)

    assert Counter(code for code, _ in answers) == {INCONSISTENT_GROUP_PROTOCOL: FLOOD}
    assert all(member_id == "" for _, member_id in answers), "a refused member got an id"
    after = listed_groups(server)
    left_behind = sorted(g for g in after - before if g.startswith(prefix))
    assert not left_behind, f"{len(left_behind)} refused groups listed, e.g. {left_behind[:3]}"
    admin = AdminClient(confluent_config(server.bootstrap))
    sample = [group_ids[0], group_ids[FLOOD // 2], group_ids[-1]]
    for group_id, future in admin.describe_consumer_groups(sample).items():
        state = future.result(timeout=CLIENT_TIMEOUT).state
        assert state == ConsumerGroupState.DEAD, f"{group_id} is described as {state}"


def test_the_server_survives_hostile_joins_in_bounded_memory(server):
    before = resident_mib(server)
    prefix = unique_name("hostile")
    kinds = [
        (dict(session_timeout_ms=I32_MAX, rebalance_timeout_ms=I32_MAX), INVALID_SESSION_TIMEOUT),
        (dict(session_timeout_ms=5999), INVALID_SESSION_TIMEOUT),
        (dict(session_timeout_ms=1800001), INVALID_SESSION_TIMEOUT),
        (dict(session_timeout_ms=-1), INVALID_SESSION_TIMEOUT),
        (dict(rebalance_timeout_ms=-5), INVALID_REQUEST),
        (dict(protocols=[]), INCONSISTENT_GROUP_PROTOCOL),
        (dict(protocol_type=""), INCONSISTENT_GROUP_PROTOCOL),
    ]
    requests, expected = [], Counter()
    for i in range(FLOOD):
        overrides, code = kinds[i % len(kinds)]
        requests.append(join_group_v5(f"{prefix}-{i}", i, **overrides))
        expected[code] += 1
    # One with no group id at all.
    requests.append(join_group_v5("", FLOOD))
    expected[INVALID_GROUP_ID] += 1

    answers = join_all(server, requests)

    assert Counter(code for code, _ in answers) == expected
    assert server.running(), "streamhouse exited\n" + server.log_tail()
    assert not {g for g in listed_groups(server) if g.startswith(prefix)}
    after = resident_mib(server)
    assert after < RSS_BOUND_MIB, f"resident memory {after:.0f} MiB (bound {RSS_BOUND_MIB} MiB)"
    assert after - before < GROWTH_BOUND_MIB, (
        f"resident memory grew from {before:.0f} to {after:.0f} MiB "
        f"(bound {GROWTH_BOUND_MIB} MiB of growth)"
    )
