"""Key compaction (cleanup.policy=compact) as Kafka clients see it: each
key's latest record stays readable at the offset it was produced at,
tombstones go once delete.retention.ms has passed, readers that race the
cleaner never see a key go back in time, consumer groups commit and resume
across the gaps, the log start offset stays where it was, and an agent
killed in the middle of a pass leaves data that `streamhouse check` finds
consistent."""

import os
import random
import re
import subprocess
import threading
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streamhouse import StreamHouse, binary
from support import (
    CLIENT_TIMEOUT,
    Rec,
    confluent_config,
    new_consumer,
    new_producer,
    produce_all,
    unique_name,
    wait_until,
    watermarks,
)

# Jobs every 200 ms (and no wait before small segments are merged), so that
# compaction follows writes within a fraction of a second instead of the
# 30 s default. Output objects of 1 MiB make a pass over a few MiB write,
# and swap in, several objects one after the other: a kill can land between
# two swaps. The compaction debug log carries "key map built" and
# "compacted", the moments test (d) kills at.
JOB_ENVIRONMENT = {
    "STREAMHOUSE_JOB_INTERVAL_MS": "200",
    "STREAMHOUSE_COMPACTION_SPAN_MS": "0",
    "RUST_LOG": "info,streamhouse_storage::jobs::compaction=debug",
}
TARGET_BYTES = 1 << 20

# A few seconds: long enough for a reader polling every few hundred ms to
# see the tombstones after the cleaner first kept them, short enough that
# waiting for them to go costs little.
DELETE_RETENTION_MS = 5000
COMPACT = {
    "cleanup.policy": "compact",
    "delete.retention.ms": str(DELETE_RETENTION_MS),
    # Kafka's default 0.5 would leave a partition alone until half of it is
    # dirty; a low ratio compacts after every new flush.
    "min.cleanable.dirty.ratio": "0.01",
}


@pytest.fixture(scope="module")
def jobs_server(request, tmp_path_factory, server_logs):
    data_dir = tmp_path_factory.mktemp(request.module.__name__)
    agent = StreamHouse(
        data_dir,
        data_dir / "streamhouse.log",
        environment=JOB_ENVIRONMENT,
        extra_args=["--compaction-target-bytes", str(TARGET_BYTES)],
    )
    server_logs.append(agent)
    agent.start()
    yield agent
    assert agent.stop() == 0, agent.log_tail()


def create_topic(server: StreamHouse, label: str, config: dict) -> str:
    topic = unique_name(label)
    admin = AdminClient(confluent_config(server.bootstrap))
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=1, replication_factor=1, config=config)]
    )
    futures[topic].result(timeout=CLIENT_TIMEOUT)
    return topic


def interleaved_versions(keys: int, versions: int, rng: random.Random, first: int = 0) -> list:
    """(key, version) pairs: `versions` versions of each key, keys mixed at
    random and each key's versions in order, so that a key's latest record
    can sit anywhere in the log."""
    slots = [k for k in range(keys) for _ in range(versions)]
    rng.shuffle(slots)
    next_version = dict.fromkeys(range(keys), first)
    pairs = []
    for k in slots:
        pairs.append((k, next_version[k]))
        next_version[k] += 1
    return pairs


def key_of(k: int) -> bytes:
    return b"key-%05d" % k


def value_of(k: int, version: int, padding: bytes = b"") -> bytes:
    return b"%05d:%06d:" % (k, version) + padding


def version_in(value: bytes) -> int:
    return int(value.split(b":", 2)[1])


def eof_consumer(bootstrap: str):
    return new_consumer(bootstrap, **{"enable.partition.eof": True})


def read_all(bootstrap: str, topic: str, start: int = OFFSET_BEGINNING, consumer=None) -> list:
    """(offset, key, value) of every record of partition 0 from `start` up
    to the high watermark, as one consumer reads them (until it reports the
    end of the partition); gaps are simply absent. `consumer`, from
    `eof_consumer`, is reused rather than a new one made and closed."""
    own = consumer is None
    consumer = consumer or eof_consumer(bootstrap)
    try:
        consumer.assign([TopicPartition(topic, 0, start)])
        records = []
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while True:
            assert time.monotonic() < deadline, (
                f"{topic}: no end of partition after {len(records)} records "
                f"within {CLIENT_TIMEOUT:.0f} s"
            )
            # consume() waits for all 1000 or the timeout: a short one, so
            # that the end of the partition is seen soon after it is queued.
            for message in consumer.consume(num_messages=1000, timeout=0.05):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return records
                    raise AssertionError(f"{topic}: consume error {error}")
                records.append((message.offset(), message.key(), message.value()))
    finally:
        if own:
            consumer.close()


