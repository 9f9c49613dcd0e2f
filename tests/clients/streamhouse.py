"""Runs a real `streamhouse serve` process for the client suites.

The runner (scripts/lib/client_suites.sh) chooses the binary and backends:

  STREAMHOUSE_CLIENTS_BIN           path of the streamhouse binary
  STREAMHOUSE_CLIENTS_METADATA      postgres://... (unset: embedded SQLite)
  STREAMHOUSE_CLIENTS_OBJECT_STORE  s3://BUCKET/PREFIX (unset: local directory)

A server keeps its ports, agent id and data across restarts, so a test can
SIGKILL it and bring it back where clients expect it. Several servers with
their own agent ids on the same PostgreSQL database and S3 prefix form a
cluster.
"""

import os
import re
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from support import die_with_parent, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
# The server answers what it received for up to 30 s after SIGTERM.
STOP_TIMEOUT = 45.0

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# `kafka PROTOCOL listening on HOST:PORT`, one line per listener, and
# `http listening on HOST:PORT`.
_LISTENING = re.compile(r"\b(kafka|http)(?: ([A-Z_]+))? listening on (\S+)")


def binary() -> str:
    return os.environ.get(
        "STREAMHOUSE_CLIENTS_BIN", str(REPO_ROOT / "target" / "debug" / "streamhouse")
    )


def backend_label() -> str:
    metadata = os.environ.get("STREAMHOUSE_CLIENTS_METADATA")
    store = os.environ.get("STREAMHOUSE_CLIENTS_OBJECT_STORE")
    if metadata or store:
        metadata = re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", metadata or "sqlite")
        return f"{metadata} + {store or 'local directory'}"
    return "embedded default (SQLite + local directory)"


