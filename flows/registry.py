"""Agency registry files: read (CSV or YAML, every row with its line), checked as a whole, and
applied parents-first with every change in the audit log. `sipas agencies import` and the
/agencies page both use this, so a file gets the same answer whichever way it comes in.

A registry file describes a tree (province → department → commune) by parent codes, in any order.
It is checked as a whole before anything is written (unknown parents, cycles, bad levels,
duplicate codes: each reported with its line number), then upserted parents-first in the caller's
transaction: a file with any error changes nothing, and importing the same file again changes
nothing either.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml
from sqlalchemy.orm import Session

from storage import audit
from storage.agencies import (
    UNCHANGED,
    AgencyRow,
    Unchanged,
    all_agencies,
    get_by_code,
    set_successor,
    upsert_agency,
)
from storage.models import Agency, AgencyLevel

__all__ = [
    "LEVELS",
    "ImportPlan",
    "Record",
    "RegistryFileError",
    "apply_import",
    "plan_file",
    "plan_import",
    "read_records",
]

LEVELS = ", ".join(level.value for level in AgencyLevel)


class RegistryFileError(ValueError):
    """The file cannot be read at all (wrong format, not UTF-8, missing columns)."""


@dataclass(frozen=True)
class Record:
    """One row of a registry file: its line number and its fields as text (absent = missing key)."""

    line: int
    fields: dict[str, str | None]


def read_records(text: str, name: str) -> list[Record]:
    """Rows of a registry file's `text`, CSV or YAML by the extension of its `name`, every value
    kept as the text written. RegistryFileError when the file cannot be read at all."""
    suffix = Path(name).suffix.lower()
    if suffix in (".yaml", ".yml"):
        return _yaml_records(name, text)
    if suffix == ".csv":
        return _csv_records(text)
    raise RegistryFileError(f"{name}: use a .csv, .yaml or .yml file")


def _csv_records(text: str) -> list[Record]:
    reader = csv.DictReader(text.splitlines())
    records = []
    for row in reader:
        fields = {
            (key or "").strip(): (value.strip() if isinstance(value, str) else None)
            for key, value in row.items()
        }
        records.append(Record(reader.line_num, fields))
    return records


def _yaml_records(path: str, text: str) -> list[Record]:
    """YAML read node by node, so codes such as `001` stay text and every row keeps its line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise RegistryFileError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(root, yaml.MappingNode):
        found = [value for key, value in root.value if key.value == "agencies"]
        root = found[0] if found else None
    if not isinstance(root, yaml.SequenceNode):
        raise RegistryFileError(f"{path}: expected a list of agencies (or a mapping with an 'agencies' list)")
    records = []
    for item in root.value:
        line = item.start_mark.line + 1
        if not isinstance(item, yaml.MappingNode):
            records.append(Record(line, {"": "not a mapping"}))
            continue
        fields: dict[str, str | None] = {}
        for key, value in item.value:
            if not isinstance(value, yaml.ScalarNode):
                fields[str(key.value)] = None
            elif value.tag == "tag:yaml.org,2002:null":
                fields[str(key.value)] = ""
            else:
                fields[str(key.value)] = str(value.value).strip()
        records.append(Record(line, fields))
    return records


def _probability(text: str | None) -> float | Unchanged:
    if not text:
        return UNCHANGED
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError
    return value


def _day(text: str | None) -> date | Unchanged | None:
    """A validity date: absent keeps what is stored, empty clears it, else YYYY-MM-DD."""
    if text is None:
        return UNCHANGED
    return date.fromisoformat(text) if text else None


def _agency_row(record: Record) -> tuple[AgencyRow | None, list[str]]:
    fields, errors = record.fields, []
    if "" in fields and fields[""] == "not a mapping":
        return None, ["an agency must be a mapping of code, name, parent_code, level"]
    code, name = fields.get("code") or "", fields.get("name") or ""
    if not code:
        errors.append("code is required")
    elif len(code) > 64:
        errors.append("code must be at most 64 characters")
    if not name:
        errors.append("name is required")
    elif len(name) > 255:
        errors.append("name must be at most 255 characters")
    level_text = (fields.get("level") or "").lower()
    if level_text not in {level.value for level in AgencyLevel}:
        errors.append(f"level must be one of {LEVELS} (got {level_text or 'nothing'!r})")
    try:
        probability = _probability(fields.get("sampling_probability"))
    except ValueError:
        errors.append("sampling_probability must be a number from 0 to 1")
        probability = UNCHANGED
    days: dict[str, date | Unchanged | None] = {}
    for key in ("valid_from", "valid_to"):
        try:
            days[key] = _day(fields.get(key))
        except ValueError:
            errors.append(f"{key} must be a date YYYY-MM-DD (got {fields.get(key)!r})")
            days[key] = UNCHANGED
    start, end = days["valid_from"], days["valid_to"]
    if isinstance(start, date) and isinstance(end, date) and end < start:
        errors.append(f"valid_to {end} is before valid_from {start}")
    successor: str | Unchanged | None = UNCHANGED
    if "successor_code" in fields:
        successor = fields.get("successor_code") or None
        if successor == code:
            errors.append("successor_code cannot be the agency itself")
    if errors:
        return None, errors
    parent = fields.get("parent_code") or None
    return AgencyRow(code, name, AgencyLevel(level_text), parent, probability, start, end, successor), []


