"""Reading flows: YAML files with line numbers for every problem, stored definitions, shipped defaults.

A flow file is composed into YAML nodes first, so every path in the data (`questions.2.text.vi`)
maps to the line it was written on; duplicate keys (which plain YAML loading silently resolves to
the last one) are reported too. Then the structure is checked (flows.definition, pydantic: every
structural error at once) and the meaning (flows.checks: every problem at once; where the
structure has errors, of the parts that are sound). `sipas flows validate` prints the report;
everything else uses `load_flow`, which refuses a flow with any problem.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from config.settings import PROJECT_ROOT
from flows.checks import Issue, flow_issues
from flows.definition import Flow, FlowError

__all__ = [
    "FLOWS_DIR",
    "FlowReport",
    "LineIssue",
    "canonical_definition",
    "check_source",
    "checksum",
    "default_flow",
    "flow_from_definition",
    "load_flow",
    "read_flow_file",
    "shipped_path",
]

FLOWS_DIR = PROJECT_ROOT / "config" / "flows"
MAX_FILE_BYTES = 1_000_000
# A flow with structural errors is checked for meaning once its broken parts are set aside; each
# round sets aside what the last one found (a question has at most a few nested levels).
MAX_SALVAGE_ROUNDS = 8
_REQUIRED = frozenset(name for name, info in Flow.model_fields.items() if info.is_required())


@dataclass(frozen=True)
class LineIssue:
    """A problem with the line it is on (None when it concerns the whole file)."""

    line: int | None
    where: str
    message: str

    def format(self, source: str) -> str:
        place = f"{source}:{self.line}" if self.line is not None else source
        return f"{place}: {self.where}: {self.message}" if self.where else f"{place}: {self.message}"


@dataclass
class FlowReport:
    """The outcome of reading one flow: the flow when it can be used, and every problem found."""

    source: str
    text: str
    flow: Flow | None = None
    issues: list[LineIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.flow is not None and not self.issues

    def describe(self) -> str:
        return "\n".join(issue.format(self.source) for issue in self.issues)


class _Lines:
    """Path in the data -> line in the file, from the composed node tree (1-based lines)."""

    def __init__(self) -> None:
        self.lines: dict[tuple[str | int, ...], int] = {}
        self.duplicates: list[LineIssue] = []

    def walk(self, node: yaml.Node, path: tuple[str | int, ...]) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
                if key in seen:
                    self.duplicates.append(
                        LineIssue(
                            key_node.start_mark.line + 1,
                            _dotted((*path, key)),
                            f"duplicate key {key!r} (YAML keeps only the last one)",
                        )
                    )
                seen.add(key)
                self.lines[(*path, key)] = key_node.start_mark.line + 1
                self.walk(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*path, index))

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        """The line of `path`, or of its nearest written ancestor (a missing key's parent)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in path)


def _compose(text: str) -> tuple[yaml.Node | None, Any]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return node, data


def check_source(text: str, source: str) -> FlowReport:
    """Read flow YAML `text` (named `source` in messages); the report lists every problem."""
    report = FlowReport(source=source, text=text)
    try:
        node, data = _compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        report.issues.append(LineIssue(line, "", f"not valid YAML: {_yaml_problem(exc)}"))
        return report
    lines = _Lines()
    if node is not None:
        lines.walk(node, ())
    report.issues += lines.duplicates
    if not isinstance(data, dict):
        report.issues.append(LineIssue(1, "", "a flow file must be a YAML mapping (id, name, channel, ...)"))
        return report
    try:
        flow = Flow.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            path = _error_path(error)
            report.issues.append(LineIssue(lines.line_of(path), _dotted(path), _pydantic_message(error)))
        # Check the meaning of what is sound too, so staff see every problem in one round.
        report.issues += _salvaged_issues(data, lines)
        report.issues.sort(key=lambda issue: issue.line or 0)
        return report
    report.issues += [_located(issue, lines) for issue in flow_issues(flow)]
    report.issues.sort(key=lambda issue: issue.line or 0)
    if not report.issues:
        report.flow = flow
    return report


def _error_path(error: Any) -> tuple[str | int, ...]:
    return tuple(part for part in error["loc"] if not _is_union_tag(part))


def _salvaged_issues(data: dict[str, Any], lines: _Lines) -> list[LineIssue]:
    """The problems of meaning of a flow with structural errors: the questions with such errors
    (and optional top-level fields with them) are set aside until the rest has a sound structure,
    then the rest is checked. A problem that names a set-aside question is left out (it would only
    repeat the structural one), and paths are mapped back to the questions' places in the file."""
    salvaged = dict(data)
    questions = list(salvaged.get("questions") or []) if isinstance(salvaged.get("questions"), list) else []
    kept = list(range(len(questions)))  # salvaged position -> position in the file
    dropped: set[str] = set()
    for _round in range(MAX_SALVAGE_ROUNDS):
        salvaged["questions"] = [questions[i] for i in kept]
        try:
            flow = Flow.model_validate(salvaged)
            break
        except ValidationError as exc:
            paths = [_error_path(e) for e in exc.errors(include_url=False)]
        progress = False
        for path in paths:
            if len(path) >= 2 and path[0] == "questions" and isinstance(path[1], int) and path[1] < len(kept):
                original = kept[path[1]]
                if original in kept:
                    item = questions[original]
                    if isinstance(item, dict) and isinstance(item.get("key"), str):
                        dropped.add(item["key"])
                    kept = [i for i in kept if i != original]
                    progress = True
            elif path and path[0] != "questions" and path[0] in salvaged and path[0] not in _REQUIRED:
                del salvaged[path[0]]
                progress = True
        if not progress:
            return []
    else:
        return []
    found = []
    for issue in flow_issues(flow):
        # Paths through a set-aside question are unknown: reachability and loops are judged on
        # the whole flow once its structure is sound.
        if any(f"{key!r}" in issue.message for key in dropped) or (
            dropped and ("unreachable" in issue.message or "loop without exit" in issue.message)
        ):
            continue
        path = issue.path
        if len(path) >= 2 and path[0] == "questions" and isinstance(path[1], int) and path[1] < len(kept):
            path = ("questions", kept[path[1]], *path[2:])
        found.append(_located(Issue(path, issue.message), lines))
    return found


def _is_union_tag(part: str | int) -> bool:
    """Pydantic names the union member it tried (`Condition`, `tuple[...]`): not a data key."""
    return isinstance(part, str) and (part[:1].isupper() or "[" in part)


def _pydantic_message(error: Any) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field (see docs/flows.md for the fields of a flow)"
    if kind == "enum":
        return f"must be one of {ctx.get('expected')}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}"
    return str(error["msg"])


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    return str(problem) if problem else str(exc).splitlines()[0]


def _located(issue: Issue, lines: _Lines) -> LineIssue:
    return LineIssue(lines.line_of(issue.path), issue.where, issue.message)


def read_flow_file(path: Path) -> FlowReport:
    """Check the flow file at `path`; an unreadable file is a report with one issue."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return FlowReport(str(path), "", issues=[LineIssue(None, "", f"cannot read: {exc.strerror}")])
    if len(raw) > MAX_FILE_BYTES:
        return FlowReport(str(path), "", issues=[LineIssue(None, "", "file is larger than 1 MB")])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return FlowReport(str(path), "", issues=[LineIssue(None, "", f"not UTF-8 text: {exc.reason}")])
    return check_source(text, str(path))


def load_flow(path: Path) -> Flow:
    """The flow in file `path`; FlowError lists every problem with its line."""
    report = read_flow_file(path)
    if report.flow is None or report.issues:
        raise FlowError(f"{path}: invalid flow:\n{report.describe()}")
    return report.flow


def canonical_definition(flow: Flow) -> dict[str, Any]:
    """The flow as stored: JSON data without defaults or comments, so formatting never matters."""
    data: dict[str, Any] = flow.model_dump(
        mode="json", by_alias=True, exclude_none=True, exclude_defaults=True
    )
    return data


def checksum(flow: Flow) -> str:
    """SHA-256 of the canonical definition without its version: equal content, equal checksum."""
    data = {k: v for k, v in canonical_definition(flow).items() if k != "version"}
    encoded = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def flow_from_definition(definition: dict[str, Any]) -> Flow:
    """A stored definition back into a checked flow (cached: versions never change)."""
    return _parse_definition(json.dumps(definition, sort_keys=True, ensure_ascii=False))


@lru_cache(maxsize=64)
def _parse_definition(encoded: str) -> Flow:
    try:
        flow = Flow.model_validate(json.loads(encoded))
    except ValidationError as exc:
        raise FlowError(f"stored flow is invalid: {exc}") from exc
    issues = flow_issues(flow)
    if issues:
        raise FlowError("stored flow is invalid: " + "; ".join(f"{i.where}: {i.message}" for i in issues))
    return flow


def shipped_path(name: str) -> Path | None:
    """config/flows/<name>.yaml when `name` is a shipped flow."""
    if not name or not all(ch.isalnum() or ch in "-_" for ch in name):
        return None
    path = FLOWS_DIR / f"{name}.yaml"
    return path if path.is_file() else None


def shipped_names() -> Iterator[str]:
    for path in sorted(FLOWS_DIR.glob("*.yaml")):
        yield path.stem


@lru_cache(maxsize=16)
def default_flow(name: str) -> Flow:
    """The shipped flow `name` (`sipas-sms`, `sipas-zalo`) from config/flows/."""
    path = shipped_path(name)
    if path is None:
        raise FlowError(f"no shipped flow named {name!r} in {FLOWS_DIR}")
    return load_flow(path)
