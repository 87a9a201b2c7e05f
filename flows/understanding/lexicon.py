"""What the words of a reply mean, per question kind: the vocabulary of answer understanding.

Phrases are written in correct Vietnamese; they are compared after the normalisation of
normalize.py, so "rất hài lòng", "RAT HAI LONG" and "Rất hai long" are one phrase. Spelling marks
say how strictly diacritics must match, because some unaccented syllables are other words:

- no mark (loose): any accents or none - "hài lòng" also matches "hai long", "hải lòng";
- "~" (strict): exactly these accents, or no accents at all - "~ba" matches "ba" (three) but not
  "bà" (madam), "~dừng" matches "dừng", "dung" but not "đúng" (right);
- "!" (exact): exactly these accents - "!tạm" matches "tạm" (so-so) but not "tam", which is as
  likely to be "tám" (eight).

Senses:
- LABEL: a scale answer; `exact` labels are the official five levels and their abbreviations,
  the others ("tốt", "ok", "tệ", emoji) say only which side of the scale (see parser.py);
- NUMBER: a number word ("năm", "five"); YES / NO: yes/no words;
- HEDGE: a word that makes an answer uncertain ("nhưng", "hoặc", "không" on a scale, "chắc");
- NEGATIVE / POSITIVE: words that contradict a high / low score in a comment ("chậm", "nhiệt tình");
- FILLER: politeness, pronouns and echoes of the question, ignored ("dạ", "em chọn", "điểm");
- STARTER: a word that opens a comment after an answer ("vì", "cán bộ");
- CONTENT: known words that are neither answers nor hedges on this kind of question;
- UNIT: a quantity after a number ("3 ngày"), which makes the number part of a comment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache

from flows.understanding.normalize import Token, TokenType, tokenize
from flows.understanding.reply import Keyword, ReplyKind


class Sense(Enum):
    """The role a phrase plays in a reply (see the module docstring)."""

    FILLER = "filler"
    HEDGE = "hedge"
    STARTER = "starter"
    UNIT = "unit"
    NEGATIVE = "negative"
    POSITIVE = "positive"
    LABEL = "label"
    NUMBER = "number"
    YES = "yes"
    NO = "no"
    KEYWORD = "keyword"
    CONTENT = "content"


@dataclass(frozen=True)
class Meaning:
    """A sense plus, for answers, the value it carries and whether it is exact or a side of the scale."""

    sense: Sense
    value: int | None = None
    exact: bool = True
    keyword: Keyword | None = None


FILLER = Meaning(Sense.FILLER)
HEDGE = Meaning(Sense.HEDGE)
CONTENT = Meaning(Sense.CONTENT)
STARTER = Meaning(Sense.STARTER)
UNIT = Meaning(Sense.UNIT)
NEGATIVE = Meaning(Sense.NEGATIVE)
POSITIVE = Meaning(Sense.POSITIVE)
YES = Meaning(Sense.YES, 1)
NO = Meaning(Sense.NO, 2)


def label(value: int, *, exact: bool = True) -> Meaning:
    """A scale answer; inexact labels only say satisfied / neutral / not satisfied."""
    return Meaning(Sense.LABEL, value, exact)


def number(value: int) -> Meaning:
    """A number word; values outside 1-5 are kept so the reply is reported out of range."""
    return Meaning(Sense.NUMBER, value)


# --- building blocks -------------------------------------------------------------------------

# Ways to write "not" before "hài lòng"/"tốt": full, teencode (ko, k, kh, hok, khum, hông...),
# "chưa" (not yet) and "chẳng"/"chả", which all mean not satisfied in a reply.
NEGATORS = (
    "không", "ko", "k", "kh", "khg", "kg", "hok", "hông", "khum", "hk", "kô", "khôg",
    "chưa", "chẳng", "chả", "not", "hem",
)  # fmt: skip
SATISFIED = ("hài lòng", "hailong", "hl", "hlong", "hài lg", "hài lòg")
INTENSE_BEFORE = (
    "rất", "rất là", "rất rất", "hoàn toàn", "cực kỳ", "cực kì", "vô cùng", "quá", "siêu", "very",
)  # fmt: skip
INTENSE_AFTER = ("lắm", "quá", "lắm luôn", "vô cùng", "cực", "cực kỳ", "tuyệt đối", "lem", "wa")
# After a negated label these soften it ("không hài lòng lắm" = not very satisfied: 2 or 3?).
SOFTENERS = ("lắm", "mấy", "lắm đâu", "hoàn toàn", "hẳn")
# After a negated label these make it total ("không hài lòng chút nào" = not at all: 1).
TOTALS = ("chút nào", "tí nào", "gì cả", "chút nào cả", "một chút nào", "at all")
GOOD = ("tốt", "ok", "oke", "okie", "oki", "okay", "okela", "ổn", "good")


def _cross(*parts: Iterable[str]) -> list[str]:
    phrases = [""]
    for part in parts:
        phrases = [f"{head} {tail}".strip() for head in phrases for tail in part]
    return phrases


# --- scale answers ---------------------------------------------------------------------------

SCALE_LABELS: dict[Meaning, list[str]] = {
    label(5): [
        "rhl", "rathailong", "rất hl", "very satisfied", "extremely satisfied",
        *_cross(INTENSE_BEFORE, SATISFIED), *_cross(SATISFIED, INTENSE_AFTER),
        *_cross(("rất", "rất là"), SATISFIED, ("lắm", "luôn", "quá")),
    ],
    label(4): [
        "satisfied", *SATISFIED, *_cross(("khá", "khá là", "cũng", "tương đối", "cũng khá"), SATISFIED),
    ],
    label(3): [
        "bình thường", "binhthuong", "bt", "bthuong", "bình thg", "bthg", "btg", "neutral",
        "bình thường thôi", "bth",
    ],
    label(2): [
        "khl", "khonghailong", "kohl", "khônghàilòng", "dissatisfied", "unsatisfied", "not satisfied",
        *_cross(NEGATORS, SATISFIED),
        *_cross(NEGATORS, ("được", "thấy", "cảm thấy"), SATISFIED),
    ],
    label(1): [
        "rkhl", "very dissatisfied", "very unsatisfied", "extremely dissatisfied",
        *_cross(INTENSE_BEFORE, NEGATORS, SATISFIED),
        *_cross(NEGATORS, SATISFIED, TOTALS),
    ],
    HEDGE: [
        *_cross(NEGATORS, SATISFIED, SOFTENERS),
        *_cross(NEGATORS, ("được", "thấy", "cảm thấy"), SATISFIED, SOFTENERS),
        *_cross(NEGATORS, GOOD, SOFTENERS),
    ],
    # Informal words say only the side of the scale; the value is used when nothing exact is given.
    label(5, exact=False): [
        "rất tốt", "tốt lắm", "quá tốt", "tốt quá", "rất là tốt", "cực tốt", "rất ok", "rất ổn",
        "tốt lem", "tốt wa", "wa tốt",
        "tuyệt vời", "tuyệt", "xuất sắc", "hoàn hảo", "quá tuyệt", "very good", "great", "excellent",
    ],
    label(4, exact=False): [
        "tốt", "khá tốt", "cũng tốt", "tốt rồi", "ok", "oke", "okie", "oki", "okay", "okela", "okla",
        "~ổn", "ổn áp", "khá ổn", "good", "fine",
    ],
    label(3, exact=False): [
        "tạm được", "tam dc", "tạm đc", "tàm tạm", "!tạm", "tạm ổn", "cũng được", "cũng đc", "trung bình",
        "tb", "vừa phải", "so so", "average", "cx được", "cx dc", "cx đc",
    ],
    label(2, exact=False): [
        "~tệ", "~kém", "!dở", "!chán", "!tồi", "bad", "poor", "not good",
        *_cross(NEGATORS, GOOD),
    ],
    label(1, exact=False): [
        "rất tệ", "quá tệ", "tệ quá", "tệ lắm", "tệ hại", "~tồi tệ", "rất kém", "quá kém", "kém quá",
        "kém lắm", "dở tệ", "~rất tồi", "very bad", "terrible", "awful",
    ],
}  # fmt: skip

NUMBER_WORDS: dict[Meaning, list[str]] = {
    number(1): ["~một", "one"],
    number(2): ["~hai", "two"],
    number(3): ["~ba", "three"],
    number(4): ["~bốn", "four"],
    number(5): ["~năm", "five"],
    number(6): ["!sáu", "six"],
    number(7): ["!bảy", "!bẩy", "seven"],
    number(8): ["!tám", "eight"],
    number(9): ["~chín", "nine"],
    number(10): ["!mười", "ten"],
}

# --- yes / no --------------------------------------------------------------------------------

YESNO_WORDS: dict[Meaning, list[str]] = {
    YES: [
        "~có", "c", "yes", "~y", "yeah", "yep", "~vâng", "~ừ", "uh", "uk", "ukm", "um", "!ừm", "!đúng",
        "đúng rồi", "đúng vậy", "~phải", "có bị", "có đấy", "có chứ", "có rồi", "dạ có", "dạ vâng",
    ],
    NO: [
        "~không", "ko", "k", "kh", "khg", "kg", "hok", "~hông", "khum", "hk", "kô", "khôg", "no", "n",
        "nope", "never", "~chưa", "chưa bao giờ", "không bao giờ", "không có", "ko co", "k co", "kco",
        "không bị", "ko bị", "k bị", "không hề", "không có gì", "kcj", "kcg", "~chẳng", "!chả",
        "không phải", "không đâu", "chưa từng", "chưa có", "không ạ", "dạ không", "làm gì có",
        *_cross(NEGATORS, ("có", "bị", "hề", "bị gì", "có gì", "bị gì cả", "có gì cả", "có ai")),
    ],
}  # fmt: skip

# --- words around answers ----------------------------------------------------------------------

UNCERTAIN = [
    "~nhưng", "nhung ma", "tuy", "tuy nhiên", "~mà", "!còn", "hoặc", "hoặc là", "~hay", "hay là", "or",
    "~chắc", "chắc là", "có lẽ", "có thể", "hình như", "khoảng", "!tầm", "~hơi", "~biết", "biet",
    "bít", "~rõ", "~nhớ", "phân vân", "~trừ", "ngoại trừ", "riêng", "~nếu", "không chắc", "tùy",
    "tuỳ", "~đến", "!tới", "!đâu", "có ai", "ai mà", "!lắm", "!mấy",
    # questions and rhetorical questions: "hài lòng sao được" means not satisfied at all
    "sao được", "sao mà", "làm sao", "thế nào được", "~gì", "gì mà", "!hả", "!hở", "!ư", "~chứ", "!à",
    "maybe", "but", "except", "idk", "dont", "between",
]  # fmt: skip
NEGATION_WORDS = [*NEGATORS, "~không", "no", "ko có"]
JOINED = ["~và", "!cả", "~lẫn", "and"]
FILLERS = [
    # politeness and particles
    "~ạ", "~dạ", "~vâng", "!ừ", "nhé", "nhe", "nha", "nhá", "nhen", "nghen", "hen", "~nè",
    "!đi", "luôn", "lun", "~thôi", "~rồi", "~nhé ạ", "~thì", "~là", "~nhiều", "~nữa", "~vậy", "~đó", "!ấy",
    "~ạh", "~á", "~ha", "!nhỉ", "~ơi", "~rùi", "oh", "ah", "nka", "ak", "~với", "thui",
    # pronouns
    "em", "e", "anh", "~chị", "~tôi", "toi", "tui", "~mình", "mik", "mk", "con", "~cháu", "!cô",
    "~chú", "~bác", "!bà", "!ông", "~bạn", "ad", "admin", "i", "me", "my", "it", "is", "was", "we",
    # echoes of the question and of the scale
    "~chọn", "~cho", "~xin", "xin cho", "đánh giá", "dg", "đg", "trả lời", "tl", "~thấy", "cảm thấy",
    "~số", "~mức", "mức độ", "~điểm", "d", "đ", "~sao", "đáp án", "ý kiến", "câu trả lời",
    "mức độ hài lòng", "mức hài lòng", "về mức độ hài lòng", "nói chung", "nói chung là",
    "nhìn chung", "nhìn chung là", "tổng thể", "cho điểm", "~chấm", "~chấm điểm", "của em", "của tôi",
    "của mình", "xin trả lời", "em xin", "thang điểm", "give", "answer", "score", "points", "point",
    "stars", "star", "rate", "rating", "please", "pls", "the", "a",
    # thanks and greetings
    "cảm ơn", "cám ơn", "camon", "cmon", "cảm ơn nhiều", "xin cảm ơn", "thanks", "thank", "thank you",
    "tks", "thks", "thanh kiu", "trân trọng", "chào", "xin chào", "alo", "hi", "hello", "kính gửi",
]  # fmt: skip
STARTERS = [
    "~vì", "tại vì", "bởi vì", "~do", "tại", "cán bộ", "nhân viên", "công chức", "anh ấy", "chị ấy",
    "mọi thứ", "mọi người", "thủ tục", "thái độ", "phục vụ", "giải quyết", "because",
]  # fmt: skip
UNITS = [
    "~ngày", "~lần", "~người", "~tháng", "~tuần", "~giờ", "~tiếng", "~phút", "~buổi", "~triệu", "tr",
    "~nghìn", "~ngàn", "~đồng", "~tuổi", "~hồ sơ", "~cái", "~bộ", "~lượt", "days", "times",
]  # fmt: skip
NEGATIVE_WORDS = [
    "~chậm", "~lâu", "~trễ", "!muộn", "~phiền", "~khó", "~mệt", "~bực", "nhũng nhiễu", "hạch sách",
    "khó dễ", "quan liêu", "~hách", "!cáu", "~quát", "tiêu cực", "bồi dưỡng", "lòng vòng", "!vòi",
    "~đòi", "~sai", "~thiếu", "~tệ", "~kém", "~chán", "slow", "rude",
]  # fmt: skip
POSITIVE_WORDS = [
    "~nhanh", "nhiệt tình", "chu đáo", "tận tình", "vui vẻ", "lịch sự", "nhanh chóng", "đúng hẹn",
    "thân thiện", "dễ thương", "chuyên nghiệp", "tận tâm", "~tốt", "đúng quy định", "đúng quy trình",
    "đúng luật", "đúng mực", "fast", "kind",
]  # fmt: skip

# --- keywords (any point of a survey) --------------------------------------------------------

KEYWORDS: dict[Keyword, list[str]] = {
    Keyword.OPT_OUT: [
        "tc", "từ chối", "tuchoi", "tôi từ chối", "huỷ", "hủy", "stop", "~dừng", "~đừng", "dừng lại",
        "dừng gửi", "đừng gửi", "dừng nhắn", "đừng nhắn", "dừng nhắn tin", "đừng nhắn tin", "đừng gửi tin",
        "đừng gửi tin nhắn", "dừng gửi tin nhắn", "không muốn nhận tin", "không muốn nhận tin nhắn",
        "không nhận tin", "ko nhan tin", "huỷ đăng ký", "hủy đăng ký", "không tham gia",
        "không muốn tham gia", "ko tham gia", "k tham gia", "dừng khảo sát", "unsubscribe", "opt out",
    ],
    Keyword.HELP: [
        "hd", "hướng dẫn", "help", "trợ giúp", "giúp", "giúp đỡ", "không hiểu", "ko hieu", "k hieu",
        "chưa hiểu", "là sao", "nghĩa là sao", "là gì", "gì vậy", "cái gì", "gì", "ai vậy", "ai đấy",
        "ai đây", "ai thế", "hỏi gì", "gửi lại", "hdan", "j z", "j vậy", "là j", "ko hỉu", "k hỉu",
        "hk hiểu", "ko hiu", "k hiu", "hk hiu", "ntn",
    ],
    Keyword.RESTART: [
        "~lại", "làm lại", "bắt đầu", "bắt đầu lại", "làm lại từ đầu", "lại từ đầu", "từ đầu", "restart",
        "reset", "start again",
    ],
    Keyword.OPT_IN: [
        "dk", "đk", "đăng ký", "đăng kí", "dangky", "đăng ký lại", "đăng kí lại", "dk lại", "đk lại",
        "đăng ký nhận tin", "nhận lại tin", "nhận tin lại", "nhận lại tin nhắn", "cho nhận lại tin",
        "start", "subscribe", "unstop", "opt in", "resume",
    ],
}  # fmt: skip
# Opt-out words that also stop the survey when a longer message starts with them ("TC, dung nhan").
OPT_OUT_LEADS = ["tc", "stop", "từ chối", "tuchoi", "~dừng", "dừng lại", "huỷ", "hủy"]
KEYWORD_FILLERS = [
    "~ạ", "~dạ", "~vâng", "nhé", "nhe", "nha", "nhá", "em", "anh", "~chị", "~tôi", "tui", "~mình",
    "con", "~cháu", "~xin", "!đi", "di", "giùm", "~nữa", "luôn", "ngay", "cảm ơn", "cám ơn",
    "please", "pls", "ok", "!ơi", "~ạh", "~cho", "~thôi", "~vậy", "admin", "ad", "nka", "ak",
]  # fmt: skip
# Words that introduce a question number: "câu 1: 4", "cau hoi 2 - 5", "c1 4", "q1=4".
QUESTION_WORDS = ("cau", "cau hoi", "cau so", "question")
QUESTION_LETTERS = ("c", "q")

# --- emoji -----------------------------------------------------------------------------------

# An emoji says satisfied or not, not how much: it counts as the milder level of its side
# (4 or 2), which leaves the satisfied share and the share of 1-2 ratings unchanged.
POSITIVE_EMOJI = frozenset("👍👌😊🙂😀😃😄😁☺😆😍🥰😘🤗❤♥💕💖💗💓💞💯👏🙌🌹💐🎉✌🆗😇🤩")
NEUTRAL_EMOJI = frozenset("😐😑😶")
NEGATIVE_EMOJI = frozenset("👎😡😠🤬😞😢😭😤😒😔☹🙁😩😫😖😣😟💢🖕💩😕")
UNSURE_EMOJI = frozenset("🤔😅😂🤣🙃😏🤷😬")
IGNORED_EMOJI = frozenset("🙏")


def emoji_meaning(symbol: str, kind: ReplyKind) -> Meaning | None:
    """What one emoji says for a question of `kind`; None for an emoji that says nothing known."""
    if symbol in IGNORED_EMOJI:
        return FILLER
    if symbol in UNSURE_EMOJI:
        return HEDGE
    side = None
    if symbol in POSITIVE_EMOJI:
        side = label(4, exact=False)
    elif symbol in NEUTRAL_EMOJI:
        side = label(3, exact=False)
    elif symbol in NEGATIVE_EMOJI:
        side = label(2, exact=False)
    if side is None:
        return None
    # On a yes/no or choice question a thumbs-up could mean "yes", "no problem" or "option 1".
    return side if kind is ReplyKind.SCALE5 else HEDGE


# --- matching --------------------------------------------------------------------------------


class _Mode(Enum):
    LOOSE = "loose"
    STRICT = "strict"
    EXACT = "exact"


@dataclass(frozen=True)
class _Phrase:
    raws: tuple[str, ...]
    plains: tuple[str, ...]
    mode: _Mode
    meaning: Meaning

    def matches(self, tokens: Sequence[Token], start: int) -> bool:
        end = start + len(self.plains)
        if end > len(tokens):
            return False
        for offset, token in enumerate(tokens[start:end]):
            if token.type is not TokenType.WORD or token.plain != self.plains[offset]:
                return False
            if self.mode is _Mode.EXACT and token.raw != self.raws[offset]:
                return False
            if self.mode is _Mode.STRICT and token.raw not in (self.raws[offset], token.plain):
                return False
        return True


@cache
def _words(spelling: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Raw and plain forms of a phrase's words; cached, as the tables repeat words a lot."""
    words = [_word(word) for word in spelling.split()]
    return tuple(raw for raws, _ in words for raw in raws), tuple(p for _, plains in words for p in plains)


