"""Two secured agents on one PostgreSQL database and one S3 prefix: a user
created and an ACL granted through agent A are in force on agent B within
2 s, as Kafka users expect of a cluster."""

import time
import uuid

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclOperation,
    NewTopic,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from security import ADMIN, grant, login, produce, result_of, secured_agent
from support import unique_name
from tls_ca import make_pki

pytestmark = pytest.mark.cluster

# How long a change may take to reach every agent, and what one attempt to
# observe it costs on top (a login, or a produce with its own round trips).
PROPAGATION = 2.0
ATTEMPT_SLACK = 1.0


@pytest.fixture(scope="module")
def agents(tmp_path_factory, server_logs):
    base = tmp_path_factory.mktemp("secured-cluster")
    pki = make_pki(base / "pki")
    started = []
    for name in ("agent-a", "agent-b"):
        agent = secured_agent(base, pki, name, agent_id=f"{name}-{uuid.uuid4().hex[:6]}")
        server_logs.append(agent)
        agent.start()
        started.append(agent)
    yield started, pki
    for agent in started:
        status = agent.stop()
        assert status == 0, f"{agent.agent_id} exited with {status}\n" + agent.log_tail()


def first_success(attempt, timeout: float) -> float:
    """Seconds until `attempt()` first returns True, retrying at once."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if attempt():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not in force after {timeout:.0f} s")


def test_a_user_and_an_acl_made_on_one_agent_apply_on_the_other_within_2_s(agents):
    (a, b), pki = agents
    erin = ("erin", "erin-secret-5")
    topic = unique_name("propagated")
    admin_a = login(a, pki, ADMIN).admin()
    result_of(admin_a.create_topics([NewTopic(topic, 1)])[topic])

    upsert = UserScramCredentialUpsertion(
        erin[0], ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), erin[1].encode()
    )
    result_of(admin_a.alter_user_scram_credentials([upsert])[erin[0]])

    def erin_logs_in_on_b() -> bool:
        try:
            return bool(login(b, pki, erin).admin().list_topics(timeout=1).brokers)
        except KafkaException:
            return False

    took = first_success(erin_logs_in_on_b, timeout=10)
    assert took < PROPAGATION + ATTEMPT_SLACK, f"the user reached agent B after {took:.1f} s"

    erin_on_b = login(b, pki, erin).confluent()
    assert produce(erin_on_b, topic, [(b"k", b"before")], timeout=5)[0] is not None, (
        "erin may write before any ACL was granted"
    )
    grant(admin_a, "User:erin", ResourceType.TOPIC, topic, AclOperation.WRITE)

    def erin_writes_on_b() -> bool:
        return produce(erin_on_b, topic, [(b"k", b"after")], timeout=3)[0] is None

    took = first_success(erin_writes_on_b, timeout=15)
    # A refused write is answered at once (TOPIC_AUTHORIZATION_FAILED is not
    # retried), so each attempt is quick.
    assert took < PROPAGATION + ATTEMPT_SLACK, f"the ACL reached agent B after {took:.1f} s"
