"""`sipas export xlsx`: the monthly report workbook (flows.scores.xlsx builds it)."""

from __future__ import annotations

from pathlib import Path

import click

from config.settings import get_settings
from flows.scores.counts import CHANNELS
from flows.scores.periods import FORMS, Period
from flows.scores.report import AgencyTreeError, UnknownAgencyError
from flows.scores.xlsx import build_workbook
from storage.db import session_factory
from workers.cli.scores import PeriodParam


@click.group()
def export() -> None:
    """Reports as files for supervisors."""


@export.command("xlsx")
@click.option("--period", type=PeriodParam(), required=True, help=f"Period. Forms: {FORMS}.")
@click.option(
    "--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="File to write."
)
@click.option("--agency", "agency_code", help="An agency and the units under it (default: all).")
@click.option("--channel", type=click.Choice(list(CHANNELS)), default="all", show_default=True)
@click.option("--procedure", help="Cases of one procedure only (its code, e.g. 1.001612).")
def xlsx(period: Period, out: Path, agency_code: str | None, channel: str, procedure: str | None) -> None:
    """Excel workbook: units, criteria, elements, trend, response funnel, anomalies, comments."""
    settings = get_settings()
    with session_factory(settings.DATABASE_URL)() as session:
        try:
            book = build_workbook(
                session, period, agency_code, settings=settings, channel=channel, procedure=procedure
            )
        except UnknownAgencyError as exc:
            raise click.BadParameter(str(exc), param_hint="--agency") from exc
        except AgencyTreeError as exc:
            raise click.ClickException(str(exc)) from exc
    book.save(out)
    click.echo(f"Đã ghi {out} (kỳ {period.label}, {len(book.sheetnames)} trang tính).")


COMMANDS = [export]