@cache
def _word(word: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    tokens = tokenize(word)
    return tuple(t.raw for t in tokens), tuple(t.plain for t in tokens)


def _phrase(spelling: str, meaning: Meaning) -> _Phrase:
    mode = {"~": _Mode.STRICT, "!": _Mode.EXACT}.get(spelling[:1], _Mode.LOOSE)
    raws, plains = _words(spelling.lstrip("~!"))
    return _Phrase(raws, plains, mode, meaning)


class Lexicon:
    """Finds the longest known phrase starting at a token; earlier tables win on equal phrases."""

    def __init__(self, tables: Iterable[tuple[Meaning, Iterable[str]]]) -> None:
        self._by_first: dict[str, list[_Phrase]] = {}
        seen: set[tuple[tuple[str, ...], _Mode, tuple[str, ...]]] = set()
        for meaning, spellings in tables:
            for spelling in spellings:
                phrase = _phrase(spelling, meaning)
                key = (phrase.plains, phrase.mode, phrase.raws)
                if not phrase.plains or key in seen:
                    continue
                seen.add(key)
                self._by_first.setdefault(phrase.plains[0], []).append(phrase)
        for candidates in self._by_first.values():
            candidates.sort(key=lambda p: -len(p.plains))

    def match(self, tokens: Sequence[Token], start: int) -> tuple[Meaning, int] | None:
        """The meaning and length in tokens of the longest phrase at `start`, if any."""
        token = tokens[start]
        if token.type is not TokenType.WORD:
            return None
        for phrase in self._by_first.get(token.plain, ()):
            if phrase.matches(tokens, start):
                return phrase.meaning, len(phrase.plains)
        return None


def _tables(mapping: dict[Meaning, list[str]]) -> list[tuple[Meaning, list[str]]]:
    return list(mapping.items())


def _tone(meaning: Meaning) -> Meaning:
    if meaning.sense is not Sense.LABEL or meaning.value is None or meaning.value == 3:
        return CONTENT
    return POSITIVE if meaning.value > 3 else NEGATIVE


def _lexicon_for(kind: ReplyKind) -> Lexicon:
    # Scale words are comments on other questions, but they must still be read as whole phrases
    # (the "không" of "không hài lòng" is not a "no") and keep their tone for yes/no comments.
    scale_as_words = [(_tone(meaning), spellings) for meaning, spellings in SCALE_LABELS.items()]
    numbers = _tables(NUMBER_WORDS)
    common = [
        (HEDGE, UNCERTAIN),
        (UNIT, UNITS),
        (STARTER, STARTERS),
        (NEGATIVE, NEGATIVE_WORDS),
        (POSITIVE, POSITIVE_WORDS),
        (FILLER, FILLERS),
    ]
    if kind is ReplyKind.SCALE5:
        tables = [*_tables(SCALE_LABELS), *numbers, (HEDGE, NEGATION_WORDS), *common]
    elif kind is ReplyKind.CHOICE5:
        # "cán bộ và thủ tục", "thủ tục lẫn kết quả": more than one thing picked.
        tables = [*scale_as_words, *numbers, (HEDGE, [*NEGATION_WORDS, *JOINED]), *common]
    else:
        # On yes/no the negations are answers, and scale words or number words are not.
        number_words = [spelling for _, spellings in numbers for spelling in spellings]
        tables = [*_tables(YESNO_WORDS), *scale_as_words, (HEDGE, number_words), *common]
    return Lexicon(tables)


ANSWER_LEXICONS = {
    kind: _lexicon_for(kind) for kind in (ReplyKind.SCALE5, ReplyKind.CHOICE5, ReplyKind.YESNO)
}
KEYWORD_LEXICON = Lexicon(
    [(Meaning(Sense.KEYWORD, keyword=kw), spellings) for kw, spellings in KEYWORDS.items()]
    + [(FILLER, KEYWORD_FILLERS)]
)
OPT_OUT_LEAD_LEXICON = Lexicon([(Meaning(Sense.KEYWORD, keyword=Keyword.OPT_OUT), OPT_OUT_LEADS)])


def _plain_words(tables: Iterable[Iterable[str]]) -> frozenset[str]:
    return frozenset(plain for spellings in tables for s in spellings for plain in _words(s.lstrip("~!"))[1])


_NUMBER_PLAINS = _plain_words(NUMBER_WORDS.values())
# The words a slipped key may be corrected to (flows.understanding.typing): words of answers,
# never number words (a slip must not make a number) nor keywords (nor invent an opt-out).
ANSWER_WORDS = _plain_words([*SCALE_LABELS.values(), *YESNO_WORDS.values()]) - _NUMBER_PLAINS
# Words run together ("tamduoc", "namsao") are cut into these: spaces were only forgotten.
RUN_TOGETHER_WORDS = ANSWER_WORDS | _NUMBER_PLAINS
# Every word the lexicon knows: such a word is never "corrected".
KNOWN_WORDS = _plain_words(
    [
        *SCALE_LABELS.values(), *NUMBER_WORDS.values(), *YESNO_WORDS.values(), *KEYWORDS.values(),
        UNCERTAIN, FILLERS, STARTERS, UNITS, NEGATIVE_WORDS, POSITIVE_WORDS, KEYWORD_FILLERS,
    ]
)  # fmt: skip
