"""`sipas rules show|set|unset|import`: the survey rules of a unit, with what it inherits.

Every change is checked (flows.rules), stored and written to the audit log in one transaction; an
import file with any error changes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
import yaml
from sqlalchemy.orm import Session

from config.settings import get_settings
from flows.rules import RULES, RuleBook, RuleValueError, change_rule, plan_import, rule_spec
from storage.agencies import all_agencies, get_by_code
from storage.audit import cli_actor
from storage.db import session_factory
from storage.models import Agency

_NAMES = ", ".join(spec.name for spec in RULES)


def _agency(session: Session, code: str) -> Agency:
    agency = get_by_code(session, code)
    if agency is None:
        raise click.ClickException(f"agency {code!r} is not in the registry (sipas agencies list)")
    return agency


@click.group("rules")
def rules() -> None:
    """Survey rules per unit; a unit inherits its parent's unless set (docs/rules.md)."""


@rules.command("show")
@click.argument("code")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def rules_show(code: str, fmt: str) -> None:
    """Every rule of unit CODE: its value and where it comes from."""
    settings = get_settings()
    with session_factory(settings.DATABASE_URL)() as session:
        resolved = RuleBook(session, settings).resolved(_agency(session, code))
        if fmt == "json":
            rows = [
                {"rule": r.name, "value": r.value, "here": r.here,
                 "from": r.source.code if r.source is not None else None, "origin": r.origin("en")}
                for r in resolved.values()
            ]  # fmt: skip
            click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
            return
        width = max(len(name) for name in resolved)
        shown = {name: r.shown() or "-" for name, r in resolved.items()}
        value_width = min(max(len(text) for text in shown.values()), 40)
        for r in resolved.values():
            click.echo(f"{r.name:<{width}}  {shown[r.name]:<{value_width}}  [{r.origin('en')}]")


@rules.command("set")
@click.argument("code")
@click.argument("name", metavar="RULE")
@click.argument("value")
def rules_set(code: str, name: str, value: str) -> None:
    """Set RULE on unit CODE (its children inherit it unless they set their own)."""
    _change(code, name, value)


@rules.command("unset")
@click.argument("code")
@click.argument("name", metavar="RULE")
def rules_unset(code: str, name: str) -> None:
    """Remove unit CODE's own RULE: it inherits its parent's again."""
    _change(code, name, None)


def _change(code: str, name: str, value: str | None) -> None:
    settings = get_settings()
    try:
        rule_spec(name)
    except RuleValueError as exc:
        raise click.ClickException(str(exc)) from None
    with session_factory(settings.DATABASE_URL)() as session, session.begin():
        agency = _agency(session, code)
        try:
            before, after = change_rule(
                session, agency, name, value, actor=cli_actor(), now=datetime.now(UTC)
            )
        except RuleValueError as exc:
            raise click.ClickException(f"{name}: {exc}") from None
        resolved = RuleBook(session, settings).resolved(agency)[name]
    if before == after:
        click.echo(f"{code} {name}: unchanged")
    click.echo(f"{code} {name} = {resolved.shown() or '-'} [{resolved.origin('en')}]")


@rules.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def rules_import(file: Path) -> None:
    """Set rules from a YAML FILE: `rules: {CODE: {rule: value}}`, or a channels file
    (config/agencies/channels.yaml). Nothing is written when any entry is wrong."""
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise click.ClickException(f"{file}: cannot read: {exc}") from None
    settings = get_settings()
    changed = 0
    with session_factory(settings.DATABASE_URL)() as session, session.begin():
        known = list(all_agencies(session))
        codes = {agency.code: agency for agency in known}
        roots = [agency for agency in known if agency.parent_id is None]
        changes, errors = plan_import(data, codes, roots)
        if errors:
            for error in errors:
                click.echo(f"{file}: {error}", err=True)
            click.echo(f"0 set, {len(errors)} errors: nothing imported")
            raise SystemExit(1)
        now, actor = datetime.now(UTC), cli_actor()
        for agency, name, value in changes:
            before, after = change_rule(session, agency, name, value, actor=actor, now=now)
            changed += before != after
    click.echo(f"{changed} set, {len(changes) - changed} unchanged, 0 errors")


rules.help = f"{rules.help}\n\nRules: {_NAMES}."
COMMANDS = [rules]
