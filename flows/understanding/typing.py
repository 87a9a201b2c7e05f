"""Typing variants: the other ways an unaccented reply may have been meant.

A reply without diacritics is not always "Vietnamese typed without accents". People on a
computer or a phone without a Vietnamese keyboard type the marks as letters (Telex: `raats hafi
lofng` = "rất hài lòng") or as digits (VNI: `ha2i lo2ng` = "hài lòng"), and phone keyboards add
slips: a neighbouring key (`hai lonf`, `khomg`), words run together (`tamduoc`). This module
turns one reply into the texts it may stand for; flows.understanding.parser reads each of them
and keeps an answer only when every reading that understands something agrees ("never guess").

- Telex: `aa` `ee` `oo` -> â ê ô, `w` -> ă ơ ư (`uow` -> ươ, a lone `w` -> ư), `dd` -> đ; the tone
  keys `s f r x j` (sắc, huyền, hỏi, ngã, nặng; `z` removes it) anywhere after the first vowel.
- VNI: digits after the letters: 1-5 the tones (sắc, huyền, hỏi, ngã, nặng), 0 removes it,
  6 â ê ô, 7 ơ ư, 8 ă, 9 đ (`d9`). A digit read as a VNI mark is never a value: the parser drops
  the literal reading of a reply whose digits make a Vietnamese syllable.
- A decoded word counts only when it is a well-formed Vietnamese syllable (known onset and
  rhyme, and a stop final `c ch p t` only with sắc or nặng): `yes`, `thanks` or `pls` stay as
  typed.
- Slips (tried only when no reading is understood): one letter replaced by a neighbouring key on
  a QWERTY keyboard or by a letter of the same key on a T9 keypad, and words run together, each
  only towards the words of answers (never numbers or keywords).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import product

from flows.understanding.normalize import strip_diacritics

__all__ = ["Readings", "decode_telex", "decode_vni", "has_diacritics", "readings", "slip_readings"]

# Tones as combining marks, by Telex key and by VNI digit.
_ACUTE, _GRAVE, _HOOK, _TILDE, _DOT = "\u0301", "\u0300", "\u0309", "\u0303", "\u0323"
_TELEX_TONES = {"s": _ACUTE, "f": _GRAVE, "r": _HOOK, "x": _TILDE, "j": _DOT, "z": ""}
_VNI_TONES = {"1": _ACUTE, "2": _GRAVE, "3": _HOOK, "4": _TILDE, "5": _DOT, "0": ""}
_VOWELS = frozenset("aăâeêioôơuưy")
_CIRCUMFLEX = {"a": "â", "e": "ê", "o": "ô"}
_HORN = {"o": "ơ", "u": "ư"}
_BREVE = {"a": "ă"}
_STOP_FINALS = ("ch", "c", "p", "t")

# Written as text to stay readable: the onsets (initial consonants) and rhymes of Vietnamese.
_ONSET_TEXT = "b c ch d đ g gh gi h k kh l m n ng ngh nh p ph qu r s t th tr v x"
_RHYME_TEXT = """
    a ac ach ai am an ang anh ao ap at au ay ăc ăm ăn ăng ăp ăt âc âm ân âng âp ât âu ây
    e ec em en eng eo ep et ê êch êm ên ênh êp êt êu
    i ia ich im in inh ip it iu iêc iêm iên iêng iêp iêt iêu
    o oc oi om on ong op ot oa oac oach oai oam oan oang oanh oao oap oat oay
    oăc oăm oăn oăng oăt oe oen oeo oet ooc oong ô ôc ôi ôm ôn ông ôp ôt ơ ơi ơm ơn ơp ơt
    u uc ui um un ung up ut ua uân uâng uât uây uê uêch uênh uy uych uyên uyêt uynh uyt uyu uya
    uôc uôi uôm uôn uông uôp uôt uơ
    ư ưc ưi ưm ưn ưng ưt ưu ưa ươc ươi ươm ươn ương ươp ươt ươu
    y yêm yên yêng yêt yêu ych ynh yt
