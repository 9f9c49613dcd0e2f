"""Just enough of the Kafka wire format to send requests a well-behaved
client never would, and to read the answers of a few."""

import socket
import struct
import time

from kafka.record.memory_records import MemoryRecordsBuilder

API_PRODUCE = 0
API_METADATA = 3
API_VERSIONS = 18
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


def produce_v3(topic: str, partition: int, correlation_id: int) -> bytes:
    """Produce v3, acks=-1, one record batch with one record."""
    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
    builder.append(int(time.time() * 1000), b"key", b"value")
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
