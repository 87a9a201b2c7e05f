"""/ : the supervisors' dashboard of one unit and the units below it, read from flows.scores.

`?agency=CODE` picks a unit inside the account's subtree (each child unit links to its own page
this way), `?period=P` any period `sipas scores show` accepts (default: the current month up to
yesterday), `?channel=all|sms|zalo` the answers of one channel, `?procedure=CODE` the cases of
one administrative procedure (flows.scores.counts keeps the counts per procedure). Also here: the
Excel download of the same figures (/export.xlsx) and the archive of the digests sent to
supervisors (/digests).

Reports are cached per app until the nightly job (or `sipas scores compute`) writes new counts
(ReportCache): a page read again, or another unit's page, is served from memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from functools import partial
from typing import Any, TypeVar, cast
from urllib.parse import quote

import structlog
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.context import CONTEXT, AppContext
from bot.web.access import ANYONE, Viewer, require_role, viewer_of
from bot.web.charts import Bar, Point, bar_chart, line_chart
from bot.web.i18n import LANG, translator
from bot.web.render import compile_templates, error_page, render
from flows.scores.comments import CitizenComment, load_comments
from flows.scores.counts import ALL_CHANNELS, CHANNELS
from flows.scores.formulas import ELEMENTS, Estimate
from flows.scores.periods import FORMS, Period, PeriodError, day_period, parse_period, yesterday
from flows.scores.render import (
    CHANNEL_NAMES,
    ELEMENT_NAMES,
    FUNNEL_NAMES,
    criterion_name,
    flag_text,
    rank_text,
)
from flows.scores.report import Report, build_report
from flows.scores.trend import sipas_trend
from flows.scores.xlsx import build_workbook, workbook_bytes
from storage.models import Agency, AnomalyFlag, DailyCount, Digest, Procedure, User

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)
_T = TypeVar("_T")

CACHE_SECONDS = 6 * 3600
WARM_CHECK_SECONDS = 60.0
DAILY_POINTS = 30
MONTHLY_POINTS = 12
LATEST_COMMENTS = 10
RANKING_BARS = 15  # more child units than this: the chart shows the 10 best and the 5 worst
BAD_PERIOD = "Kỳ báo cáo không hợp lệ."
BAD_CHANNEL = "Kênh không hợp lệ."
MAX_PROCEDURE = 64  # the longest procedure code stored (storage.models.Case.procedure_code)


class ReportCache:
    """Reports by (period, agency, channel, procedure), shared by every request of the app.

    A report is built from daily counts that only the nightly job (or `sipas scores compute`)
    rewrites, and a rewrite inserts new rows, which take the highest ids: the id and computed time
    of the newest daily-count and anomaly-flag rows are the cache's generation, and a new
    generation empties it. (The time matters: SQLite gives a rewritten day's rows the ids of the
    rows just deleted.) CACHE_SECONDS bounds the age anyway.
    """

    def __init__(self, seconds: float = CACHE_SECONDS, size: int = 1024) -> None:
        self._seconds = seconds
        self._size = size
        self._items: dict[tuple[str, ...], tuple[float, object]] = {}
        self._generation: tuple[object, ...] | None = None
        self._warmed: tuple[object, ...] | None = None  # the generation warm() last built for
        self._lock = threading.Lock()
        self.warming = threading.Lock()  # one warm() at a time: a second waits, then finds it done

    def refresh(self, session: Session) -> None:
        """Check the generation (two primary-key look-ups) once per request; a new one empties
        the cache."""
        generation = tuple(
            session.execute(select(model.id, model.computed_at).order_by(model.id.desc()).limit(1)).first()
            for model in (DailyCount, AnomalyFlag)
        )
        with self._lock:
            if generation != self._generation:
                self._items.clear()
                self._generation = generation

    def claim_warm_up(self) -> bool:
        """True once per generation, whoever saw it first (a page request may refresh before
        the warm-up loop does): the warm-up builds for that generation then, and not again."""
        with self._lock:
            if self._generation == self._warmed:
                return False
            self._warmed = self._generation
            return True

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def get(
        self,
        ctx: AppContext,
        session: Session,
        period: Period,
        agency: str | None,
        view: tuple[str, str | None],
    ) -> Report:
        """The report of `view` = (channel, procedure or None for every procedure)."""
        channel, procedure = view

        def build() -> Report:
            return build_report(
                session, period, agency, settings=ctx.settings, channel=channel, procedure=procedure
            )

        return self.memo(("report", period.label, agency or "*", channel, procedure or "*"), build)

    def memo(self, key: tuple[str, ...], compute: Callable[[], _T]) -> _T:
        """The cached value of `key`, computed (outside the lock) when absent or too old."""
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] > now:
                return cast(_T, hit[1])
        value = compute()
        with self._lock:
            if len(self._items) >= self._size:
                self._items.clear()
            self._items[key] = (now + self._seconds, value)
        return value


REPORTS = web.AppKey("dashboard_reports", ReportCache)


def _cache(app: web.Application) -> ReportCache:
    return app[REPORTS]  # set by bot.web.setup


@dataclass(frozen=True)
class UnitChoice:
    code: str
    name: str
    depth: int


@dataclass
class Dashboard:
    unit: Mapping[str, Any]  # the chosen unit's row of report.as_json()
    children: Sequence[Mapping[str, Any]]
    trail: list[UnitChoice]  # from the account's root down to the chosen unit
    units: list[UnitChoice]  # every unit the account may choose, in tree order
    daily: list[Point]
    monthly: list[Point]
    elements: list[Bar]
    criteria: list[Bar]
    ranking: list[Bar]
    ranking_cut: bool  # the chart shows the 10 best and 5 worst ranked units only
    flags: list[tuple[str, str, str]]  # day, unit, sentence
    comments: list[CitizenComment]
    minimum: int
    digests: int
    procedures: list[tuple[str, str]]  # (code, name) of every procedure known, for the filter


Tree = tuple[list[UnitChoice], dict[str, str | None], dict[str, str]]


def _tree(session: Session, root_id: int | None) -> Tree:
    """The units an account attached to `root_id` may see (None: every unit), in tree order;
    parents by code; names by code."""
    return _tree_of(_agency_rows(session), root_id)


def _agency_rows(session: Session) -> list[Any]:
    return list(session.execute(select(Agency.id, Agency.code, Agency.name, Agency.parent_id)).all())


def _tree_of(rows: Sequence[Any], root_id: int | None) -> Tree:
    """_tree from the agency rows already read (the warm-up reads them once for every account)."""
    by_id = {r.id: r for r in rows}
    kids: dict[int | None, list[Any]] = {}
    for r in rows:
        kids.setdefault(r.parent_id, []).append(r)
    for siblings in kids.values():
        siblings.sort(key=lambda r: r.code)
    roots = [by_id[root_id]] if root_id is not None else kids.get(None, [])
    out: list[UnitChoice] = []

    def walk(row: Any, depth: int) -> None:
        out.append(UnitChoice(row.code, row.name, depth))
        for kid in kids.get(row.id, []):
            walk(kid, depth + 1)

    for root in roots:
        walk(root, 0)
    parents = {r.code: (by_id[r.parent_id].code if r.parent_id in by_id else None) for r in rows}
    return out, parents, {r.code: r.name for r in rows}


def _ci(value: Any) -> tuple[float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 2 and None not in value:
        return float(value[0]), float(value[1])
    return None


def _trend_parts(period: Period, last_day: date) -> tuple[list[Period], list[Period]]:
    """Days: the period's days when it is short, else the 30 days to its end; months: the 12
    calendar months to its end. Never past the last complete day."""
    end = min(period.end, last_day)
    if period.n_days <= 62 and period.start <= end:
        days = [day_period(period.start + timedelta(days=i)) for i in range((end - period.start).days + 1)]
    else:
        days = [day_period(end - timedelta(days=i)) for i in reversed(range(DAILY_POINTS))]
    months = []
    year, month = end.year, end.month
    for _ in range(MONTHLY_POINTS):
        months.append(parse_period(f"{year:04d}-{month:02d}"))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    months.reverse()
    return days, months


def _points(estimates: Sequence[Estimate], labels: Sequence[str]) -> list[Point]:
    return [Point(label, e.value, e.ci95) for e, label in zip(estimates, labels, strict=True)]


def build_dashboard(
    ctx: AppContext,
    cache: ReportCache,
    viewer: Viewer,
    code: str,
    period: Period,
    view: tuple[str, str | None],
) -> Dashboard | None:
    """Everything the page shows for `view` = (channel, procedure or None); None when `code` is not
    a unit the account may see. The figures are cached with the reports; the latest comments and
    the digest count are read every time."""
    _, procedure = view
    with ctx.sessions() as session:
        tree = _tree(session, viewer.agency_id)
        if code not in {u.code for u in tree[0]}:
            return None
        cache.refresh(session)
        figures = cache.memo(
            _figures_key(viewer.agency_id, code, period, view),
            lambda: _figures(ctx, session, cache, tree, code, period, view),
        )
        comments = load_comments(
            session, period, ctx.settings.tz, code, latest=LATEST_COMMENTS, procedure=procedure
        )
        digest_query = select(func.count()).select_from(Digest)
        if viewer.scope is not None:
            digest_query = digest_query.where(Digest.agency_id.in_(viewer.scope))
        digests = int(session.scalar(digest_query) or 0)
    return replace(figures, comments=list(reversed(comments)), digests=digests)


def _figures_key(
    root_id: int | None, code: str, period: Period, view: tuple[str, str | None]
) -> tuple[str, ...]:
    channel, procedure = view
    return ("dashboard", str(root_id), code, period.label, channel, procedure or "*")


def warm(ctx: AppContext, cache: ReportCache) -> int:
    """Build the first view of every account's dashboard (its own unit, this month, every channel
    and procedure) when the nightly job has written new counts since the last call, so that the
    morning's first visits are served from memory. Returns how many views it built."""
    with cache.warming, ctx.sessions() as session:
        cache.refresh(session)
        if not cache.claim_warm_up():
            return 0
        roots = sorted(
            set(session.scalars(select(User.agency_id).where(User.disabled.is_(False)).distinct())),
            key=lambda agency_id: -1 if agency_id is None else agency_id,
        )
        period = parse_period(f"{yesterday(ctx.settings.tz):%Y-%m}")
        first_root = session.scalar(
            select(Agency.code).where(Agency.parent_id.is_(None)).order_by(Agency.code)
        )
        built = 0
        agencies = _agency_rows(session)
        for root_id in roots:
            tree = _tree_of(agencies, root_id)
            code = tree[0][0].code if root_id is not None and tree[0] else first_root
            if code is None:
                continue
            view: tuple[str, str | None] = (ALL_CHANNELS, None)
            build = partial(_figures, ctx, session, cache, tree, code, period, view)
            cache.memo(_figures_key(root_id, code, period, view), build)
            built += 1
    return built


