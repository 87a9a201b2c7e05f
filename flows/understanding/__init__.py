"""Answer understanding: turn a citizen's SMS/Zalo reply into a recorded value, or refuse to guess.

Pure functions only (no I/O), so the conversation engine, `sipas flows parse` and the tests all
share exactly one set of rules:

- normalize.py: Unicode, case, width and diacritics handling, tokens;
- lexicon.py: the Vietnamese (and some English) vocabulary of answers, hedges and keywords;
- parser.py: `parse_reply`, the decision rules ("never guess");
- masking.py: `mask_personal_data` for comments shown in reports;
- reply.py: the public types.
"""

from flows.understanding.masking import mask_personal_data
from flows.understanding.parser import parse_reply
from flows.understanding.reply import Keyword, ParsedReply, Reason, ReplyKind

__all__ = ["Keyword", "ParsedReply", "Reason", "ReplyKind", "mask_personal_data", "parse_reply"]
