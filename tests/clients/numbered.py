"""A numbered stream written by crash_producer.py in a process of its own,
followed through its acknowledgements while a test kills agents or cuts
them off, and the check a user makes afterwards: every acknowledged record
stored exactly once, at its acknowledged offset, in order, no gaps."""

import signal
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from support import die_with_parent, read_partition, wait_until, watermarks

PRODUCER = Path(__file__).with_name("crash_producer.py")

# What an idempotent producer needs for a stream that survives agents dying:
# librdkafka keeps up to five requests in flight per partition and still
# stores each record once, in order.
IDEMPOTENT = {"enable.idempotence": "true", "max.in.flight.requests.per.connection": 5}


@dataclass(frozen=True)
class Ack:
    partition: int
    offset: int
    number: int
    time: float


class NumberedProducer:
    """crash_producer.py writing to `topic` until stop()."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, directory: Path, **settings):
        self.topic = topic
        self.partitions = partitions
        self.ack_path = directory / f"{topic}.acks"
        self.log_path = directory / f"{topic}.producer.log"
        self.acks: list[Ack] = []
        self._read = 0
        self.produced: int | None = None
        command = [sys.executable, str(PRODUCER), bootstrap, topic, str(partitions)]
        command += [str(self.ack_path), *(f"{k}={v}" for k, v in settings.items())]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                die_with_parent(command), stdout=subprocess.PIPE, stderr=log
            )

    def refresh(self) -> list[Ack]:
        """Reads the acknowledgements reported since the last call."""
        try:
            with open(self.ack_path, "rb") as f:
                f.seek(self._read)
                data = f.read()
        except FileNotFoundError:
            return self.acks
        complete = data[: data.rfind(b"\n") + 1]
        self._read += len(complete)
        for line in complete.decode().splitlines():
            partition, offset, number, when = line.split()
            self.acks.append(Ack(int(partition), int(offset), int(number), float(when)))
        return self.acks

    def state(self) -> str:
        self.refresh()
        log = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
        return f"{len(self.acks)} acknowledged; producer log:\n{log}"

    def wait_for_acks(self, count: int, timeout: float) -> None:
        """Waits until `count` more records are acknowledged."""
        target = len(self.refresh()) + count
        wait_until(lambda: len(self.refresh()) >= target, timeout, self.state, interval=0.02)

    def last_ack(self, partition: int) -> float | None:
        times = [a.time for a in self.refresh() if a.partition == partition]
        return max(times) if times else None

    def wait_for_every_partition_since(self, since: float, timeout: float) -> dict[int, float]:
        """Waits until every partition has a record acknowledged after
        `since` (time.monotonic()); returns, per partition, how long after
        `since` the first of them came."""
        first: dict[int, float] = {}

        def all_partitions():
            for ack in self.refresh():
                if ack.time > since and ack.partition not in first:
                    first[ack.partition] = ack.time - since
            return len(first) == self.partitions

        wait_until(
            all_partitions,
            timeout,
            lambda: f"partitions acknowledged since: {sorted(first)}; {self.state()}",
            interval=0.05,
        )
        return first

    def stop(self, timeout: float = 180) -> int:
        """SIGTERM: the producer flushes and exits; returns how many records
        it produced."""
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=timeout)
        assert self.process.returncode == 0, (
            f"producer exited {self.process.returncode}\n{self.state()}"
        )
        self.produced = int(out.split()[-1])
        self.refresh()
        return self.produced

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def failures(self) -> str:
        path = Path(str(self.ack_path) + ".failed")
        return path.read_text() if path.exists() else ""


def longest_silence(acks: list[Ack], start: float, end: float) -> float:
    """The longest time within [start, end] with no acknowledgement at all."""
    times = sorted(a.time for a in acks if start < a.time < end)
    edges = [start, *times, end]
    return max(b - a for a, b in zip(edges, edges[1:], strict=False))


def check_stored_exactly_once(bootstrap: str, producer: NumberedProducer) -> int:
    """Reads every partition from the start and checks what a user of an
    idempotent producer expects; returns how many records were stored."""
    failed = producer.failures()
    assert failed == "", f"records the producer gave up on:\n{failed[:2000]}"
    acks = producer.acks
    numbers = sorted(a.number for a in acks)
    assert numbers == list(range(producer.produced)), (
        f"{producer.produced} records produced, {len(acks)} delivery reports, "
        f"{len(set(numbers))} distinct: every record gets exactly one"
    )

    stored: dict[int, list[int]] = {}
    where_stored: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for partition in range(producer.partitions):
        low, high = watermarks(bootstrap, producer.topic, partition)
        assert low == 0, f"partition {partition}: log start {low}, expected 0"
        messages = read_partition(bootstrap, producer.topic, partition)
        offsets = [m.offset() for m in messages]
        assert offsets == list(range(high)), (
            f"partition {partition}: offsets are not 0..{high - 1} each once; "
            f"first differences (index, offset, expected): {_first_differences(offsets, high)}"
        )
        stored[partition] = [int(m.value()) for m in messages]
        for offset, number in enumerate(stored[partition]):
            where_stored[number].append((partition, offset))

    duplicates = {n: places for n, places in where_stored.items() if len(places) > 1}
    assert not duplicates, (
        f"{len(duplicates)} record(s) stored more than once (number: [(partition, offset)]): "
        f"{dict(list(duplicates.items())[:20])}"
    )
    unknown = set(where_stored) - set(range(producer.produced))
    assert not unknown, f"records that were never produced: {sorted(unknown)[:20]}"
    for partition, numbers in stored.items():
        out_of_order = [
            (offset, a, b)
            for offset, (a, b) in enumerate(zip(numbers, numbers[1:], strict=False))
            if a >= b
        ]
        assert not out_of_order, (
            f"partition {partition}: numbers not increasing with the offset "
            f"(offset, number, next number): {out_of_order[:20]}"
        )
        foreign = [n for n in numbers if n % producer.partitions != partition]
        assert not foreign, f"partition {partition}: records of other partitions {foreign[:20]}"
    misplaced = [
        (a.partition, a.offset, a.number, where_stored.get(a.number))
        for a in acks
        if where_stored.get(a.number) != [(a.partition, a.offset)]
    ]
    assert not misplaced, (
        f"{len(misplaced)} of {len(acks)} acknowledged records are not stored at their "
        f"acknowledged offset (partition, offset, number, stored at): {misplaced[:20]}"
    )
    return sum(map(len, stored.values()))


def _first_differences(offsets: list[int], high: int) -> list:
    expected = list(range(high))
    diffs = [(i, o, e) for i, (o, e) in enumerate(zip(offsets, expected, strict=False)) if o != e]
    return diffs[:10] or [f"read {len(offsets)} records, high watermark {high}"]
