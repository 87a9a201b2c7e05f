"""The supervisors' dashboard, export and digests through the real app on scored data."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
from openpyxl import load_workbook
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from bot.context import CONTEXT
from bot.web.access import Viewer
from bot.web.dashboard import Dashboard, ReportCache, _figures_key, build_dashboard, warm
from config.settings import Settings
from flows.scores.counts import compute_days
from flows.scores.periods import parse_period, yesterday
from storage.agencies import get_by_code
from storage.crypto import PhoneVault
from storage.models import UserRole
from tests.support.app import Client, RecordingDispatcher, app_client
from tests.web.seed import SCRIPT_COMMENT, seed_scores, seeded_period
from tests.web.support import log_in, seed_user


@pytest.fixture
def low_minimum(settings: Settings) -> Settings:
    return settings.model_copy(update={"SIPAS_MIN_RESPONSES": 5})


@pytest.fixture
async def scored(
    low_minimum: Settings, sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis
) -> AsyncIterator[Client]:
    seed_scores(sessions, low_minimum.tz)
    seed_user(sessions, "tinh", UserRole.SUPERVISOR, "HN")
    seed_user(sessions, "badinh", UserRole.SUPERVISOR, "HN-BD")
    async with app_client(low_minimum, sessions, vault, redis, RecordingDispatcher()) as test_client:
        yield test_client


async def test_province_supervisor_sees_the_ranking_of_its_units(
    scored: Client, low_minimum: Settings
) -> None:
    await log_in(scored, "tinh")
    period = seeded_period(low_minimum.tz)
    page = await scored.get("/", params={"period": period})
    assert page.status == 200
    html = await page.text()
    assert "Thành phố Hà Nội" in html
    assert "Xếp hạng đơn vị trực thuộc" in html
    # Ba Đình (all 4s and 5s) ranks above Hoàn Kiếm; both link to their own unit page.
    assert html.index("Phường Ba Đình</a>") < html.index("Phường Hoàn Kiếm</a>")
    assert "agency=HN-BD" in html
    assert '<svg class="chart trend"' in html
    assert "Chỉ số SIPAS theo ngày" in html
    # The citizen's words are shown as text, masked, never as markup.
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in html
    assert "0912345678" not in html
    assert SCRIPT_COMMENT not in html
    unit = await scored.get("/", params={"period": period, "agency": "HN-HK"})
    assert unit.status == 200
    assert "Phường Hoàn Kiếm" in await unit.text()


async def test_ward_supervisor_sees_only_its_ward(scored: Client, low_minimum: Settings) -> None:
    await log_in(scored, "badinh")
    period = seeded_period(low_minimum.tz)
    html = await (await scored.get("/", params={"period": period})).text()
    assert "Phường Ba Đình" in html
    assert "Phường Hoàn Kiếm" not in html
    assert "Thành phố Hà Nội" not in html
    assert "Xếp hạng đơn vị trực thuộc" not in html
    outside = await scored.get("/", params={"period": period, "agency": "HN"})
    assert outside.status == 404
    export = await scored.get("/export.xlsx", params={"period": period, "agency": "HN-HK"})
    assert export.status == 404


async def test_export_is_the_workbook_of_the_filters(scored: Client, low_minimum: Settings) -> None:
    await log_in(scored, "tinh")
    answer = await scored.get(
        "/export.xlsx", params={"period": seeded_period(low_minimum.tz), "agency": "HN"}
    )
    assert answer.status == 200
    assert answer.headers["Content-Disposition"].startswith('attachment; filename="sipas-HN-')
    book = load_workbook(io.BytesIO(await answer.read()))
    units = book["Đơn vị"]
    codes = [row[0] for row in units.iter_rows(min_row=2, values_only=True)]
    assert codes[:1] == ["HN"]
    assert {"HN-BD", "HN-HK", "HN-SNV"} <= set(codes)


async def test_bad_filters_are_4xx(scored: Client) -> None:
    await log_in(scored, "tinh")
    assert (await scored.get("/", params={"period": "2026-13"})).status == 400
    assert (await scored.get("/", params={"channel": "fax"})).status == 400
    assert (await scored.get("/", params={"agency": "NOPE"})).status == 404
    assert (await scored.get("/digests/999999")).status == 404
    assert (await scored.get("/digests/abc")).status == 404
    english = await scored.get("/", params={"lang": "en", "period": "2026-11"})
    assert "SIPAS index" in await english.text()


async def test_the_first_views_are_built_after_the_nightly_counts(
    scored: Client, low_minimum: Settings, sessions: sessionmaker[Session]
) -> None:
    """The warm-up builds each account's first view (its unit, this month) when the counts change,
    and that view is then served from memory; a recomputation makes it build them again."""
    ctx = scored.app[CONTEXT]
    cache = ReportCache()
    assert warm(ctx, cache) == 2  # the province's and Ba Đình's supervisors
    assert warm(ctx, cache) == 0  # nothing new
    with sessions() as s:
        province = get_by_code(s, "HN")
        assert province is not None
        province_id = province.id
    month = parse_period(f"{yesterday(low_minimum.tz):%Y-%m}")
    view = ("all", None)
    cached: Dashboard = cache.memo(
        _figures_key(province_id, "HN", month, view), lambda: pytest.fail("built again")
    )
    fresh = ReportCache()
    viewer = Viewer(0, "tinh", UserRole.SUPERVISOR, province_id, "HN", "vi", None)
    built = build_dashboard(ctx, fresh, viewer, "HN", month, view)
    assert built is not None
    assert cached.unit == built.unit
    assert cached.monthly == built.monthly
    last = yesterday(low_minimum.tz)
    with sessions() as s, s.begin():
        compute_days(s, last, last, low_minimum.tz)
    assert warm(ctx, cache) == 2
    # A page request that sees the new counts before the warm-up loop does leaves it its work.
    with sessions() as s, s.begin():
        compute_days(s, last, last, low_minimum.tz)
    with ctx.sessions() as s:
        cache.refresh(s)
    assert warm(ctx, cache) == 2
    # The page itself is the warmed view.
    await log_in(scored, "tinh")
    assert (await scored.get("/")).status == 200
