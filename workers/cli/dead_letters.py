"""`sipas dead-letters list|retry|drop`: inbound events set aside after failing
SIPAS_MAX_EVENT_ATTEMPTS times (storage.inbound). Nothing here shows a phone number or a text."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from storage import inbound


@click.group("dead-letters")
def dead_letters() -> None:
    """Inbound events whose processing kept failing: list them, retry them once fixed, or drop them."""


@dead_letters.command("list")
@click.option("--limit", type=int, default=100, show_default=True)
def dead_letters_list(limit: int) -> None:
    """One line per event: id, provider/kind, attempts, received, set aside, last error."""
    from workers.runtime import get_runtime

    with get_runtime().sessions() as session:
        events = inbound.dead_letters(session, limit)
        for event in events:
            click.echo(
                f"{event.id}\t{event.provider}/{event.kind}\tattempts {event.attempts}\t"
                f"received {event.received_at:%Y-%m-%d %H:%M:%S}\t"
                f"set aside {event.dead_at:%Y-%m-%d %H:%M:%S}\t{(event.last_error or '')[:200]}"
            )
    click.echo(f"{len(events)} dead letter(s)")


def _ids(event_ids: tuple[int, ...], every: bool) -> list[int] | None:
    if bool(event_ids) == every:
        raise click.UsageError("name event ids, or say --all")
    return None if every else list(event_ids)


@dead_letters.command("retry")
@click.argument("event_ids", type=int, nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every dead letter.")
def dead_letters_retry(event_ids: tuple[int, ...], every: bool) -> None:
    """Process the events again (after the cause is fixed), with a fresh set of attempts."""
    from workers.queues import wake
    from workers.runtime import get_runtime

    runtime = get_runtime()
    with runtime.sessions() as session, session.begin():
        count = inbound.retry_dead(session, _ids(event_ids, every))
    if count:
        wake(runtime.redis, "inbound")
    click.echo(f"{count} event(s) queued for processing again")


@dead_letters.command("drop")
@click.argument("event_ids", type=int, nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every dead letter.")
def dead_letters_drop(event_ids: tuple[int, ...], every: bool) -> None:
    """Close the events for good without processing them (they stay stored until retention)."""
    from workers.runtime import get_runtime

    with get_runtime().sessions() as session, session.begin():
        count = inbound.drop_dead(session, _ids(event_ids, every), datetime.now(UTC))
    click.echo(f"{count} event(s) dropped")


COMMANDS = [dead_letters]