"""
_ONSETS = sorted(_ONSET_TEXT.split(), key=len, reverse=True)
_RHYMES = frozenset(_RHYME_TEXT.split())
# Open rhymes whose tone sits on the second vowel (hoà, khoẻ, thuý).
_TONE_ON_SECOND = frozenset({"oa", "oe", "uy"})

# An ASCII word (VNI digits inside), not touching any other letter or digit.
_WORD = re.compile(r"(?<![^\W_])[A-Za-z][A-Za-z0-9]*(?![^\W_])")
_EMPHASIS = re.compile(r"([a-z])\1\1+")
# "cau1", "c2", "q3": a question number typed without its space, not VNI ("cáu", "cấu").
_QUESTION_NUMBER = re.compile(r"(?:cau|cauhoi|c|q)[0-9]+")

# Keys next to each other on a QWERTY keyboard, and the letters of one key on a T9 keypad.
_QWERTY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_T9_KEYS = ("abc", "def", "ghi", "jkl", "mno", "pqrs", "tuv", "wxyz")
_MAX_READINGS = 16
# Words decoded or corrected are remembered, within bounds: a worker runs for weeks.
_CACHED_WORDS = 8192


def _qwerty_neighbours() -> dict[str, frozenset[str]]:
    """Keys touching each key: the same row left and right; rows are staggered to the right, so
    the row above touches columns c and c+1, the row below c-1 and c ("f": d g r t c v)."""
    found: dict[str, frozenset[str]] = {}
    for row, keys in enumerate(_QWERTY_ROWS):
        for col, ch in enumerate(keys):
            near = {keys[c] for c in (col - 1, col + 1) if 0 <= c < len(keys)}
            if row > 0:
                above = _QWERTY_ROWS[row - 1]
                near |= {above[c] for c in (col, col + 1) if c < len(above)}
            if row < len(_QWERTY_ROWS) - 1:
                below = _QWERTY_ROWS[row + 1]
                near |= {below[c] for c in (col - 1, col) if 0 <= c < len(below)}
            found[ch] = frozenset(near)
    return found


_SLIPS: dict[str, frozenset[str]] = {
    ch: near | frozenset(next(k for k in _T9_KEYS if ch in k)) - {ch}
    for ch, near in _qwerty_neighbours().items()
}


def has_diacritics(text: str) -> bool:
    """Whether `text` has any non-ASCII letter or combining mark (then it is read as typed)."""
    return any(
        not ch.isascii() and unicodedata.category(ch)[0] in "LM" for ch in unicodedata.normalize("NFD", text)
    )


@dataclass(frozen=True)
class Readings:
    """The decoded texts of one reply: `telex` and `vni` are None when that keyboard changes
    nothing; `vni` set means some digits are tone or letter marks, so they are no values.
    `telex_words` are the words as typed that the Telex reading changed."""

    telex: str | None
    vni: str | None
    telex_words: tuple[str, ...] = ()


def readings(text: str) -> Readings:
    """The Telex and VNI readings of an unaccented reply (none for a reply with diacritics)."""
    if has_diacritics(text) or _WORD.search(text) is None:
        return Readings(None, None)
    telex, changed = _rewrite(text, decode_telex)
    vni, _ = _rewrite(text, decode_vni)
    return Readings(telex, vni, changed)


def _rewrite(text: str, decode: Callable[[str], str | None]) -> tuple[str | None, tuple[str, ...]]:
    changed: list[str] = []

    def one(match: re.Match[str]) -> str:
        decoded = decode(match.group(0))
        if decoded is None:
            return match.group(0)
        changed.append(match.group(0).lower())
        return decoded

    rewritten = _WORD.sub(one, text)
    return (rewritten if changed else None), tuple(changed)


@lru_cache(maxsize=_CACHED_WORDS)
def decode_telex(word: str) -> str | None:
    """The syllable a Telex-typed `word` stands for ("raats" -> "rất"), or None when the word uses
    no Telex key or does not decode to a well-formed syllable."""
    word = _EMPHASIS.sub(r"\1", word.lower())
    if not word.isalpha() or not any(ch in "aeiouyw" for ch in word):
        return None
    letters: list[str] = []
    tone: str | None = None
    used = False
    for ch in word:
        if letters and any(x in _VOWELS for x in letters) and ch in _TELEX_TONES:
            tone, used = _TELEX_TONES[ch], True
        elif ch == "w":
            if not _mark(letters, _HORN | _BREVE, horn=True) and not _lone_w(letters):
                return None
            used = True
        elif ch in _CIRCUMFLEX and letters and letters[-1] == ch:
            letters[-1], used = _CIRCUMFLEX[ch], True
        elif ch == "d" and letters == ["d"]:
            letters[0], used = "đ", True
        else:
            letters.append(ch)
    return _syllable("".join(letters), tone) if used else None


def _lone_w(letters: list[str]) -> bool:
    """A `w` with no vowel before it is "ư" ("tw" -> "tư", "nhw" -> "như")."""
    if any(x in _VOWELS for x in letters):
        return False
    letters.append("ư")
    return True


@lru_cache(maxsize=_CACHED_WORDS)
def decode_vni(word: str) -> str | None:
    """The syllable a VNI-typed `word` stands for ("ha2i" -> "hài", "d9u7o7ng2" -> "đường"), or
    None when it has no digit or does not decode to a well-formed syllable."""
    word = word.lower()
    if not any(ch.isdigit() for ch in word) or not word[0].isalpha() or _QUESTION_NUMBER.fullmatch(word):
        return None
    letters: list[str] = []
    tone: str | None = None
    for ch in word:
        if not ch.isdigit():
            letters.append(ch)
        elif ch in _VNI_TONES:
            if not any(x in _VOWELS for x in letters):
                return None
            tone = _VNI_TONES[ch]
        elif ch == "6":
            if not _mark(letters, _CIRCUMFLEX):
                return None
        elif ch == "7":
            if not _mark(letters, _HORN, horn=True):
                return None
        elif ch == "8":
            if not _mark(letters, _BREVE):
                return None
        elif ch == "9":
            if not letters or letters[0] != "d":
                return None
            letters[0] = "đ"
    return _syllable("".join(letters), tone)


def _mark(letters: list[str], marks: dict[str, str], *, horn: bool = False) -> bool:
    """Put a vowel mark on the last vowel that takes it; "uo" takes the horn on both (ươ)."""
    for index in range(len(letters) - 1, -1, -1):
        letter = letters[index]
        if letter in marks:
            if horn and letter == "o" and index > 0 and letters[index - 1] in "uư":
                letters[index - 1] = "ư"
            letters[index] = marks[letter]
            return True
    return False


def _syllable(base: str, tone: str | None) -> str | None:
    """`base` (letters with vowel marks) with `tone` on the right vowel, if it is a syllable."""
    split = _split(base)
    if split is None:
        return None
    onset, rhyme = split
    if tone in (_GRAVE, _HOOK, _TILDE) and rhyme.endswith(_STOP_FINALS):
        return None  # "rât", "hàt": a stop final takes only sắc or nặng
    if tone is None and rhyme.endswith(_STOP_FINALS):
        return None
    if not tone:
        return onset + rhyme
    position = _tone_position(rhyme)
    toned = rhyme[: position + 1] + tone + rhyme[position + 1 :]
    return unicodedata.normalize("NFC", onset + toned)


def _split(base: str) -> tuple[str, str] | None:
    for onset in [*_ONSETS, ""]:
        if base.startswith(onset):
            rhyme = base[len(onset) :]
            if onset == "gi" and (not rhyme or rhyme[0] not in _VOWELS):
                continue  # "gì", "gìn": g + i...
            if rhyme in _RHYMES:
                return onset, rhyme
    return None


def _tone_position(rhyme: str) -> int:
    vowels = [i for i, ch in enumerate(rhyme) if ch in _VOWELS]
    marked = [i for i in vowels if rhyme[i] in "ăâêôơư"]
    if marked:
        return marked[-1]
    closed = vowels[-1] < len(rhyme) - 1
    if closed or len(vowels) == 1:
        return vowels[-1]
    if len(vowels) == 3:
        return vowels[1]
    return vowels[1] if rhyme[vowels[0] : vowels[1] + 1] in _TONE_ON_SECOND else vowels[0]


# -- slips ------------------------------------------------------------------------------------


def slip_readings(
    texts: Iterable[str], vocabulary: frozenset[str], pieces: frozenset[str], known: frozenset[str]
) -> list[str]:
    """Texts with the unknown words of `texts` corrected: one key slipped (QWERTY neighbour or T9
    same key) in a word of four letters or more, towards a word of `vocabulary`; or words run
    together, cut into two or three words of `pieces`. A word is corrected only when it is not
    in `known` (every word the lexicon has); at most 16 texts in all, none when there would be
    more (too many ways to read it)."""
    found: list[str] = []
    for text in texts:
        parts = _WORD.split(text)
        words = _WORD.findall(text)
        options: list[Sequence[str]] = []
        for word in words:
            plain = _EMPHASIS.sub(r"\1", word.lower())
            telex = decode_telex(word)
            if plain in known or (telex is not None and strip_diacritics(telex) in known):
                fixes: Sequence[str] = []  # a word, as typed or in Telex ("hoong": hông)
            else:
                fixes = _corrections(plain, vocabulary, pieces)
            options.append([word, *fixes] if fixes else [word])
        if all(len(choices) == 1 for choices in options):
            continue
        combos = 1
        for choices in options:
            combos *= len(choices)
        if combos > _MAX_READINGS + 1:
            return []
        for chosen in product(*options):
            if list(chosen) == words:
                continue
            rebuilt = "".join(part + (chosen[i] if i < len(chosen) else "") for i, part in enumerate(parts))
            if rebuilt not in found:
                found.append(rebuilt)
    return found[:_MAX_READINGS]


@lru_cache(maxsize=_CACHED_WORDS)
def _corrections(word: str, vocabulary: frozenset[str], pieces: frozenset[str]) -> tuple[str, ...]:
    fixes: list[str] = []
    if len(word) >= 4 and word.isalpha():
        for index, ch in enumerate(word):
            for other in sorted(_SLIPS.get(ch, ())):
                candidate = word[:index] + other + word[index + 1 :]
                if candidate in vocabulary and candidate not in fixes:
                    fixes.append(candidate)
    if len(word) >= 5 and word.isalpha():
        fixes += [" ".join(parts) for parts in _segments(word, pieces, 3) if len(parts) > 1]
    return tuple(dict.fromkeys(fixes))


def _segments(word: str, vocabulary: frozenset[str], most: int) -> list[tuple[str, ...]]:
    """Ways to cut `word` into at most `most` vocabulary words of two letters or more."""
    if word in vocabulary:
        return [(word,)]
    if most == 1:
        return []
    found: list[tuple[str, ...]] = []
    for cut in range(2, len(word) - 1):
        head = word[:cut]
        if head in vocabulary:
            found += [(head, *rest) for rest in _segments(word[cut:], vocabulary, most - 1)]
    return found
