"""First, strict reply parser: keywords, then a lone digit 1-5 with surrounding noise.

Anything else is not understood, so the engine re-asks rather than records a guess.
"""

from __future__ import annotations

import re
import unicodedata

from flows.understanding.reply import Keyword, ParsedReply, ReplyKind

_KEYWORDS = {
    "tc": Keyword.OPT_OUT,
    "tu choi": Keyword.OPT_OUT,
    "huy": Keyword.OPT_OUT,
    "stop": Keyword.OPT_OUT,
    "dung": Keyword.OPT_OUT,
    "hd": Keyword.HELP,
    "?": Keyword.HELP,
    "lai": Keyword.RESTART,
    "bat dau": Keyword.RESTART,
    "restart": Keyword.RESTART,
}
_DIGIT = re.compile(r"^\W*([1-5])\W*$")


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.casefold()).replace("đ", "d")
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.split())


def parse_reply(
    text: str, kind: ReplyKind, *, max_answers: int = 1, question_number: int | None = None
) -> ParsedReply:
    """Understand one reply to a question of `kind`; see docs/understanding.md."""
    nfc = unicodedata.normalize("NFC", text).strip()
    folded = _fold(nfc)
    keyword = _KEYWORDS.get(folded.strip(" .!"))
    if keyword is None and folded.strip() == "?":
        keyword = Keyword.HELP
    if keyword is not None:
        return ParsedReply(nfc, True, None, (), keyword, None, None)
    if not folded:
        return ParsedReply(nfc, False, None, (), None, "empty", None)
    if kind is ReplyKind.TEXT:
        return ParsedReply(nfc, True, None, (), None, None, nfc)
    match = _DIGIT.match(folded)
    if match is None:
        return ParsedReply(nfc, False, None, (), None, "no_answer_found", None)
    value = int(match.group(1))
    if kind is ReplyKind.YESNO and value not in (1, 2):
        return ParsedReply(nfc, False, None, (), None, "out_of_range", None)
    return ParsedReply(nfc, True, value, (value,), None, None, None)
