"""`sipas flows ...`: survey flows, and `sipas flows parse`, the answer understanding on its own.

`flows parse` lets staff (and tests) check how real replies would be understood without running a
survey: one reply a line in, one JSON object a line out (contract.md, CLI).

The life of a flow (docs/flows.md): `flows validate FILE` (every problem with its line),
`flows simulate FLOW` (a citizen's replies on stdin, one JSON line out per reply), `flows publish
FILE` (an immutable numbered version, live for new surveys of a scope), `flows list` (versions and
what is live where), `flows schema` (the JSON Schema for editors).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from config.settings import get_settings
from flows.definition import LANGUAGES, Flow, FlowError, json_schema
from flows.loading import default_flow, read_flow_file
from flows.simulate import SAMPLE_VALUES, simulate
from flows.understanding import ParsedReply, ReplyKind, parse_reply
from flows.versions import SHIPPED_BY_CHANNEL, current_user, load_version, publish
from storage.agencies import get_by_code
from storage.db import transaction
from storage.flows import all_versions, live_assignments
from storage.models import Channel

_PARSE_KINDS = [ReplyKind.SCALE5.value, ReplyKind.YESNO.value, ReplyKind.CHOICE5.value]


@click.group()
def flows() -> None:
    """Survey flows and how citizens' replies to them are understood."""


def _line_out(reply: ParsedReply, verbose: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "text": reply.text,
        "understood": reply.understood,
        "value": reply.value,
        "keyword": reply.keyword.value if reply.keyword else None,
    }
    if verbose:
        out.update(values=list(reply.values), reason=reply.reason, comment=reply.comment)
    return out


@flows.command("parse")
@click.argument("kind", type=click.Choice(_PARSE_KINDS))
@click.option(
    "--max-answers",
    type=click.IntRange(1, 20),
    default=1,
    show_default=True,
    help="How many pending questions one reply may answer (e.g. '5 4 5').",
)
@click.option(
    "--question-number",
    type=click.IntRange(min=1),
    default=None,
    help="Number of the question asked, so 'cau 1: 4' can be checked.",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    help="Name of a choice, in order (repeat up to 5 times), so 'thu tuc' picks its number.",
)
@click.option(
    "--yes-digit",
    type=click.Choice(["1", "2"]),
    default="1",
    show_default=True,
    help="The digit the prompt offers for 'yes' ('1 Khong, 2 Co' -> 2); yes is recorded as 1.",
)
@click.option(
    "--yes-is-good/--yes-is-bad",
    default=None,
    help="Whether 'yes' is the good answer, so yes/no replies with a comment can be checked.",
)
@click.option("--verbose", "-v", is_flag=True, help="Also print values, reason and comment.")
def parse(
    kind: str,
    max_answers: int,
    question_number: int | None,
    options: tuple[str, ...],
    yes_digit: str,
    yes_is_good: bool | None,
    verbose: bool,
) -> None:
    """Read replies on stdin, one a line; print how each is understood, one JSON object a line.

    A line that is not valid UTF-8 gets {"error": "bad_encoding", ...} and the exit status is 1.
    """
    reply_kind = ReplyKind(kind)
    failed = False
    for number, raw in enumerate(sys.stdin.buffer, start=1):
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            failed = True
            error = {"error": "bad_encoding", "message": f"line {number} is not valid UTF-8", "line": number}
            click.echo(json.dumps(error, ensure_ascii=False))
            continue
        reply = parse_reply(
            text,
            reply_kind,
            max_answers=max_answers,
            question_number=question_number,
            options=options,
            yes_digit=int(yes_digit),
            yes_is_good=yes_is_good,
        )
        click.echo(json.dumps(_line_out(reply, verbose), ensure_ascii=False))
    if failed:
        raise SystemExit(1)


# -- flows as data: validate, publish, list, simulate, schema ---------------------------------

_CHANNELS = [channel.value for channel in Channel]


