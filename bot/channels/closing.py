"""`with` for the objects that hold a connection (gateways, send routes): one definition of
__enter__/__exit__, so a job cannot leave one open whichever way it ends."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Closing:
    """Mixin: `with obj:` calls `obj.close()` on the way out. A subclass that holds a connection
    overrides close(); one that holds nothing keeps this one."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Nothing held unless a subclass says so."""
