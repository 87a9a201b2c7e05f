"""`sipas outbox list|resolve`: what waits in the outbox, and the operator's decision on a message
whose outcome is unknown (storage.outbox explains why such a message is never resent by itself)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
from sqlalchemy import select

from config.settings import get_settings
from storage import outbox
from storage.models import OutboundMessage, OutboxStatus


@click.group("outbox")
def outbox_group() -> None:
    """Messages stored for sending: list them, settle those whose outcome is unknown."""


@outbox_group.command("list")
@click.option(
    "--status",
    type=click.Choice([s.value for s in OutboxStatus]),
    default=OutboxStatus.UNKNOWN.value,
    show_default=True,
)
@click.option("--limit", type=int, default=100, show_default=True)
def outbox_list(status: str, limit: int) -> None:
    """One line per message: id, survey, route, attempts, claimed at, last error (no recipient)."""
    from workers.runtime import get_runtime

    runtime = get_runtime()
    with runtime.sessions() as session:
        rows = session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.status == OutboxStatus(status))
            .order_by(OutboundMessage.id)
            .limit(limit)
        ).all()
        for row in rows:
            claimed = row.claimed_at.isoformat(timespec="seconds") if row.claimed_at else "-"
            route = (row.route or row.channel).value
            click.echo(
                f"{row.id}\tsurvey {row.survey_id or '-'}\t{route}\tattempts {row.attempts}\t"
                f"claimed {claimed}\t{row.last_error or ''}"
            )
    click.echo(f"{len(rows)} {status} message(s)")


@outbox_group.command("resolve")
@click.argument("message_ids", type=int, nargs=-1)
@click.option("--sent", "decision", flag_value="sent", help="It did reach the gateway: mark it sent.")
@click.option("--resend", "decision", flag_value="resend", help="It did not: send it once more.")
@click.option(
    "--unreported-for",
    type=int,
    default=None,
    help="Instead of ids: every unknown message claimed this many seconds ago or more that no "
    "delivery report mentions (Kannel reports every message it takes).",
)
def outbox_resolve(message_ids: tuple[int, ...], decision: str | None, unreported_for: int | None) -> None:
    """Settle messages whose outcome is unknown: --sent (checked at the gateway, e.g. Kannel's
    access log, or with the citizen) or --resend (one more attempt; attempts stay capped)."""
    from workers.runtime import get_runtime
    from workers.sending import enqueue_sends

    if decision is None:
        raise click.UsageError("say --sent or --resend")
    if bool(message_ids) == (unreported_for is not None):
        raise click.UsageError("name message ids, or give --unreported-for SECONDS")
    get_settings().require("SIPAS_SECRET_KEY")
    runtime = get_runtime()
    now = datetime.now(UTC)
    try:
        with runtime.sessions() as session, session.begin():
            ids = list(message_ids)
            if unreported_for is not None:
                ids = list(outbox.unreported(session, now - timedelta(seconds=unreported_for)))
            for message_id in ids:
                outbox.resolve(session, message_id, sent=decision == "sent", now=now)
    except outbox.NotResolvableError as exc:
        raise click.ClickException(str(exc)) from None
    if decision == "resend":
        enqueue_sends(runtime, ids)
    verb = "marked sent" if decision == "sent" else "queued to send once more"
    click.echo(f"{len(ids)} message(s) {verb}: {' '.join(map(str, ids))}")


COMMANDS = [outbox_group]
