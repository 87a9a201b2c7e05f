"""`sipas scores compute` and `sipas scores show`: the nightly computation by hand, and the figures."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import date, datetime
from zoneinfo import ZoneInfo

import click

from config.settings import get_settings
from flows.scores.anomalies import detect_days
from flows.scores.comments import load_comments
from flows.scores.counts import CHANNELS, compute_days
from flows.scores.periods import FORMS, Period, PeriodError, day_period, parse_period, yesterday
from flows.scores.render import to_csv, to_json, to_table
from flows.scores.report import AgencyTreeError, UnknownAgencyError, build_report
from storage.db import session_factory

_RENDERERS = {"table": to_table, "json": to_json, "csv": to_csv}


class PeriodParam(click.ParamType):  # type: ignore[type-arg]
    name = "period"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> Period:
        if isinstance(value, Period):
            return value
        try:
            return parse_period(str(value))
        except PeriodError as exc:
            self.fail(str(exc), param, ctx)


@click.group()
def scores() -> None:
    """Satisfaction scores (SIPAS) per agency and period."""


@scores.command("compute")
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), help="One local day (default: yesterday).")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), help="First local day of a range.")
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), help="Last local day of a range (inclusive).")
def compute(day: datetime | None, start: datetime | None, end: datetime | None) -> None:
    """Recompute the daily counts of local days (the nightly job does the last few days itself).

    Each run replaces the days' counts as a whole, so running it again is harmless.
    """
    settings = get_settings()
    first, last = _days(day, start, end, settings.tz)
    total = (last - first).days + 1
    sessions = session_factory(settings.DATABASE_URL)
    with click.progressbar(length=total, label="Tính điểm", file=sys.stderr) as progress:

        def advance(_day: date) -> None:
            progress.update(1)

        with sessions() as session, session.begin():
            summary = compute_days(session, first, last, settings.tz, on_day=advance)
            flags = detect_days(session, first, last, settings)
    span = first.isoformat() if total == 1 else f"{first.isoformat()}..{last.isoformat()}"
    click.echo(
        f"Đã tính {span}: {summary.days} ngày, {summary.agencies} đơn vị có dữ liệu, "
        f"{summary.rows} dòng số liệu (daily_counts), {flags} dấu hiệu bất thường."
    )


def _days(
    day: datetime | None, start: datetime | None, end: datetime | None, tz: ZoneInfo
) -> tuple[date, date]:
    """The --date / --from --to choice, checked; default yesterday in SIPAS_TIMEZONE."""
    if day is not None:
        if start is not None or end is not None:
            raise click.UsageError("give either --date or --from/--to, not both")
        return day.date(), day.date()
    if start is None and end is None:
        previous = yesterday(tz)
        return previous, previous
    if start is None or end is None:
        raise click.UsageError("--from and --to go together")
    if end < start:
        raise click.UsageError(f"--to {end.date()} is before --from {start.date()}")
    return start.date(), end.date()


@scores.command("show")
@click.option("--agency", "agency_code", help="Agency code: that unit and the units under it.")
@click.option("--period", type=PeriodParam(), help=f"Period (default: yesterday). Forms: {FORMS}.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(_RENDERERS)),
    default="table",
    show_default=True,
    help="table for reading, json (contract), csv for spreadsheets.",
)
@click.option(
    "--channel",
    type=click.Choice(list(CHANNELS)),
    default="all",
    show_default=True,
    help="Answers of one channel only (case figures are always all channels).",
)
@click.option(
    "--with-predecessors",
    "with_predecessors",
    is_flag=True,
    help="Count merged units' cases as their successor's (trends across the 2025 reform).",
)
@click.option("--procedure", help="Cases of one procedure only (its code, e.g. 1.001612).")
def show(
    agency_code: str | None,
    period: Period | None,
    fmt: str,
    channel: str,
    with_predecessors: bool,
    procedure: str | None,
) -> None:
    """Scores per unit, rolled up along the agency tree (weighted by closed cases)."""
    settings = get_settings()
    chosen = period if period is not None else day_period(yesterday(settings.tz))
    with session_factory(settings.DATABASE_URL)() as session:
        try:
            report = build_report(
                session,
                chosen,
                agency_code,
                settings=settings,
                channel=channel,
                with_predecessors=with_predecessors,
                procedure=procedure,
            )
        except UnknownAgencyError as exc:
            raise click.BadParameter(str(exc), param_hint="--agency") from exc
        except AgencyTreeError as exc:
            raise click.ClickException(str(exc)) from exc
    output = _RENDERERS[fmt](report)
    click.echo(output, nl=not output.endswith("\n"))


@scores.command("comments")
@click.option("--agency", "agency_code", help="An agency and everything under it (default: all).")
@click.option("--period", type=PeriodParam(), help=f"Period (default: yesterday). Forms: {FORMS}.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def comments(agency_code: str | None, period: Period | None, fmt: str) -> None:
    """What citizens wrote in their own words, with phone and ID numbers masked."""
    settings = get_settings()
    chosen = period if period is not None else day_period(yesterday(settings.tz))
    with session_factory(settings.DATABASE_URL)() as session:
        try:
            rows = load_comments(session, chosen, settings.tz, agency_code)
        except LookupError as exc:
            raise click.UsageError(str(exc)) from exc
    if fmt == "json":
        payload = [{**asdict(r), "written_at": r.written_at.isoformat()} for r in rows]
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    click.echo(f"Ý kiến của người dân, kỳ {chosen.label}: {len(rows)} ý kiến")
    for r in rows:
        click.echo(
            f"{r.written_at:%d/%m/%Y %H:%M}  {r.agency_name} ({r.channel}, {r.question or '—'}): {r.text}"
        )


COMMANDS = [scores]
