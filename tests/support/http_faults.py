"""An HTTP gateway in front of Kannel's sendsms that misbehaves as the test asks: refuses with 429
(Retry-After: 1) without forwarding, or forwards and then answers slowly, past the sender's
timeout if asked (Kannel took the message, our side never hears it did). The service is pointed
at it with KANNEL_SENDSMS_URL; everything it forwards reaches the real Kannel unchanged."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

import httpx


class FaultyGateway:
    """`with FaultyGateway() as gateway:` then set `target` (Kannel's sendsms URL) and the knobs.

    - the first `refuse_first` requests: every `refuse_every`-th one answers 429, not forwarded;
    - every forwarded request is answered `delay` seconds after Kannel's answer, every
      `stall_every`-th one after `stall` seconds instead.
    """

    def __init__(self) -> None:
        self.target = ""
        self.refuse_first = 0
        self.refuse_every = 2
        self.delay = 0.0
        self.stall_every = 0
        self.stall = 0.0
        self.requests = 0
        self.refused = 0
        self.stalled = 0
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=30)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="faulty-gateway", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cgi-bin/sendsms"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def _plan(self) -> tuple[bool, float]:
        """(refuse, seconds to wait before answering) for the next request."""
        with self._lock:
            self.requests += 1
            n = self.requests
            if n <= self.refuse_first and n % self.refuse_every == 0:
                self.refused += 1
                return True, 0.0
            if self.stall_every and n % self.stall_every == 0:
                self.stalled += 1
                return False, self.stall
            return False, self.delay

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                refuse, wait = gateway._plan()
                if refuse:
                    self._answer(429, b"Too many requests", {"Retry-After": "1"})
                    return
                query = self.path.partition("?")[2]
                answer = gateway._client.get(f"{gateway.target}?{query}")
                threading.Event().wait(wait)
                self._answer(answer.status_code, answer.content, {})

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the sender gave up waiting: what a lost answer looks like

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler
