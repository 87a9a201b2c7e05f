"""The parser's public types: what a question expects and what a reply was understood as.

Kept apart from the parsing logic so the conversation engine can depend on these small,
stable types while the understanding rules evolve.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ReplyKind(StrEnum):
    """What a question expects: a 1-5 scale, yes/no, a choice among 1-5, or free text."""

    SCALE5 = "scale5"
    YESNO = "yesno"
    CHOICE5 = "choice5"
    TEXT = "text"


class Keyword(StrEnum):
    """Commands a citizen may send at any point of a survey, whatever the question."""

    OPT_OUT = "opt_out"
    HELP = "help"
    RESTART = "restart"


@dataclass(frozen=True)
class ParsedReply:
    """One reply as understood; `understood=False` means the engine must re-ask, never guess."""

    text: str
    understood: bool
    value: int | None
    values: tuple[int, ...]
    keyword: Keyword | None
    reason: str | None
    text_value: str | None
