"""The `sipas` command: one group, a module per concern under workers/cli/."""

from __future__ import annotations

import importlib
import sys

import click
from pydantic import ValidationError

from config.settings import MissingSettingError

# Which module under workers/cli/ holds each command. A command's module is imported only when
# the command runs: `sipas worker` then loads the drains, not the workbook export (openpyxl,
# numpy), the migrations (alembic, mako), the demo or the web stack, which it never uses, and
# every process of the Procfile stays smaller (docs/scaling.md). tests/test_cli_settings.py
# checks this table against each module's COMMANDS.
COMMAND_MODULES = {
    "db": "db",
    "web": "processes",
    "worker": "processes",
    "cron": "processes",
    "purge": "processes",
    "scores": "scores",
    "agencies": "agencies",
    "staff": "agencies",
    "cases": "cases",
    "zalo": "zalo",
    "flows": "flows",
    "demo": "demo",
    "users": "users",
    "audit": "audit",
    "outbox": "outbox",
    "dead-letters": "dead_letters",
    "export": "export",
    "rules": "rules",
    "opt-outs": "opt_outs",
    "api-tokens": "api_tokens",
    "digest": "digest",
    "subject": "subject",
    "keys": "keys",
}


class _LazyCommands(click.Group):
    """A group whose commands are imported from their module when asked for (COMMAND_MODULES)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = COMMAND_MODULES.get(cmd_name)
        if module_name is None:
            return None
        module = importlib.import_module(f"workers.cli.{module_name}")
        return next((command for command in module.COMMANDS if command.name == cmd_name), None)


@click.group(cls=_LazyCommands, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """sipas-bot: citizen satisfaction surveys (SIPAS) by SMS and Zalo."""


def main() -> None:
    """Console entry point: a missing or invalid setting stops the process with one clear line each."""
    try:
        cli.main(standalone_mode=True)
    except MissingSettingError as exc:
        click.echo(f"sipas: {exc}", err=True)
        sys.exit(2)
    except ValidationError as exc:
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]) or "settings"  # a cross-field check
            click.echo(f"sipas: setting {name} is invalid: {error['msg']}", err=True)
        sys.exit(2)