async def _warm_loop(app: web.Application, stop: asyncio.Event) -> None:
    """Every WARM_CHECK_SECONDS until `stop`, warm the cache when the counts changed."""
    ctx = app[CONTEXT]
    while not stop.is_set():
        try:
            built = await asyncio.to_thread(warm, ctx, app[REPORTS])
        except Exception:  # a database hiccup must not end the loop: the next round tries again
            log.warning("dashboard_warm_failed", exc_info=True)
        else:
            if built:
                log.info("dashboard_warmed", views=built)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WARM_CHECK_SECONDS)


async def warm_up(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup context: the cache's warm-up loop, for the app's lifetime. On shutdown a
    warm-up under way is let finish (a thread cannot be cancelled), so no query outlives the app.

    First the page templates are compiled, then what the started process holds (modules, mappers,
    templates) is moved out of the cyclic garbage collector's reach (gc.freeze): a full collection
    that walked it all paused a cold province view for 90-150 ms, half its time (bench.pages,
    docs/benchmarks.md)."""
    await asyncio.to_thread(compile_templates)
    gc.freeze()
    stop = asyncio.Event()
    task = asyncio.create_task(_warm_loop(app, stop))
    yield
    stop.set()
    await task


def _figures(
    ctx: AppContext,
    session: Session,
    cache: ReportCache,
    tree: Tree,
    code: str,
    period: Period,
    view: tuple[str, str | None],
) -> Dashboard:
    units, parents, names = tree
    channel, procedure = view
    report = cache.get(ctx, session, period, code, view)
    rows = report.as_json()
    unit = next(r for r in rows if r["agency_code"] == code)
    children = [r for r in rows if r["parent_code"] == code]
    children.sort(key=lambda r: (r["rank"] is None, r["rank"] or 0, r["agency_code"]))
    days, months = _trend_parts(period, yesterday(ctx.settings.tz))
    root_id = next(r.unit.id for r in report.rows if r.unit.code == code)
    daily = _points(
        sipas_trend(session, root_id, days, channel, procedure), [f"{d.start:%d/%m}" for d in days]
    )
    monthly = _points(
        sipas_trend(session, root_id, months, channel, procedure), [f"{m.start:%m/%Y}" for m in months]
    )
    trail: list[UnitChoice] = []
    current: str | None = code
    allowed = {u.code: u for u in units}
    while current is not None and current in allowed:
        trail.append(allowed[current])
        current = parents.get(current)
    trail.reverse()
    elements = [
        Bar(ELEMENT_NAMES.get(e, e), unit["elements"].get(e), _ci((unit.get("elements_ci95") or {}).get(e)))
        for e in ELEMENTS
    ]
    criteria = [
        Bar(criterion_name(c), v.get("index"), _ci(v.get("ci95")), note=f"n={v.get('n', 0)}")
        for c, v in sorted(unit["criteria"].items())
    ]
    ranked = [r for r in children if r["rank"] is not None]
    charted = children if len(children) <= RANKING_BARS else [*ranked[:10], *ranked[10:][-5:]]
    ranking = [
        Bar(
            r["agency_name"],
            r["sipas_index"],
            _ci(r.get("sipas_ci95")),
            muted=bool(r["suppressed"]),
            note=f"#{rank_text(r.get('rank_range'))}" if r.get("rank_range") else "",
        )
        for r in charted
    ]
    flags = [
        (str(flag["day"]), names.get(r["agency_code"], r["agency_code"]), flag_text(flag))
        for r in rows
        for flag in r.get("anomalies", [])
    ]
    return Dashboard(
        unit=unit,
        children=children,
        trail=trail,
        units=units,
        daily=daily,
        monthly=monthly,
        elements=elements,
        criteria=criteria,
        ranking=ranking,
        ranking_cut=len(charted) < len(children),
        flags=sorted(flags, reverse=True)[:20],
        comments=[],
        minimum=report.minimum,
        digests=0,
        procedures=[
            (row.code, row.name or "") for row in session.scalars(select(Procedure).order_by(Procedure.code))
        ],
    )


@dataclass(frozen=True)
class Filters:
    agency: str
    period: Period
    channel: str
    period_text: str
    procedure: str | None = None  # a procedure code; None: every procedure

    @property
    def view(self) -> tuple[str, str | None]:
        return self.channel, self.procedure


def _filters(request: web.Request) -> Filters | str:
    """The query's filters, or the Vietnamese message of what is wrong with them."""
    viewer = viewer_of(request)
    settings = request.app[CONTEXT].settings
    last = yesterday(settings.tz)
    text = request.query.get("period", "").strip()[:40] or f"{last:%Y-%m}"
    try:
        period = parse_period(text)
    except PeriodError:
        return BAD_PERIOD
    channel = request.query.get("channel", "all")
    if channel not in CHANNELS:
        return BAD_CHANNEL
    agency = request.query.get("agency", "").strip()[:64] or (viewer.agency_code or "")
    procedure = request.query.get("procedure", "").strip()[:MAX_PROCEDURE] or None
    return Filters(agency, period, channel, text, procedure)


def _presets(last: date) -> list[tuple[str, str]]:
    previous_month = last.replace(day=1) - timedelta(days=1)
    quarter = (last.month - 1) // 3 + 1
    return [
        ("Hôm qua", last.isoformat()),
        ("7 ngày qua", f"{last - timedelta(days=6)}..{last}"),
        ("Tháng này", f"{last:%Y-%m}"),
        ("Tháng trước", f"{previous_month:%Y-%m}"),
        ("Quý này", f"{last.year}-Q{quarter}"),
        ("Năm nay", f"{last.year}"),
    ]


def _first_root(ctx: AppContext) -> str:
    with ctx.sessions() as session:
        code = session.scalar(select(Agency.code).where(Agency.parent_id.is_(None)).order_by(Agency.code))
    return code or ""


@routes.get("/")
@require_role(*ANYONE)
async def dashboard(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    lang = request[LANG]
    _ = translator(lang)
    filters = _filters(request)
    if isinstance(filters, str):
        return error_page(request, 400, filters)
    viewer = viewer_of(request)
    agency = filters.agency or await asyncio.to_thread(_first_root, ctx)
    if not agency:
        return render(request, "dashboard_empty.html", title=_("Tổng quan"))
    data = await asyncio.to_thread(
        build_dashboard, ctx, _cache(request.app), viewer, agency, filters.period, filters.view
    )
    if data is None:
        return error_page(request, 404, "Không có đơn vị này trong phạm vi tài khoản của bạn.")
    query = f"agency={quote(agency)}&period={quote(filters.period_text)}&channel={filters.channel}"
    if filters.procedure:
        query += f"&procedure={quote(filters.procedure)}"
    return render(
        request,
        "dashboard.html",
        title=_("Tổng quan") + " · " + str(data.unit["agency_name"]),
        data=data,
        filters=filters,
        forms=FORMS,
        presets=_presets(yesterday(ctx.settings.tz)),
        channels=CHANNEL_NAMES,
        funnel_names=FUNNEL_NAMES,
        export_url=f"/export.xlsx?{query}",
        daily_chart=line_chart(data.daily, title=_("Chỉ số SIPAS theo ngày"), lang=lang),
        monthly_chart=line_chart(data.monthly, title=_("Chỉ số SIPAS theo tháng"), lang=lang),
        element_chart=bar_chart([_translated(b, _) for b in data.elements], title=_("Các yếu tố"), lang=lang),
        criteria_chart=bar_chart(
            [_translated(b, _) for b in data.criteria], title=_("Các tiêu chí"), lang=lang
        ),
        ranking_chart=bar_chart(
            data.ranking,
            title=_("Xếp hạng đơn vị trực thuộc"),
            lang=lang,
            width=1100,
            label_width=300,
            wide=True,
        ),
        rank_text=rank_text,
    )


def _translated(bar: Bar, translate: Any) -> Bar:
    return Bar(translate(bar.label), bar.value, bar.ci, bar.muted, bar.note)


def _export(ctx: AppContext, viewer: Viewer, filters: Filters) -> bytes | None:
    with ctx.sessions() as session:
        units, _, _ = _tree(session, viewer.agency_id)
        if filters.agency not in {u.code for u in units}:
            return None
        book = build_workbook(
            session,
            filters.period,
            filters.agency,
            settings=ctx.settings,
            channel=filters.channel,
            procedure=filters.procedure,
        )
    return workbook_bytes(book)


@routes.get("/export.xlsx")
@require_role(*ANYONE)
async def export_xlsx(request: web.Request) -> web.Response:
    """The monthly-report workbook of the filters shown on the dashboard (same figures)."""
    ctx = request.app[CONTEXT]
    filters = _filters(request)
    if isinstance(filters, str):
        return error_page(request, 400, filters)
    if not filters.agency:
        filters = replace(filters, agency=await asyncio.to_thread(_first_root, ctx))
    body = await asyncio.to_thread(_export, ctx, viewer_of(request), filters)
    if body is None:
        return error_page(request, 404, "Không có đơn vị này trong phạm vi tài khoản của bạn.")
    name = f"sipas-{filters.agency}-{filters.period.label}.xlsx".replace("..", "_")
    return web.Response(
        body=body,
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{quote(name)}"'},
    )


@dataclass(frozen=True)
class DigestRow:
    id: int
    day: date
    username: str
    agency: str
    channel: str
    status: str
    subject: str


def _digests(ctx: AppContext, viewer: Viewer) -> list[DigestRow]:
    with ctx.sessions() as session:
        query = (
            select(
                Digest.id,
                Digest.day,
                Digest.username,
                Agency.code,
                Digest.channel,
                Digest.status,
                Digest.subject,
            )
            .join(Agency, Digest.agency_id == Agency.id)
            .order_by(Digest.day.desc(), Digest.id.desc())
            .limit(200)
        )
        if viewer.scope is not None:
            query = query.where(Digest.agency_id.in_(viewer.scope))
        return [DigestRow(*row) for row in session.execute(query)]


@routes.get("/digests")
@require_role(*ANYONE)
async def digests_page(request: web.Request) -> web.Response:
    _ = translator(request[LANG])
    rows = await asyncio.to_thread(_digests, request.app[CONTEXT], viewer_of(request))
    return render(request, "digests.html", title=_("Bản tin đã gửi"), rows=rows)


def _digest(ctx: AppContext, viewer: Viewer, digest_id: int) -> Digest | None:
    with ctx.sessions() as session:
        digest = session.get(Digest, digest_id)
        if digest is None or not viewer.sees(digest.agency_id):
            return None
        session.expunge(digest)
        return digest


@routes.get("/digests/{id}")
@require_role(*ANYONE)
async def digest_page(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    digest = (
        await asyncio.to_thread(_digest, request.app[CONTEXT], viewer_of(request), int(raw))
        if raw.isdigit() and len(raw) < 12
        else None
    )
    if digest is None:
        return error_page(request, 404, "Trang không tồn tại.")
    return render(request, "digest.html", title=digest.subject, digest=digest)
