"""`sipas digest send`: supervisors' digests of a past day, or written to files with --dry-run."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from config.settings import get_settings
from flows.scores.periods import yesterday
from flows.scores.report import UnknownAgencyError


@click.group()
def digest() -> None:
    """Supervisors' daily digests (e-mail and Zalo)."""


@digest.command("send")
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), help="Local day (default: yesterday).")
@click.option("--agency", "agency_code", help="Only supervisors of this agency and the units under it.")
@click.option(
    "--dry-run",
    "dry_run",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one .eml file per supervisor into this directory and send nothing.",
)
@click.option("--force", is_flag=True, help="Send again to supervisors who already got this day's digest.")
def send(day: datetime | None, agency_code: str | None, dry_run: Path | None, force: bool) -> None:
    """Send (or write) the digest of a day; a digest already sent is skipped unless --force."""
    from workers.digest.send import send_digests  # keeps matplotlib out of every other command
    from workers.runtime import Runtime

    settings = get_settings()
    chosen = day.date() if day is not None else yesterday(settings.tz)
    if dry_run is not None:
        dry_run.mkdir(parents=True, exist_ok=True)
    try:
        run = send_digests(
            Runtime.build(settings), chosen, agency_code=agency_code, dry_run=dry_run, force=force
        )
    except UnknownAgencyError as exc:
        raise click.BadParameter(str(exc), param_hint="--agency") from exc
    for path in run.written:
        click.echo(f"Đã ghi {path}")
    click.echo(
        f"Bản tin ngày {chosen:%d/%m/%Y}: {run.sent} e-mail đã gửi, {run.queued_zalo} tin Zalo đã xếp hàng, "
        f"{run.already_sent} đã gửi trước đó, {run.failed} lỗi"
        + (f", {run.no_smtp} e-mail chưa gửi vì chưa đặt SMTP_HOST" if run.no_smtp else "")
        + "."
    )
    if run.failed:
        sys.exit(1)


COMMANDS = [digest]