def check_read(records: list[tuple], produced: dict, where: str) -> None:
    """What holds of any read at any time: offsets increase, and each record
    is the one produced at its offset."""
    offsets = [offset for offset, _, _ in records]
    assert offsets == sorted(set(offsets)), f"{where}: offsets not increasing: {offsets[:50]}…"
    for offset, key, value in records:
        assert produced.get(offset) == (key, value), (
            f"{where}: offset {offset} holds {key!r}={value!r}, "
            f"produced {produced.get(offset)!r}"
        )


def describe(records: list[tuple], expected: dict) -> str:
    read = {offset: (key, value) for offset, key, value in records}
    missing = sorted(set(expected) - set(read))
    extra = sorted(set(read) - set(expected))
    tombstones = sum(1 for _, _, value in records if value is None)
    return (
        f"read {len(records)} records ({tombstones} tombstones), expected {len(expected)}; "
        f"missing offsets {missing[:10]}, unexpected {extra[:10]}"
    )


def test_latest_values_and_tombstones_stay_at_their_offsets(jobs_server):
    keys, versions, tombstoned = 200, 50, 20
    rng = random.Random(1)
    topic = create_topic(jobs_server, "compact-latest", COMPACT)
    gone = set(rng.sample(range(keys), tombstoned))
    pairs = interleaved_versions(keys, versions, rng)
    records = [
        Rec(key_of(k), None if k in gone and v == versions - 1 else value_of(k, v))
        for k, v in pairs
    ]
    delivered = produce_all(new_producer(jobs_server.bootstrap), topic, records, 0)
    produced_at = time.monotonic()
    produced = {m.offset(): (r.key, r.value) for m, r in zip(delivered, records)}
    assert sorted(produced) == list(range(keys * versions))
    latest = {}
    for offset in sorted(produced):
        latest[produced[offset][0]] = offset
    with_tombstones = {offset: produced[offset] for offset in latest.values()}
    without = {o: kv for o, kv in with_tombstones.items() if kv[1] is not None}
    assert (len(with_tombstones), len(without)) == (200, 180)

    # The latest record of every key is readable on every read, compacted
    # or not; the cleaner only takes away.
    def read() -> list[tuple]:
        records = read_all(jobs_server.bootstrap, topic)
        check_read(records, produced, topic)
        read_offsets = {offset for offset, _, _ in records}
        missing = sorted(set(without) - read_offsets)
        assert not missing, f"{topic}: latest values missing at offsets {missing[:10]}"
        return records

    last = []

    def compacted(expected: dict) -> bool:
        last[:] = read()
        found = {o: (k, v) for o, k, v in last}
        if expected is with_tombstones and found == without:
            pytest.fail(f"{topic}: the tombstones went before a reader saw them compacted")
        return found == expected

    # Compaction is prompt (jobs every 200 ms, a low dirty ratio); 30 s
    # leaves room for a slow machine. Tombstones stay delete.retention.ms
    # after the cleaner first compacted them, so the compacted state with
    # tombstones lasts a few seconds: reads every 200 ms see it.
    wait_until(
        lambda: compacted(with_tombstones),
        30,
        lambda: f"{topic}: not compacted to the latest value of each key: "
        + describe(last, with_tombstones),
        interval=0.2,
    )
    wait_until(
        lambda: compacted(without),
        30,
        lambda: f"{topic}: tombstones still readable {DELETE_RETENTION_MS} ms after compaction: "
        + describe(last, without),
        interval=0.2,
    )
    assert time.monotonic() - produced_at >= DELETE_RETENTION_MS / 1000, (
        f"{topic}: tombstones removed sooner than delete.retention.ms after they were written"
    )
    # Offsets never change: the log still starts at 0 and ends where it did.
    assert watermarks(jobs_server.bootstrap, topic, 0) == (0, keys * versions)

    # From an offset the cleaner removed, a reader gets the next kept record.
    kept = sorted(without)
    superseded = next(o for o in range(kept[len(kept) // 2], -1, -1) if o not in without)
    removed_tombstone = max(o for o in set(with_tombstones) - set(without) if o < kept[-1])
    for start in (superseded, removed_tombstone):
        after = [o for o in kept if o > start]
        first = read_all(jobs_server.bootstrap, topic, start)
        assert first and first[0][0] == after[0], (
            f"{topic}: reading from removed offset {start} began at "
            f"{first[0][0] if first else None}, expected {after[0]}"
        )
        assert [o for o, _, _ in first] == after


def test_readers_racing_the_cleaner_never_go_back(jobs_server):
    keys, rounds, per_round = 100, 6, 5
    rng = random.Random(2)
    topic = create_topic(jobs_server, "compact-race", COMPACT)
    lock = threading.Lock()
    acked: dict[bytes, int] = {}  # key: latest version acknowledged
    produced: dict[int, tuple] = {}
    seen: dict[int, tuple] = {}  # offset: what a reader found there
    problems: list[str] = []
    reads = {"full": 0, "gapped": 0}
    stop = threading.Event()

    def reader():
        consumer = eof_consumer(jobs_server.bootstrap)
        try:
            read_while_written(consumer)
        finally:
            consumer.close()

    def read_while_written(consumer):
        while not stop.is_set():
            with lock:
                wanted = dict(acked)
            try:
                records = read_all(jobs_server.bootstrap, topic, consumer=consumer)
            except AssertionError as error:
                problems.append(str(error))
                return
            versions: dict[bytes, int] = {}
            offsets = [offset for offset, _, _ in records]
            if offsets != sorted(set(offsets)):
                problems.append(f"offsets not increasing in one read: {offsets[:40]}")
            for offset, key, value in records:
                version = version_in(value)
                if version <= versions.get(key, -1):
                    problems.append(f"{key!r}: version {version} at {offset} after {versions[key]}")
                versions[key] = version
                if seen.setdefault(offset, (key, value)) != (key, value):
                    problems.append(
                        f"offset {offset} read as {(key, value)}, before as {seen[offset]}"
                    )
            # Everything acknowledged before the read began is below the
            # high watermark it read to: each key's latest is there.
            behind = [k for k, v in wanted.items() if versions.get(k, -1) < v]
            if behind:
                problems.append(
                    f"a read missed the latest version of {len(behind)} keys: {behind[:5]}"
                )
            reads["full"] += 1
            if offsets and len(offsets) < offsets[-1] + 1:
                reads["gapped"] += 1
            if problems:
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    producer = new_producer(jobs_server.bootstrap)
    try:
        for round_ in range(rounds):
            pairs = interleaved_versions(keys, per_round, rng, first=round_ * per_round)
            records = [Rec(key_of(k), value_of(k, v)) for k, v in pairs]
            delivered = produce_all(producer, topic, records, 0)
            with lock:
                for message, record, (k, v) in zip(delivered, records, pairs):
                    produced[message.offset()] = (record.key, record.value)
                    acked[key_of(k)] = max(acked.get(key_of(k), -1), v)
            # A few job intervals for the cleaner to pass over the round
            # while the reader keeps reading.
            time.sleep(0.8)
            assert not problems, problems[:5]
    finally:
        stop.set()
        thread.join(CLIENT_TIMEOUT + 5)
    assert not problems, problems[:5]
    # Most reads race a pass: the cleaner runs every 200 ms.
    assert reads["gapped"] >= 5, f"{reads['gapped']} of {reads['full']} reads saw compacted data"
    for offset, record in seen.items():
        assert produced.get(offset) == record, (
            f"offset {offset}: read {record}, produced {produced.get(offset)}"
        )

    final = read_all(jobs_server.bootstrap, topic)
    check_read(final, produced, topic)
    latest_read = {}
    for _, key, value in final:
        latest_read[key] = version_in(value)
    assert latest_read == {key_of(k): rounds * per_round - 1 for k in range(keys)}


def test_consumer_group_commits_and_resumes_across_gaps(jobs_server):
    keys, versions = 50, 20
    topic = create_topic(jobs_server, "compact-group", COMPACT)
    pairs = interleaved_versions(keys, versions, random.Random(3))
    records = [Rec(key_of(k), value_of(k, v)) for k, v in pairs]
    delivered = produce_all(new_producer(jobs_server.bootstrap), topic, records, 0)
    latest = {}
    for message in delivered:
        latest[message.key()] = message.offset()
    kept = sorted(latest.values())
    wait_until(
        lambda: [o for o, _, _ in read_all(jobs_server.bootstrap, topic)] == kept,
        30,
        f"{topic}: not compacted to {keys} records",
        interval=0.2,
    )
    assert watermarks(jobs_server.bootstrap, topic, 0) == (0, keys * versions)

    group = unique_name("compact-group")
    first = new_consumer(jobs_server.bootstrap, group)
    try:
        first.subscribe([topic])
        messages = []
        wait_until(
            lambda: messages.extend(first.consume(num_messages=20 - len(messages), timeout=0.5))
            or len(messages) >= 20,
            CLIENT_TIMEOUT,
            lambda: f"{topic}: the group read {len(messages)} of 20 records",
        )
        assert all(m.error() is None for m in messages), [m.error() for m in messages]
        assert [m.offset() for m in messages] == kept[:20]
        # The position after the 20th record, a removed offset unless the
        # 21st record is adjacent: committed and resumed from as Kafka does.
        position = messages[-1].offset() + 1
        first.commit(message=messages[-1], asynchronous=False)
    finally:
        first.close()

    second = new_consumer(jobs_server.bootstrap, group)
    try:
        (committed,) = second.committed([TopicPartition(topic, 0)], timeout=CLIENT_TIMEOUT)
        assert committed.offset == position
        second.subscribe([topic])
        rest = []
        wait_until(
            lambda: rest.extend(second.consume(num_messages=100, timeout=0.5))
            or len(rest) >= keys - 20,
            CLIENT_TIMEOUT,
            lambda: f"{topic}: the group resumed with {len(rest)} of {keys - 20} records",
        )
        assert all(m.error() is None for m in rest), [m.error() for m in rest]
        assert [m.offset() for m in rest] == kept[20:]
        second.commit(asynchronous=False)
        (committed,) = second.committed([TopicPartition(topic, 0)], timeout=CLIENT_TIMEOUT)
        assert committed.offset == kept[-1] + 1
    finally:
        second.close()
    assert watermarks(jobs_server.bootstrap, topic, 0) == (0, keys * versions)


def test_the_log_start_stays_when_a_compacted_segment_empties(jobs_server):
    # Two rounds of the same 3000 keys, ~1.5 MiB each: the second round's
    # pass rewrites the first round's clean rows into 1 MiB objects of which
    # the first holds no record any more. Kafka's cleaner never moves the
    # log start offset: ListOffsets earliest stays 0.
    keys = 3000
    topic = create_topic(jobs_server, "compact-empty", COMPACT)
    producer = new_producer(jobs_server.bootstrap, **{"linger.ms": 20})
    for version in range(2):
        records = [Rec(key_of(k), value_of(k, version, os.urandom(480))) for k in range(keys)]
        produce_all(producer, topic, records, 0)
    wait_until(
        lambda: [version_in(v) for _, _, v in read_all(jobs_server.bootstrap, topic)]
        == [1] * keys,
        30,
        f"{topic}: not compacted to the second round",
        interval=0.2,
    )
    # A few job intervals for retention to run after the pass.
    time.sleep(1.0)
    assert watermarks(jobs_server.bootstrap, topic, 0) == (0, 2 * keys), (
        f"{topic}: the log start offset moved after key compaction"
    )


def test_retention_does_not_delete_from_a_compact_only_topic(jobs_server):
    # Kafka applies retention.ms and retention.bytes only when
    # cleanup.policy includes delete: records of a compact-only topic older
    # than retention.ms (7 days by default) stay.
    topic = create_topic(jobs_server, "compact-old", COMPACT)
    old = int(time.time() * 1000) - 8 * 24 * 3600 * 1000
    records = [Rec(key_of(k), value_of(k, 0), timestamp=old) for k in range(10)]
    produce_all(new_producer(jobs_server.bootstrap), topic, records, 0)
    # A few job intervals for retention and compaction to run.
    time.sleep(1.0)
    assert watermarks(jobs_server.bootstrap, topic, 0) == (0, 10)
    assert [o for o, _, _ in read_all(jobs_server.bootstrap, topic)] == list(range(10))


# `key map built topic=T partition=P keys=N dirty_end=M`, for one topic.
def _key_map_built(topic: str) -> re.Pattern:
    return re.compile(rf"key map built topic={re.escape(topic)} partition=\d+ keys=(\d+)")


def test_sigkill_during_key_compaction_leaves_consistent_data(jobs_server, record_property):
    keys, per_round = 2000, 3
    # 2000 keys x 3 versions x ~500 random bytes: ~3 MiB a round (12 MiB or
    # more in all), produced in about a second. A pass reads the dirty rows
    # for a good part of a second before "key map built", then rewrites
    # them and the clean rows into several 1 MiB objects, each uploaded and
    # swapped in on its own (~150 ms in all in a debug build). Records
    # become cleanable 2 s after they were written (min.compaction.lag.ms),
    # longer than a round takes to produce, so a pass over a round starts
    # after the round was produced and the kill never interrupts a write.
    topic = create_topic(jobs_server, "compact-kill", {**COMPACT, "min.compaction.lag.ms": "2000"})
    rng = random.Random(4)
    # When to kill, by what the pass has logged (never by a delay, which a
    # loaded machine stretches): as soon as it built its key map (nothing
    # uploaded yet), and as soon as its first object was swapped in (the
    # rest still to upload and swap). Each window is the rest of the pass,
    # about 150 ms here.
    moments = [("key map", 0.0), ("swapped", 0.0), ("key map", 0.0), ("swapped", 0.0)]
    # A kill that came after its pass finished (a slow poll) does not count
    # and its moment is tried again in the next round, up to this many.
    max_rounds = 8
    producer = new_producer(jobs_server.bootstrap, **{"linger.ms": 20})
    latest: dict[bytes, bytes] = {}
    landed, missed = [], []
    for round_ in range(max_rounds):
        if len(landed) == len(moments):
            break
        event, delay = moments[len(landed)]
        pairs = interleaved_versions(keys, per_round, rng, first=round_ * per_round)
        # Random bytes: segments are compressed, and the pass should have
        # megabytes to read and write.
        records = [Rec(key_of(k), value_of(k, v, os.urandom(480))) for k, v in pairs]
        produce_all(producer, topic, records, 0)
        latest.update((r.key, r.value) for r in records)
        mark = jobs_server.log_path.stat().st_size
        found = {}

        def trigger() -> bool:
            log = jobs_server.log_since(mark)
            passes = _key_map_built(topic).finditer(log)
            built = next(passes, None)
            if built is None:
                return False
            found["at"] = mark + len(log[: built.start()].encode())
            if event == "key map":
                return True
            return bool(re.search(rf"\bcompacted topic={re.escape(topic)} ", log[built.end() :]))

        wait_until(trigger, 30, f"{topic}: no {event} in round {round_}", interval=0.005)
        time.sleep(delay)
        jobs_server.kill()
        # Whether the pass was still running: it logs its end.
        after = jobs_server.log_since(found["at"])
        finished = re.search(rf"key compaction pass topic={re.escape(topic)} ", after)
        (missed if finished else landed).append((event, delay))
        jobs_server.start()
    assert len(landed) == len(moments), (
        f"{topic}: kills during a pass {landed}, after it {missed} in {max_rounds} rounds"
    )

    # Everything acknowledged is there: each key's latest value, at least.
    def latest_values() -> dict:
        read = {}
        for _, key, value in read_all(jobs_server.bootstrap, topic):
            read[key] = value
        return read

    read = latest_values()
    wrong = [k for k, v in latest.items() if read.get(k) != v]
    assert not wrong, f"{topic}: {len(wrong)} keys without their latest value, e.g. {wrong[:3]}"

    assert jobs_server.stop() == 0, jobs_server.log_tail()
    command = [binary(), "check", "--data-dir", str(jobs_server.data_dir)]
    if jobs_server.metadata:
        command += ["--metadata", jobs_server.metadata]
    if jobs_server.object_store:
        command += ["--object-store", jobs_server.object_store]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STREAMHOUSE_")}
    environment["RUST_LOG"] = "warn"
    check = subprocess.run(
        command, capture_output=True, text=True, env=environment, timeout=120
    )
    assert check.returncode == 0, (
        f"streamhouse check exited {check.returncode} after kills during passes at {landed}:\n"
        f"{check.stdout}{check.stderr}"
    )
    summary = check.stdout.rstrip()
    assert summary.startswith("checked ") and summary.endswith(": consistent"), summary
    record_property(
        "crash_safety",
        f"key compaction: {len(latest)} keys, {len(landed) + len(missed)} rounds of "
        f"{keys * per_round} records, {len(landed)} kills during a pass "
        f"({len(missed)} after one, retried); streamhouse check: {summary}",
    )
