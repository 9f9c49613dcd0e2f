"""KafkaJS (Node.js, its own protocol code) against a real agent: records
in every codec it supports, a consumer group growing from two members to
three, and the admin client's topic, group, offset and config calls.

The scenarios are kafkajs/suite.js; each prints what KafkaJS saw and the
assertions are made here."""

import base64
import time

import pytest

from security import run_kafkajs
from support import unique_name

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
CODEC_PARTITIONS = 3
GROUP_PARTITIONS = 4


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def sample_records() -> list[dict]:
    """Records as KafkaJS sends them, base64-encoded: keyed, keyless and
    empty-keyed, tombstones, binary and compressible values, repeated and
    empty headers, explicit timestamps; each to a chosen partition."""
    now = int(time.time() * 1000)
    records = []
    for i in range(30):
        key = [b"user-%d" % (i % 4), None, b"", ("cl\u00e9-%d" % i).encode()][i % 4]
        value = [
            b"value %d" % i,
            None,
            bytes(range(256)) * 16,
            ("h\u00e9llo \u2713 %d" % i).encode(),
            b"",
        ][i % 5]
        headers = [
            [],
            [("trace", b"a"), ("trace", b"b"), ("empty", b"")],
            [("blob", bytes(range(256)))],
        ][i % 3]
        records.append(
            {
                "partition": i % CODEC_PARTITIONS,
                "key": b64(key),
                "value": b64(value),
                "headers": [[name, b64(v)] for name, v in headers],
                "timestamp": now - (30 - i) * 1000,
            }
        )
    return records


def run(server, scenario: str, **config) -> dict:
    result = run_kafkajs(
        "suite.js", {"scenario": scenario, "brokers": [server.bootstrap], **config}, timeout=120
    )
    assert "error" not in result, f"KafkaJS {scenario}: {result}"
    return result


@pytest.fixture(scope="module")
def codec_run(server):
    records = sample_records()
    topics = {codec: unique_name(f"kafkajs-{codec}") for codec in CODECS}
    result = run(
        server,
        "codecs",
        topics=topics,
        records=records,
        partitions=CODEC_PARTITIONS,
        group=unique_name("kafkajs-codecs"),
    )
    return records, topics, result


@pytest.mark.parametrize("codec", CODECS)
def test_every_record_comes_back_once_in_order_in_each_codec(codec_run, codec):
    records, topics, result = codec_run
    per_partition = {
        p: [r for r in records if r["partition"] == p] for p in range(CODEC_PARTITIONS)
    }
    produced = result["produced"][codec]
    assert produced == [
        {"partition": p, "errorCode": 0, "baseOffset": 0} for p in range(CODEC_PARTITIONS)
    ], "each partition's batch starts at offset 0 of a fresh topic"

    consumed = [c for c in result["consumed"] if c["topic"] == topics[codec]]
    for partition, expected in per_partition.items():
        read = [c for c in consumed if c["partition"] == partition]
        assert [c["offset"] for c in read] == list(range(len(expected))), (
            f"{codec}: partition {partition} read offsets {[c['offset'] for c in read]}"
        )
        for offset, (record, message) in enumerate(zip(expected, read, strict=True)):
            wanted = {k: record[k] for k in ("key", "value", "headers", "timestamp")}
            actual = {k: message[k] for k in ("key", "value", "headers", "timestamp")}
            assert actual == wanted, f"{codec}: partition {partition} offset {offset}"
    assert len(consumed) == len(records)


@pytest.fixture(scope="module")
def group_run(server):
    topic, group = unique_name("kafkajs-group"), unique_name("kafkajs-group")
    result = run(server, "group", topic=topic, group=group, partitions=GROUP_PARTITIONS)
    return topic, group, result


def assert_split(split: list[dict], sizes: list[int]) -> dict[str, list[int]]:
    owned = [member["partitions"] for member in split]
    assert sorted(p for partitions in owned for p in partitions) == list(range(GROUP_PARTITIONS)), (
        f"every partition assigned exactly once: {split}"
    )
    assert sorted(map(len, owned)) == sizes, f"assignment sizes: {split}"
    return {member["name"]: member["partitions"] for member in split}


def test_a_group_of_two_splits_four_partitions_and_a_third_member_gets_a_share(group_run):
    _topic, _group, result = group_run
    two = assert_split(result["two"], [2, 2])
    three = assert_split(result["three"], [1, 1, 2])
    records = result["records"]

    def values(member: str, label: str) -> list[tuple[int, int, str]]:
        return [
            (r["partition"], r["offset"], base64.b64decode(r["value"]).decode())
            for r in records[member]
            if base64.b64decode(r["value"]).decode().startswith(label)
        ]

    for label, split, first, count in (("round1", two, 0, 8), ("round2", three, 8, 4)):
        read = sorted(v for member in records for v in values(member, label))
        expected = sorted(
            (p, first + i, f"{label}-{p}-{i}")
            for p in range(GROUP_PARTITIONS)
            for i in range(count)
        )
        assert read == expected, f"{label}: every record read exactly once"
        for member, partitions in split.items():
            mine = values(member, label)
            assert {p for p, _, _ in mine} == set(partitions), (
                f"{label}: member {member} owns {partitions} and read {mine}"
            )
            for partition in partitions:
                offsets = [o for p, o, _ in mine if p == partition]
                assert offsets == sorted(offsets), f"{label}: partition {partition} out of order"


