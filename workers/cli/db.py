"""`sipas db upgrade`."""

from __future__ import annotations

import click

from config.settings import get_settings
from storage.migrate import upgrade


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations to DATABASE_URL."""
    url = get_settings().DATABASE_URL
    upgrade(url, revision)
    click.echo(f"database at revision {revision}")


COMMANDS = [db]
