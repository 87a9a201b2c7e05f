"""The loop every drain job runs (workers.inbound, workers.sending, workers.timers): batches for
about a budget of time, then, if work is left, a coalesced wake-up of a successor job
(workers.queues.wake) instead of going on, so that the other drains' jobs queued meanwhile get
the worker too and no job holds it for long."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping

from redis import Redis

from workers.queues import Drain, wake

# A drain job hands the worker back after about this long, waking a successor if work is left.
DRAIN_BUDGET_SECONDS = 2.0


def drain_batches(
    redis: Redis,
    kind: Drain,
    batch: Callable[[], Mapping[str, int] | None],
    *,
    budget: float = DRAIN_BUDGET_SECONDS,
    work_left: Callable[[], bool] = lambda: True,
) -> dict[str, int]:
    """Call `batch` (one transaction's work, its counts; None when it found nothing to do) until
    it finds nothing or `budget` seconds have passed; then wake a successor of `kind` when
    `work_left` says so (a successor that finds nothing costs one empty job). The counts summed."""
    deadline = time.monotonic() + budget
    totals: Counter[str] = Counter()
    while (counts := batch()) is not None:
        totals.update(counts)
        if time.monotonic() > deadline:
            if work_left():
                wake(redis, kind)
            break
    return dict(totals)
