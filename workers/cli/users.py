"""`sipas users add|list|disable|set-password`: the accounts that log in to the pages.

A password is never an argument (it would land in the shell history and `ps`): it is asked for
twice on the terminal, or read from the first line of standard input with `--password-stdin`.
"""

from __future__ import annotations

import sys

import click

from config.settings import get_settings
from storage import audit
from storage.agencies import get_by_code
from storage.db import session_factory
from storage.models import UserRole
from storage.users import LANGUAGES, UserError, add_user, all_users, disable_user, set_password


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise click.UsageError("--password-stdin: standard input has no password on its first line")
        return password
    value: str = click.prompt("Mật khẩu (password)", hide_input=True, confirmation_prompt=True)
    return value


@click.group()
def users() -> None:
    """Accounts of staff, supervisors and admins (the pages, the digests)."""


@users.command("add")
@click.option("--username", required=True)
@click.option("--role", type=click.Choice([r.value for r in UserRole]), required=True)
@click.option("--agency", "agency_code", help="The agency the account sees, with everything below it.")
@click.option("--email")
@click.option("--zalo-user-id", help="Zalo user id for the digest message (optional).")
@click.option("--lang", "language", type=click.Choice(LANGUAGES), default="vi", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def add(
    username: str,
    role: str,
    agency_code: str | None,
    email: str | None,
    zalo_user_id: str | None,
    language: str,
    password_stdin: bool,
) -> None:
    """Create an account."""
    settings = get_settings()
    sessions = session_factory(settings.DATABASE_URL)
    if agency_code is not None:
        with sessions() as session:
            if get_by_code(session, agency_code) is None:
                raise click.BadParameter(f"no agency with code {agency_code!r}", param_hint="--agency")
    password = _password(password_stdin)  # asked outside the transaction: SQLite locks at BEGIN
    with sessions() as session, session.begin():
        agency = get_by_code(session, agency_code) if agency_code is not None else None
        try:
            user = add_user(
                session,
                actor=audit.cli_actor(),
                username=username,
                role=UserRole(role),
                agency=agency,
                password=password,
                email=email,
                zalo_user_id=zalo_user_id,
                language=language,
            )
        except UserError as exc:
            raise click.ClickException(str(exc)) from exc
        scope = agency.code if agency is not None else "toàn bộ (all agencies)"
        click.echo(f"Đã tạo tài khoản {user.username} ({user.role.value}, {scope}).")


@users.command("list")
def list_users() -> None:
    """Every account: username, role, agency, e-mail, language, state."""
    settings = get_settings()
    with session_factory(settings.DATABASE_URL)() as session:
        rows = all_users(session)
        if not rows:
            click.echo("Chưa có tài khoản nào (no accounts).")
            return
        for user in rows:
            state = "disabled" if user.disabled else "active"
            if user.locked_until is not None and not user.disabled:
                state = f"locked until {user.locked_until.astimezone(settings.tz):%Y-%m-%d %H:%M}"
            agency = user.agency.code if user.agency is not None else "*"
            click.echo(
                f"{user.username:<20} {user.role.value:<10} {agency:<16} {user.email or '-':<28} "
                f"{user.language:<3} {state}"
            )


@users.command("disable")
@click.argument("username")
def disable(username: str) -> None:
    """Stop an account from logging in (its open sessions end too)."""
    settings = get_settings()
    with session_factory(settings.DATABASE_URL)() as session, session.begin():
        try:
            user = disable_user(session, actor=audit.cli_actor(), username=username)
        except UserError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"Đã khóa tài khoản {user.username} (disabled).")


@users.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def set_password_command(username: str, password_stdin: bool) -> None:
    """Give an account a new password (also lifts a lock-out)."""
    settings = get_settings()
    password = _password(password_stdin)
    with session_factory(settings.DATABASE_URL)() as session, session.begin():
        try:
            user = set_password(session, actor=audit.cli_actor(), username=username, password=password)
        except UserError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"Đã đổi mật khẩu của {user.username}.")


COMMANDS = [users]
