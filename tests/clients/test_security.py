"""A secured agent used as its users would: TLS, SASL (PLAIN, SCRAM-SHA-256,
SCRAM-SHA-512) and client certificates from kcat, confluent-kafka,
kafka-python and KafkaJS; users managed with AlterUserScramCredentials;
Kafka ACLs enforced per API; bad logins refused quickly while everyone else
is served."""

import base64
import json
import os
import socket
import ssl
import struct
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AclBindingFilter,
    AdminClient,
    AclOperation,
    AclPermissionType,
    ConfigResource,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import (
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePatternFilter,
)
from kafka.admin import NewTopic as KpNewTopic
from kafka.admin import ResourceType as KpResourceType
from kafka.errors import ClusterAuthorizationFailedError

import kafka_wire as wire
from security import (
    ADMIN,
    ASSIGN_GROUP,
    ALICE,
    BOB,
    consume_assigned,
    error_code,
    grant,
    login,
    produce,
    result_of,
    run_kafkajs,
    secured_agent,
)
from streamhouse import binary
from support import unique_name, wait_until
from tls_ca import make_pki

TOPIC_AUTHORIZATION_FAILED = 29
GROUP_AUTHORIZATION_FAILED = 30
CLUSTER_AUTHORIZATION_FAILED = 31
SASL_AUTHENTICATION_FAILED = 58
API_SASL_HANDSHAKE = 17
API_SASL_AUTHENTICATE = 36


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secure(tmp_path_factory, server_logs, pki):
    agent = secured_agent(tmp_path_factory.mktemp("secure"), pki)
    server_logs.append(agent)
    agent.start()
    admin = login(agent, pki, ADMIN).admin()
    # alice and bob are made with AlterUserScramCredentials, both mechanisms;
    # one request per mechanism, since Kafka refuses a user named twice in
    # one request.
    for mechanism in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512):
        upserts = [
            UserScramCredentialUpsertion(user, ScramCredentialInfo(mechanism, 4096), password.encode())
            for user, password in (ALICE, BOB)
        ]
        for future in admin.alter_user_scram_credentials(upserts).values():
            result_of(future)
    yield agent
    status = agent.stop()
    assert status == 0, f"streamhouse exited with {status} after SIGTERM\n" + agent.log_tail()


def admin_of(secure, pki):
    return login(secure, pki, ADMIN).admin()


def allow_topic(secure, pki, principal, topic, *operations, pattern=ResourcePatternType.LITERAL):
    grant(admin_of(secure, pki), principal, ResourceType.TOPIC, topic, *operations, pattern=pattern)


def create_topic(secure, pki, topic, partitions=1):
    # The client must outlive its futures.
    admin = admin_of(secure, pki)
    result_of(admin.create_topics([NewTopic(topic, partitions)])[topic])


def records(count: int, label: str = "r") -> list[tuple[bytes, bytes]]:
    return [(f"key-{i % 3}".encode(), f"{label}-{i}".encode()) for i in range(count)]


# --- logging in ---------------------------------------------------------------


def test_the_first_administrator_made_offline_logs_in_with_every_mechanism(secure, pki):
    for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"):
        for protocol in ("SASL_SSL", "SASL_PLAINTEXT"):
            admin = login(secure, pki, ADMIN, protocol=protocol, mechanism=mechanism).admin()
            metadata = admin.list_topics(timeout=15)
            assert metadata.brokers, (mechanism, protocol)
            # Each broker is advertised on the listener the client came in through.
            ports = {broker.port for broker in metadata.brokers.values()}
            assert ports == {secure.listeners[protocol]}, (protocol, ports, secure.listeners)


