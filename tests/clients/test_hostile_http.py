"""Hostile clients of the HTTP API of a real `streamhouse serve`: made-up
methods and paths by the ten thousand, oversized bodies, URIs and headers,
bodies and heads that never finish. Each gets a clean status (with the
API's JSON error body where the server reads the request at all), the
connection is closed where bytes are left unread, /metrics stays small and
the process stays up within a bounded resident memory.

And /ready tells the truth within 2 s: 503 naming the dependency while
PostgreSQL or S3 is blackholed (answers dropped by a TCP proxy) or while
every upload fails with ENOSPC, 200 again afterwards; during the
PostgreSQL blackhole Kafka Metadata still lists the topics."""

import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from confluent_kafka.admin import AdminClient

import cluster as cl
import kafka_wire as wire
from streamhouse import StreamHouse, binary
from support import confluent_config, unique_name, wait_until
from tcp_proxy import TcpProxy

MADE_UP_METHODS = 30_000
UNMATCHED_PATHS = 3_000
# Requests written at once on one connection (HTTP/1.1 pipelining).
PIPELINE = 250
METRICS_LIMIT = 1 << 20
# Resident memory of the debug build after everything this module throws
# at it (measured: 35 MiB idle, 45 MiB at the end).
RSS_LIMIT = 128 << 20
# The server's defaults (crates/streamhouse-server/src/http/limits.rs).
MAX_BODY_BYTES = 16 << 20
MAX_URI_BYTES = 8 << 10
MAX_HEADER_BYTES = 16 << 10
BODY_TIMEOUT = 30.0
HEADER_TIMEOUT = 10.0
# Flags that shorten the timeouts, when the binary has them.
BODY_TIMEOUT_FLAG = "--http-request-timeout-ms"
HEADER_TIMEOUT_FLAG = "--http-header-timeout-ms"
SHORT_TIMEOUT = 2.0
# How long /ready may take to answer, whatever the dependencies do.
READY_WITHIN = 2.0
# How long /ready may take to turn 503 after a backend is cut off (its
# result is reused for 1 s, its checks time out after 1.5 s).
NOTICE_WITHIN = 6.0
RECOVERY_LIMIT = 30.0
BLACKHOLE_SECONDS = 8.0


# ---------------------------------------------------------------------------
# A raw HTTP/1.1 client: urllib cannot send made-up methods, malformed
# heads or half a body.
# ---------------------------------------------------------------------------


class RawHttp:
    def __init__(self, agent: StreamHouse, timeout: float = 10.0):
        self.sock = socket.create_connection(("127.0.0.1", agent.http_port), timeout=timeout)
        self.buffer = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed by the server; unparsed: {self.buffer[:200]!r}")
        self.buffer += chunk

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """The next response: (status, headers, body)."""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def closed_within(self, seconds: float) -> float | None:
        """Seconds until the server closed the connection (reading and
        dropping whatever it sends), or None if it is still open."""
        started = time.monotonic()
        self.sock.settimeout(seconds)
        try:
            while self.sock.recv(65536):
                if time.monotonic() - started > seconds:
                    return None
        except (ConnectionResetError, BrokenPipeError):
            pass
        except TimeoutError:
            return None
        return time.monotonic() - started


def status_or_reset(http: RawHttp) -> int | None:
    """The status of the answer to a request the server stopped reading,
    or None when the connection was reset before it could be read (the
    kernel drops what arrived when unread client bytes make it reset)."""
    try:
        return http.response()[0]
    except (ConnectionError, OSError):
        return None


def json_error(status: int, body: bytes, expected: int) -> dict:
    assert status == expected, f"status {status}, expected {expected}: {body[:300]!r}"
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError) as e:
        raise AssertionError(f"{status} without the JSON error body ({e}): {body[:300]!r}")
    assert error.get("code") and error.get("message"), error
    return error


def assert_alive(agent: StreamHouse) -> None:
    assert agent.running(), f"streamhouse exited\n{agent.log_tail()}"
    assert agent.http_status("/health", timeout=5) == 200, "/health did not answer 200"


