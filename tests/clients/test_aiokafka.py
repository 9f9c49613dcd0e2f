"""aiokafka (asyncio, its own protocol code) against a real agent: records
in each codec, a group that commits and resumes, seek_to_beginning,
offsets_for_times, and the admin client."""

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from support import CLIENT_TIMEOUT, Rec, unique_name

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]


def run(coroutine):
    """Runs one test's coroutine, failing it rather than hanging."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout=2 * CLIENT_TIMEOUT))


def sample_records() -> list[Rec]:
    now = int(time.time() * 1000)
    return [
        Rec(b"user-1", b"first", [("trace", b"a"), ("trace", b"b"), ("empty", b"")], now - 5000),
        Rec(None, b"no key", [], now - 4000),
        Rec(b"user-2", b"", [], now - 3000),
        Rec(b"user-1", None, [("reason", b"tombstone")], now),
        Rec(b"", b"empty key", [], now + 1),
        Rec(b"binary", bytes(range(256)) * 64, [("blob", bytes(range(256)))], now + 2),
        Rec("cl\u00e9".encode(), "h\u00e9llo \u2713".encode(), [("\u00fc", "\u00ff".encode())], 1),
    ]


def producer(server, **overrides) -> AIOKafkaProducer:
    config = {"acks": "all", "linger_ms": 5, "request_timeout_ms": 30000}
    config.update(overrides)
    return AIOKafkaProducer(bootstrap_servers=server.bootstrap, **config)


def consumer(server, *topics, **overrides) -> AIOKafkaConsumer:
    config = {
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": 100,
    }
    config.update(overrides)
    return AIOKafkaConsumer(*topics, bootstrap_servers=server.bootstrap, **config)


async def send_all(server, topic: str, records: list[Rec], partition: int | None = None, **kw):
    client = producer(server, **kw)
    await client.start()
    try:
        futures = [
            await client.send(
                topic,
                key=r.key,
                value=r.value,
                headers=r.headers,
                timestamp_ms=r.timestamp,
                partition=partition,
            )
            for r in records
        ]
        return [await future for future in futures]
    finally:
        await client.stop()


async def read(client: AIOKafkaConsumer, count: int) -> list:
    records: list = []
    deadline = time.monotonic() + CLIENT_TIMEOUT
    while len(records) < count:
        assert time.monotonic() < deadline, f"read {len(records)} of {count} records"
        polled = await client.getmany(timeout_ms=500, max_records=count - len(records))
        for batch in polled.values():
            records.extend(batch)
    return records


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c or "none")
def test_every_field_round_trips(server, codec):
    topic = unique_name(f"aiokafka-{codec or 'none'}")
    records = sample_records()

    async def scenario():
        delivered = await send_all(server, topic, records, compression_type=codec)
        assert [(m.partition, m.offset) for m in delivered] == [
            (0, o) for o in range(len(records))
        ]
        client = consumer(server)
        await client.start()
        try:
            client.assign([TopicPartition(topic, 0)])
            return await read(client, len(records))
        finally:
            await client.stop()

    consumed = run(scenario())
    assert [c.offset for c in consumed] == list(range(len(records)))
    for record, message in zip(records, consumed, strict=True):
        actual = Rec(message.key, message.value, list(message.headers), message.timestamp)
        assert actual == record, f"offset {message.offset}"
        assert message.timestamp_type == 0, "expected CreateTime"


def test_a_group_commits_and_a_new_member_resumes_and_can_seek_to_the_beginning(server):
    topic, group = unique_name("aiokafka-group"), unique_name("aiokafka-group")

    async def scenario():
        await send_all(server, topic, [Rec(None, b"%d" % i) for i in range(20)], partition=0)
        partition = TopicPartition(topic, 0)

        first = consumer(server, topic, group_id=group)
        await first.start()
        try:
            head = await read(first, 12)
            await first.commit({partition: head[-1].offset + 1})
            committed = await first.committed(partition)
        finally:
            await first.stop()

        second = consumer(server, topic, group_id=group)
        await second.start()
        try:
            tail = await read(second, 8)
            # Back to the log start: everything again, from offset 0.
            await second.seek_to_beginning(partition)
            again = await read(second, 20)
            await second.commit()
            recommitted = await second.committed(partition)
        finally:
            await second.stop()
        return head, committed, tail, again, recommitted

    head, committed, tail, again, recommitted = run(scenario())
    assert [(m.offset, m.value) for m in head] == [(i, b"%d" % i) for i in range(12)]
    assert committed == 12
    assert [(m.offset, m.value) for m in tail] == [(i, b"%d" % i) for i in range(12, 20)]
    assert [m.offset for m in again] == list(range(20))
    assert recommitted == 20


def test_offsets_for_times_and_the_partition_ends(server):
    topic = unique_name("aiokafka-times")
    base = int(time.time() * 1000) - 60_000
    records = [Rec(None, b"%d" % i, [], base + i * 1000) for i in range(10)]

    async def scenario():
        await send_all(server, topic, records, partition=0)
        client = consumer(server)
        await client.start()
        try:
            partition = TopicPartition(topic, 0)
            client.assign([partition])
            lookups = {}
            for label, timestamp in (
                ("before", base - 10_000),
                ("exact", base + 3000),
                ("between", base + 3500),
                ("after", base + 60_000),
            ):
                found = await client.offsets_for_times({partition: timestamp})
                lookups[label] = found[partition]
            ends = (
                await client.beginning_offsets([partition]),
                await client.end_offsets([partition]),
            )
            return lookups, ends, partition
        finally:
            await client.stop()

    lookups, (beginning, end), partition = run(scenario())
    assert (lookups["before"].offset, lookups["before"].timestamp) == (0, base)
    assert (lookups["exact"].offset, lookups["exact"].timestamp) == (3, base + 3000)
    assert (lookups["between"].offset, lookups["between"].timestamp) == (4, base + 4000)
    assert lookups["after"] is None, "no record at or after a later timestamp"
    assert beginning == {partition: 0}
    assert end == {partition: 10}


def test_admin_client_topics_configs_groups_and_records(server):
    topic, other, group = (
        unique_name("aiokafka-admin"),
        unique_name("aiokafka-admin"),
        unique_name("aiokafka-admin"),
    )

    async def scenario():
        admin = AIOKafkaAdminClient(bootstrap_servers=server.bootstrap)
        await admin.start()
        seen = {}
        try:
            created = await admin.create_topics(
                [
                    NewTopic(topic, 3, 1, topic_configs={"retention.ms": "3600000"}),
                    NewTopic(other, 1, 1),
                ]
            )
            seen["created"] = [(name, code) for name, code, *_ in created.topic_errors]
            again = await admin.create_topics([NewTopic(topic, 3, 1)])
            seen["again"] = [code for _, code, *_ in again.topic_errors]
            seen["listed"] = {topic, other} & set(await admin.list_topics())
            described = await admin.describe_topics([topic, other])
            seen["described"] = {
                t["topic"]: (t["error_code"], sorted(p["partition"] for p in t["partitions"]))
                for t in described
            }
            cluster = await admin.describe_cluster()
            seen["brokers"] = [(b["node_id"], b["host"], b["port"]) for b in cluster["brokers"]]
            node_id = cluster["brokers"][0]["node_id"]

            (topic_configs,) = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": None})]
            )
            seen["topic_configs"] = [
                (r[0], r[3], {c[0]: c[1] for c in r[4]}) for r in topic_configs.resources
            ]
            (broker_configs,) = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.BROKER, str(node_id))]
            )
            seen["broker_configs"] = [
                (r[0], r[2], r[3], {c[0]: c[1] for c in r[4]}) for r in broker_configs.resources
            ]

            await admin.create_partitions({other: NewPartitions(2)})
            (grown,) = await admin.describe_topics([other])
            seen["grown"] = len(grown["partitions"])

            # A group with a member and a commit.
            await send_all(server, topic, [Rec(None, b"%d" % i) for i in range(6)], partition=1)
            member = consumer(server, topic, group_id=group)
            await member.start()
            try:
                await read(member, 6)
                await member.commit()
                seen["groups"] = [g for g in await admin.list_consumer_groups() if g[0] == group]
                (described_group,) = await admin.describe_consumer_groups([group])
                seen["group"] = described_group.to_object()["groups"]
            finally:
                await member.stop()
            offsets = await admin.list_consumer_group_offsets(group)
            seen["offsets"] = {
                (tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()
            }

            deleted = await admin.delete_records({TopicPartition(topic, 1): RecordsToDelete(4)})
            seen["low_watermark"] = deleted[TopicPartition(topic, 1)]

            await admin.delete_topics([topic, other])
            seen["after_delete"] = {topic, other} & set(await admin.list_topics())
        finally:
            await admin.close()
        return seen

    seen = run(scenario())
    assert seen["created"] == [(topic, 0), (other, 0)]
    assert seen["again"] == [TopicAlreadyExistsError.errno]
    assert seen["listed"] == {topic, other}
    assert seen["described"] == {topic: (0, [0, 1, 2]), other: (0, [0])}
    (broker,) = seen["brokers"]
    node_id = broker[0]
    assert broker == (node_id, "127.0.0.1", server.kafka_port)
    # Small, not a hash of the agent id: each agent id that ever started on
    # this metadata store holds one, and a pass on PostgreSQL starts dozens.
    assert 0 <= node_id < 1024, f"a small broker id: {broker}"
    assert seen["topic_configs"] == [(0, topic, {"retention.ms": "3600000"})]
    ((code, resource_type, name, entries),) = seen["broker_configs"]
    assert (code, resource_type, name) == (0, ConfigResourceType.BROKER, str(node_id))
    assert entries["broker.id"] == str(node_id)
    assert seen["grown"] == 2

    assert seen["groups"] == [(group, "consumer")]
    (described,) = seen["group"]
    assert described["group"] == group and described["error_code"] == 0
    assert described["state"] == "Stable" and described["protocol_type"] == "consumer"
    assert len(described["members"]) == 1
    # commit() commits the position of every assigned partition, empty ones too.
    assert seen["offsets"] == {(topic, 0): 0, (topic, 1): 6, (topic, 2): 0}
    assert seen["low_watermark"] == 4
    assert seen["after_delete"] == set()
