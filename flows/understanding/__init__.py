"""Answer understanding: turn a citizen's SMS/Zalo reply into a recorded value, or refuse to guess.

Pure functions only (no I/O), so the conversation engine, `sipas flows parse` and the tests all
share exactly one set of rules.
"""

from flows.understanding.parser import parse_reply
from flows.understanding.reply import Keyword, ParsedReply, ReplyKind

__all__ = ["Keyword", "ParsedReply", "ReplyKind", "parse_reply"]