def test_kcat_over_sasl_ssl_with_scram_sha_512_and_plain(secure, pki, tmp_path):
    topic = unique_name("kcat-sasl")
    create_topic(secure, pki, topic)
    allow_topic(secure, pki, "User:alice", topic, AclOperation.WRITE, AclOperation.READ)
    lines = [b"alpha:first", b"beta:second value", b"alpha:third"]
    source = tmp_path / "lines.txt"
    source.write_bytes(b"\n".join(lines) + b"\n")
    scram = login(secure, pki, ALICE, mechanism="SCRAM-SHA-512").kcat()
    plain = login(secure, pki, ALICE, mechanism="PLAIN").kcat()
    run_kcat(*scram, "-P", "-t", topic, "-K:", "-H", "trace=abc", "-l", str(source))
    out = run_kcat(
        "-q", *plain, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%k=%s;%h\\n"
    )
    assert out == b"alpha=first;trace=abc\nbeta=second value;trace=abc\nalpha=third;trace=abc\n"


def test_kcat_over_ssl_with_a_client_certificate(secure, pki, tmp_path):
    topic = unique_name("kcat-mtls")
    create_topic(secure, pki, topic)
    principal = f"User:{pki.client_cn}"
    allow_topic(secure, pki, principal, topic, AclOperation.WRITE, AclOperation.READ)
    cert = login(secure, pki, (None, None), protocol="SSL", client_cert=True).kcat()
    source = tmp_path / "lines.txt"
    source.write_bytes(b"k1:v1\nk2:v2\n")
    run_kcat(*cert, "-P", "-t", topic, "-K:", "-H", "h=1", "-l", str(source))
    out = run_kcat("-q", *cert, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%k=%s;%h\\n")
    assert out == b"k1=v1;h=1\nk2=v2;h=1\n"


def run_kcat(*args) -> bytes:
    result = subprocess.run(["kcat", *args], capture_output=True, timeout=60, check=False)
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 0, f"kcat exited {result.returncode}: {stderr}"
    return result.stdout


def test_confluent_kafka_over_sasl_ssl_scram_sha_256(secure, pki):
    topic, group = unique_name("cf-sasl"), unique_name("cf-group")
    alice = login(secure, pki, ALICE)
    admin = admin_of(secure, pki)
    grant(admin, "User:alice", ResourceType.TOPIC, topic, AclOperation.ALL)
    grant(admin, "User:alice", ResourceType.GROUP, group, AclOperation.READ)
    # Alice creates the topic herself (Create on the topic), and describes it.
    alice_admin = alice.admin()
    result_of(alice_admin.create_topics([NewTopic(topic, 2)])[topic])
    assert topic in alice_admin.list_topics(timeout=15).topics
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = result_of(alice_admin.describe_configs([resource])[resource])
    assert configs["cleanup.policy"].value == "delete"

    assert produce(alice.confluent(), topic, records(20)) == [None] * 20
    consumer = Consumer(
        alice.confluent(
            **{"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}
        )
    )
    consumer.subscribe([topic])
    seen = []
    deadline = time.monotonic() + 40
    while len(seen) < 20 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            assert message is None or message.error().code() == KafkaError._PARTITION_EOF, (
                message.error()
            )
            continue
        seen.append(message.value())
        assert message.headers() == [("origin", b"security-suite")]
    consumer.commit(asynchronous=False)
    committed = consumer.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], 15)
    consumer.close()
    assert sorted(seen) == sorted(value for _, value in records(20))
    # A partition nothing was read from has no committed offset (-1001).
    assert sum(max(tp.offset, 0) for tp in committed) == 20


def test_kafka_python_over_sasl_ssl_scram_sha_256(secure, pki):
    topic, group = unique_name("kp-sasl"), unique_name("kp-group")
    admin = admin_of(secure, pki)
    grant(admin, "User:bob", ResourceType.TOPIC, topic, AclOperation.ALL)
    grant(admin, "User:bob", ResourceType.GROUP, group, AclOperation.READ)
    bob = login(secure, pki, BOB).kafka_python()
    kp_admin = KafkaAdminClient(**bob)
    kp_admin.create_topics([KpNewTopic(topic, 1, 1)])
    assert topic in kp_admin.list_topics()
    kp_admin.close()
    producer = KafkaProducer(acks="all", **bob)
    for i in range(10):
        producer.send(topic, key=b"k", value=f"v{i}".encode(), headers=[("n", str(i).encode())])
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(
        topic,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=20000,
        **bob,
    )
    values = []
    for message in consumer:
        values.append(message.value)
        if len(values) == 10:
            break
    consumer.commit()
    consumer.close()
    assert values == [f"v{i}".encode() for i in range(10)]


