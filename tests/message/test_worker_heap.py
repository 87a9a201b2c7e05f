"""The worker freezes its heap after a job that loaded modules (workers.worker), so the
collector's full passes skip the process's long-lived objects while the drains run."""

from __future__ import annotations

import gc

from redis import Redis

from workers.queues import queue
from workers.worker import GuardedWorker


def test_the_worker_freezes_its_heap_after_a_job(redis: Redis) -> None:
    jobs = queue(redis, "sipas")
    jobs.enqueue("platform.python_version")
    gc.unfreeze()
    try:
        worker = GuardedWorker([jobs], connection=redis, max_memory_mb=10_000)
        worker.work(burst=True)
        assert gc.get_freeze_count() > 0
        assert worker.modules_frozen > 0
    finally:
        gc.unfreeze()