@dataclass(frozen=True)
class ImportPlan:
    """Rows in an order where every parent comes before its children, or the errors that stop it."""

    rows: list[AgencyRow]
    errors: list[str]


def plan_import(records: Sequence[Record], registered: dict[str, str | None]) -> ImportPlan:
    """Check a whole file against itself and the registry (`registered`: code -> parent code)."""
    errors: list[str] = []
    rows: dict[str, tuple[int, AgencyRow]] = {}
    for record in records:
        row, problems = _agency_row(record)
        errors.extend(f"line {record.line}: {problem}" for problem in problems)
        if row is None:
            continue
        if row.code in rows:
            errors.append(
                f"line {record.line}: code {row.code!r} already appears on line {rows[row.code][0]}"
            )
            continue
        rows[row.code] = (record.line, row)
    parents = {**registered, **{code: row.parent_code for code, (_line, row) in rows.items()}}
    depth: dict[str, int] = {}
    for code, (line, row) in rows.items():
        successor = row.successor_code
        if isinstance(successor, str) and successor not in parents:
            errors.append(
                f"line {line}: successor_code {successor!r} of {code!r} is neither in the file "
                "nor in the registry"
            )
        if row.parent_code is not None and row.parent_code not in parents:
            errors.append(
                f"line {line}: parent_code {row.parent_code!r} of {code!r} is neither in the file "
                "nor in the registry"
            )
            continue
        chain, cyclic = _ancestors(code, parents)
        if cyclic:
            errors.append(f"line {line}: parent codes form a cycle: {' → '.join(chain)}")
            continue
        depth[code] = len(chain)
    if errors:
        return ImportPlan([], errors)
    ordered = sorted(rows.values(), key=lambda item: (depth[item[1].code], item[0]))
    return ImportPlan([row for _line, row in ordered], [])


def _ancestors(code: str, parents: dict[str, str | None]) -> tuple[list[str], bool]:
    """(code, its parent, grandparent... up to a root; whether `code` itself lies on a cycle).
    On a cycle the chain ends with the first repeated code, e.g. A → B → A."""
    chain, seen = [code], {code}
    current = parents.get(code)
    while current is not None and current in parents:
        chain.append(current)
        if current in seen:
            return chain, current == code
        seen.add(current)
        current = parents[current]
    return chain, False


def plan_file(session: Session, records: Sequence[Record]) -> ImportPlan:
    """`plan_import` against the registry as it is stored now."""
    known = all_agencies(session)
    code_of = {agency.id: agency.code for agency in known}
    registered = {a.code: (code_of[a.parent_id] if a.parent_id is not None else None) for a in known}
    return plan_import(records, registered)


def apply_import(session: Session, rows: Sequence[AgencyRow], actor: str) -> dict[str, int]:
    """Upsert a checked plan's rows (parents first), then the successors (a successor may come
    later in the file than the unit it replaces); each creation and change is audited as `actor`.
    Returns how many were created, updated and unchanged."""
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    code_of = {agency.id: agency.code for agency in all_agencies(session)}
    changes: dict[str, str] = {}
    for row in rows:
        parent = get_by_code(session, row.parent_code) if row.parent_code else None
        before = _described(get_by_code(session, row.code), code_of)
        agency, change = upsert_agency(session, row, parent)
        code_of[agency.id] = agency.code
        changes[agency.code] = change
        if change != "unchanged":
            after = _described(agency, code_of)
            action = "agencies.add" if change == "created" else "agencies.update"
            audit.append(session, actor, action, f"agency:{agency.code}", before, after, agency_id=agency.id)
        counts[change] += 1
    for row in rows:
        if isinstance(row.successor_code, Unchanged):
            continue
        replaced = get_by_code(session, row.code)
        assert replaced is not None
        successor = get_by_code(session, row.successor_code) if row.successor_code else None
        before = _described(replaced, code_of)
        if set_successor(session, replaced, successor):
            audit.append(
                session,
                actor,
                "agencies.update",
                f"agency:{replaced.code}",
                before,
                _described(replaced, code_of),
                agency_id=replaced.id,
            )
            if changes[row.code] == "unchanged":
                changes[row.code] = "updated"
                counts["unchanged"] -= 1
                counts["updated"] += 1
    return counts


def _described(agency: Agency | None, code_of: dict[int, str]) -> dict[str, object] | None:
    """What the audit log records about an agency."""
    if agency is None:
        return None
    return {
        "name": agency.name,
        "level": agency.level.value,
        "parent": code_of.get(agency.parent_id) if agency.parent_id is not None else None,
        "sampling_probability": agency.sampling_probability,
        "valid_from": agency.valid_from,
        "valid_to": agency.valid_to,
        "successor": code_of.get(agency.successor_id) if agency.successor_id is not None else None,
    }