def test_kafkajs_over_sasl_ssl_scram_sha_256(secure, pki):
    topic, group = unique_name("js-sasl"), unique_name("js-group")
    admin = admin_of(secure, pki)
    grant(admin, "User:alice", ResourceType.TOPIC, topic, AclOperation.ALL)
    grant(admin, "User:alice", ResourceType.GROUP, group, AclOperation.READ)
    result = run_kafkajs(
        "sasl_ssl.js",
        {
            "brokers": [secure.bootstrap_for("SASL_SSL")],
            "ca": str(pki.ca_cert),
            "mechanism": "scram-sha-256",
            "username": ALICE[0],
            "password": ALICE[1],
            "topic": topic,
            "group": group,
        },
    )
    assert "error" not in result, result
    assert result["partitions"] == 2
    assert sorted(r["value"] for r in result["consumed"]) == sorted(f"value-{i}" for i in range(10))
    assert all(r["seq"] == r["value"].split("-")[1] for r in result["consumed"])
    assert sum(max(p["offset"], 0) for p in result["committed"]) == 10


def test_users_are_managed_with_alter_user_scram_credentials(secure, pki):
    admin = admin_of(secure, pki)
    carol = ("carol", "carol-secret-4")
    upsert = UserScramCredentialUpsertion(
        carol[0], ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), carol[1].encode()
    )
    result_of(admin.alter_user_scram_credentials([upsert])[carol[0]])
    described = result_of(admin.describe_user_scram_credentials([carol[0]])[carol[0]])
    infos = [(info.mechanism, info.iterations) for info in described.scram_credential_infos]
    assert infos == [(ScramMechanism.SCRAM_SHA_512, 8192)]
    # Without user names, one future answers for every user.
    names = set(result_of(admin.describe_user_scram_credentials()).keys())
    assert {"admin", "alice", "bob", "carol"} <= names

    assert login(secure, pki, carol, mechanism="SCRAM-SHA-512").admin().list_topics(timeout=15)
    deletion = UserScramCredentialDeletion(carol[0], ScramMechanism.SCRAM_SHA_512)
    result_of(admin.alter_user_scram_credentials([deletion])[carol[0]])
    assert_login_fails(login(secure, pki, carol, mechanism="SCRAM-SHA-512").confluent())

    # Only a principal with Alter on the cluster may change users.
    with pytest.raises(KafkaException) as refused:
        alice_admin = login(secure, pki, ALICE).admin()
        result_of(alice_admin.alter_user_scram_credentials([upsert])[carol[0]])
    assert error_code(refused.value) == CLUSTER_AUTHORIZATION_FAILED


# --- refused logins and bad input ------------------------------------------------


def login_error(config: dict, within: float = 5.0):
    """The error a client gets when its login is refused, and how long it
    took; fails when the login succeeds."""
    errors = []
    admin = AdminClient({**config, "error_cb": errors.append})
    started = time.monotonic()
    try:
        admin.list_topics(timeout=within)
    except KafkaException as error:
        errors.append(error.args[0])
    elapsed = time.monotonic() - started
    # error_cb reports (the authentication failure) arrive through poll.
    admin.poll(0.5)
    return errors, elapsed


def assert_login_fails(config: dict, within: float = 5.0) -> None:
    errors, elapsed = login_error(config, within)
    assert errors, f"the login succeeded ({elapsed:.1f} s)"
    assert elapsed < within + 1, f"refused only after {elapsed:.1f} s"
    assert any(
        e.code() in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED)
        for e in errors
    ), errors