def serve_flags() -> str:
    result = subprocess.run(
        [binary(), "serve", "--help"], capture_output=True, text=True, timeout=30
    )
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def short_timeouts(tmp_path_factory, server_logs):
    """(agent, body timeout, head timeout): an agent with 2 s HTTP timeouts
    when the binary has the flags, else None and the defaults."""
    help_text = serve_flags()
    flags = []
    body_timeout, header_timeout = BODY_TIMEOUT, HEADER_TIMEOUT
    if BODY_TIMEOUT_FLAG in help_text:
        flags += [BODY_TIMEOUT_FLAG, str(int(SHORT_TIMEOUT * 1000))]
        body_timeout = SHORT_TIMEOUT
    if HEADER_TIMEOUT_FLAG in help_text:
        flags += [HEADER_TIMEOUT_FLAG, str(int(SHORT_TIMEOUT * 1000))]
        header_timeout = SHORT_TIMEOUT
    if not flags:
        yield None, body_timeout, header_timeout
        return
    data_dir = tmp_path_factory.mktemp("short-timeouts")
    agent = StreamHouse(data_dir, data_dir / "streamhouse.log", extra_args=flags)
    server_logs.append(agent)
    agent.start()
    yield agent, body_timeout, header_timeout
    assert agent.stop() == 0, agent.log_tail()


# ---------------------------------------------------------------------------
# Request floods and oversized requests (every pass)
# ---------------------------------------------------------------------------


def pipelined(agent: StreamHouse, requests: list[bytes]) -> list[tuple[int, dict, bytes]]:
    answers = []
    with RawHttp(agent, timeout=30) as http:
        for start in range(0, len(requests), PIPELINE):
            batch = requests[start : start + PIPELINE]
            http.send(b"".join(batch))
            answers += [http.response() for _ in batch]
    return answers


def test_made_up_methods_and_paths_leave_metrics_small(server):
    rss_before = server.rss_bytes()
    marker = f"XM{os.getpid()}"
    methods = [
        f"{marker}{i} /health HTTP/1.1\r\nHost: h\r\n\r\n".encode()
        for i in range(MADE_UP_METHODS)
    ]
    paths = [
        f"GET /{marker}/unmatched/{i} HTTP/1.1\r\nHost: h\r\n\r\n".encode()
        for i in range(UNMATCHED_PATHS)
    ]
    # Four connections at once, as a careless or hostile client would.
    shares = [methods[i::4] for i in range(4)]
    results: list = [None] * 4
    errors: list = []

    def run(index):
        try:
            results[index] = pipelined(server, shares[index])
        except Exception as e:  # reported below, with the others
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    answers = [answer for share in results for answer in share]
    assert len(answers) == MADE_UP_METHODS
    statuses = {status for status, _, _ in answers}
    assert statuses == {405}, f"made-up methods answered {statuses}"
    json_error(*answers[0][::2], 405)
    json_error(*answers[-1][::2], 405)
    unmatched = pipelined(server, paths)
    assert {status for status, _, _ in unmatched} == {404}
    json_error(*unmatched[0][::2], 404)

    status, metrics = server.http_get("/metrics", timeout=30)
    assert status == 200
    size = len(metrics.encode())
    assert size < METRICS_LIMIT, f"/metrics is {size} bytes after the flood"
    leaked = [line for line in metrics.splitlines() if marker in line]
    assert not leaked, f"{len(leaked)} metric lines carry client text, e.g. {leaked[:3]}"
    assert 'method="other"' in metrics, "made-up methods are not counted at all"
    assert_alive(server)
    rss = server.rss_bytes()
    assert rss < RSS_LIMIT, (
        f"resident memory {rss >> 20} MiB after the flood (was {rss_before >> 20} MiB)"
    )


