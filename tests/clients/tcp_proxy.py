"""A TCP proxy that a test can cut: put between an agent and PostgreSQL or
the S3 server, it forwards bytes both ways until `cut()`, which resets
every open connection and refuses new ones (accepted, then reset at once)
until `restore()`. To the agent that looks like the server going away.
Put between clients and an agent, `mute()` first drops what the agent
answers while its requests still arrive: answers lost after the work
was done.

Threads, not asyncio: each connection gets two pump threads, which is
plenty for the handful of connections an agent keeps open."""

import socket
import struct
import threading


def _abort(sock: socket.socket) -> None:
    """Makes `sock` close with a TCP reset rather than an orderly FIN, and
    wakes the pump thread blocked reading it, which then closes it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _reset(sock: socket.socket) -> None:
    """Closes `sock` (no thread uses) with a TCP reset."""
    _abort(sock)
    sock.close()


class TcpProxy:
    """Listens on `host`:`port` (a free port by default) and forwards each
    connection to `target` (host, port)."""

    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1", port: int = 0):
        self.target = target
        self.host = host
        self._listener = socket.create_server((host, port))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self._muted = False
        self.dropped_bytes = 0
        self._closing = False
        self.accepted = 0
        self.refused = 0
        self._acceptor = threading.Thread(target=self._accept, name=f"proxy:{self.port}")
        self._acceptor.daemon = True
        self._acceptor.start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def mute(self) -> None:
        """Drops everything the target sends from now on, until restore()."""
        self._muted = True

    def cut(self) -> None:
        """Resets every open connection and refuses new ones."""
        with self._lock:
            self._cut = True
            open_sockets, self._open = self._open, set()
        for sock in open_sockets:
            _abort(sock)

    def restore(self) -> None:
        with self._lock:
            self._cut = False
            self._muted = False

    def close(self) -> None:
        self._closing = True
        self.cut()
        self._acceptor.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                cut = self._cut
            if cut:
                self.refused += 1
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._cut:
                    _reset(client)
                    _reset(upstream)
                    continue
                self._open.update((client, upstream))
                self.accepted += 1
            for source, sink, answers in ((client, upstream, False), (upstream, client, True)):
                pump = threading.Thread(target=self._pump, args=(source, sink, answers))
                pump.daemon = True
                pump.start()

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while data := source.recv(65536):
                if answers and self._muted:
                    self.dropped_bytes += len(data)
                    continue
                sink.sendall(data)
        except OSError:
            pass
        # One side finished or failed: the connection is over both ways.
        with self._lock:
            self._open.discard(source)
            self._open.discard(sink)
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass
