"""The simulated Zalo on its own event loop in a background thread, for synchronous tests.

End-to-end tests drive real processes with blocking calls (subprocess, httpx, polling the
database); the simulator still has to answer their HTTP requests meanwhile. Here it runs on a
private loop, and `call()` runs a coroutine there (e.g. delivering a webhook as the citizen).
Reading `sim.zns_sent` and friends from the test thread is safe: they are only appended to.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

from bot.channels.zalo.simulator.app import SimConfig, ZaloSimulator

T = TypeVar("T")


class ThreadedSimulator:
    """`with ThreadedSimulator(SimConfig()) as zalo: zalo.sim.base_url, zalo.call(coro)`."""

    def __init__(self, config: SimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="zalo-sim", daemon=True)
        self.sim = ZaloSimulator(config, host=host, port=port)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run `coro` on the simulator's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __enter__(self) -> Self:
        self._thread.start()
        self.call(self.sim.start())
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.call(self.sim.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