def test_wrong_password_and_unknown_user_are_refused_within_5_s(secure, pki):
    healthy = login(secure, pki, ADMIN).admin()
    for user, password, mechanism in [
        ("alice", "wrong-password", "SCRAM-SHA-256"),
        ("alice", "wrong-password", "PLAIN"),
        ("nobody", "whatever-password", "SCRAM-SHA-512"),
    ]:
        assert_login_fails(login(secure, pki, (user, password), mechanism=mechanism).confluent())
        # Everyone else keeps being served.
        assert healthy.list_topics(timeout=10).brokers
    log = secure.log_since(0)
    assert "wrong-password" not in log and "whatever-password" not in log
    assert "alice" in log and "nobody" in log, "failed logins are logged with the user"


def test_a_client_not_speaking_tls_to_a_tls_listener_fails_fast(secure, pki):
    for protocol in ("SASL_SSL", "SSL"):
        started = time.monotonic()
        with wire.Connection(secure.bootstrap_for(protocol), timeout=5) as connection:
            connection.send(wire.request(wire.API_VERSIONS, 0, 1))
            assert connection.closed_by_server() is not None, f"{protocol}: still open after 5 s"
        assert time.monotonic() - started < 5
    assert login(secure, pki, ADMIN).admin().list_topics(timeout=10).brokers


def sasl_handshake_v1(mechanism: str, correlation_id: int = 1) -> bytes:
    return wire.request(API_SASL_HANDSHAKE, 1, correlation_id, wire.string(mechanism))


def sasl_authenticate_v1(token: bytes, correlation_id: int = 2) -> bytes:
    return wire.request(
        API_SASL_AUTHENTICATE, 1, correlation_id, struct.pack(">i", len(token)) + token
    )


def test_garbage_in_the_sasl_exchange_gets_an_error_and_a_closed_connection(secure):
    bootstrap = secure.bootstrap_for("SASL_PLAINTEXT")
    for mechanism, token in [
        ("SCRAM-SHA-256", b"\xff\x00garbage"),
        ("SCRAM-SHA-512", b"n,,n=alice"),  # no nonce
        ("SCRAM-SHA-256", b"p=tls-unique,,n=alice,r=abc"),  # channel binding
        ("PLAIN", b"no separators at all"),
    ]:
        with wire.Connection(bootstrap, timeout=5) as connection:
            response = connection.round_trip(sasl_handshake_v1(mechanism))
            (_, error) = struct.unpack_from(">ih", response)
            assert error == 0, (mechanism, error)
            started = time.monotonic()
            response = connection.round_trip(sasl_authenticate_v1(token))
            (_, error) = struct.unpack_from(">ih", response)
            assert error == SASL_AUTHENTICATION_FAILED, (mechanism, token, error)
            assert connection.closed_by_server() is not None, "the connection stayed open"
            assert time.monotonic() - started < 5
    # A request other than ApiVersions/SASL before logging in closes the connection.
    with wire.Connection(bootstrap, timeout=5) as connection:
        connection.send(wire.metadata_v1(1, []))
        assert connection.closed_by_server() == b""
    # An unsupported mechanism is answered with the enabled ones.
    with wire.Connection(bootstrap, timeout=5) as connection:
        response = connection.round_trip(sasl_handshake_v1("GSSAPI"))
        (_, error) = struct.unpack_from(">ih", response)
        assert error == 33, error
        assert b"SCRAM-SHA-512" in response and b"PLAIN" in response


@pytest.mark.parametrize("which", ["expired", "untrusted", "none"])
def test_bad_client_certificates_fail_the_handshake(secure, pki, which):
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    if which == "expired":
        context.load_cert_chain(str(pki.expired_cert), str(pki.expired_key))
    elif which == "untrusted":
        context.load_cert_chain(str(pki.untrusted_cert), str(pki.untrusted_key))
    host, port = secure.bootstrap_for("SSL").rsplit(":", 1)
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                # TLS 1.3 reports a refused client certificate on the first read.
                tls.sendall(wire.request(wire.API_VERSIONS, 0, 1))
                assert tls.recv(4), "the agent answered a client it should have refused"
                raise AssertionError("handshake succeeded")
    assert time.monotonic() - started < 5
    assert login(secure, pki, ADMIN).admin().list_topics(timeout=10).brokers


