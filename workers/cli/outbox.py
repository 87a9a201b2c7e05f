"""`sipas outbox list|resolve`: what waits in the outbox, and the operator's decision on a message
whose outcome is unknown (storage.outbox explains why such a message is never resent by itself)."""

from __future__ import annotations

from datetime import UTC, datetime

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
@click.argument("message_id", type=int)
@click.option("--sent", "decision", flag_value="sent", help="It did reach the gateway: mark it sent.")
@click.option("--resend", "decision", flag_value="resend", help="It did not: send it once more.")
def outbox_resolve(message_id: int, decision: str | None) -> None:
    """Settle a message whose outcome is unknown: --sent (checked at the gateway, e.g. Kannel's
    access log, or with the citizen) or --resend (one more attempt; attempts stay capped)."""
    from workers.runtime import get_runtime
    from workers.sending import enqueue_sends

    if decision is None:
        raise click.UsageError("say --sent or --resend")
    get_settings().require("SIPAS_SECRET_KEY")
    runtime = get_runtime()
    try:
        with runtime.sessions() as session, session.begin():
            outbox.resolve(session, message_id, sent=decision == "sent", now=datetime.now(UTC))
    except outbox.NotResolvableError as exc:
        raise click.ClickException(str(exc)) from None
    if decision == "resend":
        enqueue_sends(runtime, [message_id])
    click.echo(f"message {message_id}: {'marked sent' if decision == 'sent' else 'queued to send once more'}")


COMMANDS = [outbox_group]
