"""Crash safety with a real client: a producer keeps writing while the
server is SIGKILLed (and once stopped with SIGTERM) and restarted on the same
ports, data and backends. Every record the producer saw acknowledged must
then be readable, at the offset it was acknowledged with, in order within
its partition."""

import signal
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from support import (
    CLIENT_TIMEOUT,
    confluent_config,
    die_with_parent,
    read_partition,
    unique_name,
    wait_until,
)

PARTITIONS = 4
# How the server is stopped, in turn, while the producer writes; each stop
# is followed by a restart.
STOPS = ["SIGKILL", "SIGKILL", "SIGTERM", "SIGKILL"]
# New acknowledgements to wait for before each stop and after the last one.
ACKS_PER_ROUND = 300
PRODUCER = Path(__file__).with_name("crash_producer.py")


def line_count(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.endswith(b"\n"))
    except FileNotFoundError:
        return 0


def create_topic(server) -> str:
    topic = unique_name("crash")
    admin = AdminClient(confluent_config(server.bootstrap))
    (future,) = admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values()
    future.result(timeout=CLIENT_TIMEOUT)
    return topic


def run_producer_through_restarts(server, topic: str, ack_file: Path, log_path: Path) -> int:
    """Runs crash_producer.py while the server is stopped and restarted as
    STOPS says; returns how many records the producer wrote."""
    command = [sys.executable, str(PRODUCER), server.bootstrap, topic, str(PARTITIONS)]
    with open(log_path, "wb") as log:
        producer = subprocess.Popen(
            die_with_parent([*command, str(ack_file)]), stdout=subprocess.PIPE, stderr=log
        )

    def producer_state():
        return (
            f"{line_count(ack_file)} acknowledged; producer log:\n"
            + log_path.read_text(errors="replace")[-3000:]
        )

    def wait_for_progress():
        target = line_count(ack_file) + ACKS_PER_ROUND
        wait_until(lambda: line_count(ack_file) >= target, 60, producer_state, interval=0.02)

    try:
        for stop in STOPS:
            wait_for_progress()
            if stop == "SIGKILL":
                server.kill()
            else:
                status = server.stop()
                assert status == 0, f"SIGTERM mid-stream: exit status {status}\n{server.log_tail()}"
            server.start()
        wait_for_progress()

        producer.send_signal(signal.SIGTERM)
        out, _ = producer.communicate(timeout=180)
        assert producer.returncode == 0, (
            f"producer exited {producer.returncode}\n{producer_state()}"
        )
        return int(out.split()[-1])
    finally:
        if producer.poll() is None:
            producer.kill()
            producer.wait()


def test_acknowledged_records_survive_restarts(server, tmp_path, record_property):
    topic = create_topic(server)
    ack_file = tmp_path / "acks.txt"

    produced = run_producer_through_restarts(server, topic, ack_file, tmp_path / "producer.log")

    failed = (tmp_path / "acks.txt.failed").read_text()
    assert failed == "", f"records the producer gave up on:\n{failed[:2000]}"
    acked = [tuple(map(int, line.split()[:3])) for line in ack_file.read_text().splitlines()]
    assert sorted(n for _, _, n in acked) == list(range(produced)), (
        "every produced record gets exactly one delivery report"
    )

    stored = {
        (p, m.offset()): int(m.value())
        for p in range(PARTITIONS)
        for m in read_partition(server.bootstrap, topic, p)
    }
    missing = [(p, o, n) for p, o, n in acked if stored.get((p, o)) != n]
    assert not missing, (
        f"{len(missing)} of {len(acked)} acknowledged records are not at their "
        f"acknowledged offset (partition, offset, number): {missing[:20]}"
    )

    by_partition = defaultdict(list)
    for p, _offset, n in sorted(acked):
        by_partition[p].append(n)
    for p, numbers in by_partition.items():
        assert numbers == sorted(numbers), f"partition {p}: acknowledged records out of order"
        assert all(n % PARTITIONS == p for n in numbers), f"partition {p}: foreign records"

    copies = Counter(stored.values())
    assert set(copies) <= set(range(produced)), "records that were never produced"
    duplicates = sum(c - 1 for c in copies.values())
    record_property(
        "crash_safety",
        f"{len(acked)} acknowledged through {len(STOPS)} restarts ({', '.join(STOPS)}), "
        f"{duplicates} duplicate(s) from retried requests",
    )