def tls_client(pki, highest: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(pki.ca_cert))
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = highest
    # Let this client offer the old versions at all.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def test_tls_below_1_2_is_refused_by_the_agent(secure, pki):
    host, port = secure.bootstrap_for("SASL_SSL").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with tls_client(pki, ssl.TLSVersion.TLSv1_2).wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() == "TLSv1.2"
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with pytest.raises(ssl.SSLError) as refused:
            tls_client(pki, ssl.TLSVersion.TLSv1_1).wrap_socket(raw, server_hostname="localhost")
    # An alert from the agent, not this client declining to offer TLS 1.1.
    assert "ALERT" in str(refused.value), refused.value


# --- authorization ------------------------------------------------------------------


def test_produce_and_fetch_need_write_and_read_on_the_topic(secure, pki):
    topic = unique_name("acl-rw")
    create_topic(secure, pki, topic)
    grant(admin_of(secure, pki), "User:bob", ResourceType.GROUP, ASSIGN_GROUP, AclOperation.DESCRIBE)
    bob = login(secure, pki, BOB).confluent()
    denied = produce(bob, topic, records(1), timeout=10)
    assert denied[0] is not None and denied[0].code() == TOPIC_AUTHORIZATION_FAILED, denied
    allow_topic(secure, pki, "User:bob", topic, AclOperation.WRITE)
    assert produce(bob, topic, records(3)) == [None] * 3

    _, error = consume_assigned(bob, topic, 3, timeout=10)
    assert error is not None and error.code() == TOPIC_AUTHORIZATION_FAILED, error
    allow_topic(secure, pki, "User:bob", topic, AclOperation.READ)
    got, error = consume_assigned(bob, topic, 3)
    assert [value for _, value, _ in got] == [value for _, value in records(3)], error


def test_a_group_needs_read_on_the_group(secure, pki):
    topic, group = unique_name("acl-group"), unique_name("acl-group")
    create_topic(secure, pki, topic)
    allow_topic(secure, pki, "User:bob", topic, AclOperation.READ)
    consumer = Consumer(
        login(secure, pki, BOB).confluent(
            **{"group.id": group, "auto.offset.reset": "earliest"}
        )
    )
    consumer.subscribe([topic])
    error = None
    deadline = time.monotonic() + 20
    while error is None and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error():
            error = message.error()
    consumer.close()
    assert error is not None and error.code() == GROUP_AUTHORIZATION_FAILED, error


def test_deny_beats_allow_and_prefixed_patterns_match(secure, pki):
    prefix = unique_name("pay")[:20] + "-"
    inside, outside = prefix + "eu", unique_name("other")
    for topic in (inside, outside):
        create_topic(secure, pki, topic)
        produce(login(secure, pki, ADMIN).confluent(), topic, records(1))
    allow_topic(secure, pki, "User:bob", prefix, AclOperation.READ, pattern=ResourcePatternType.PREFIXED)
    grant(admin_of(secure, pki), "User:bob", ResourceType.GROUP, ASSIGN_GROUP, AclOperation.DESCRIBE)
    bob = login(secure, pki, BOB).confluent()
    got, error = consume_assigned(bob, inside, 1)
    assert len(got) == 1, error
    # Bob may not even Describe the other topic: Metadata answers 29 for it,
    # which librdkafka keeps to itself for an assigned partition; he reads
    # nothing.
    got, error = consume_assigned(bob, outside, 1, timeout=5)
    assert got == [], got
    assert error is None or error.code() == TOPIC_AUTHORIZATION_FAILED, error

    grant(
        admin_of(secure, pki),
        "User:*",
        ResourceType.TOPIC,
        inside,
        AclOperation.READ,
        permission=AclPermissionType.DENY,
    )
    time.sleep(1.5)  # within the 2 s the cache may take
    _, error = consume_assigned(bob, inside, 1, timeout=8)
    assert error is not None and error.code() == TOPIC_AUTHORIZATION_FAILED, error


