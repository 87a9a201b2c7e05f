"""RQ's delayed jobs (the nightly digest's retries, `enqueue_in`) reach their queue through the
cron sweep, not through an RQ scheduler process forked by every worker (issue 9: every process
under 250 MB): due ones are moved once, later ones wait, and two sweeps never move one twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis import Redis

from config.settings import Settings
from workers.queues import SCHEDULED_LOCK, SCORES_QUEUE, enqueue_due_scheduled, queue
from workers.runtime import Runtime
from workers.timers import sweep_once

JOB = "workers.digest.send.send_nightly_digests"


def test_the_sweep_moves_due_delayed_jobs_to_their_queue_once(settings: Settings, redis: Redis) -> None:
    runtime = Runtime.build(settings)
    scores = queue(redis, SCORES_QUEUE)
    scores.enqueue_in(timedelta(seconds=0), JOB, "2026-11-20", 2, job_id="digest-2026-11-20-2")
    scores.enqueue_in(timedelta(hours=1), JOB, "2026-11-20", 3, job_id="digest-2026-11-20-3")

    assert sweep_once(runtime)["scheduled_jobs"] == 1
    assert scores.job_ids == ["digest-2026-11-20-2"]
    assert scores.scheduled_job_registry.get_job_ids() == ["digest-2026-11-20-3"]
    assert sweep_once(runtime)["scheduled_jobs"] == 0  # moved once only
    assert scores.job_ids == ["digest-2026-11-20-2"]

    later = datetime.now(UTC) + timedelta(hours=2)
    redis.set(SCHEDULED_LOCK, b"1")  # another sweep is moving them right now
    assert enqueue_due_scheduled(redis, later) == 0
    redis.delete(SCHEDULED_LOCK)
    assert enqueue_due_scheduled(redis, later) == 1
    assert scores.job_ids == ["digest-2026-11-20-2", "digest-2026-11-20-3"]
    assert scores.scheduled_job_registry.get_job_ids() == []