def test_an_oversized_body_gets_413_with_json(server):
    path = f"/api/v1/topics/{unique_name('big')}/records"
    with RawHttp(server) as http:
        # Declared too large: answered before the body is sent.
        http.send(
            f"POST {path} HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
            f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()
        )
        json_error(*http.response()[::2], 413)
        assert http.closed_within(5) is not None, "the connection stays open after 413"
    with RawHttp(server) as http:
        # Streamed in chunks with no length given: cut off at the limit.
        http.send(
            f"POST {path} HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"x" * (1 << 20)
        try:
            for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
                http.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while the client still sent
        try:
            status, _, body = http.response()
        except (ConnectionError, OSError) as e:
            raise AssertionError(f"no 413 before the connection closed: {e}") from e
        json_error(status, body, 413)
    assert_alive(server)


def test_a_long_uri_gets_414_with_json(server):
    with RawHttp(server) as http:
        http.send(
            f"GET /api/v1/topics/{'a' * (MAX_URI_BYTES + 10)} HTTP/1.1\r\nHost: h\r\n\r\n".encode()
        )
        json_error(*http.response()[::2], 414)
    # Far longer: hyper itself refuses it, still with a status.
    with RawHttp(server) as http:
        try:
            http.send(f"GET /{'a' * (1 << 20)} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            pass
        status = status_or_reset(http)
        assert status in (414, 431, None), f"a 1 MiB URI got {status}"
        assert http.closed_within(5) is not None, "the connection stays open"
    assert_alive(server)


def test_huge_headers_get_431(server):
    big = "".join(f"X-Big-{i}: {'h' * 5000}\r\n" for i in range(4))
    with RawHttp(server) as http:
        http.send(f"GET /health HTTP/1.1\r\nHost: h\r\n{big}\r\n".encode())
        json_error(*http.response()[::2], 431)
        assert http.closed_within(5) is not None, "the connection stays open after 431"
    many = "".join(f"X-H-{i}: v\r\n" for i in range(150))
    with RawHttp(server) as http:
        http.send(f"GET /health HTTP/1.1\r\nHost: h\r\n{many}\r\n".encode())
        status, _, body = http.response()
        assert status == 431, f"150 headers got {status}"
        if body:
            json_error(status, body, 431)
    huge = f"X-Huge: {'h' * (1 << 20)}\r\n"
    with RawHttp(server) as http:
        try:
            http.send(f"GET /health HTTP/1.1\r\nHost: h\r\n{huge}\r\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            pass
        status = status_or_reset(http)
        assert status in (431, None), f"a 1 MiB header got {status}"
        assert http.closed_within(5) is not None, "the connection stays open"
    assert_alive(server)
    assert server.rss_bytes() < RSS_LIMIT


def test_a_slow_body_gets_408_and_the_connection_closes(server, short_timeouts):
    agent, body_timeout, _ = short_timeouts
    agent = agent or server
    started = time.monotonic()
    with RawHttp(agent, timeout=body_timeout + 15) as http:
        http.send(
            b"POST /api/v1/topics HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"name": '
        )
        # A byte every half second does not keep the request alive.
        answered = None
        http.sock.settimeout(0.5)
        while time.monotonic() - started < body_timeout + 10:
            try:
                http.send(b" ")
                answered = http.sock.recv(65536)
                break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        took = time.monotonic() - started
        assert answered, f"no answer within {took:.1f} s to a body that never finishes"
        http.buffer = answered
        http.sock.settimeout(10)
        error = json_error(*http.response()[::2], 408)
        assert took < body_timeout + 3, f"408 after {took:.1f} s (timeout {body_timeout} s)"
        assert http.closed_within(5) is not None, f"the connection stays open after 408 {error}"
    assert_alive(agent)


def test_a_slow_head_is_cut_off(server, short_timeouts):
    agent, _, header_timeout = short_timeouts
    agent = agent or server
    started = time.monotonic()
    with RawHttp(agent, timeout=header_timeout + 15) as http:
        http.send(b"GET /health HTTP/1.1\r\nHost: h\r\n")
        http.sock.settimeout(1.0)
        closed = False
        while time.monotonic() - started < header_timeout + 10:
            try:
                http.send(b"X")
                if http.sock.recv(65536) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        took = time.monotonic() - started
        assert closed, (
            f"a request head trickled for {took:.0f} s is still being read: the HTTP "
            "listener has no head timeout (server.rs must serve with http::serve)"
        )
        assert took < header_timeout + 3, f"cut off after {took:.1f} s"
    assert_alive(agent)


# ---------------------------------------------------------------------------
# A full disk under the object store (every pass; needs root for tmpfs)
# ---------------------------------------------------------------------------


def ready_within(agent: StreamHouse) -> tuple[int | None, dict]:
    """/ready's status and body, asserting that it answered within 2 s."""
    started = time.monotonic()
    status, body = agent.http_get("/ready", timeout=READY_WITHIN + 5)
    took = time.monotonic() - started
    assert took < READY_WITHIN, f"/ready answered after {took:.2f} s: {status} {body[:300]}"
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {}


def wait_for_ready(agent: StreamHouse, want: int, within: float) -> dict:
    seen = []

    def check():
        seen.append(ready_within(agent))
        return seen[-1][0] == want and seen[-1][1]

    return wait_until(check, within, lambda: f"/ready answers {seen[-1]}, not {want}", 0.2)


def rest(agent: StreamHouse, method: str, path: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        agent.http_url + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def fill(directory: Path) -> Path:
    """Fills the file system holding `directory` to the last byte."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (64 << 10, 4 << 10, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler


def test_ready_is_503_while_uploads_fail_with_enospc(small_disk, tmp_path, server_logs):
    agent = StreamHouse(tmp_path / "agent", tmp_path / "agent.log")
    agent.data_dir.mkdir()
    agent.object_store = f"file://{small_disk / 'objects'}"
    server_logs.append(agent)
    topic = unique_name("enospc")
    try:
        agent.start()
        status, created = rest(agent, "POST", "/api/v1/topics", {"name": topic})
        assert status == 201, created
        records = {"records": [{"value": "x" * 1000}]}
        status, produced = rest(agent, "POST", f"/api/v1/topics/{topic}/records", records)
        assert status == 200, produced

        filler = fill(small_disk)
        status, failed = rest(agent, "POST", f"/api/v1/topics/{topic}/records", records)
        assert status == 503, f"produce on a full disk: {status} {failed}"
        ready = wait_for_ready(agent, 503, NOTICE_WITHIN)
        assert ready.get("metadata") == "ok", ready
        assert "No space left" in ready.get("object_store", ""), ready
        assert agent.http_status("/health") == 200

        filler.unlink()
        # No produce needed: /ready makes its own test write.
        ready = wait_for_ready(agent, 200, RECOVERY_LIMIT)
        assert ready.get("object_store") == "ok", ready
        status, produced = rest(agent, "POST", f"/api/v1/topics/{topic}/records", records)
        assert status == 200, produced
        assert agent.stop() == 0, agent.log_tail()
    finally:
        agent.kill()


# ---------------------------------------------------------------------------
# Blackholed backends (postgres-s3 pass)
# ---------------------------------------------------------------------------


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or {"http": 80, "https": 443}.get(
        parts.scheme, 5432
    )


@pytest.fixture(scope="module")
def proxied(tmp_path_factory, server_logs):
    """An agent that reaches PostgreSQL and S3 through TCP proxies:
    (agent, {"metadata": proxy, "object_store": proxy}). Other agents on the
    same database (this module's `server`) may share its cluster; the tests
    ask only this one."""
    metadata = os.environ["STREAMHOUSE_CLIENTS_METADATA"]
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    if not endpoint.startswith("http://"):
        pytest.skip(f"the S3 proxy needs a plain http:// AWS_ENDPOINT_URL, not {endpoint!r}")
    proxies = {
        "metadata": TcpProxy(_address(metadata)),
        "object_store": TcpProxy(_address(endpoint)),
    }
    parts = urlsplit(metadata)
    userinfo = parts.netloc.rpartition("@")[0]
    proxied_metadata = urlunsplit(
        parts._replace(netloc=f"{userinfo}@{proxies['metadata'].address}".lstrip("@"))
    )
    proxied_endpoint = urlunsplit(
        urlsplit(endpoint)._replace(netloc=proxies["object_store"].address)
    )
    agent = cl.new_agent(
        tmp_path_factory.mktemp("hostile-http"),
        "blackholed",
        metadata=proxied_metadata,
        environment={"AWS_ENDPOINT_URL": proxied_endpoint},
    )
    server_logs.append(agent)
    try:
        agent.start()
        yield agent, proxies
        assert agent.running(), f"the agent exited\n{agent.log_tail()}"
        status = agent.stop()
        assert status == 0, f"exit status {status} after SIGTERM\n{agent.log_tail()}"
    finally:
        agent.kill()
        for proxy in proxies.values():
            proxy.close()


def listed_topics(agent: StreamHouse) -> tuple[dict[str, int], float]:
    """({topic: error} of a Metadata request for every topic, seconds)."""
    started = time.monotonic()
    _, brokers, _, errors = wire.parse_metadata_v1(cl.ask(agent, wire.metadata_v1(1, None)))
    assert brokers, "Metadata lists no broker"
    return errors, time.monotonic() - started


@pytest.mark.cluster
@pytest.mark.parametrize("backend", ["metadata", "object_store"])
def test_ready_is_503_within_2s_while_a_backend_is_blackholed(
    proxied, backend, record_property
):
    agent, proxies = proxied
    proxy, other = proxies[backend], "object_store" if backend == "metadata" else "metadata"
    topic = unique_name(f"blackhole-{backend}")
    cl.Cluster([agent]).create_topic(topic, 2)
    errors, _ = listed_topics(agent)
    assert errors.get(topic) == 0, f"Metadata before the blackhole: {errors}"
    wait_for_ready(agent, 200, RECOVERY_LIMIT)

    proxy.mute()
    muted_at = time.monotonic()
    try:
        ready = wait_for_ready(agent, 503, NOTICE_WITHIN)
        noticed = time.monotonic() - muted_at
        assert ready.get(backend) not in (None, "ok") and ready.get(other) == "ok", ready
        assert agent.http_status("/health", timeout=5) == 200

        listings = []
        if backend == "metadata":
            # Past the topic cache's TTL, so that answers come from what the
            # agent knew rather than from a fresh lookup.
            while time.monotonic() - muted_at < BLACKHOLE_SECONDS:
                listings.append(listed_topics(agent))
                by_name = cl.topic_error(agent, topic)
                assert by_name == 0, f"Metadata({topic}) during the blackhole: error {by_name}"
                time.sleep(1)
            for errors, took in listings:
                assert errors.get(topic) == 0, f"Metadata during the blackhole: {errors}"
                assert took < 5, f"Metadata answered after {took:.1f} s"
            admin = AdminClient(confluent_config(agent.bootstrap))
            listed = admin.list_topics(timeout=15).topics
            assert topic in listed, f"AdminClient.list_topics lost {topic}: {sorted(listed)}"
        else:
            time.sleep(BLACKHOLE_SECONDS / 2)
        wait_for_ready(agent, 503, 1)
    finally:
        proxy.restore()
    restored_at = time.monotonic()
    wait_for_ready(agent, 200, RECOVERY_LIMIT)
    recovered = time.monotonic() - restored_at
    errors, _ = listed_topics(agent)
    assert errors.get(topic) == 0, f"Metadata after the blackhole: {errors}"
    slowest = max((took for _, took in listings), default=0.0)
    record_property(
        "outage",
        f"{backend} blackholed: /ready 503 after {noticed:.1f} s (each answer < "
        f"{READY_WITHIN:.0f} s), 200 again {recovered:.1f} s after the restore"
        + (
            f"; {len(listings)} Metadata lists during it all named the topic "
            f"(slowest {slowest:.1f} s)"
            if listings
            else ""
        ),
    )


def test_memory_stays_bounded_after_everything(server):
    assert_alive(server)
    rss = server.rss_bytes()
    assert rss < RSS_LIMIT, f"resident memory {rss >> 20} MiB (limit {RSS_LIMIT >> 20} MiB)"
