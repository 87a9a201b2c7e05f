"""`sipas cases import FILE`: closed cases in bulk, with the same outcomes as the HTTP intake.

Typical use is back-filling cases the API did not receive (an outage, a new agency's history).
Cases go through flows.intake.submit_cases in batches, each batch committed on its own: if the
import stops half-way, running it again is safe because stored case_ids come back `duplicate`.
The file is read as a stream (a million rows never sit in memory at once); on PostgreSQL each
batch is written with COPY (storage.bulk), in batches of 5,000. With `--jobs N` (PostgreSQL) N
processes store batches at once; rows are split among them by citizen (citizen_shard), so the
checks that compare a citizen's cases (the frequency cap, a citizen twice in the file) see them
in one process, in file order. A case_id twice in the file with two different phones may then be
stored by either line (the other is `duplicate`).
"""

from __future__ import annotations

import codecs
import csv
import itertools
import json
import multiprocessing
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.orm import Session, sessionmaker

from config.settings import get_settings
from flows.intake import Outcome, OutcomeKind, submit_cases
from storage.crypto import PhoneVault
from storage.db import dispose_engines, session_factory

T = TypeVar("T")

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
    module cannot read (a NUL byte) is reported on its own and the import goes on."""
    reader = csv.DictReader(text)
    if not reader.fieldnames or "case_id" not in [name.strip() for name in reader.fieldnames]:
        raise click.ClickException("the CSV header must name the case fields (case_id, agency_code, ...)")
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Row(reader.line_num, None, f"unreadable CSV: {exc}")
            continue
        case = {
            key.strip(): value.strip()
            for key, value in record.items()
            if key is not None and isinstance(value, str) and value.strip()
        }
        yield Row(reader.line_num, case)


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
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes storing batches at once (PostgreSQL; SQLite always uses 1). Rows are split by "
    "citizen (their phone, else their Zalo id), so one citizen's cases stay in one process, in file order.",
)
def cases_import(file: Path, jobs: int) -> None:
    """Import closed cases from FILE: CSV with the API's field names as header, or JSON lines
    (one case object a line). Same outcomes as POST /api/v1/cases/closed."""
    settings = get_settings()
    settings.require("SIPAS_SECRET_KEY")
    if not settings.DATABASE_URL.startswith("postgres"):
        jobs = 1
    lines = count_lines(file)
    stream = read_rows(file)
    first = list(itertools.islice(stream, 1))  # reads the CSV header: a bad one fails before the bar
    counts: Counter[str] = Counter()
    errors: list[tuple[int, str]] = []
    total = 0

    def settle(batch: list[Row], outcomes: list[Outcome]) -> None:
        for row, outcome in zip(batch, outcomes, strict=True):
            counts[outcome.outcome.value] += 1
            if outcome.outcome is OutcomeKind.REJECTED:
                errors.append((row.line, _describe(row, outcome)))
        bar.update(len(batch))

    with click.progressbar(length=lines, label="Importing cases") as bar, _batches(jobs) as store:
        # One batch in flight per shard at most: a citizen's batches are stored one after another.
        buffers: list[list[Row]] = [[] for _ in range(jobs)]
        in_flight: list[tuple[list[Row], Future[list[Outcome]]] | None] = [None] * jobs

        def send(shard: int) -> None:
            previous = in_flight[shard]
            if previous is not None:
                settle(previous[0], previous[1].result())
            batch, buffers[shard] = buffers[shard], []
            in_flight[shard] = (
                (batch, store.submit(_store_batch, [row.case for row in batch])) if batch else None
            )

        for row in itertools.chain(first, stream):
            total += 1
            if row.case is None:
                counts[OutcomeKind.REJECTED.value] += 1
                errors.append((row.line, f"line {row.line}: rejected: {row.problem}"))
                bar.update(1)
                continue
            shard = citizen_shard(row.case, jobs)
            buffers[shard].append(row)
            if len(buffers[shard]) >= BATCH_SIZE:
                send(shard)
        for shard in range(jobs):
            send(shard)  # the rest of each shard
            send(shard)  # and wait for it
    for _line, error in sorted(errors):
        click.echo(f"{file}: {error}", err=True)
    summary = ", ".join(f"{counts[kind.value]} {kind.value}" for kind in OutcomeKind if counts[kind.value])
    click.echo(f"{total} cases: {summary or 'nothing to import'}")
    if counts[OutcomeKind.REJECTED.value]:
        raise SystemExit(1)


def citizen_shard(case: dict[str, Any], shards: int) -> int:
    """Which of `shards` processes stores `case`: by the last 7 digits of its phone (the same for
    every spelling of a number, 2018's renumbering included), else by its Zalo id. A citizen
    known by a phone in one row and only by a Zalo id in another may land in two shards; the
    frequency cap between those two rows then holds as it does between two concurrent HTTP
    batches (not at all when both are stored at the same moment)."""
    if shards == 1:
        return 0
    phone, zalo = case.get("phone"), case.get("zalo_user_id")
    digits = "".join(ch for ch in phone if ch.isdigit()) if isinstance(phone, str) else ""
    key = f"p{digits[-7:]}" if digits else f"z{zalo}".strip()
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % shards


# The storing side of an import, one per process (set up by _start_store).
_STORE: dict[str, Any] = {}


def _start_store() -> None:
    settings = get_settings()
    _STORE.update(
        settings=settings,
        vault=PhoneVault.from_settings(settings),
        sessions=session_factory(settings.DATABASE_URL),
    )


def _store_batch(cases: list[dict[str, Any] | None]) -> list[Outcome]:
    """One batch, one transaction (see the module docstring)."""
    sessions: sessionmaker[Session] = _STORE["sessions"]
    with sessions() as session, session.begin():
        return submit_cases(session, _STORE["vault"], _STORE["settings"], cases, datetime.now(UTC))


class _InProcess(Executor):
    """`--jobs 1`: the batches stored in this process, one after another."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


@contextmanager
def _batches(jobs: int) -> Iterator[Executor]:
    """Where batches are stored: this process, or `jobs` forked ones (each its own connection)."""
    if jobs == 1:
        _start_store()
        yield _InProcess()
        return
    dispose_engines()  # no pooled connection may cross the fork
    with ProcessPoolExecutor(
        jobs, mp_context=multiprocessing.get_context("fork"), initializer=_start_store
    ) as pool:
        yield pool


COMMANDS = [cases]
