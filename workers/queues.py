"""Queue names, the coalesced wake-up of the drain jobs, and the dispatcher the web process uses.

Work is not one RQ job per message: the database holds what must be done (pending inbound
events, due outbox rows, due timers) and one *drain* job per kind works it off in batches
(workers.inbound, workers.sending, workers.timers). `wake` makes sure one drain job of a kind is
pending, and only one: a Redis flag set with NX guards the enqueue, and the drain job clears the
flag before it reads the database, so work stored while it runs wakes a successor instead of
being missed. Storing a thousand events costs one enqueue, and the queue never grows with the
backlog. The flag expires (WAKE_TTL), so a lost job (Redis restarted, worker killed before the
job started) is re-woken by the cron sweep at the latest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from redis import Redis
from rq import Queue
from rq.job import Job

DEFAULT_QUEUE = "sipas"  # drain jobs: inbound events, sends, timers; the sweep
SCORES_QUEUE = "sipas-scores"  # nightly aggregation and digests: long, must not delay replies
ALL_QUEUES = (DEFAULT_QUEUE, SCORES_QUEUE)

Drain = Literal["inbound", "sends", "timers"]
# Seconds a wake flag may outlive its job: a worker killed between taking the job and clearing
# the flag delays the next wake-up by at most this (a duplicate job is harmless, a lost one is not).
WAKE_TTL = 10


def queue(redis: Redis, name: str = DEFAULT_QUEUE) -> Queue:
    return Queue(name, connection=redis)


def wake_key(kind: Drain) -> str:
    return f"sipas:wake:{kind}"


def wake(redis: Redis, kind: Drain) -> bool:
    """Make sure one drain job of `kind` is pending. Returns whether this call enqueued it."""
    if not redis.set(wake_key(kind), b"1", nx=True, ex=WAKE_TTL):
        return False
    job = _DRAIN_JOBS[kind]
    number = redis.incr(f"sipas:wake:{kind}:n")
    queue(redis).enqueue(
        job, job_id=f"drain-{kind}-{number}", result_ttl=0, failure_ttl=3600, job_timeout=600
    )
    return True


# Held while delayed jobs are moved to their queue, so that two sweeps never move one job twice.
SCHEDULED_LOCK = "sipas:lock:scheduled-jobs"


def enqueue_due_scheduled(redis: Redis, now: datetime) -> int:
    """RQ's delayed jobs (`enqueue_in`: the nightly digest's retries) whose time has come, moved
    to their queue; how many. The cron sweep does this every few seconds, instead of RQ's
    scheduler: a process every worker would fork and keep (78 MB resident beside a 134 MB
    worker, docs/benchmarks.md) to do the same once a second."""
    if not redis.set(SCHEDULED_LOCK, b"1", nx=True, ex=60):
        return 0  # another sweep is moving them
    moved = 0
    try:
        for name in ALL_QUEUES:
            target = queue(redis, name)
            registry = target.scheduled_job_registry
            due = registry.get_jobs_to_schedule(int(now.timestamp()))
            if not due:
                continue
            jobs = Job.fetch_many(due, connection=redis)
            with redis.pipeline() as pipe:
                for job_id, job in zip(due, jobs, strict=True):
                    if job is not None:
                        target.enqueue_job(job, pipeline=pipe)
                        moved += 1
                    registry.remove(job_id, pipeline=pipe)
                pipe.execute()
    finally:
        redis.delete(SCHEDULED_LOCK)
    return moved


def woken(redis: Redis, kind: Drain) -> None:
    """Called by a drain job before it reads the database: later work wakes a new job."""
    redis.delete(wake_key(kind))


# The drain jobs by dotted path: RQ imports them in the worker, so this module imports none of
# them, and workers.inbound, workers.sending and workers.timers (which all call `wake`) do not
# form an import cycle through it.
_DRAIN_JOBS: dict[Drain, str] = {
    "inbound": "workers.inbound.drain_inbound",
    "sends": "workers.sending.drain_sends",
    "timers": "workers.timers.drain_timers",
}


class RQDispatcher:
    """bot.context.JobDispatcher over RQ: a stored inbound event wakes the inbound drain job, an
    intake batch that opened surveys the timer drain (coalesced: a burst of webhooks or batches
    costs one pending job, see `wake`)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    def inbound_received(self, event_id: int) -> None:
        wake(self._redis, "inbound")

    def surveys_scheduled(self) -> None:
        wake(self._redis, "timers")
