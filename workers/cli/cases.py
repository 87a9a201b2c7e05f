"""`sipas cases import FILE`: closed cases in bulk, with the same outcomes as the HTTP intake.

Typical use is back-filling cases the API did not receive (an outage, a new agency's history).
Cases go through flows.intake.submit_cases in batches, each batch committed on its own: if the
import stops half-way, running it again is safe because stored case_ids come back `duplicate`.
The file is read as a stream (a million rows never sit in memory at once); on PostgreSQL each
batch is written with COPY (storage.bulk), in batches of 5,000.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from config.settings import get_settings
from flows.intake import Outcome, OutcomeKind, submit_cases
from storage.crypto import PhoneVault
from storage.db import session_factory

# Rows per transaction: bigger batches share the set-based checks and the COPY over more rows.
BATCH_SIZE = 5000
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


def read_rows(path: Path) -> Iterator[Row]:
    """The file's cases, one at a time: JSON lines or CSV (detect_format). Call count_lines
    first: it checks that the whole file is UTF-8."""
    with path.open(encoding="utf-8-sig", newline="") as text:
        head = text.read(4096)
        text.seek(0)
        if detect_format(path, head) == "jsonl":
            yield from _json_lines(text)
        else:
            yield from _csv_rows(text)


def count_lines(path: Path) -> int:
    """Lines in the file (for the progress bar), read in binary chunks; a file that is not
    UTF-8 is refused here, before anything is imported."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = offset = 0
    last = b"\n"
    with path.open("rb") as data:
        while chunk := data.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                raise click.ClickException(
                    f"{path}: not UTF-8 text ({exc.reason} at byte {offset + exc.start})"
                ) from None
            lines += chunk.count(b"\n")
            offset += len(chunk)
            last = chunk[-1:]
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{path}: not UTF-8 text ({exc.reason} at the end)") from None
    return lines + (last != b"\n")


def _csv_rows(text: Iterable[str]) -> Iterator[Row]:
    """CSV with the contract's field names as header; empty cells mean absent. A line the csv
    module cannot read (a NUL byte) is reported on its own and the import goes on. Rows are read
    as csv.DictReader reads them (blank lines skipped, cells beyond the header dropped), without
    its per-row Python overhead."""
    reader = csv.reader(text)
    header = next(reader, None)
    if not header or "case_id" not in [name.strip() for name in header]:
        raise click.ClickException("the CSV header must name the case fields (case_id, agency_code, ...)")
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Row(reader.line_num, None, f"unreadable CSV: {exc}")
            continue
        if record:
            fields = dict(zip(header, record, strict=False))
            yield Row(
                reader.line_num,
                {key.strip(): value.strip() for key, value in fields.items() if value.strip()},
            )


def _json_lines(text: Iterable[str]) -> Iterator[Row]:
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as exc:
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
    vault = PhoneVault.from_settings(settings)
    sessions = session_factory(settings.DATABASE_URL)
    lines = count_lines(file)
    stream = read_rows(file)
    first = list(itertools.islice(stream, 1))  # reads the CSV header: a bad one fails before the bar
    rows = itertools.chain(first, stream)
    counts: Counter[str] = Counter()
    errors: list[str] = []
    total = 0
    done_lines = 0
    with click.progressbar(length=lines, label="Importing cases") as bar:
        while batch := list(itertools.islice(rows, BATCH_SIZE)):
            total += len(batch)
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
            bar.update(batch[-1].line - done_lines)
            done_lines = batch[-1].line
    for error in errors:
        click.echo(f"{file}: {error}", err=True)
    summary = ", ".join(f"{counts[kind.value]} {kind.value}" for kind in OutcomeKind if counts[kind.value])
    click.echo(f"{total} cases: {summary or 'nothing to import'}")
    if counts[OutcomeKind.REJECTED.value]:
        raise SystemExit(1)


COMMANDS = [cases]
