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

After a job that imported modules (each kind of job imports its own on its first run) the worker
freezes its heap (gc.freeze): modules, pools and caches live as long as the process, and the
drains create and drop thousands of ORM rows a second, so the collector's full passes would
otherwise walk those long-lived objects again and again (measured in one process: half of the
collector's CPU in a drain of 3,000 replies, a tenth of the drain's).
"""

from __future__ import annotations

import gc
import os
import resource
import sys
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
        self.modules_frozen = 0  # how many modules were loaded when the heap was last frozen

    def execute_job(self, job: Job, queue: Queue) -> None:
        super().execute_job(job, queue)
        if len(sys.modules) != self.modules_frozen:
            gc.collect()  # garbage left by the job is not frozen with the rest
            gc.freeze()
            self.modules_frozen = len(sys.modules)
        used = rss_mb()
        if used > self.max_memory_mb:
            self.log.warning("worker uses %.0f MB after a job: restarting cleanly", used)
            self.restart_wanted = True
            self._stop_requested = True

    @property
    def stopped_by_signal(self) -> bool:
        """SIGTERM/SIGINT (honcho, systemd, Ctrl+C): stop for good, do not restart."""
        return self._shutdown_requested_date is not None
