"""`sipas api-tokens add|list|revoke`: bearer tokens of GET /api/v1/scores."""

from __future__ import annotations

import click

from config.settings import get_settings
from storage.api_tokens import ApiTokenError, add_token, all_tokens, revoke_token
from storage.audit import cli_actor
from storage.db import session_factory


@click.group("api-tokens")
def api_tokens() -> None:
    """Tokens of the scores API, each limited to one agency and the units under it."""


@api_tokens.command("add")
@click.option(
    "--agency", "agency_code", required=True, help="The token sees this agency and everything below it."
)
@click.option("--name", required=True, help="A name to recognise and revoke the token by.")
def add(agency_code: str, name: str) -> None:
    """Create a token and print it once: only its hash is kept."""
    sessions = session_factory(get_settings().DATABASE_URL)
    try:
        with sessions() as session, session.begin():
            token = add_token(session, name, agency_code, cli_actor())
    except ApiTokenError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(token)
    click.echo(
        f"Token {name!r} for {agency_code}: shown this once, keep it now (Authorization: Bearer <token>).",
        err=True,
    )


@api_tokens.command("list")
def list_tokens() -> None:
    """Name, agency, created, last used, revoked."""
    with session_factory(get_settings().DATABASE_URL)() as session:
        rows = all_tokens(session)
        if not rows:
            click.echo("No API tokens.")
            return
        for token, code in rows:
            used = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "never used"
            state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "active"
            click.echo(f"{token.name}\t{code}\tcreated {token.created_at:%Y-%m-%d}\t{used}\t{state}")


@api_tokens.command("revoke")
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke a token at once: requests with it get 401."""
    sessions = session_factory(get_settings().DATABASE_URL)
    try:
        with sessions() as session, session.begin():
            revoke_token(session, name, cli_actor())
    except ApiTokenError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"Token {name!r} revoked.")


COMMANDS = [api_tokens]
