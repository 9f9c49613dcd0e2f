"""A secured agent for the security suites: Kafka listeners of every
security protocol, TLS from a throwaway CA, SCRAM users, the ACL
authorizer, and client settings for each real client."""

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from streamhouse import StreamHouse, binary
from tls_ca import Pki

ADMIN = ("admin", "admin-secret-1")
ALICE = ("alice", "alice-secret-2")
BOB = ("bob", "bob-secret-3")
SUPER_USERS = "User:admin"
LISTENERS = ("PLAINTEXT", "SASL_SSL", "SSL", "SASL_PLAINTEXT")
REPO_ROOT = Path(__file__).resolve().parents[2]
# The group confluent-kafka consumers that only assign partitions name.
ASSIGN_GROUP = "assign-only"


def set_user_offline(agent: StreamHouse, user: str, password: str, *flags: str) -> str:
    """`streamhouse user set NAME --password-stdin` on the agent's metadata
    store, before any server runs; returns what it printed."""
    command = [binary(), "user", "set", user, "--password-stdin", "--data-dir", str(agent.data_dir)]
    if agent.metadata:
        command += ["--metadata", agent.metadata]
    result = subprocess.run(
        command + list(flags),
        input=(password + "\n").encode(),
        capture_output=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("STREAMHOUSE_")},
    )
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}: {output}"
    assert password not in output, f"the password was echoed: {output}"
    return output


def secured_agent(base: Path, pki: Pki, name: str = "secured", **settings) -> StreamHouse:
    """An agent (not started) with a listener of each protocol, TLS from
    `pki` (client certificates required on SSL; HTTPS for the HTTP API), the
    ACL authorizer and User:admin as super user, whose password is set
    offline."""
    data_dir = base / name
    data_dir.mkdir(parents=True, exist_ok=True)
    extra = [
        "--tls-cert",
        str(pki.server_cert),
        "--tls-key",
        str(pki.server_key),
        "--tls-client-ca",
        str(pki.ca_cert),
        "--authorizer",
        "acl",
        "--super-users",
        SUPER_USERS,
    ] + settings.pop("extra_args", [])
    agent = StreamHouse(
        data_dir,
        base / f"{name}.log",
        listeners=LISTENERS,
        extra_args=extra + ["--http-tls"],
        http_ca=pki.ca_cert,
        **settings,
    )
    set_user_offline(agent, *ADMIN)
    return agent


@dataclass
class Login:
    """Who connects, through which listener and mechanism."""

    agent: StreamHouse
    pki: Pki
    user: str | None
    password: str | None
    protocol: str = "SASL_SSL"
    mechanism: str = "SCRAM-SHA-256"
    client_cert: bool = False

    def confluent(self, **extra) -> dict:
        config = {
            "bootstrap.servers": self.agent.bootstrap_for(self.protocol),
            "security.protocol": self.protocol,
            "socket.timeout.ms": 10000,
        }
        if "SSL" in self.protocol:
            config["ssl.ca.location"] = str(self.pki.ca_cert)
        if self.client_cert:
            config["ssl.certificate.location"] = str(self.pki.client_cert)
            config["ssl.key.location"] = str(self.pki.client_key)
        if self.protocol.startswith("SASL"):
            config.update(
                {
                    "sasl.mechanism": self.mechanism,
                    "sasl.username": self.user,
                    "sasl.password": self.password,
                }
            )
        config.update(extra)
        return config

    def kcat(self) -> list[str]:
        args = ["-b", self.agent.bootstrap_for(self.protocol)]
        for key, value in self.confluent().items():
            if key != "bootstrap.servers":
                args += ["-X", f"{key}={value}"]
        return [arg.replace("sasl.mechanism=", "sasl.mechanisms=") for arg in args]

    def kafka_python(self) -> dict:
        config = {
            "bootstrap_servers": self.agent.bootstrap_for(self.protocol),
            "security_protocol": self.protocol,
            "request_timeout_ms": 15000,
        }
        if "SSL" in self.protocol:
            config["ssl_cafile"] = str(self.pki.ca_cert)
            config["ssl_check_hostname"] = True
        if self.protocol.startswith("SASL"):
            config.update(
                {
                    "sasl_mechanism": self.mechanism,
                    "sasl_plain_username": self.user,
                    "sasl_plain_password": self.password,
                }
            )
        return config

    def admin(self) -> AdminClient:
        return AdminClient(self.confluent())


def login(agent: StreamHouse, pki: Pki, credentials: tuple[str, str], **kwargs) -> Login:
    return Login(agent, pki, credentials[0], credentials[1], **kwargs)


def result_of(future, timeout: float = 30.0):
    return future.result(timeout=timeout)


def grant(
    admin: AdminClient,
    principal: str,
    resource_type: ResourceType,
    name: str,
    *operations: AclOperation,
    pattern: ResourcePatternType = ResourcePatternType.LITERAL,
    permission: AclPermissionType = AclPermissionType.ALLOW,
    host: str = "*",
) -> None:
    bindings = [
        AclBinding(resource_type, name, pattern, principal, host, operation, permission)
        for operation in operations
    ]
    for future in admin.create_acls(bindings, request_timeout=30).values():
        result_of(future)


def error_code(exception: BaseException) -> int | None:
    """The Kafka error code inside a confluent-kafka exception, if any."""
    if isinstance(exception, KafkaException) and exception.args:
        error = exception.args[0]
        if isinstance(error, KafkaError):
            return error.code()
    return None


def produce(config: dict, topic: str, records: list[tuple[bytes, bytes]], timeout=30.0) -> list:
    """Produces keyed records with a header each; returns the delivery
    errors (None for each success)."""
    producer = Producer({**config, "message.timeout.ms": int(timeout * 1000), "linger.ms": 5})
    outcomes: list = []
    for key, value in records:
        producer.produce(
            topic,
            value=value,
            key=key,
            headers=[("origin", b"security-suite")],
            on_delivery=lambda err, _msg: outcomes.append(err),
        )
    producer.flush(timeout + 5)
    assert len(outcomes) == len(records), f"{len(outcomes)} of {len(records)} reports"
    return outcomes


def consume_assigned(config: dict, topic: str, count: int, timeout: float = 30.0):
    """Reads `count` records of partition 0 from the beginning without a
    group; returns (records, the first error seen)."""
    from confluent_kafka import TopicPartition

    # confluent-kafka wants a group.id even to assign, and librdkafka looks
    # its coordinator up (Describe on ASSIGN_GROUP; tests grant it).
    consumer = Consumer(
        {
            **config,
            "group.id": ASSIGN_GROUP,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    records, error = [], None
    deadline = time.monotonic() + timeout
    try:
        while len(records) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                error = message.error()
                if error.code() != KafkaError._PARTITION_EOF:
                    break
                continue
            records.append((message.key(), message.value(), message.headers()))
    finally:
        consumer.close()
    return records, error


def run_kafkajs(script: str, config: dict, timeout: float = 90.0) -> dict:
    node_modules = os.environ.get("STREAMHOUSE_CLIENTS_NODE_MODULES")
    assert node_modules, (
        "STREAMHOUSE_CLIENTS_NODE_MODULES is not set: scripts/lib/client_suites.sh installs "
        "KafkaJS (sh_ensure_kafkajs) and sets it"
    )
    result = subprocess.run(
        ["node", str(REPO_ROOT / "tests" / "clients" / "kafkajs" / script), json.dumps(config)],
        capture_output=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "NODE_PATH": node_modules},
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return json.loads(result.stdout.decode().strip().splitlines()[-1])