def test_metadata_hides_topics_the_principal_may_not_describe(secure, pki):
    visible, hidden = unique_name("seen"), unique_name("hidden")
    create_topic(secure, pki, visible)
    create_topic(secure, pki, hidden)
    allow_topic(secure, pki, "User:alice", visible, AclOperation.DESCRIBE)
    topics = login(secure, pki, ALICE).admin().list_topics(timeout=15).topics
    assert visible in topics and hidden not in topics
    admin_topics = admin_of(secure, pki).list_topics(timeout=15).topics
    assert {visible, hidden} <= set(admin_topics), "the super user sees everything"
    # Anonymous on PLAINTEXT has no ACLs: it sees nothing.
    anonymous = login(secure, pki, (None, None), protocol="PLAINTEXT").admin()
    assert not {visible, hidden} & set(anonymous.list_topics(timeout=15).topics)


def test_admin_apis_need_their_operations(secure, pki):
    topic = unique_name("acl-admin")
    bob = login(secure, pki, BOB).admin()
    with pytest.raises(KafkaException) as refused:
        result_of(bob.create_topics([NewTopic(topic, 1)])[topic])
    assert error_code(refused.value) == TOPIC_AUTHORIZATION_FAILED
    grant(admin_of(secure, pki), "User:bob", ResourceType.BROKER, "kafka-cluster", AclOperation.CREATE)
    result_of(bob.create_topics([NewTopic(topic, 1)])[topic])

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"retention.ms": "1000"})
    with pytest.raises(KafkaException) as refused:
        result_of(bob.alter_configs([resource])[resource])
    assert error_code(refused.value) == TOPIC_AUTHORIZATION_FAILED
    with pytest.raises(KafkaException) as refused:
        result_of(bob.delete_topics([topic])[topic])
    assert error_code(refused.value) == TOPIC_AUTHORIZATION_FAILED
    allow_topic(secure, pki, "User:bob", topic, AclOperation.DELETE)
    result_of(bob.delete_topics([topic])[topic])

    # DescribeAcls needs Describe on the cluster. (confluent-kafka 2.16
    # drops DescribeAcls' top-level error and shows an empty list, so this
    # asks through kafka-python, which raises it.)
    kp_bob = KafkaAdminClient(**login(secure, pki, BOB).kafka_python())
    with pytest.raises(ClusterAuthorizationFailedError):
        kp_bob.describe_acls(
            ACLFilter(
                principal=None,
                host="*",
                operation=ACLOperation.ANY,
                permission_type=ACLPermissionType.ANY,
                resource_pattern=ResourcePatternFilter(
                    KpResourceType.ANY, None, ACLResourcePatternType.ANY
                ),
            )
        )
    kp_bob.close()


def test_acls_are_described_and_deleted_with_filters(secure, pki):
    admin = admin_of(secure, pki)
    topic = unique_name("acl-filter")
    grant(admin, "User:dave", ResourceType.TOPIC, topic, AclOperation.READ, AclOperation.WRITE)
    by_principal = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, "User:dave", None,
        AclOperation.ANY, AclPermissionType.ANY,
    )
    found = result_of(admin.describe_acls(by_principal))
    assert {(b.name, b.operation) for b in found} == {
        (topic, AclOperation.READ),
        (topic, AclOperation.WRITE),
    }
    deleted = result_of(admin.delete_acls([by_principal])[by_principal])
    assert len(deleted) == 2
    assert result_of(admin.describe_acls(by_principal)) == []


# --- the HTTP API -------------------------------------------------------------------


def basic(user: str, password: str) -> dict:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_the_http_api_needs_basic_credentials_and_the_same_acls(secure, pki):
    topic = unique_name("rest-acl")
    create_topic(secure, pki, topic)
    status, body = secure.http_get("/api/v1/topics")
    assert status == 401, body
    assert "error" in json.loads(body)
    status, _ = secure.http_get("/api/v1/topics", headers=basic("alice", "wrong"))
    assert status == 401
    status, body = secure.http_get(f"/api/v1/topics/{topic}", method="DELETE", headers=basic(*BOB))
    assert status == 403, body
    assert "error" in json.loads(body)
    status, body = secure.http_get("/api/v1/topics", headers=basic(*ADMIN))
    assert status == 200 and topic in body
    assert secure.http_status("/health") == 200
    assert secure.http_status("/ready") == 200


