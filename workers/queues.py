"""Queue names and the dispatcher the web process uses to hand work to RQ."""

from __future__ import annotations

from redis import Redis
from rq import Queue

DEFAULT_QUEUE = "sipas"  # inbound processing, sends, timers
SCORES_QUEUE = "sipas-scores"  # nightly aggregation and digests: long, must not delay replies
ALL_QUEUES = (DEFAULT_QUEUE, SCORES_QUEUE)


def queue(redis: Redis, name: str = DEFAULT_QUEUE) -> Queue:
    return Queue(name, connection=redis)


class RQDispatcher:
    """bot.context.JobDispatcher over RQ. Job ids are derived from the stored row, so enqueueing
    the same work twice (webhook retry, sweep recovery) leaves one job, and the job itself is
    idempotent in case it does run twice."""

    def __init__(self, redis: Redis) -> None:
        self._queue = queue(redis)

    def inbound_received(self, event_id: int) -> None:
        from workers.inbound import process_inbound_event

        self._queue.enqueue(process_inbound_event, event_id, job_id=f"inbound-{event_id}")
