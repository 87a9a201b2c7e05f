"""Nightly reconciliation of ZNS ratings: what `rating/get` knows that the webhook did not bring.

Zalo delivers `user_feedback` once, best effort; a rating given while our web process was down,
or lost on the way, would be missing from the scores. Every night (workers.cron_config, before
the 01:00 scores) this job reads the previous local day's ratings of the rating template and
stores each one exactly as the webhook would have, through the same store path
(bot.channels.intake): an `inbound_events` row with provider `zalo_oa` and provider id
`user_feedback:<msgId>` (bot.channels.zalo_oa.rating_id). A rating the webhook already stored has
that provider id, so it is a duplicate and skipped; one that is new is handed to `ProcessNow`,
which processes it at once through the same path as a webhook event (workers.inbound) and queues
what it sends. Running the job twice stores nothing twice.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import structlog

from bot.channels import zalo_oa
from bot.channels.intake import store_and_wake_blocking
from bot.channels.zalo.oa_api import ZNSClient
from bot.channels.zalo.token_store import DatabaseTokenStore
from bot.channels.zalo.types import OAEventName, ZNSRating
from workers.inbound import process
from workers.runtime import Runtime, get_runtime
from workers.sending import enqueue_sends

__all__ = ["PAGE_SIZE", "ProcessNow", "fetch_ratings", "rating_event", "reconcile", "reconcile_ratings"]

log = structlog.get_logger(__name__)

PAGE_SIZE = 100


def reconcile_ratings(day: str | None = None) -> dict[str, int | str]:
    """RQ cron job (and `sipas zalo reconcile-ratings`): reconcile `day` (YYYY-MM-DD, local), by
    default yesterday."""
    runtime = get_runtime()
    local_today = datetime.now(UTC).astimezone(runtime.settings.tz).date()
    return reconcile(runtime, date.fromisoformat(day) if day else local_today - timedelta(days=1))


def _day_bounds_ms(runtime: Runtime, day: date) -> tuple[int, int]:
    tz = runtime.settings.tz
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000) - 1


async def fetch_ratings(runtime: Runtime, template_id: str, from_ms: int, to_ms: int) -> list[ZNSRating]:
    """Every rating of the period, page by page."""
    settings = runtime.settings
    store = DatabaseTokenStore(runtime.sessions, runtime.vault, runtime.redis, settings.ZALO_OA_APP_ID)
    ratings: list[ZNSRating] = []
    async with ZNSClient(
        settings.ZNS_API_BASE,
        settings.ZALO_OAUTH_BASE,
        settings.ZALO_OA_APP_ID,
        settings.ZALO_APP_SECRET,
        store,
    ) as zns:
        offset = 0
        while True:
            page = await zns.get_ratings(template_id, from_ms, to_ms, offset=offset, limit=PAGE_SIZE)
            ratings.extend(page.data)
            offset += len(page.data)
            if not page.data or offset >= page.total:
                return ratings


def rating_event(app_id: str, rating: ZNSRating) -> dict[str, Any]:
    """A rating from `rating/get` in the shape of the `user_feedback` webhook event."""
    stamp = rating.submit_date or int(datetime.now(UTC).timestamp() * 1000)
    return {
        "event_name": OAEventName.USER_FEEDBACK.value,
        "app_id": app_id,
        "source": "rating/get",
        "message": {
            "msg_id": rating.msg_id,
            "rate": rating.rate,
            "note": rating.note or "",
            "feedbacks": list(rating.feedbacks),
            "tracking_id": rating.tracking_id or "",
            "submit_time": str(stamp),
        },
        "timestamp": str(stamp),
    }


class ProcessNow:
    """The hand-over of a reconciled rating (bot.context.JobDispatcher): this job runs in a worker
    already, so the event is processed here at once and what it sends is queued. A failure is
    logged by the store path and left to the sweep of unprocessed events."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def inbound_received(self, event_id: int) -> None:
        result, outbox_ids = process(self._runtime, event_id)
        enqueue_sends(self._runtime, outbox_ids)
        log.info("zns rating reconciled", event_id=event_id, result=result)

    def surveys_scheduled(self) -> None:
        """A reconciled rating opens no survey."""


def reconcile(runtime: Runtime, day: date) -> dict[str, int | str]:
    """Store and process the ratings of local `day` that are not stored yet; returns counts."""
    settings = runtime.settings
    template_id = settings.ZNS_RATING_TEMPLATE_ID
    if not template_id or not settings.ZALO_OA_APP_ID:
        log.info("zns reconciliation skipped: no rating template configured")
        return {"day": day.isoformat(), "skipped": "ZNS_RATING_TEMPLATE_ID or ZALO_OA_APP_ID is not set"}
    from_ms, to_ms = _day_bounds_ms(runtime, day)
    ratings = asyncio.run(fetch_ratings(runtime, template_id, from_ms, to_ms))
    stored = duplicates = 0
    process_now = ProcessNow(runtime)
    for rating in ratings:
        saved = store_and_wake_blocking(
            runtime.sessions,
            runtime.vault,
            process_now,
            provider=zalo_oa.NAME,
            kind=OAEventName.USER_FEEDBACK.value,
            provider_id=zalo_oa.rating_id(rating.msg_id),
            payload=json.dumps(rating_event(settings.ZALO_OA_APP_ID, rating), ensure_ascii=False),
            sender=None,  # a rating names the ZNS message, not the citizen
        )
        if saved.duplicate:
            duplicates += 1
        else:
            stored += 1
    counts: dict[str, int | str] = {
        "day": day.isoformat(),
        "fetched": len(ratings),
        "stored": stored,
        "duplicates": duplicates,
    }
    log.info("zns reconciliation done", **counts)
    return counts