def streamctl(secure, pki, *args, user=None, password=None):
    command = [
        str(Path(binary()).with_name("streamctl")),
        "--server",
        secure.http_url,
        "--ca-cert",
        str(pki.ca_cert),
        *args,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMCTL_")}
    if user:
        env.update({"STREAMCTL_USER": user, "STREAMCTL_PASSWORD": password})
    return subprocess.run(command, capture_output=True, timeout=60, env=env, check=False)


def test_streamctl_manages_users_and_acls_over_https(secure, pki):
    assert secure.http_url.startswith("https://")
    refused = streamctl(secure, pki, "topic", "list")
    assert refused.returncode != 0
    assert b"401" in refused.stderr or b"credentials" in refused.stderr.lower(), refused.stderr

    done = subprocess.run(
        [str(Path(binary()).with_name("streamctl")), "--server", secure.http_url, "--ca-cert",
         str(pki.ca_cert), "user", "set", "frank", "--password-stdin"],
        input=b"frank-secret-6\n",
        capture_output=True,
        timeout=60,
        env={**os.environ, "STREAMCTL_USER": ADMIN[0], "STREAMCTL_PASSWORD": ADMIN[1]},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    listed = streamctl(secure, pki, "user", "list", user=ADMIN[0], password=ADMIN[1])
    assert listed.returncode == 0 and b"frank" in listed.stdout, listed
    topic = unique_name("ctl-acl")
    create_topic(secure, pki, topic)
    added = streamctl(
        secure, pki, "acl", "add", "--allow-principal", "User:frank", "--operation", "Describe",
        "--topic", topic, user=ADMIN[0], password=ADMIN[1],
    )
    assert added.returncode == 0, added.stderr
    acls = streamctl(secure, pki, "acl", "list", "--topic", topic, user=ADMIN[0], password=ADMIN[1])
    assert acls.returncode == 0 and b"User:frank" in acls.stdout, acls
    # frank logs in over Kafka with the password streamctl set, and sees the topic.
    frank = login(secure, pki, ("frank", "frank-secret-6"), mechanism="SCRAM-SHA-512").admin()
    assert topic in frank.list_topics(timeout=15).topics
    frank_topics = streamctl(secure, pki, "topic", "list", user="frank", password="frank-secret-6")
    assert frank_topics.returncode == 0 and topic.encode() in frank_topics.stdout, frank_topics
    removed = streamctl(
        secure, pki, "acl", "remove", "--allow-principal", "User:frank", "--operation", "Describe",
        "--topic", topic, user=ADMIN[0], password=ADMIN[1],
    )
    assert removed.returncode == 0, removed.stderr


def test_no_secret_appears_in_logs_metrics_or_describe_configs(secure, pki):
    """Runs last in this module: by now every kind of login, good and bad,
    has happened."""
    secrets = [ADMIN[1], ALICE[1], BOB[1], "frank-secret-6", "wrong-password", "whatever-password"]
    key_body = "".join(
        line
        for line in pki.server_key.read_text().splitlines()
        if line and not line.startswith("-----")
    )
    secrets.append(key_body[:40])
    # The object store's secret, when it is distinctive enough to search for
    # (the test S3 server's may be a plain word that names other things).
    s3_secret = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    if len(s3_secret) >= 12:
        secrets.append(s3_secret)
    admin = admin_of(secure, pki)
    broker_id = next(iter(admin.list_topics(timeout=15).brokers))
    resource = ConfigResource(ConfigResource.Type.BROKER, str(broker_id))
    described = result_of(admin.describe_configs([resource])[resource])
    broker_configs = " ".join(f"{k}={v.value}" for k, v in described.items())
    _, metrics = secure.http_get("/metrics")
    for name, text in [
        ("the log", secure.log_since(0)),
        ("/metrics", metrics),
        ("DescribeConfigs(BROKER)", broker_configs),
    ]:
        leaked = [secret for secret in secrets if secret in text]
        assert not leaked, f"{name} shows {leaked}"
