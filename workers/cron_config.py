"""What `rq cron` runs (loaded by `sipas cron`; cron strings are local time, see workers.cli.processes)."""

from __future__ import annotations

from rq import cron

from config.settings import get_settings
from workers.queues import DEFAULT_QUEUE, SCORES_QUEUE
from workers.retention import purge_expired_contacts
from workers.scores.tasks import nightly_scores
from workers.timers import sweep
from workers.zalo_reconcile import reconcile_ratings

_settings = get_settings()

# Every few seconds: fire due timers and recover lost jobs. A sweep that waited longer than a few
# intervals in the queue is stale (the next one is already there), so it expires instead of piling up.
cron.register(
    sweep, DEFAULT_QUEUE, interval=_settings.SIPAS_SWEEP_INTERVAL, ttl=6 * _settings.SIPAS_SWEEP_INTERVAL
)
# 00:30 local: yesterday's ZNS ratings that the webhook missed (before the scores count them).
cron.register(reconcile_ratings, DEFAULT_QUEUE, cron="30 0 * * *", job_timeout=1800)
# 01:00 local (18:00 UTC): yesterday's and the previous days' scores.
cron.register(nightly_scores, SCORES_QUEUE, cron="0 1 * * *", job_timeout=3600)
# 02:30 local: contact data of surveys closed longer than the retention period.
cron.register(purge_expired_contacts, SCORES_QUEUE, cron="30 2 * * *", job_timeout=3600)