class StreamHouse:
    """One agent: its data directory, log file and (after start) ports."""

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        agent_id: str | None = None,
        metadata: str | None = None,
        environment: dict[str, str] | None = None,
        advertised_host: str | None = None,
        extra_args: list[str] | None = None,
        listeners: tuple[str, ...] = ("PLAINTEXT",),
        http_ca: Path | None = None,
    ):
        """`metadata` replaces the runner's metadata URL (a test points it at
        a proxy, say), `environment` adds variables such as AWS_ENDPOINT_URL,
        `advertised_host` is the host Kafka clients are told to use, and
        `extra_args` are further `serve` flags (limits a test lowers).
        `listeners` are the security protocols of its Kafka listeners (the
        first one is `bootstrap`); `http_ca` makes the HTTP API https,
        trusted through that CA certificate."""
        self.data_dir = data_dir
        self.log_path = log_path
        self.agent_id = agent_id
        self.metadata = metadata or os.environ.get("STREAMHOUSE_CLIENTS_METADATA") or None
        self.object_store = os.environ.get("STREAMHOUSE_CLIENTS_OBJECT_STORE") or None
        self.extra_environment = dict(environment or {})
        self.advertised_host = advertised_host
        self.extra_args = list(extra_args or [])
        self.listeners = {protocol: 0 for protocol in listeners}
        self.http_port = 0
        self.http_ca = http_ca
        self.process: subprocess.Popen | None = None
        self._log_offset = 0

    @property
    def kafka_port(self) -> int:
        """The port of the first listener."""
        return next(iter(self.listeners.values()))

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def bootstrap_for(self, protocol: str) -> str:
        return f"127.0.0.1:{self.listeners[protocol]}"

    @property
    def http_url(self) -> str:
        scheme = "https" if self.http_ca else "http"
        return f"{scheme}://127.0.0.1:{self.http_port}"

    def _command(self) -> list[str]:
        command = [
            binary(),
            "serve",
            "--data-dir",
            str(self.data_dir),
            *(
                argument
                for protocol, port in self.listeners.items()
                for argument in ("--kafka-listen", f"{protocol}://127.0.0.1:{port}")
            ),
            "--http-listen",
            f"127.0.0.1:{self.http_port}",
        ]
        if self.metadata:
            command += ["--metadata", self.metadata]
        if self.object_store:
            command += ["--object-store", self.object_store]
        if self.agent_id:
            command += ["--agent-id", self.agent_id]
        if self.advertised_host:
            command += ["--advertised-host", self.advertised_host]
        return command + self.extra_args

    def _environment(self) -> dict[str, str]:
        # Settings such as STREAMHOUSE_METADATA in the caller's environment
        # would silently change what the server runs on; only flags count.
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMHOUSE_")}
        env["NO_COLOR"] = "1"
        env.setdefault("RUST_BACKTRACE", "1")
        env.update(self.extra_environment)
        return env

    def start(self) -> None:
        """Starts the server (on its previous ports, if it ran before) and
        waits until /ready answers 200."""
        assert self.process is None or self.process.poll() is not None, "already running"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._try_start(deadline):
                break
            # A port of the previous run can stay taken for a moment after a
            # SIGKILL; anything else is a real failure.
            if not (
                self.kafka_port and "Address already in use" in self.log_since(self._log_offset)
            ):
                raise AssertionError(
                    f"streamhouse exited during startup with status {self.process.returncode}\n"
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    "streamhouse could not bind its ports again\n" + self.log_tail()
                )
            time.sleep(0.2)
        wait_until(
            self._ready,
            timeout=max(1.0, deadline - time.monotonic()),
            message=lambda: "streamhouse /ready did not answer 200\n" + self.log_tail(),
        )

    def _try_start(self, deadline: float) -> bool:
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            log.write(f"==> {' '.join(self._command())}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                die_with_parent(self._command()),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._environment(),
                cwd=self.data_dir,
            )
        kafka: dict[str, int] = {}
        http = None
        while http is None or len(kafka) < len(self.listeners):
            if self.process.poll() is not None:
                return False
            for kind, protocol, address in _LISTENING.findall(self.log_since(self._log_offset)):
                port = int(address.rsplit(":", 1)[1])
                if kind == "http":
                    http = port
                elif protocol:
                    kafka[protocol] = port
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("streamhouse did not report its listeners\n" + self.log_tail())
            time.sleep(0.05)
        self.listeners = {protocol: kafka[protocol] for protocol in self.listeners}
        self.http_port = http
        return True

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(
                f"streamhouse exited with status {self.process.returncode} before it was ready\n"
                + self.log_tail()
            )
        return self.http_status("/ready", timeout=2) == 200

    def http_status(self, path: str, timeout: float = 10.0) -> int | None:
        """The status of GET `path` on the HTTP API; None when nothing answers."""
        return self.http_get(path, timeout)[0]

    def http_get(
        self,
        path: str,
        timeout: float = 10.0,
        method: str = "GET",
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int | None, str]:
        """(status, body) of `method path` on the HTTP API; (None, why) when
        nothing answers."""
        context = ssl.create_default_context(cafile=str(self.http_ca)) if self.http_ca else None
        request = urllib.request.Request(
            self.http_url + path, data=body, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as error:
            return None, str(error)

    def rss_bytes(self) -> int:
        """The process's resident memory (VmRSS of /proc/PID/status)."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc status")

    def open_files(self) -> int:
        """File descriptors the process holds open."""
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int:
        """Sends SIGTERM and returns the exit status (that of the last run
        when the server is not running)."""
        if self.running():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"streamhouse did not exit within {STOP_TIMEOUT:.0f} s of SIGTERM\n"
                    + self.log_tail()
                ) from None
        return self.process.returncode

    def kill(self) -> None:
        if self.running():
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)

    def restart_after_kill(self) -> None:
        self.kill()
        self.start()

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            return _ANSI.sub("", log.read().decode("utf-8", "replace"))

    def log_tail(self, lines: int = 80) -> str:
        try:
            text = self.log_since(0)
        except OSError:
            return f"(no log at {self.log_path})"
        tail = text.splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)
