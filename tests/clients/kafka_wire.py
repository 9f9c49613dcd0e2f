"""Just enough of the Kafka wire format to send requests a well-behaved
client never would, to send a request to one chosen agent of a cluster
(clients send each partition's requests to its leader), and to read the
answers of a few."""

import socket
import struct
import time

from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder

API_PRODUCE = 0
API_FETCH = 1
API_METADATA = 3
API_FIND_COORDINATOR = 10
API_VERSIONS = 18
API_INIT_PRODUCER_ID = 22
API_OFFSET_FOR_LEADER_EPOCH = 23
API_DESCRIBE_TOPIC_PARTITIONS = 75
UNSUPPORTED_VERSION = 35
UNKNOWN_TOPIC_OR_PARTITION = 3


def string(value: str | None) -> bytes:
    if value is None:
        return struct.pack(">h", -1)
    data = value.encode()
    return struct.pack(">h", len(data)) + data


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def request(
    api_key: int, version: int, correlation_id: int, body: bytes = b"", flexible: bool = False
) -> bytes:
    """A framed request with header v1, or v2 (an empty tag buffer) when
    `flexible`."""
    header = struct.pack(">hhi", api_key, version, correlation_id) + string("streamhouse-tests")
    if flexible:
        header += b"\x00"
    return frame(header + body)


def produce_v3(
    topic: str,
    partition: int,
    correlation_id: int,
    values: list[bytes] = (b"value",),
    producer: tuple[int, int, int] | None = None,
) -> bytes:
    """Produce v3, acks=-1, one record batch with a record per value (one
    by default), each with the key b"key"; `producer` (id, epoch, base
    sequence) makes it an idempotent producer's batch."""
    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
    if producer is not None:
        producer_id, epoch, base_sequence = producer
        builder.set_producer_state(producer_id, epoch, base_sequence, is_transactional=False)
    now = int(time.time() * 1000)
    for value in values:
        builder.append(now, b"key", value)
    builder.close()
    batch = bytes(builder.buffer())
    body = (
        string(None)
        + struct.pack(">hi", -1, 10000)
        + struct.pack(">i", 1)
        + string(topic)
        + struct.pack(">i", 1)
        + struct.pack(">i", partition)
        + struct.pack(">i", len(batch))
        + batch
    )
    return request(API_PRODUCE, 3, correlation_id, body)


def parse_produce_v3(payload: bytes) -> tuple[int, list[tuple[str, int, int, int]]]:
    """(correlation id, [(topic, partition, error code, base offset)])."""
    correlation_id, topics = struct.unpack_from(">ii", payload)
    pos = 8
    results = []
    for _ in range(topics):
        (length,) = struct.unpack_from(">h", payload, pos)
        name = payload[pos + 2 : pos + 2 + length].decode()
        pos += 2 + length
        (partitions,) = struct.unpack_from(">i", payload, pos)
        pos += 4
        for _ in range(partitions):
            index, error, base_offset, _append_time = struct.unpack_from(">ihqq", payload, pos)
            pos += 22
            results.append((name, index, error, base_offset))
    return correlation_id, results


