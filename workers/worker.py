"""The worker process: RQ's non-forking SimpleWorker, with a guard against slow leaks.

RQ's default Worker forks a work-horse per job: safe against leaks, but it pays a fork, a fresh
interpreter state and new database and Redis connections for every job, which dominated the
cost of a message when there was a job per message (issue 9). The drain jobs (workers.queues)
are few and long, and only use the process's own pooled connections, so they run in the worker
process itself.

Leak guard: after SIPAS_WORKER_MAX_JOBS jobs, or as soon as its resident memory passes
SIPAS_WORKER_MAX_MEMORY_MB after a job, the worker finishes its loop cleanly (no job is cut
short) and `sipas worker` replaces the process image with a fresh one (exec, same pid, so honcho
or systemd see nothing). A job that crashes the process is covered by the outbox lease and the
inbound attempts (storage.outbox, storage.inbound).
"""

from __future__ import annotations

import os
import resource
from typing import Any

from rq import SimpleWorker
from rq.job import Job
from rq.queue import Queue

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float:
    """The process's resident memory now (Linux /proc), else its peak."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * _PAGE / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class GuardedWorker(SimpleWorker):
    """SimpleWorker that stops after a job when the process holds more than `max_memory_mb`."""

    def __init__(self, *args: Any, max_memory_mb: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_memory_mb = max_memory_mb
        self.restart_wanted = False

    def execute_job(self, job: Job, queue: Queue) -> None:
        super().execute_job(job, queue)
        used = rss_mb()
        if used > self.max_memory_mb:
            self.log.warning("worker uses %.0f MB after a job: restarting cleanly", used)
            self.restart_wanted = True
            self._stop_requested = True

    @property
    def stopped_by_signal(self) -> bool:
        """SIGTERM/SIGINT (honcho, systemd, Ctrl+C): stop for good, do not restart."""
        return self._shutdown_requested_date is not None
