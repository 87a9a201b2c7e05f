"""The `sipas` command: one group, a module per concern under workers/cli/."""

from __future__ import annotations

import sys

import click
from pydantic import ValidationError

from config.settings import MissingSettingError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """sipas-bot: citizen satisfaction surveys (SIPAS) by SMS and Zalo."""


def _register() -> None:
    from workers.cli import (
        agencies,
        api_tokens,
        audit,
        cases,
        db,
        dead_letters,
        demo,
        digest,
        export,
        flows,
        keys,
        opt_outs,
        outbox,
        processes,
        rules,
        scores,
        subject,
        users,
        zalo,
    )

    for module in (
        db,
        processes,
        scores,
        agencies,
        cases,
        zalo,
        flows,
        demo,
        users,
        audit,
        outbox,
        dead_letters,
        export,
        rules,
        opt_outs,
        api_tokens,
        digest,
        subject,
        keys,
    ):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


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
