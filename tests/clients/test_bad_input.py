"""Bad input on the Kafka port: each one is answered or the connection
closed, as Kafka does, and the server keeps serving other clients. Also the
errors a client gets for partitions and topics that do not exist."""

import socket
import struct

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

import kafka_wire as wire
from support import (
    CLIENT_TIMEOUT,
    Rec,
    confluent_config,
    new_producer,
    produce_all,
    read_partition,
    unique_name,
    wait_until,
)


def assert_server_still_serves(server):
    assert server.running(), "streamhouse exited\n" + server.log_tail()
    topic = unique_name("still-serving")
    (delivered,) = produce_all(new_producer(server.bootstrap), topic, [Rec(b"k", b"ok")])
    assert delivered.offset() == 0
    assert [m.value() for m in read_partition(server.bootstrap, topic, 0)] == [b"ok"]


BAD_FRAMES = {
    # A length prefix promising more than is ever sent.
    "truncated-frame": struct.pack(">i", 100) + b"\x00\x12\x00\x00\x00\x00",
    "frame-over-100MiB": struct.pack(">i", 200 * 1024 * 1024) + b"\x00" * 64,
    "negative-length": struct.pack(">i", -5) + b"\x00" * 16,
    "http-request": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "garbage-in-a-frame": wire.frame(bytes(range(7, 200, 3)) * 3),
    # A Produce request whose topic array claims 2^31-1 entries.
    "produce-absurd-array": wire.request(
        wire.API_PRODUCE, 3, 7, struct.pack(">hhii", -1, 1, 1000, 0x7FFFFFFF)
    ),
    "unknown-api-key": wire.request(999, 0, 7),
    "metadata-unsupported-version": wire.request(wire.API_METADATA, 99, 7, flexible=True),
}


@pytest.mark.parametrize("data", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
def test_bad_input_closes_the_connection(server, data):
    with wire.Connection(server.bootstrap) as connection:
        connection.send(data)
        if data is BAD_FRAMES["truncated-frame"]:
            # The client gives up: the server sees end of input mid-frame.
            connection.sock.shutdown(socket.SHUT_WR)
        assert connection.closed_by_server() == b"", "expected a close without an answer"
    assert_server_still_serves(server)


def test_api_versions_from_the_future_gets_a_v0_unsupported_version_answer(server):
    with wire.Connection(server.bootstrap) as connection:
        connection.send(wire.request(wire.API_VERSIONS, 99, 4242, flexible=True))
        correlation_id, error_code, keys = wire.parse_api_versions_v0(connection.read_response())

        assert (correlation_id, error_code) == (4242, wire.UNSUPPORTED_VERSION)
        low, high = keys[wire.API_VERSIONS]
        assert low == 0 and high >= 3, "the answer must tell the client which versions to use"

        # The connection stays usable for a version the server knows.
        connection.send(wire.request(wire.API_VERSIONS, 0, 4243))
        correlation_id, error_code, keys = wire.parse_api_versions_v0(connection.read_response())
        assert (correlation_id, error_code) == (4243, 0)
        assert wire.API_PRODUCE in keys
    assert_server_still_serves(server)


def create_topic(server, partitions: int) -> str:
    topic = unique_name("bad-input")
    admin = AdminClient(confluent_config(server.bootstrap))
    (future,) = admin.create_topics([NewTopic(topic, partitions, 1)]).values()
    future.result(timeout=CLIENT_TIMEOUT)
    return topic


def test_raw_produce_to_a_missing_partition_is_unknown_topic_or_partition(server):
    topic = create_topic(server, 2)
    with wire.Connection(server.bootstrap) as connection:
        connection.send(wire.produce_v3(topic, 5, 11))
        correlation_id, results = wire.parse_produce_v3(connection.read_response())
    assert correlation_id == 11
    assert [(t, p, e) for t, p, e, _ in results] == [(topic, 5, wire.UNKNOWN_TOPIC_OR_PARTITION)]
    assert_server_still_serves(server)


def test_confluent_produce_to_a_missing_partition_fails(server):
    topic = create_topic(server, 2)
    producer = new_producer(server.bootstrap, **{"message.timeout.ms": 10000})
    reports = []
    producer.produce(topic, b"warm-up", partition=0, on_delivery=lambda e, m: None)
    assert producer.flush(CLIENT_TIMEOUT) == 0
    try:
        producer.produce(
            topic, b"nowhere", partition=5, on_delivery=lambda error, message: reports.append(error)
        )
        assert producer.flush(CLIENT_TIMEOUT) == 0
        (error,) = reports
    except KafkaException as raised:
        error = raised.args[0]
    assert error is not None and error.code() in (
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
    ), error


def test_produce_without_auto_creation_to_an_unknown_topic_fails(server):
    topic = unique_name("not-auto-created")
    producer = new_producer(
        server.bootstrap,
        **{
            "allow.auto.create.topics": False,
            "message.timeout.ms": 5000,
            "topic.metadata.propagation.max.ms": 1000,
        },
    )
    reports = []
    producer.produce(topic, b"nowhere", on_delivery=lambda error, message: reports.append(error))
    assert producer.flush(CLIENT_TIMEOUT) == 0
    (error,) = reports
    assert error is not None and error.code() in (
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
    ), error
    admin = AdminClient(confluent_config(server.bootstrap))
    assert topic not in admin.list_topics(timeout=CLIENT_TIMEOUT).topics


def test_sasl_client_on_a_plaintext_listener_gets_an_authentication_error(server):
    """As from Kafka: a PLAINTEXT listener answers SaslHandshake with
    ILLEGAL_SASL_STATE, which librdkafka reports as an authentication error
    at once instead of hanging."""
    errors = []
    producer = Producer(
        confluent_config(
            server.bootstrap,
            **{
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "PLAIN",
                "sasl.username": "user",
                "sasl.password": "secret",
                "error_cb": errors.append,
                "log_level": 0,
            },
        )
    )
    producer.produce(unique_name("sasl"), b"never written")

    def error_reported():
        producer.poll(0.1)
        return errors

    wait_until(error_reported, CLIENT_TIMEOUT, "no error reported to a SASL client")
    assert errors[0].code() == KafkaError._AUTHENTICATION, errors[0]
    assert "Request not valid in current SASL state" in errors[0].str(), errors[0]
    producer.purge()
    producer.flush(CLIENT_TIMEOUT)