def _read_reply_lines(failures: list[int]) -> Iterator[str]:
    """stdin one line at a time (UTF-8, a BOM on the first line allowed); undecodable line
    numbers are collected in `failures` and reported by the caller."""
    for number, raw in enumerate(sys.stdin.buffer, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            failures.append(number)
            error = {"error": "bad_encoding", "message": f"line {number} is not valid UTF-8", "line": number}
            click.echo(json.dumps(error, ensure_ascii=False))


def _summary(flow: Flow) -> str:
    keys = ", ".join(q.key + (" (when ...)" if q.when is not None else "") for q in flow.questions)
    return (
        f"flow {flow.id}: {len(flow.questions)} questions ({keys}); made for {flow.channel.value}, "
        f"texts for {', '.join(c.value for c in flow.runs_on)}; languages {', '.join(flow.languages)}"
    )


@flows.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
def validate(files: tuple[Path, ...]) -> None:
    """Check flow FILE(s): every problem is printed as FILE:LINE: where: what; exit 1 if any."""
    failed = False
    for path in files:
        report = read_flow_file(path)
        if report.ok and report.flow is not None:
            click.echo(f"OK {path}: {_summary(report.flow)}")
            continue
        failed = True
        click.echo(report.describe())
        count = len(report.issues)
        click.echo(f"{path}: {count} error{'s' if count != 1 else ''}", err=True)
    if failed:
        raise SystemExit(1)


def _checked(path: Path) -> tuple[Flow, str]:
    report = read_flow_file(path)
    if report.flow is None or report.issues:
        click.echo(report.describe(), err=True)
        raise click.ClickException(f"{path} has errors: nothing published")
    return report.flow, report.text


@flows.command("publish")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--agency", "agency_code", default=None, help="Make it live for this agency only (its code).")
@click.option(
    "--channel",
    "channels",
    type=click.Choice(_CHANNELS),
    multiple=True,
    help="Channel(s) to make it live on (default: the flow's own channel).",
)
@click.option("--by", "published_by", default=None, help="Who publishes (default: the login name).")
def publish_command(
    file: Path, agency_code: str | None, channels: tuple[str, ...], published_by: str | None
) -> None:
    """Validate FILE, store it as a new numbered version and make it live for new surveys.

    Surveys already running keep the version they started with. The same content published
    again is not stored twice.
    """
    flow, source = _checked(file)
    with transaction(get_settings().DATABASE_URL) as session:
        agency = None
        if agency_code is not None:
            agency = get_by_code(session, agency_code)
            if agency is None:
                raise click.ClickException(f"no agency with code {agency_code!r} (sipas agencies import)")
        try:
            result = publish(
                session,
                flow,
                source,
                agency=agency,
                channels=[Channel(c) for c in channels] or None,
                by=published_by or current_user(),
                now=datetime.now(UTC),
            )
        except FlowError as exc:
            raise click.ClickException(str(exc)) from None
    scope = agency_code or "default"
    if result.created:
        click.echo(f"{result.name}: stored as version {result.version}")
    else:
        click.echo(f"{result.name}: same content as version {result.version}, no new version")
    for channel in result.made_live:
        click.echo(f"{result.name} v{result.version} is now live for {scope} on {channel.value}")
    for channel in result.already_live:
        click.echo(f"{result.name} v{result.version} was already live for {scope} on {channel.value}")


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


@flows.command("list")
def list_command() -> None:
    """Published versions, and which is live per agency and channel (times in SIPAS_TIMEZONE)."""
    settings = get_settings()
    with transaction(settings.DATABASE_URL) as session:
        versions = all_versions(session)
        live = live_assignments(session)
        scopes = {a.id: (a.agency.code if a.agency is not None else "default") for a in live}
        live_rows = sorted(live, key=lambda a: (a.agency is not None, scopes[a.id], a.channel.value))
        live_at: dict[int, list[str]] = {}
        for assignment in live_rows:
            live_at.setdefault(assignment.flow_version_id, []).append(
                f"{scopes[assignment.id]}/{assignment.channel.value}"
            )

        def when(moment: datetime) -> str:
            return moment.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M")

        click.echo("Versions")
        if versions:
            rows = [["FLOW", "VERSION", "PUBLISHED", "BY", "CHECKSUM", "LIVE FOR"]]
            rows += [
                [
                    v.name,
                    str(v.version),
                    when(v.published_at),
                    v.published_by or "-",
                    v.checksum[:12],
                    ", ".join(live_at.get(v.id, [])) or "-",
                ]
                for v in versions
            ]
            click.echo("\n".join("  " + line for line in _table(rows)))
        else:
            click.echo("  none published yet")
        click.echo("Live for new surveys")
        rows = [["SCOPE", "CHANNEL", "FLOW", "VERSION", "SINCE", "BY"]]
        rows += [
            [
                scopes[a.id],
                a.channel.value,
                a.flow_version.name,
                str(a.flow_version.version),
                when(a.assigned_at),
                a.assigned_by or "-",
            ]
            for a in live_rows
        ]
        defaults = {a.channel for a in live_rows if a.agency is None}
        for channel in Channel:
            if channel not in defaults:
                shipped = SHIPPED_BY_CHANNEL[channel]
                rows.append(["default", channel.value, shipped, "-", "at first survey", "shipped file"])
        click.echo("\n".join("  " + line for line in _table(rows)))
        click.echo(
            "  (an agency without its own row gets the default; surveys keep the version they started with)"
        )


def _flow_to_simulate(flow_ref: str, version: int | None) -> tuple[Flow, str]:
    """A file path, or a flow name: its stored version (`version`, else the newest), else the
    shipped file. Returns the flow and a line saying which one it is."""
    path = Path(flow_ref)
    if path.suffix in (".yaml", ".yml") or path.exists() or "/" in flow_ref:
        if version is not None:
            raise click.UsageError("--version is for a flow name, not a file")
        flow, _source = _checked(path)
        return flow, f"file {path}"
    try:
        with transaction(get_settings().DATABASE_URL) as session:
            stored = [v for v in all_versions(session) if v.name == flow_ref]
            chosen = next((v for v in stored if v.version == version), None) if version else None
            chosen = chosen or (stored[-1] if stored and version is None else None)
            if chosen is not None:
                return load_version(session, chosen.name, chosen.version), f"{chosen.name} v{chosen.version}"
    except SQLAlchemyError as exc:
        if version is not None:
            raise click.ClickException(f"cannot read published flows: {exc.__class__.__name__}") from None
    if version is not None:
        raise click.ClickException(f"flow {flow_ref} has no version {version}")
    try:
        return default_flow(flow_ref), f"shipped {flow_ref} (config/flows/{flow_ref}.yaml)"
    except FlowError as exc:
        raise click.ClickException(f"no published or shipped flow named {flow_ref!r}: {exc}") from None


@flows.command("simulate")
@click.argument("flow_ref", metavar="FLOW")
@click.option("--channel", type=click.Choice(_CHANNELS), default=None, help="Default: the flow's channel.")
@click.option("--lang", "language", type=click.Choice(list(LANGUAGES)), default=None, help="Default: vi.")
@click.option("--version", "version", type=click.IntRange(min=1), default=None, help="A published version.")
@click.option("--agency-name", default=SAMPLE_VALUES["agency"], show_default=True)
@click.option("--case-id", default=SAMPLE_VALUES["case_id"], show_default=True)
def simulate_command(
    flow_ref: str,
    channel: str | None,
    language: str | None,
    version: int | None,
    agency_name: str,
    case_id: str,
) -> None:
    """Run FLOW (a file, or a published or shipped flow name) on a citizen's replies read from
    stdin, one a line. Prints the opening {"messages", "state"}, then for each reply one JSON
    object: reply, understood, question, value, keyword, reason, messages, state."""
    flow, which = _flow_to_simulate(flow_ref, version)
    if channel is not None and Channel(channel) not in flow.runs_on:
        raise click.ClickException(f"{which} has no {channel} texts")
    click.echo(f"simulating {which}", err=True)
    failures: list[int] = []
    lines = simulate(
        flow,
        _read_reply_lines(failures),
        channel=Channel(channel) if channel else None,
        language=language,
        values={"agency": agency_name, "case_id": case_id},
    )
    for line in lines:
        click.echo(json.dumps(line, ensure_ascii=False))
    if failures:
        raise SystemExit(1)


@flows.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of flow files (config/flows/flow.schema.json)."""
    click.echo(json.dumps(json_schema(), ensure_ascii=False, indent=2))


COMMANDS = [flows]
