"""`sipas cases import FILE`: closed cases in bulk, with the same outcomes as the HTTP intake.

Typical use is back-filling cases the API did not receive (an outage, a new agency's history).
Cases go through flows.intake.submit_cases in batches, each batch committed on its own: if the
import stops half-way, running it again is safe because stored case_ids come back `duplicate`.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from config.settings import get_settings
from flows.intake import Outcome, OutcomeKind, submit_cases
from storage.crypto import PhoneVault
from storage.db import session_factory

BATCH_SIZE = 500
_JSON_LINES = (".jsonl", ".ndjson", ".json")


@dataclass(frozen=True)
class Row:
    """One case of the file: where it is (line number) and what it says, or why it is unreadable."""

    line: int
    case: dict[str, Any] | None
    problem: str | None = None


def detect_format(path: Path, text: str) -> str:
    """ "csv" or "jsonl": by extension, else by content (JSON lines start with `{`)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in _JSON_LINES:
        return "jsonl"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def read_rows(path: Path) -> list[Row]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if detect_format(path, text) == "jsonl":
        return list(_json_lines(text))
    return list(_csv_rows(text))


def _csv_rows(text: str) -> Iterator[Row]:
    """CSV with the contract's field names as header; empty cells mean absent."""
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or "case_id" not in [name.strip() for name in reader.fieldnames]:
        raise click.ClickException("the CSV header must name the case fields (case_id, agency_code, ...)")
    for record in reader:
        case = {
            key.strip(): value.strip()
            for key, value in record.items()
            if key is not None and isinstance(value, str) and value.strip()
        }
        yield Row(reader.line_num, case)


def _json_lines(text: str) -> Iterator[Row]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            yield Row(number, None, f"not valid JSON: {exc}")
            continue
        if not isinstance(value, dict):
            yield Row(number, None, "a line must hold one case object")
            continue
        yield Row(number, value)


def _describe(row: Row, outcome: Outcome) -> str:
    label = f"line {row.line}" + (f" (case {outcome.case_id})" if outcome.case_id else "")
    details = "; ".join(f"{e.field or 'case'}: {e.message}" for e in outcome.errors)
    return f"{label}: rejected: {details}"


@click.group("cases")
def cases() -> None:
    """Closed one-stop cases."""


@cases.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def cases_import(file: Path) -> None:
    """Import closed cases from FILE: CSV with the API's field names as header, or JSON lines
    (one case object a line). Same outcomes as POST /api/v1/cases/closed."""
    settings = get_settings()
    settings.require("SIPAS_SECRET_KEY")
    vault = PhoneVault(settings.SIPAS_SECRET_KEY, settings.old_secret_keys)
    sessions = session_factory(settings.DATABASE_URL)
    rows = read_rows(file)
    counts: Counter[str] = Counter()
    errors: list[str] = []
    with click.progressbar(length=len(rows), label="Importing cases") as bar:
        for start in range(0, len(rows), BATCH_SIZE):
            batch = rows[start : start + BATCH_SIZE]
            readable = [row for row in batch if row.case is not None]
            for row in batch:
                if row.problem is not None:
                    counts[OutcomeKind.REJECTED.value] += 1
                    errors.append(f"line {row.line}: rejected: {row.problem}")
            with sessions() as session, session.begin():
                outcomes = submit_cases(
                    session, vault, settings, [row.case for row in readable], datetime.now(UTC)
                )
            for row, outcome in zip(readable, outcomes, strict=True):
                counts[outcome.outcome.value] += 1
                if outcome.outcome is OutcomeKind.REJECTED:
                    errors.append(_describe(row, outcome))
            bar.update(len(batch))
    for error in errors:
        click.echo(f"{file}: {error}", err=True)
    summary = ", ".join(f"{counts[kind.value]} {kind.value}" for kind in OutcomeKind if counts[kind.value])
    click.echo(f"{len(rows)} cases: {summary or 'nothing to import'}")
    if counts[OutcomeKind.REJECTED.value]:
        raise SystemExit(1)


COMMANDS = [cases]