def test_describe_groups_and_fetch_offsets_show_the_members_and_their_commits(group_run):
    _topic, group, result = group_run
    (described,) = result["described"]
    assert described["groupId"] == group
    assert described["errorCode"] == 0
    assert described["state"] == "Stable"
    assert described["protocolType"] == "consumer"
    assert described["protocol"] == "RoundRobinAssigner"
    assert {m["clientId"] for m in described["members"]} == {"streamhouse-kafkajs-suite"}
    assignments = {m["memberId"]: m["partitions"] for m in described["members"]}
    assert assignments == {m["memberId"]: m["partitions"] for m in result["three"]}
    assert result["listed"] == [{"groupId": group, "protocolType": "consumer"}]
    assert result["committed"] == [[p, 12] for p in range(GROUP_PARTITIONS)]


def test_reset_offsets_moves_where_a_member_resumes_and_delete_groups_drops_the_offsets(
    server, group_run
):
    topic, group, _ = group_run
    result = run(server, "reset_offsets", topic=topic, group=group, partitions=GROUP_PARTITIONS)
    assert result["before"] == [[p, 12] for p in range(GROUP_PARTITIONS)]

    reread = sorted((r["partition"], r["offset"]) for r in result["reread"])
    assert reread == [(p, o) for p in range(GROUP_PARTITIONS) for o in range(12)], (
        "after a reset to the earliest offsets every record is read again, once"
    )

    # Two more records per partition (offsets 12, 13) came before the reset
    # to the latest offsets; the member then reads only offset 14.
    assert result["afterLatest"] == [[p, 14] for p in range(GROUP_PARTITIONS)]
    resumed = sorted(
        (r["partition"], r["offset"], base64.b64decode(r["value"]).decode())
        for r in result["resumed"]
    )
    assert resumed == [(p, 14, f"round4-{p}-0") for p in range(GROUP_PARTITIONS)]

    assert result["deleted"] == [{"groupId": group, "errorCode": 0}]
    assert result["listedAfterDelete"] == []
    assert result["offsetsAfterDelete"] == [[p, -1] for p in range(GROUP_PARTITIONS)]


def test_admin_topics_offsets_records_and_the_brokers_configs(server):
    topics = [unique_name("kafkajs-admin-a"), unique_name("kafkajs-admin-b")]
    base = int(time.time() * 1000) - 60_000
    result = run(server, "admin", topics=topics, baseTimestamp=base)
    first, second = topics
    assert result["created"] is True
    assert result["createdAgain"] is False, "creating an existing topic reports false"
    assert result["listed"] == sorted(topics)

    (broker,) = result["brokers"]
    node_id = broker["nodeId"]
    # Small, not a hash of the agent id: each agent id that ever started on
    # this metadata store holds one, and a pass on PostgreSQL starts dozens.
    assert 0 <= node_id < 1024, f"a small broker id: {broker}"
    assert broker["host"] == "127.0.0.1" and broker["port"] == server.kafka_port
    assert result["controller"] == node_id

    partitions = {t["name"]: t["partitions"] for t in result["metadata"]}
    assert partitions == {
        first: [{"partitionId": p, "leader": node_id, "errorCode": 0} for p in range(3)],
        second: [{"partitionId": 0, "leader": node_id, "errorCode": 0}],
    }
    assert result["topicConfigs"] == [
        {
            "errorCode": 0,
            "resourceName": first,
            "entries": {"retention.ms": "3600000", "cleanup.policy": "delete"},
        }
    ]
    assert result["topicOffsets"] == [[0, 0, 6], [1, 0, 0], [2, 0, 0]]
    # The first record at or after the timestamp; KafkaJS answers the high
    # watermark for a partition with none.
    assert result["offsetsByTimestamp"] == [[0, 3], [1, 0], [2, 0]]
    assert result["offsetsAfterDeleteRecords"] == [[0, 4, 6], [1, 0, 0], [2, 0, 0]]
    assert result["grownPartitions"] == 2

    (described,) = result["brokerConfigs"]
    assert described["errorCode"] == 0
    assert described["resourceType"] == 4, "BROKER"
    assert described["resourceName"] == str(node_id)
    assert described["entries"]["broker.id"] == str(node_id)

    assert result["listedAfterDelete"] == []
    assert result["describeDeleted"] == "UNKNOWN_TOPIC_OR_PARTITION"
