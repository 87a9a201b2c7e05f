"""`sipas agencies import|list` and `sipas staff import|list|remove`: the agency registry and its
staff numbers (listed masked, removed with an audit entry: flows.staff).

Reading, checking and applying a registry file is flows.registry (the /agencies page uses it
too): a file with any error changes nothing, and importing the same file again changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
from sqlalchemy.orm import Session, sessionmaker

from config.settings import get_settings
from flows import staff as staff_numbers
from flows.phones import InvalidPhoneError, normalize_phone
from flows.registry import Record, RegistryFileError, apply_import, plan_file
from flows.registry import read_records as registry_records
from storage.agencies import add_staff_phone, all_agencies, get_by_code, staff_phones
from storage.audit import cli_actor
from storage.crypto import PhoneVault
from storage.db import session_factory
from storage.models import Agency, StaffPhone


def read_records(path: Path) -> list[Record]:
    """Rows of the CSV or YAML file at `path` (flows.registry); a file that cannot be read stops
    the command with one line."""
    try:
        return registry_records(path.read_text(encoding="utf-8-sig"), str(path))
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except RegistryFileError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("agencies")
def agencies() -> None:
    """The agency registry (scores roll up along parent_code)."""


@agencies.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def agencies_import(file: Path) -> None:
    """Create or update agencies from a CSV or YAML FILE (code, name, parent_code, level,
    optional sampling_probability, valid_from, valid_to, successor_code). Nothing is written when
    any row is wrong; every creation and change is recorded in the audit log."""
    records = read_records(file)
    sessions = session_factory(get_settings().DATABASE_URL)
    with sessions() as session, session.begin():
        plan = plan_file(session, records)
        if plan.errors:
            for error in plan.errors:
                click.echo(f"{file}: {error}", err=True)
            click.echo(f"0 created, 0 updated, {len(plan.errors)} errors: nothing imported")
            raise SystemExit(1)
        click.echo(f"Importing {len(plan.rows)} agencies")
        counts = apply_import(session, plan.rows, cli_actor())
    click.echo(
        f"{counts['created']} created, {counts['updated']} updated, {counts['unchanged']} unchanged, 0 errors"
    )


@agencies.command("list")
def agencies_list() -> None:
    """The registry as a tree."""
    sessions = session_factory(get_settings().DATABASE_URL)
    with sessions() as session:
        known = list(all_agencies(session))
    if not known:
        click.echo("no agencies yet: sipas agencies import FILE")
        return
    children: dict[int | None, list[Agency]] = {}
    for agency in known:
        children.setdefault(agency.parent_id, []).append(agency)
    for line in _tree(children, None, ""):
        click.echo(line)


def _label(agency: Agency, code_of: dict[int, str]) -> str:
    extra = f", p={agency.sampling_probability:g}" if agency.sampling_probability is not None else ""
    if agency.valid_from is not None:
        extra += f", from {agency.valid_from}"
    if agency.valid_to is not None:
        extra += f", until {agency.valid_to}"
    if agency.successor_id is not None:
        extra += f", → {code_of.get(agency.successor_id, '?')}"
    return f"{agency.code}  {agency.name} ({agency.level.value}{extra})"


def _tree(children: dict[int | None, list[Agency]], parent: int | None, indent: str) -> Iterator[str]:
    siblings = children.get(parent, [])
    code_of = {agency.id: agency.code for group in children.values() for agency in group}
    for index, agency in enumerate(siblings):
        if parent is None:
            yield _label(agency, code_of)
            yield from _tree(children, agency.id, "")
            continue
        last = index == len(siblings) - 1
        yield f"{indent}{'└── ' if last else '├── '}{_label(agency, code_of)}"
        yield from _tree(children, agency.id, indent + ("    " if last else "│   "))


@click.group("staff")
def staff() -> None:
    """Staff numbers: never surveyed about their own agency."""


@staff.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def staff_import(file: Path) -> None:
    """Register staff phone numbers from a CSV FILE with columns agency_code, phone.
    Nothing is written when any row is wrong; numbers already registered are skipped."""
    if file.suffix.lower() != ".csv":
        raise click.ClickException(f"{file}: use a .csv file with columns agency_code, phone")
    vault, sessions = _staff_context()
    records = read_records(file)
    errors: list[str] = []
    added = 0
    with sessions() as session, session.begin():
        pairs: list[tuple[int, str]] = []  # (agency id, E.164 number)
        for record in records:
            code, phone = record.fields.get("agency_code") or "", record.fields.get("phone") or ""
            agency = get_by_code(session, code) if code else None
            if agency is None:
                errors.append(f"line {record.line}: agency_code {code!r} is not in the registry")
                continue
            try:
                pairs.append((agency.id, normalize_phone(phone)))
            except InvalidPhoneError as exc:
                errors.append(f"line {record.line}: phone: {exc}")
        if errors:
            for error in errors:
                click.echo(f"{file}: {error}", err=True)
            click.echo(f"0 added, {len(errors)} errors: nothing imported")
            raise SystemExit(1)
        with click.progressbar(pairs, label="Importing staff numbers") as bar:
            for agency_id, phone in bar:
                added += add_staff_phone(session, agency_id, vault.lookup_hash(phone), vault.encrypt(phone))
    click.echo(f"{added} added, {len(pairs) - added} already registered, 0 errors")


def _staff_context() -> tuple[PhoneVault, sessionmaker[Session]]:
    """The vault and database of a `sipas staff` command (SIPAS_SECRET_KEY is needed)."""
    settings = get_settings()
    settings.require("SIPAS_SECRET_KEY")
    vault = PhoneVault.from_settings(settings)
    return vault, session_factory(settings.DATABASE_URL)


def _agency(session: Session, code: str) -> Agency:
    agency = get_by_code(session, code)
    if agency is None:
        raise click.ClickException(f"agency {code!r} is not in the registry")
    return agency


@staff.command("list")
@click.option("--agency", "code", required=True, help="The unit's code.")
def staff_list(code: str) -> None:
    """The staff numbers of one unit, masked, with the id `staff remove --id` takes."""
    vault, sessions = _staff_context()
    with sessions() as session:
        rows = staff_phones(session, _agency(session, code).id)
        for row in rows:
            click.echo(f"{row.id}\t{staff_numbers.shown(vault, row)}")
    click.echo(f"{len(rows)} staff numbers", err=True)


@staff.command("remove")
@click.option("--agency", "code", required=True, help="The unit's code.")
@click.option("--id", "staff_id", type=int, help="The row id shown by `staff list` (any row).")
@click.argument("phone", required=False)
def staff_remove(code: str, staff_id: int | None, phone: str | None) -> None:
    """Remove one staff number of a unit, by PHONE or by --id (audited)."""
    if (staff_id is None) == (phone is None):
        raise click.UsageError("give either PHONE or --id")
    vault, sessions = _staff_context()
    with sessions() as session, session.begin():
        agency = _agency(session, code)
        if phone is not None:
            try:
                wanted = vault.lookup_hash(normalize_phone(phone))
            except InvalidPhoneError as exc:
                raise click.ClickException(f"phone: {exc}") from None
            row = next((r for r in staff_phones(session, agency.id) if r.phone_hash == wanted), None)
        else:
            row = session.get(StaffPhone, staff_id)
        if row is None or row.agency_id != agency.id:
            raise click.ClickException(f"no such staff number registered for {code}")
        removed = staff_numbers.remove(session, vault, agency, row, actor=cli_actor())
    click.echo(f"removed {removed} from {code}")


COMMANDS = [agencies, staff]
