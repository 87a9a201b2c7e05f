"""The parser's public types: what a question expects and what a reply was understood as.

Kept apart from the parsing rules so the conversation engine can depend on these small,
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
    # "DK", "dang ky", "START": an opted-out number asks to be surveyed again (flows.opt_in);
    # inside a survey it is no answer.
    OPT_IN = "opt_in"


class Reason(StrEnum):
    """Why a reply was not understood; the engine re-asks in every case, the reason tunes the wording."""

    EMPTY = "empty"
    NO_ANSWER = "no_answer_found"
    AMBIGUOUS = "ambiguous"
    OUT_OF_RANGE = "out_of_range"
    TOO_MANY = "too_many_answers"
    OTHER_QUESTION = "other_question"
    QUESTION_UNKNOWN = "question_unknown"
    TOO_LONG = "too_long"


@dataclass(frozen=True)
class ParsedReply:
    """One reply as understood.

    `understood=False` means the engine must re-ask: the parser never guesses, because a wrong
    recorded number is worse than a second question. A keyword reply is `understood=True` with
    `keyword` set and no value. `comment` holds the whole reply (NFC) when an answer came with
    extra words worth keeping as a comment, e.g. "5, can bo nhiet tinh".
    """

    text: str
    understood: bool
    value: int | None
    values: tuple[int, ...]
    keyword: Keyword | None
    reason: str | None
    text_value: str | None
    comment: str | None = None
