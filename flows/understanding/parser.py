"""parse_reply: one citizen reply -> the value to record, a keyword, or a refusal to guess.

The rules, in order (docs/understanding.md has the citizen-facing version):

1. Keywords win at any point: a reply made only of opt-out / help / restart phrases (plus
   politeness), or starting with an opt-out word followed by punctuation ("TC, dung nhan tin").
2. Free-text questions take any other non-empty text.
3. Otherwise the reply is read as parts: answers (digits, number words, star strings, scale
   labels, yes/no words, emoji), hedges ("nhưng", "hoặc", "không biết"), fillers ("dạ", "ạ",
   "em chọn", "điểm") and other words (a comment).
4. Never guess. The reply is not understood when it hedges, gives two different answers, gives a
   number out of range, answers another question ("câu 2: 4" while asking question 1), or buries
   a number inside a sentence ("chờ 3 ngày"). A number is taken with a comment only when it opens
   the reply and is set apart ("5, cán bộ nhiệt tình"), and only when the comment does not
   contradict it ("5, nhưng chậm", "5 chậm quá" are re-asked). A wrong recorded number is worse
   than a re-ask: the engine re-asks and keeps the text as a comment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum

from flows.understanding.lexicon import (
    ANSWER_LEXICONS,
    ANSWER_WORDS,
    KEYWORD_LEXICON,
    KNOWN_WORDS,
    OPT_OUT_LEAD_LEXICON,
    QUESTION_LETTERS,
    QUESTION_WORDS,
    RUN_TOGETHER_WORDS,
    Lexicon,
    Meaning,
    Sense,
    emoji_meaning,
)
from flows.understanding.normalize import Token, TokenType, nfc, tokenize
from flows.understanding.reply import Keyword, ParsedReply, Reason, ReplyKind
from flows.understanding.typing import has_diacritics, readings, slip_readings

# No real answer is this long; longer text is kept as a comment by the engine, not parsed.
MAX_ANSWER_CHARS = 1000
_HOLLOW_STAR = "☆"
_RANGE_MARKS = frozenset("-~/–—⁄")
_DECIMAL_MARKS = frozenset(".,")
_KEYWORD_PRIORITY = (Keyword.OPT_OUT, Keyword.RESTART, Keyword.HELP, Keyword.OPT_IN)


class Part(Enum):
    """What an item of a reply contributes to the decision."""

    ANSWER = "answer"
    OUT_OF_RANGE = "out_of_range"
    REPEATED = "repeated"
    HEDGE = "hedge"
    FILLER = "filler"
    STARTER = "starter"
    UNIT = "unit"
    NEGATIVE = "negative"
    POSITIVE = "positive"
    CONTENT = "content"
    SEP = "sep"
    QREF = "qref"


@dataclass(frozen=True)
class Item:
    """A phrase, number, emoji or mark of the reply with its part.

    For answers: `value`; `exact` is False for words that only give the side of the scale;
    `anchored` answers (numbers, yes/no words) must open the reply when a comment follows;
    `numeric` answers (digits, number words, stars) count towards "too many answers".
    """

    part: Part
    value: int | None = None
    exact: bool = True
    anchored: bool = False
    numeric: bool = False
    digit: bool = False
    mark: str = ""
    glued: bool = False
    unknown: bool = False  # an unaccented word the lexicon does not know ("hem", "lem", "khonh")


def parse_reply(
    text: str,
    kind: ReplyKind,
    *,
    max_answers: int = 1,
    question_number: int | None = None,
    options: Sequence[str] = (),
    yes_digit: int = 1,
    yes_is_good: bool | None = None,
) -> ParsedReply:
    """Understand one reply to a question of `kind`.

    `max_answers` > 1 lets one SMS answer several pending questions in order ("5 4 5");
    `question_number` lets "câu 1: 4" be checked against the question asked; `options` are the
    labels of a choice question, so "thủ tục" picks the option that contains it; `yes_digit`
    is the digit the question offers for "yes" (1 by default; 2 when the prompt says "1 Khong,
    2 Co"), the value recorded is always yes = 1, no = 2. `yes_is_good` says whether "yes" is
    the good answer (True: "was the result on time?") or the bad one (False: "were you asked for
    money?"); a yes/no reply with an approving or complaining comment is only taken when the
    comment agrees with the answer, and never when this is not known (None).

    An unaccented reply is also read as Telex and VNI typing, and, when nothing is understood,
    with phone-keyboard slips corrected (flows.understanding.typing); see `_typed`.
    """
    question = _Question(kind, max(1, max_answers), question_number, yes_is_good)
    literal = _parse_text(text, question, options, yes_digit)
    if literal.keyword is not None or literal.reason in (Reason.EMPTY, Reason.TOO_LONG):
        return literal
    return _typed(text, literal, question, options, yes_digit)


def _typed(
    text: str, literal: ParsedReply, question: _Question, options: Sequence[str], yes_digit: int
) -> ParsedReply:
    """The reply as it was typed, all readings considered; never guess between them.

    Readings: VNI (when its digits make syllables, the literal reading is dropped: those digits
    are marks, not values), Telex, and the literal one, which counts only when every word Telex
    changed is also a word as typed ("poor": bad, or Telex "pổ"?); "hair" is no word, so
    "rats hair long" is Telex only. Every reading that is understood must
    mean the same (values, keyword), else the reply is ambiguous. When none is understood, the
    same rule applies to the readings with slips corrected; a slip never makes a keyword. On a
    free-text question only a keyword is looked for in the decoded readings.
    """
    found = readings(text)
    decoded = [reading for reading in (found.vni, found.telex) if reading is not None]
    if not decoded and (literal.understood or has_diacritics(text)):
        return literal
    parsed = [_parse_text(reading, question, options, yes_digit) for reading in decoded]
    if question.kind is ReplyKind.TEXT:
        keywords = {reply.keyword for reply in parsed if reply.keyword is not None}
        return _keyword_reply(literal.text, keywords.pop()) if len(keywords) == 1 else literal
    if found.vni is None and all(_plain(word) in KNOWN_WORDS for word in found.telex_words):
        parsed.append(literal)
    chosen = _agreed(parsed, literal.text)
    if chosen is not None:
        return chosen
    fallback = parsed[0]
    bases = [*decoded, text] if found.vni is None else decoded
    slipped = [
        reply
        for reply in (
            _parse_text(t, question, options, yes_digit)
            for t in slip_readings(bases, ANSWER_WORDS, RUN_TOGETHER_WORDS, KNOWN_WORDS)
        )
        if reply.keyword is None
    ]
    return _agreed(slipped, literal.text) or _refused(
        literal.text, Reason(fallback.reason or Reason.NO_ANSWER)
    )


def _plain(word: str) -> str:
    tokens = tokenize(word)
    return tokens[0].plain if len(tokens) == 1 else word


def _agreed(replies: Sequence[ParsedReply], shown: str) -> ParsedReply | None:
    """The understood reading when all understood readings mean the same; an ambiguous refusal
    when they differ; None when no reading is understood."""
    understood = [reply for reply in replies if reply.understood]
    if not understood:
        return None
    if len({(reply.values, reply.keyword) for reply in understood}) > 1:
        return _refused(shown, Reason.AMBIGUOUS)
    first = understood[0]
    if first.keyword is not None:
        return _keyword_reply(shown, first.keyword)
    comment = shown if first.comment is not None else None
    return replace(first, text=shown, comment=comment)


def _keyword_reply(shown: str, keyword: Keyword) -> ParsedReply:
    return ParsedReply(shown, True, None, (), keyword, None, None)


def _parse_text(text: str, question: _Question, options: Sequence[str], yes_digit: int) -> ParsedReply:
    """One reading of a reply, by the rules of the module docstring."""
    kind = question.kind
    shown = nfc(text)
    tokens = tokenize(text)
    if all(token.type is TokenType.NEWLINE for token in tokens):
        return _refused(shown, Reason.EMPTY)
    if kind is not ReplyKind.TEXT and len(shown) > MAX_ANSWER_CHARS:
        return _refused(shown, Reason.TOO_LONG)
    keyword = _keyword(tokens)
    if keyword is not None:
        return _keyword_reply(shown, keyword)
    if kind is ReplyKind.TEXT:
        return ParsedReply(shown, True, None, (), None, None, " ".join(shown.split()))
    items = _read(tokens, kind, options, yes_digit)
    outcome = _decide(items, question)
    if isinstance(outcome, Reason):
        return _refused(shown, outcome)
    values, has_comment = outcome
    return ParsedReply(shown, True, values[0], values, None, None, None, shown if has_comment else None)


def _refused(shown: str, reason: Reason) -> ParsedReply:
    return ParsedReply(shown, False, None, (), None, reason, None)


# --- keywords --------------------------------------------------------------------------------


def _keyword(tokens: Sequence[Token]) -> Keyword | None:
    """A keyword when the reply is made only of keyword phrases, or opens with an opt-out word."""
    if all(t.type is TokenType.PUNCT for t in tokens):
        return Keyword.HELP if any("?" in t.raw for t in tokens) else None
    found: list[Keyword] = []
    index = 0
    while index < len(tokens):
        if tokens[index].type in (TokenType.PUNCT, TokenType.NEWLINE, TokenType.EMOJI):
            index += 1
            continue
        match = KEYWORD_LEXICON.match(tokens, index)
        if match is None:
            found = []
            break
        meaning, length = match
        if meaning.keyword is not None:
            found.append(meaning.keyword)
        index += length
    if found:
        return next(k for k in _KEYWORD_PRIORITY if k in found)
    lead = OPT_OUT_LEAD_LEXICON.match(tokens, 0)
    if lead is not None:
        after = lead[1]
        if after < len(tokens) and tokens[after].type in (TokenType.PUNCT, TokenType.NEWLINE):
            return Keyword.OPT_OUT
    return None


# --- reading items ---------------------------------------------------------------------------

_SENSE_PARTS = {
    Sense.FILLER: Part.FILLER,
    Sense.HEDGE: Part.HEDGE,
    Sense.STARTER: Part.STARTER,
    Sense.UNIT: Part.UNIT,
    Sense.NEGATIVE: Part.NEGATIVE,
    Sense.POSITIVE: Part.POSITIVE,
    Sense.CONTENT: Part.CONTENT,
    Sense.KEYWORD: Part.CONTENT,
}


def _read(tokens: Sequence[Token], kind: ReplyKind, options: Sequence[str], yes_digit: int) -> list[Item]:
    lexicon = ANSWER_LEXICONS[kind]
    option_lexicon = _option_lexicon(options) if kind is ReplyKind.CHOICE5 and options else None
    # "***" is a rating only on its own: next to words it is more often a censored word.
    asterisks_are_stars = all(t.type is TokenType.PUNCT for t in tokens)
    items: list[Item] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        qref = _question_ref(tokens, index)
        if qref is not None:
            items.append(Item(Part.QREF, value=qref[0]))
            index += qref[1]
            continue
        if token.type is TokenType.NUMBER:
            items.append(_number_item(token, kind, yes_digit))
        elif token.type is TokenType.STAR or (asterisks_are_stars and _is_asterisk_run(tokens, index)):
            end = index
            while end < len(tokens) and (tokens[end].type is TokenType.STAR or tokens[end].raw == "*"):
                end += 1
            items.append(_stars_item("".join(t.raw for t in tokens[index:end]), kind, token.glued))
            index = end
            continue
        elif token.type is TokenType.EMOJI:
            items.append(_meaning_item(emoji_meaning(token.raw, kind)))
        elif token.type in (TokenType.PUNCT, TokenType.NEWLINE):
            mark = token.raw if token.type is TokenType.PUNCT else "\n"
            items.append(Item(Part.SEP, mark=mark, glued=token.glued))
        else:
            match = option_lexicon.match(tokens, index) if option_lexicon else None
            match = match or lexicon.match(tokens, index)
            if match is not None:
                items.append(_meaning_item(match[0]))
                index += match[1]
                continue
            items.append(Item(Part.CONTENT, unknown=token.raw.isascii()))
        index += 1
    return items


def _question_ref(tokens: Sequence[Token], index: int) -> tuple[int, int] | None:
    """ "câu 1", "cau hoi 2", "c1", "q1" -> (question number, tokens used)."""
    token = tokens[index]
    if token.type is not TokenType.WORD:
        return None
    for words in QUESTION_WORDS:
        parts = words.split()
        end = index + len(parts)
        if (
            end < len(tokens)
            and [t.plain for t in tokens[index:end]] == parts
            and tokens[end].type is TokenType.NUMBER
        ):
            return int(tokens[end].raw), len(parts) + 1
    if token.plain in QUESTION_LETTERS and index + 1 < len(tokens):
        following = tokens[index + 1]
        if following.type is TokenType.NUMBER and following.glued:
            return int(following.raw), 2
    return None


def _number_item(token: Token, kind: ReplyKind, yes_digit: int) -> Item:
    digits = token.raw
    if len(digits) > 1 and len(set(digits)) == 1:
        return Item(Part.REPEATED, glued=token.glued)  # "555": one emphatic 5, or three answers?
    value = int(digits)
    if kind is ReplyKind.YESNO:
        mapped = {yes_digit: 1, 3 - yes_digit: 2}.get(value) if yes_digit in (1, 2) else None
        if mapped is None:
            return Item(Part.OUT_OF_RANGE, digit=True, glued=token.glued)
        return Item(Part.ANSWER, value=mapped, anchored=True, numeric=True, digit=True, glued=token.glued)
    if 1 <= value <= 5:
        return Item(Part.ANSWER, value=value, anchored=True, numeric=True, digit=True, glued=token.glued)
    return Item(Part.OUT_OF_RANGE, digit=True, glued=token.glued)


def _is_asterisk_run(tokens: Sequence[Token], index: int) -> bool:
    return (
        tokens[index].raw == "*"
        and index + 1 < len(tokens)
        and tokens[index + 1].raw == "*"
        and tokens[index + 1].glued
    )


def _stars_item(run: str, kind: ReplyKind, glued: bool) -> Item:
    """ "⭐⭐⭐⭐" -> 4; "★★★☆☆" -> 3 (filled of five); only hollow stars say nothing sure."""
    if kind is not ReplyKind.SCALE5:
        return Item(Part.HEDGE)
    filled = sum(1 for ch in run if ch != _HOLLOW_STAR)
    hollow = len(run) - filled
    if len(run) == 1:
        return Item(Part.FILLER)  # one star is a bullet, a "like" or the unit of "5⭐"
    if filled == 0 or (hollow and filled + hollow != 5):
        return Item(Part.HEDGE)
    if filled > 5:
        return Item(Part.OUT_OF_RANGE)
    return Item(Part.ANSWER, value=filled, anchored=True, numeric=True, mark="*", glued=glued)


def _meaning_item(meaning: Meaning | None) -> Item:
    if meaning is None:
        return Item(Part.CONTENT)
    if meaning.sense is Sense.LABEL:
        return Item(Part.ANSWER, value=meaning.value, exact=meaning.exact)
    if meaning.sense is Sense.NUMBER:
        value = meaning.value or 0
        if not 1 <= value <= 5:
            return Item(Part.OUT_OF_RANGE)
        return Item(Part.ANSWER, value=value, anchored=True, numeric=True)
    if meaning.sense in (Sense.YES, Sense.NO):
        return Item(Part.ANSWER, value=meaning.value, anchored=True)
    return Item(_SENSE_PARTS[meaning.sense])


def _option_lexicon(options: Sequence[str]) -> Lexicon:
    """Each option's name, and each run of two or more of its words found in no other option."""
    phrases: list[tuple[int, str]] = []
    folded = [tokenize(option) for option in options[:5]]
    for number, words in enumerate(folded, start=1):
        plains = [t.plain for t in words if t.type is TokenType.WORD]
        runs = {" ".join(plains[i:j]) for i in range(len(plains)) for j in range(i + 2, len(plains) + 1)}
        runs.add(" ".join(plains))
        for run in runs:
            owners = [n for n, other in enumerate(folded, start=1) if run in " ".join(t.plain for t in other)]
            if owners == [number]:
                phrases.append((number, run))
    return Lexicon((Meaning(Sense.LABEL, n), [run]) for n, run in phrases if run)


# --- deciding --------------------------------------------------------------------------------

_Outcome = tuple[tuple[int, ...], bool] | Reason


@dataclass(frozen=True)
class _Question:
    """What the decision needs to know about the question asked."""

    kind: ReplyKind
    max_answers: int
    number: int | None
    yes_is_good: bool | None


def _decide(items: list[Item], question: _Question) -> _Outcome:
    if any(item.part is Part.QREF for item in items):
        return _labelled(items, question)
    marked = _numbers_with_marks(items)
    if isinstance(marked, Reason):
        return marked
    if question.max_answers > 1:
        listed = _listed(marked, question)
        if listed is not None:
            return listed
    return _single(marked, question, allow_comment=True)


def _numbers_with_marks(items: list[Item]) -> list[Item] | Reason:
    """Read numbers joined by marks before anything else: "3-4", "3/4", "4,5", "5/5", "5-4-5".

    Two numbers joined by a dash or slash are a range or a fraction, and by a glued comma or dot
    a decimal ("4,5" is four and a half in Vietnamese): not one answer. "5/5" (full marks) is the
    one exception. Three or more numbers joined by marks are a list ("5,4,5", "5-4-5"), except
    with slashes (a date).
    """
    result: list[Item] = []
    index = 0
    while index < len(items):
        end = index
        while end + 2 < len(items) and items[end].digit and items[end + 1].part is Part.SEP:
            if not items[end + 2].digit:
                break
            end += 2
        if end == index:
            result.append(items[index])
            index += 1
            continue
        chain = items[index : end + 1]
        marks = chain[1::2]
        if len(chain) == 3:
            left, mark, right = chain
            if mark.mark == "/" and left.part is Part.ANSWER and left.value == right.value == 5:
                chain = [left]
            elif mark.mark in _RANGE_MARKS or (mark.mark in _DECIMAL_MARKS and mark.glued and right.glued):
                return Reason.AMBIGUOUS
        elif any(mark.mark == "/" for mark in marks):
            return Reason.AMBIGUOUS
        result.extend(chain)
        index = end + 1
    return result


def _listed(items: list[Item], question: _Question) -> _Outcome | None:
    """Several numbers in one SMS ("5 4 5", "5,4,5", "nam, bon, nam"), or None if not a list."""
    groups: list[list[Item]] = [[]]
    for item in items:
        if item.part is Part.SEP:
            groups.append([])
        elif item.numeric and any(other.numeric for other in groups[-1]):
            groups.append([item])
        else:
            groups[-1].append(item)
    answered = [g for g in groups if any(i.part is not Part.FILLER for i in g)]
    if len(answered) < 2 or not all(any(i.numeric for i in g) for g in answered):
        return None
    values: list[int] = []
    for group in answered:
        outcome = _single(group, question, allow_comment=False)
        if isinstance(outcome, Reason):
            return outcome
        values.extend(outcome[0])
    if len(values) > question.max_answers:
        return Reason.TOO_MANY
    return tuple(values), False


def _labelled(items: list[Item], question: _Question) -> _Outcome:
    """ "câu 1: 4" or "c1 5 c2 4": answers that name their questions, which must be the ones asked."""
    first = next(i for i, item in enumerate(items) if item.part is Part.QREF)
    if any(item.part not in (Part.FILLER, Part.SEP) for item in items[:first]):
        return Reason.AMBIGUOUS
    numbers: list[int] = []
    segments: list[list[Item]] = []
    for item in items[first:]:
        if item.part is Part.QREF:
            numbers.append(item.value or 0)
            segments.append([])
        else:
            segments[-1].append(item)
    if question.number is None:
        return Reason.QUESTION_UNKNOWN
    if numbers[0] != question.number:
        return Reason.OTHER_QUESTION
    if numbers != list(range(question.number, question.number + len(numbers))):
        return Reason.AMBIGUOUS
    if len(numbers) > question.max_answers:
        return Reason.TOO_MANY
    values: list[int] = []
    has_comment = False
    for segment in segments:
        outcome = _single(segment, question, allow_comment=len(segments) == 1)
        if isinstance(outcome, Reason):
            return outcome
        values.extend(outcome[0])
        has_comment = has_comment or outcome[1]
    return tuple(values), has_comment


def _single(items: list[Item], question: _Question, *, allow_comment: bool) -> _Outcome:
    """One answer, possibly repeated in other words ("5 rất hài lòng") and with a comment."""
    kind = question.kind
    items = _tidy(items)
    answers = [item for item in items if item.part is Part.ANSWER]
    hedged = any(item.part is Part.HEDGE for item in items)
    if any(item.part is Part.REPEATED for item in items):
        return Reason.AMBIGUOUS
    if any(item.part is Part.OUT_OF_RANGE for item in items):
        return Reason.OUT_OF_RANGE if not answers and not hedged else Reason.AMBIGUOUS
    if not answers:
        return Reason.AMBIGUOUS if hedged else Reason.NO_ANSWER
    if hedged:
        return Reason.AMBIGUOUS
    if sum(1 for item in answers if item.numeric) > 1:
        return Reason.TOO_MANY
    value = _agreed_value(answers, kind)
    if value is None or (kind is ReplyKind.SCALE5 and _label_touches_unknown(items)):
        return Reason.AMBIGUOUS
    asked_back = any(item.part is Part.SEP and item.mark == "?" for item in items)
    if asked_back and not any(item.digit for item in answers):
        return Reason.AMBIGUOUS  # "hài lòng?", "không?": a question back, not an answer
    comment = [item for item in items if item.part in _COMMENT_PARTS]
    if not comment:
        return (value,), False
    if not allow_comment or not _answer_opens(items, kind):
        return Reason.AMBIGUOUS
    if any(item.numeric and not item.digit and item.mark != "*" for item in answers):
        return Reason.AMBIGUOUS  # number words inside sentences are too often quantities
    if _contradicts(value, items, comment, question):
        return Reason.AMBIGUOUS
    return (value,), True


_COMMENT_PARTS = frozenset({Part.CONTENT, Part.STARTER, Part.UNIT, Part.NEGATIVE, Part.POSITIVE})


def _tidy(items: list[Item]) -> list[Item]:
    """Numbers next to units: "3 ngày" is a quantity (words of a comment), "5⭐" is one 5."""
    result = list(items)
    for index in range(len(result) - 1):
        if (result[index].digit or result[index].numeric) and result[index + 1].part is Part.UNIT:
            result[index] = replace(result[index], part=Part.CONTENT)
    digits = {item.value for item in result if item.digit and item.part is Part.ANSWER}
    for index, item in enumerate(result):
        if item.mark == "*" and item.part is Part.ANSWER and item.value in digits:
            result[index] = Item(Part.FILLER)
    return result


def _label_touches_unknown(items: list[Item]) -> bool:
    """Whether a scale word has an unknown unaccented word right before or after it, with no mark
    between: such a word may turn it around or up ("hem hl": không hài lòng, "tot lem": tốt
    lắm, "khonh hai long": a slipped "không"), so the scale word alone says too little."""
    for index, item in enumerate(items):
        if item.part is Part.ANSWER and not item.anchored:
            neighbours = items[max(index - 1, 0) : index] + items[index + 1 : index + 2]
            if any(other.unknown for other in neighbours):
                return True
    return False


def _side(value: int) -> int:
    return (value > 3) - (value < 3)


def _agreed_value(answers: list[Item], kind: ReplyKind) -> int | None:
    """The value all answers agree on; inexact words must only agree on the side of the scale."""
    exact = {item.value for item in answers if item.exact and item.value is not None}
    loose = [item.value for item in answers if not item.exact and item.value is not None]
    if len(exact) > 1:
        return None
    if exact:
        value = exact.pop()
        if kind is ReplyKind.SCALE5 and any(_side(other) != _side(value) for other in loose):
            return None
        return value
    if len({_side(v) for v in loose}) != 1:
        return None
    return max(loose, key=lambda v: abs(v - 3))


def _answer_opens(items: list[Item], kind: ReplyKind) -> bool:
    """With a comment, numbers and yes/no words must open the reply and be set apart from it.

    "Set apart" means followed by punctuation or a word that opens a comment ("5, ...", "5 vì");
    a yes/no word may also run on into its sentence ("không ai đòi", "có đòi tiền"), where a
    number may not ("5 tỷ", "2 cán bộ").
    """
    if not any(item.anchored for item in items if item.part is Part.ANSWER):
        return True
    index = 0
    while index < len(items) and items[index].part in (Part.FILLER, Part.SEP):
        index += 1
    block_end = index
    while block_end < len(items) and items[block_end].part in (Part.ANSWER, Part.FILLER):
        block_end += 1
    opens = any(item.part is Part.ANSWER and item.anchored for item in items[index:block_end])
    if kind is ReplyKind.YESNO:
        return opens  # later yes/no words must agree with it, which _agreed_value checked
    if any(item.part is Part.ANSWER and item.anchored for item in items[block_end:]):
        return False
    return block_end == len(items) or items[block_end].part in (Part.SEP, Part.STARTER)


def _contradicts(value: int, items: list[Item], comment: list[Item], question: _Question) -> bool:
    """Whether the tone of a comment goes against the answer ("5, chậm quá"; "có, rất tốt").

    On yes/no, a "no" that runs on into its sentence negates it: "không ai đòi" (nobody asked
    for money) speaks well even though "đòi" is a complaint word.
    """
    negative = any(item.part is Part.NEGATIVE for item in comment)
    positive = any(item.part is Part.POSITIVE for item in comment)
    if question.kind is ReplyKind.SCALE5:
        return (negative and value >= 4) or (positive and value <= 2)
    if question.kind is ReplyKind.YESNO:
        if question.yes_is_good is None:
            return negative or positive
        if value == 2 and _runs_on(items):
            negative, positive = positive, negative
        good_answer = (value == 1) == question.yes_is_good
        return negative if good_answer else positive
    return False


def _runs_on(items: list[Item]) -> bool:
    """Whether the opening answer is followed directly by words, without punctuation."""
    index = 0
    while index < len(items) and items[index].part is not Part.ANSWER:
        index += 1
    while index < len(items) and items[index].part in (Part.ANSWER, Part.FILLER):
        index += 1
    return index < len(items) and items[index].part is not Part.SEP
