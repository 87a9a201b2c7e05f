"""A TCP proxy the test controls, to put a fault between a service process and PostgreSQL or
Redis without touching the real server (the machine's PostgreSQL is shared with other runs).

- `cut()`: every open connection is reset and new ones are refused (the server is unreachable,
  as when a network link or the database host goes away); `restore()` accepts again.
- `trip(marker)`: the first connection whose client sends bytes containing `marker` is frozen
  there (nothing more is forwarded either way) and `tripped` is set: the process is stuck at a
  known point of its work, for the test to kill it there.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from types import TracebackType
from typing import Self


class TcpProxy:
    """`with TcpProxy("127.0.0.1", 5432) as proxy:` listens on 127.0.0.1:`proxy.port`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._open = True
        self._stopped = threading.Event()
        self._marker: bytes | None = None
        self.tripped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopped.set()
        self._listener.close()
        self._reset_all()
        self._thread.join(timeout=5)

    def cut(self) -> None:
        with self._lock:
            self._open = False
        self._reset_all()

    def restore(self) -> None:
        with self._lock:
            self._open = True

    def trip(self, marker: bytes) -> None:
        self.tripped.clear()
        self._marker = marker

    def _reset_all(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    # RST rather than FIN: the client sees the link die, not a polite close.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    sock.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _addr = self._listener.accept()
            except OSError:
                return
            with self._lock:
                allowed = self._open
            if not allowed:
                with contextlib.suppress(OSError):
                    client.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        try:
            selector.register(client, selectors.EVENT_READ, server)
            selector.register(server, selectors.EVENT_READ, client)
            frozen = False
            while not self._stopped.is_set():
                for key, _mask in selector.select(timeout=0.5):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = source.recv(65536)
                    if not data:
                        return
                    if frozen:
                        continue
                    marker = self._marker
                    if source is client and marker is not None and marker in data:
                        self._marker = None
                        frozen = True
                        self.tripped.set()
                        continue
                    key.data.sendall(data)
        except (OSError, ValueError):
            return
        finally:
            selector.close()
            for sock in (client, server):
                with contextlib.suppress(OSError):
                    sock.close()
