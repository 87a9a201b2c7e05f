"""The dashboard's trend points equal what build_report gives for the unit in each period."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from flows.scores.periods import day_period, parse_period
from flows.scores.report import build_report
from flows.scores.trend import sipas_trend
from storage.agencies import get_by_code
from storage.db import session_factory
from tests.web.seed import seed_scores


@pytest.mark.parametrize("channel", ["all", "sms", "zalo"])
def test_trend_points_equal_the_report(any_db_url: str, settings: Settings, channel: str) -> None:
    sessions: sessionmaker[Session] = session_factory(any_db_url)
    first, last = seed_scores(sessions, settings.tz)
    parts = [day_period(first + timedelta(days=i)) for i in range((last - first).days + 2)]  # one empty
    parts.append(parse_period(f"{first}..{last}"))
    compared = 0
    with sessions() as session:
        for code in ("HN", "HN-BD", "HN-SNV"):
            agency = get_by_code(session, code)
            assert agency is not None
            trend = sipas_trend(session, agency.id, parts, channel)
            for part, point in zip(parts, trend, strict=True):
                rows = build_report(session, part, code, settings=settings, channel=channel).rows
                expected = next(r.figures for r in rows if r.unit.code == code)
                assert point.value == pytest.approx(expected.sipas_index), (code, part.label)
                assert point.ci95 == pytest.approx(expected.sipas.ci95), (code, part.label)
                compared += point.value is not None
    assert compared > (20 if channel != "zalo" else -1)