def uvarint(value: int) -> bytes:
    """An unsigned varint, as flexible versions write lengths and tags."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def compact_string(value: str | None) -> bytes:
    if value is None:
        return uvarint(0)
    data = value.encode()
    return uvarint(len(data) + 1) + data


def compact_array(items: list[bytes]) -> bytes:
    return uvarint(len(items) + 1) + b"".join(items)


NO_TAGS = b"\x00"


class Reader:
    """Reads the big-endian fields of a response body in order."""

    def __init__(self, payload: bytes):
        self.payload = payload
        self.pos = 0

    def unpack(self, layout: str):
        values = struct.unpack_from(">" + layout, self.payload, self.pos)
        self.pos += struct.calcsize(">" + layout)
        return values if len(values) > 1 else values[0]

    def string(self) -> str | None:
        length = self.unpack("h")
        if length < 0:
            return None
        value = self.payload[self.pos : self.pos + length].decode()
        self.pos += length
        return value

    def bytes(self) -> bytes | None:
        length = self.unpack("i")
        if length < 0:
            return None
        value = self.payload[self.pos : self.pos + length]
        self.pos += length
        return value

    def array(self, read_item) -> list | None:
        count = self.unpack("i")
        return None if count < 0 else [read_item() for _ in range(count)]

    # Flexible versions: varint lengths (one more than the length, 0 for
    # null) and tagged fields.

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            byte = self.payload[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    def compact_string(self) -> str | None:
        length = self.uvarint() - 1
        if length < 0:
            return None
        value = self.payload[self.pos : self.pos + length].decode()
        self.pos += length
        return value

    def compact_array(self, read_item) -> list | None:
        count = self.uvarint() - 1
        return None if count < 0 else [read_item() for _ in range(count)]

    def uuid(self) -> str:
        value = self.payload[self.pos : self.pos + 16].hex()
        self.pos += 16
        return value

    def tags(self) -> None:
        """Skips a tagged-field section."""
        for _ in range(self.uvarint()):
            self.uvarint()
            self.pos += self.uvarint()


def metadata_v1(correlation_id: int, topics: list[str] | None = None) -> bytes:
    """Metadata v1 for `topics`, or for every topic when None."""
    if topics is None:
        body = struct.pack(">i", -1)
    else:
        body = struct.pack(">i", len(topics)) + b"".join(string(t) for t in topics)
    return request(API_METADATA, 1, correlation_id, body)


def parse_metadata_v1(
    payload: bytes,
) -> tuple[int, dict[int, tuple[str, int]], dict[tuple[str, int], int], dict[str, int]]:
    """(correlation id, {node id: (host, port)}, {(topic, partition): leader},
    {topic: error code})."""
    r = Reader(payload)
    correlation_id = r.unpack("i")
    brokers = {}
    for node_id, host, port, _rack in r.array(
        lambda: (r.unpack("i"), r.string(), r.unpack("i"), r.string())
    ):
        brokers[node_id] = (host, port)
    r.unpack("i")  # controller id
    leaders = {}

    def partition():
        _error, index, leader = r.unpack("hii")
        r.array(lambda: r.unpack("i"))  # replicas
        r.array(lambda: r.unpack("i"))  # in-sync replicas
        return index, leader

    errors = {}
    for _ in range(r.unpack("i")):
        error, name, _internal = r.unpack("h"), r.string(), r.unpack("?")
        errors[name] = error
        for index, leader in r.array(partition):
            leaders[(name, index)] = leader
    return correlation_id, brokers, leaders, errors


def init_producer_id_v3(correlation_id: int, producer_id: int = -1, epoch: int = -1) -> bytes:
    """InitProducerId v3 (flexible) without a transactional id: a new
    producer id, or with `producer_id` and `epoch` a new epoch for it."""
    body = b"\x00" + struct.pack(">iqh", 60000, producer_id, epoch) + b"\x00"
    return request(API_INIT_PRODUCER_ID, 3, correlation_id, body, flexible=True)


def parse_init_producer_id_v3(payload: bytes) -> tuple[int, int, int, int]:
    """(correlation id, error code, producer id, epoch)."""
    correlation_id, _tags, _throttle, error, producer_id, epoch = struct.unpack_from(
        ">ibihqh", payload
    )
    return correlation_id, error, producer_id, epoch


def find_coordinator_v0(group: str, correlation_id: int) -> bytes:
    return request(API_FIND_COORDINATOR, 0, correlation_id, string(group))


def parse_find_coordinator_v0(payload: bytes) -> tuple[int, int, int, str, int]:
    """(correlation id, error code, node id, host, port)."""
    r = Reader(payload)
    return r.unpack("i"), r.unpack("h"), r.unpack("i"), r.string(), r.unpack("i")


def find_coordinator_v1(key: str, key_type: int, correlation_id: int) -> bytes:
    """key type 0 a group, 1 a transactional id."""
    return request(API_FIND_COORDINATOR, 1, correlation_id, string(key) + struct.pack(">b", key_type))


def parse_find_coordinator_v1(payload: bytes) -> tuple[int, int, str, int]:
    """(error code, node id, host, port)."""
    r = Reader(payload)
    r.unpack("i")  # correlation id
    r.unpack("i")  # throttle time
    error = r.unpack("h")
    r.string()  # error message
    return error, r.unpack("i"), r.string(), r.unpack("i")


def fetch_v4(
    topic: str,
    partition: int,
    offset: int,
    correlation_id: int,
    max_wait_ms: int = 0,
    min_bytes: int = 1,
    max_bytes: int = 1 << 20,
) -> bytes:
    """Fetch v4 of one partition from `offset`, read uncommitted."""
    body = (
        struct.pack(">iiiib", -1, max_wait_ms, min_bytes, max_bytes, 0)
        + struct.pack(">i", 1)
        + string(topic)
        + struct.pack(">i", 1)
        + struct.pack(">iqi", partition, offset, max_bytes)
    )
    return request(API_FETCH, 4, correlation_id, body)


def parse_fetch_v4(payload: bytes) -> tuple[int, list[tuple[int, int, int, list]]]:
    """(correlation id, [(partition, error code, high watermark,
    [(offset, value)])])."""
    r = Reader(payload)
    correlation_id, _throttle = r.unpack("ii")
    results = []
    for _ in range(r.unpack("i")):
        r.string()
        for _ in range(r.unpack("i")):
            index, error, high_watermark, _last_stable = r.unpack("ihqq")
            r.array(lambda: r.unpack("qq"))  # aborted transactions
            data = r.bytes() or b""
            records = []
            batches = MemoryRecords(data)
            while (batch := batches.next_batch()) is not None:
                records.extend((record.offset, record.value) for record in batch)
            results.append((index, error, high_watermark, records))
    return correlation_id, results


def metadata_v7(correlation_id: int, topics: list[str]) -> bytes:
    """Metadata v7 (partitions carry their leader epoch) for `topics`,
    creating none."""
    body = struct.pack(">i", len(topics)) + b"".join(string(t) for t in topics) + b"\x00"
    return request(API_METADATA, 7, correlation_id, body)


def parse_metadata_v7(payload: bytes) -> dict[str, tuple[int, dict[int, tuple[int, int]]]]:
    """{topic: (error code, {partition: (leader node id, leader epoch)})}."""
    r = Reader(payload)
    r.unpack("ii")  # correlation id, throttle time
    r.array(lambda: (r.unpack("i"), r.string(), r.unpack("i"), r.string()))  # brokers
    r.string()  # cluster id
    r.unpack("i")  # controller id

    def partition():
        _error, index, leader, epoch = r.unpack("hiii")
        for _ in range(3):  # replicas, in-sync replicas, offline replicas
            r.array(lambda: r.unpack("i"))
        return index, (leader, epoch)

    topics = {}
    for _ in range(r.unpack("i")):
        error, name, _internal = r.unpack("h"), r.string(), r.unpack("?")
        topics[name] = (error, dict(r.array(partition)))
    return topics


def offset_for_leader_epoch_v2(
    correlation_id: int, topic: str, partitions: list[tuple[int, int, int]]
) -> bytes:
    """OffsetForLeaderEpoch v2 (librdkafka's) of (partition, current
    leader epoch, leader epoch) of one topic."""
    body = (
        struct.pack(">i", 1)
        + string(topic)
        + struct.pack(">i", len(partitions))
        + b"".join(struct.pack(">iii", *p) for p in partitions)
    )
    return request(API_OFFSET_FOR_LEADER_EPOCH, 2, correlation_id, body)


def offset_for_leader_epoch_v4(
    correlation_id: int, topic: str, partitions: list[tuple[int, int, int]]
) -> bytes:
    """OffsetForLeaderEpoch v4 (flexible, Kafka 4's consumers), as a
    consumer asks it (replica id -1)."""
    body = (
        struct.pack(">i", -1)
        + compact_array(
            [
                compact_string(topic)
                + compact_array([struct.pack(">iii", *p) + NO_TAGS for p in partitions])
                + NO_TAGS
            ]
        )
        + NO_TAGS
    )
    return request(API_OFFSET_FOR_LEADER_EPOCH, 4, correlation_id, body, flexible=True)


def parse_offset_for_leader_epoch(payload: bytes, version: int) -> list[tuple[int, int, int, int]]:
    """[(partition, error code, leader epoch, end offset)] of a v2-v4
    answer."""
    r = Reader(payload)
    r.unpack("i")  # correlation id
    flexible = version >= 4
    if flexible:
        r.tags()
    r.unpack("i")  # throttle time
    results = []

    def partition():
        error, index, epoch, end = r.unpack("hiiq")
        if flexible:
            r.tags()
        results.append((index, error, epoch, end))

    def topic():
        r.compact_string() if flexible else r.string()
        r.compact_array(partition) if flexible else r.array(partition)
        if flexible:
            r.tags()

    r.compact_array(topic) if flexible else r.array(topic)
    return results


def describe_topic_partitions_v0(
    correlation_id: int,
    topics: list[str],
    partition_limit: int,
    cursor: tuple[str, int] | None = None,
) -> bytes:
    """DescribeTopicPartitions v0 (flexible) of `topics` (every topic when
    empty), at most `partition_limit` partitions, from `cursor`."""
    body = compact_array([compact_string(t) + NO_TAGS for t in topics])
    body += struct.pack(">i", partition_limit)
    if cursor is None:
        body += struct.pack(">b", -1)
    else:
        body += struct.pack(">b", 1) + compact_string(cursor[0]) + struct.pack(">i", cursor[1])
        body += NO_TAGS
    body += NO_TAGS
    return request(API_DESCRIBE_TOPIC_PARTITIONS, 0, correlation_id, body, flexible=True)


def parse_describe_topic_partitions_v0(
    payload: bytes,
) -> tuple[list[tuple[int, str | None, str, list[tuple[int, int, int]]]], tuple[str, int] | None]:
    """([(error code, name, topic id as hex, [(partition, leader id,
    leader epoch)])], next cursor)."""
    r = Reader(payload)
    r.unpack("i")  # correlation id
    r.tags()
    r.unpack("i")  # throttle time

    def partition():
        _error, index, leader, epoch = r.unpack("hiii")
        for _ in range(5):  # replicas, ISR, eligible, last known ELR, offline
            r.compact_array(lambda: r.unpack("i"))
        r.tags()
        return index, leader, epoch

    def topic():
        error = r.unpack("h")
        name = r.compact_string()
        topic_id = r.uuid()
        r.unpack("?")  # internal
        partitions = r.compact_array(partition)
        r.unpack("i")  # authorized operations
        r.tags()
        return error, name, topic_id, partitions

    topics = r.compact_array(topic)
    cursor = None
    if r.unpack("b") >= 0:
        cursor = (r.compact_string(), r.unpack("i"))
        r.tags()
    r.tags()
    return topics, cursor


def parse_api_versions_v0(payload: bytes) -> tuple[int, int, dict[int, tuple[int, int]]]:
    """(correlation id, error code, {api key: (min, max)})."""
    correlation_id, error_code, count = struct.unpack_from(">ihi", payload)
    keys = {}
    for i in range(count):
        api_key, low, high = struct.unpack_from(">hhh", payload, 10 + 6 * i)
        keys[api_key] = (low, high)
    return correlation_id, error_code, keys


class Connection:
    """A raw TCP connection to the Kafka listener."""

    def __init__(self, bootstrap: str, timeout: float = 10.0):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError(f"connection closed after {len(data)} of {size} bytes")
            data += chunk
        return data

    def read_response(self) -> bytes:
        (size,) = struct.unpack(">i", self._read_exactly(4))
        return self._read_exactly(size)

    def round_trip(self, data: bytes) -> bytes:
        """Sends one request and returns its response."""
        self.send(data)
        return self.read_response()

    def closed_by_server(self) -> bytes | None:
        """Waits for the server to close the connection and returns what it
        sent before; None when it is still open after the socket timeout."""
        received = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return received
                received += chunk
        except ConnectionResetError:
            return received
        except TimeoutError:
            return None
