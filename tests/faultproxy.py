"""A fault-injecting TCP proxy on 127.0.0.1 for the tests: 503s and dropped connections.

Put it in front of an emulator (fake-gcs-server speaks HTTP/1.1, the Firestore emulator gRPC
over HTTP/2) and point the client at the proxy. While a fault is on, each new connection is
answered with ``HTTP/1.1 503`` and closed (``mode="503"``, HTTP only) or closed at once
(``mode="drop"``: the client sees a reset, gRPC reports UNAVAILABLE); connections open when a
fault starts are cut. A fault lasts for a number of connections or a number of seconds; after
it, bytes pass through untouched.

    with FaultProxy(("127.0.0.1", port)) as proxy:
        proxy.fail(mode="503", connections=3)      # the next three connections get a 503
        proxy.fail(mode="drop", seconds=2.0)       # every connection for two seconds is cut
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from typing import Literal

Mode = Literal["503", "drop"]
_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Content-Length: 61\r\nConnection: close\r\n\r\n"
    b'{"error": {"code": 503, "message": "injected by faultproxy"}}'
)


class FaultProxy:
    """Forward 127.0.0.1:<port> to ``upstream``, failing connections on request.

    Args:
        upstream: ``(host, port)`` of the real server.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._mode: Mode = "503"
        self._left = 0  # connections still to fail
        self._until = 0.0  # monotonic time until which every connection fails
        self._open: set[socket.socket] = set()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="faultproxy", daemon=True)
        self.failed = 0  # connections failed so far
        self.passed = 0  # connections passed through so far

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, for the emulator variables."""
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._listener.close()
        self._cut()

    def fail(self, *, mode: Mode = "503", connections: int = 0, seconds: float = 0.0) -> None:
        """Fail the next ``connections`` connections, or every one for ``seconds``."""
        with self._lock:
            self._mode, self._left = mode, connections
            self._until = time.monotonic() + seconds if seconds else 0.0
        self._cut()  # a fault starts now: keep-alive connections must not slip past it

    def heal(self) -> None:
        """End the fault now."""
        with self._lock:
            self._left, self._until = 0, 0.0

    def _cut(self) -> None:
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def _faulty(self) -> Mode | None:
        with self._lock:
            if self._left > 0:
                self._left -= 1
                return self._mode
            if time.monotonic() < self._until:
                return self._mode
            return None

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            mode = self._faulty()
            if mode is not None:
                self.failed += 1
                threading.Thread(target=self._refuse, args=(client, mode), daemon=True).start()
                continue
            self.passed += 1
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    @staticmethod
    def _refuse(client: socket.socket, mode: Mode) -> None:
        with contextlib.closing(client):
            if mode == "drop":
                # RST rather than FIN: the client sees "connection reset", as on a real outage
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            client.settimeout(5)
            with contextlib.suppress(OSError):
                data = b""
                while b"\r\n\r\n" not in data:  # read the request head, then answer
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                client.sendall(_503)
                client.shutdown(socket.SHUT_WR)

    def _forward(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            client.close()
            return
        server.settimeout(None)
        with self._lock:
            self._open.update((client, server))
        pumps = [
            threading.Thread(target=self._pump, args=(client, server), daemon=True),
            threading.Thread(target=self._pump, args=(server, client), daemon=True),
        ]
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join()
        with self._lock:
            self._open.discard(client)
            self._open.discard(server)
        for sock in (client, server):
            with contextlib.suppress(OSError):
                sock.close()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
