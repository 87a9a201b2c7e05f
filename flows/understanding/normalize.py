"""Turn a raw reply into comparable tokens, whatever phone or keyboard produced it.

Citizens reply from cheap phones (no diacritics, full-width digits from some IMEs, T9 punctuation)
and from Zalo (diacritics, emoji, NFD text from some keyboards). Every later rule compares tokens,
so all of that variation is removed here once:

- NFKC turns full-width and circled digits ("５", "⑤") and full-width letters into plain ones;
- case is folded; invisible characters (variation selectors, joiners, skin tones, keycaps) go;
- each word keeps two spellings: `raw` (lower case, with diacritics, NFC) and `plain` (no
  diacritics, "đ" -> "d"). Most rules compare `plain`; a few short syllables whose plain form is
  another common word ("ba" three vs "bà" madam) compare `raw` (see lexicon.py);
- letters typed several times for emphasis ("okkk", "tốttt") are collapsed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import Enum

# Characters that change nothing a person meant: variation selectors, zero-width joiners and
# spaces, BOM, emoji skin-tone modifiers, the keycap mark of "5️⃣".
_INVISIBLE = re.compile("[\ufe0e\ufe0f\u200b\u200c\u200d\u2060\ufeff\u20e3\U0001f3fb-\U0001f3ff]")
_REPEATS = re.compile(r"(\w)\1+")
# Text emoticons typed on phones without an emoji keyboard, read as the emoji they stand for.
_EMOTICONS = (
    (re.compile(r"<3+"), "❤"),
    (re.compile(r"[:;=]-?(?:\)+|d\b|>)|\^_?\^"), "🙂"),
    (re.compile(r"[:;=]'?-?\(+|>_?<"), "🙁"),
)
_LEADING_MARKS = re.compile(r"^[\u0300-\u036f\u1dc0-\u1dff\u20d0-\u20ff]+")
STARS = frozenset("⭐★☆✩✪✫✬✭✮✯✰🌟")


class TokenType(Enum):
    """What a token is made of; only WORD tokens go through the lexicon."""

    WORD = "word"
    NUMBER = "number"
    STAR = "star"
    EMOJI = "emoji"
    PUNCT = "punct"
    NEWLINE = "newline"


@dataclass(frozen=True)
class Token:
    """One unit of a reply; `glued` is True when no space separates it from the previous token."""

    type: TokenType
    raw: str
    plain: str
    glued: bool


def nfc(text: str) -> str:
    """The reply as stored and shown: NFC, without surrounding whitespace or byte-order marks."""
    return unicodedata.normalize("NFC", text).strip().strip("\ufeff\u200b\u2060").strip()


def strip_diacritics(text: str) -> str:
    """Vietnamese without diacritics, the way most SMS are typed: "Rất hài lòng" -> "Rat hai long"."""
    decomposed = unicodedata.normalize("NFD", text)
    bare = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return unicodedata.normalize("NFC", bare.replace("đ", "d").replace("Đ", "D"))


def fold(text: str) -> str:
    """Case-, width- and diacritic-insensitive form used to compare words."""
    return strip_diacritics(_prepare(text))


def _prepare(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return unicodedata.normalize("NFC", _INVISIBLE.sub("", folded))


def _collapse(word: str) -> str:
    """Collapse letters repeated for emphasis, but never down to one letter ("kk" stays).

    Vietnamese words have no doubled letters except "oo" (xoong), which is kept when doubled.
    """

    def one(match: re.Match[str]) -> str:
        run = match.group(0)
        return run if run == "oo" else run[0]

    collapsed = _REPEATS.sub(one, word)
    return collapsed if len(collapsed) > 1 else word


def _char_class(ch: str) -> TokenType | None:
    category = unicodedata.category(ch)
    if ch in "\n\r":
        return TokenType.NEWLINE
    if ch.isspace() or category in ("Cc", "Cf", "Zl", "Zp"):
        return None
    if ch.isdecimal():
        return TokenType.NUMBER
    if category[0] in "LM":
        return TokenType.WORD
    if ch in STARS:
        return TokenType.STAR
    if category == "So":
        return TokenType.EMOJI
    return TokenType.PUNCT


def _emoticon_at(text: str, index: int) -> tuple[str, int] | None:
    for pattern, symbol in _EMOTICONS:
        match = pattern.match(text, index)
        if match is not None:
            return symbol, match.end()
    return None


def tokenize(text: str) -> list[Token]:
    """Split a reply into words, digit runs, stars, emoji and single punctuation marks."""
    prepared = _prepare(text)
    tokens: list[Token] = []
    glued = False
    index = 0
    while index < len(prepared):
        emoticon = _emoticon_at(prepared, index)
        if emoticon is not None:
            symbol, end = emoticon
            tokens.append(Token(TokenType.EMOJI, symbol, symbol, glued))
            glued, index = True, end
            continue
        kind = _char_class(prepared[index])
        if kind is None:
            glued = False
            index += 1
            continue
        end = index + 1
        if kind in (TokenType.WORD, TokenType.NUMBER):
            while end < len(prepared) and _char_class(prepared[end]) is kind:
                end += 1
        chunk = prepared[index:end]
        if kind is TokenType.WORD:
            chunk = _LEADING_MARKS.sub("", chunk)  # an accent typed with no letter before it
            if chunk:
                raw = _collapse(unicodedata.normalize("NFC", chunk))
                tokens.append(Token(kind, raw, strip_diacritics(raw), glued))
        elif kind is TokenType.NUMBER:
            digits = "".join(str(unicodedata.decimal(ch)) for ch in chunk)
            tokens.append(Token(kind, digits, digits, glued))
        else:
            tokens.append(Token(kind, chunk, chunk, glued))
        glued = kind is not TokenType.NEWLINE
        index = end
    return tokens
