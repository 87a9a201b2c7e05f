"""`sipas audit verify`: check that no row of the audit log was edited, inserted or removed."""

from __future__ import annotations

import sys

import click
from sqlalchemy import select

from config.settings import get_settings
from storage.audit import verify as verify_chain
from storage.db import session_factory
from storage.models import AuditEntry


@click.group()
def audit() -> None:
    """The audit log of configuration changes."""


@audit.command("verify")
def verify() -> None:
    """Exit 0 when the hash chain is intact, 1 naming the first broken row."""
    settings = get_settings()
    with session_factory(settings.DATABASE_URL)() as session:
        broken = verify_chain(session)
        last = session.execute(
            select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
        ).first()
    if broken is None:
        # The newest hash, to keep elsewhere: removing the latest rows leaves a valid shorter chain.
        latest = f"; {last.id} rows, latest hash {last.hash}" if last is not None else "; empty"
        click.echo(f"Nhật ký thay đổi nguyên vẹn (audit chain intact){latest}.")
        return
    click.echo(f"audit row {broken.id} is broken: {broken.reason}", err=True)
    sys.exit(1)


COMMANDS = [audit]
