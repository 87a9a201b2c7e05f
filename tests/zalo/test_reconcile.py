"""Nightly reconciliation of ZNS ratings from `rating/get` (simulated Zalo over HTTP, real database
and Redis): a rating the webhook missed is stored once, and never a second time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from bot.channels.zalo.simulator.threaded import ThreadedSimulator
from storage.models import Answer, Comment, InboundEvent
from tests.zalo.world import HCM, case, handle, make_agencies, send, start, store_oa, submit
from workers.runtime import Runtime
from workers.zalo_reconcile import reconcile


def _count(runtime: Runtime, model: type[Answer] | type[Comment] | type[InboundEvent]) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _rated_surveys(runtime: Runtime, zalo: ThreadedSimulator, n: int) -> list[str]:
    """n zalo_first cases whose ZNS went out; the ZNS msg ids."""
    make_agencies(runtime)
    for k in range(n):
        survey_id = submit(runtime, case(f"REC-{k}", phone=f"09123456{k:02d}"))
        assert send(runtime, start(runtime, survey_id)) == ["sent"]
    return [m["msg_id"] for m in zalo.sim.zns_sent]


def test_missed_rating_is_filled_once(zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator) -> None:
    webhook_msg, missed_msg = _rated_surveys(zalo_runtime, threaded_zalo, 2)
    # One rating arrives by webhook; the other only Zalo knows (our web process was down).
    handle(zalo_runtime, store_oa(zalo_runtime, threaded_zalo.sim.add_rating(webhook_msg, 5)))
    threaded_zalo.sim.add_rating(missed_msg, 2, note="Phải đi lại nhiều lần")
    today = datetime.now(UTC).astimezone(HCM).date()

    counts = reconcile(zalo_runtime, today)
    assert counts == {"day": today.isoformat(), "fetched": 2, "stored": 1, "duplicates": 1}
    with zalo_runtime.sessions() as session:
        values = sorted(v for v in session.scalars(select(Answer.value)) if v is not None)
        reconciled = session.scalars(
            select(InboundEvent).where(InboundEvent.provider_id == f"user_feedback:{missed_msg}")
        ).one()
        assert reconciled.processed_at is not None
        assert reconciled.result is not None
        assert "rating 2 recorded" in reconciled.result
    assert values == [2, 5]
    assert _count(zalo_runtime, Comment) == 1

    again = reconcile(zalo_runtime, today)
    assert again == {"day": today.isoformat(), "fetched": 2, "stored": 0, "duplicates": 2}
    assert _count(zalo_runtime, Answer) == 2
    assert _count(zalo_runtime, Comment) == 1
    assert _count(zalo_runtime, InboundEvent) == 2


def test_webhook_after_reconciliation_is_a_duplicate(
    zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator
) -> None:
    [msg_id] = _rated_surveys(zalo_runtime, threaded_zalo, 1)
    event = threaded_zalo.sim.add_rating(msg_id, 4)
    reconcile(zalo_runtime, datetime.now(UTC).astimezone(HCM).date())
    # Zalo's late retry of the webhook names the same rating: the same provider id.
    first = store_oa(zalo_runtime, event)
    with zalo_runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(InboundEvent)) == 1
        stored = session.get(InboundEvent, first)
        assert stored is not None
        assert stored.processed_at is not None
    assert _count(zalo_runtime, Answer) == 1


def test_other_days_are_left_alone(zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator) -> None:
    [msg_id] = _rated_surveys(zalo_runtime, threaded_zalo, 1)
    threaded_zalo.sim.add_rating(msg_id, 3)
    yesterday = datetime.now(UTC).astimezone(HCM).date() - timedelta(days=1)
    assert reconcile(zalo_runtime, yesterday)["fetched"] == 0
    assert _count(zalo_runtime, Answer) == 0


def test_without_a_template_nothing_is_asked(zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator) -> None:
    runtime = Runtime(
        settings=zalo_runtime.settings.model_copy(update={"ZNS_RATING_TEMPLATE_ID": ""}),
        sessions=zalo_runtime.sessions,
        vault=zalo_runtime.vault,
        redis=zalo_runtime.redis,
    )
    counts = reconcile(runtime, datetime.now(UTC).astimezone(HCM).date())
    assert "skipped" in counts
    assert [r for r in threaded_zalo.sim.requests if r.path == "/rating/get"] == []
