"""`sipas flows ...`: survey flows, and `sipas flows parse`, the answer understanding on its own.

`flows parse` lets staff (and tests) check how real replies would be understood without running a
survey: one reply a line in, one JSON object a line out (contract.md, CLI).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from flows.understanding import ParsedReply, ReplyKind, parse_reply

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


COMMANDS = [flows]
