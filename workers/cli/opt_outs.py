"""`sipas opt-outs list|remove PHONE`: the numbers that refused the surveys, and lifting one.

Numbers are kept only as keyed look-up hashes (storage.crypto), so the list shows the first
characters of each hash, where the refusal came from and when; `remove` takes the phone number a
citizen gives staff (by phone, at the desk) and lifts its refusal, with an audit log entry.
Citizens lift their own by SMS (`DK`, then `DK` or `CO` again: flows.opt_in).
"""

from __future__ import annotations

import json

import click
from sqlalchemy import select

from config.settings import get_settings
from flows.opt_in import lift_opt_out
from flows.phones import InvalidPhoneError, normalize_phone
from storage import audit
from storage.crypto import PhoneVault
from storage.db import session_factory
from storage.models import OptOut


@click.group("opt-outs")
def opt_outs() -> None:
    """Numbers that refused the surveys (TC, STOP...), and lifting a refusal."""


@opt_outs.command("list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_opt_outs(fmt: str) -> None:
    """Every refusal, newest first: hash prefix, source, time (local), opt-in asked."""
    settings = get_settings()
    with session_factory(settings.DATABASE_URL)() as session:
        rows = session.scalars(select(OptOut).order_by(OptOut.created_at.desc())).all()
        listed = [
            {
                "phone_hash": row.phone_hash[:12],
                "source": row.source,
                "created_at": row.created_at.astimezone(settings.tz).isoformat(timespec="seconds"),
                "opt_in_asked_at": (
                    row.rejoin_requested_at.astimezone(settings.tz).isoformat(timespec="seconds")
                    if row.rejoin_requested_at is not None
                    else None
                ),
            }
            for row in rows
        ]
    if fmt == "json":
        click.echo(json.dumps(listed, ensure_ascii=False))
        return
    for row in listed:
        asked = f"  opt-in asked {row['opt_in_asked_at']}" if row["opt_in_asked_at"] else ""
        click.echo(f"{row['phone_hash']}  {row['source']:<6} {row['created_at']}{asked}")
    click.echo(f"{len(listed)} refusal(s)")


@opt_outs.command("remove")
@click.argument("phone")
def remove_opt_out(phone: str) -> None:
    """Lift the refusal of PHONE (0912 345 678, +84...): surveyed again from its next case."""
    try:
        e164 = normalize_phone(phone)
    except InvalidPhoneError as exc:
        raise click.BadParameter(str(exc), param_hint="PHONE") from None
    settings = get_settings()
    phone_hash = PhoneVault.from_settings(settings).lookup_hash(e164)
    with session_factory(settings.DATABASE_URL)() as session, session.begin():
        refusal = session.get(OptOut, phone_hash, with_for_update=True)
        if refusal is None:
            raise click.ClickException("this number has not refused the surveys: nothing to lift")
        lift_opt_out(session, refusal, actor=audit.cli_actor(), action="opt_outs.remove")
    click.echo(f"Refusal lifted for {phone_hash[:12]} (audit log: opt_outs.remove).")


COMMANDS = [opt_outs]
