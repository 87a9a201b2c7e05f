"""Message texts: safe placeholder rendering, the GSM-7 alphabet, and fitting an SMS into 160.

Flow texts are written by staff, so rendering accepts only plain named placeholders from a fixed
set (no attribute or index access, no format specs): a template can never reach into Python
objects. Substituted values come from data (agency names, case numbers) and may be accented or
long; for SMS they are folded to unaccented GSM-7 and, when the message would not fit in one
SMS, the agency name is abbreviated and then cut, so a message never silently becomes two paid
segments. The channel adapter (bot/) has its own encoder; this module keeps the small charset
check that flows need, because flows must not import bot.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Mapping
from functools import lru_cache

__all__ = [
    "PLACEHOLDERS",
    "SMS_LIMIT",
    "MessageTooLongError",
    "TemplateError",
    "fit_sms",
    "gsm7_length",
    "is_gsm7",
    "is_unaccented",
    "render_template",
    "sms_safe",
    "template_fields",
]

SMS_LIMIT = 160
# Everything a flow text may mention; the engine supplies number/total/scale itself.
PLACEHOLDERS = frozenset({"agency", "case_id", "number", "total", "scale"})

# GSM 03.38 default alphabet (one septet each) and its extension table (escape + one septet).
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")
_GSM7 = _GSM7_BASIC | _GSM7_EXTENDED
_WITHOUT_EXTENDED = str.maketrans(dict.fromkeys(_GSM7_EXTENDED))  # str.translate deletes them
# What an SMS value keeps as it is (sms_safe): GSM-7 characters that are also ASCII.
_SMS_SAFE = frozenset(ch for ch in _GSM7 if ch.isascii())

# Typographic characters common in pasted names, mapped to their GSM-7 look-alikes.
_PUNCTUATION = str.maketrans(
    {
        "‘": "'",
        "’": "'",
        "“": '"',
        "”": '"',
        "–": "-",
        "—": "-",
        "…": "...",
        "\u00a0": " ",
        "đ": "d",
        "Đ": "D",
    }
)

# Long words of Vietnamese agency names and the abbreviations citizens know (unaccented).
_ABBREVIATIONS = (
    ("Trung tam Phuc vu hanh chinh cong", "TT PVHCC"),
    ("Bo phan tiep nhan va tra ket qua", "BP TN-TKQ"),
    ("Uy ban nhan dan", "UBND"),
    ("Thanh pho", "TP"),
    ("Ho Chi Minh", "HCM"),
)

# Which substituted values may be shortened to fit, in order, and the length they keep at least.
_SHRINKABLE = (("agency", 10), ("case_id", 16))


class TemplateError(ValueError):
    """A flow text uses an unknown placeholder or a construct other than `{name}`."""


class MessageTooLongError(ValueError):
    """Even with every shortenable value cut to its minimum the SMS exceeds the limit."""


def is_gsm7(text: str) -> bool:
    """True when `text` can be sent in the GSM-7 alphabet (basic table or extension)."""
    return _GSM7.issuperset(text)


def gsm7_length(text: str) -> int:
    """Septets `text` takes in GSM-7: extension characters cost two (counted by deleting them
    with str.translate, in C: every SMS the worker renders is measured)."""
    return 2 * len(text) - len(text.translate(_WITHOUT_EXTENDED))


def is_unaccented(text: str) -> bool:
    """True when `text` has no Vietnamese diacritics (plain ASCII letters only)."""
    return text.isascii()


@lru_cache(maxsize=4096)
def sms_safe(value: str) -> str:
    """`value` folded to unaccented GSM-7: diacritics dropped (đ -> d), typographic punctuation
    replaced, anything else outside GSM-7 removed, whitespace collapsed. Cached: the same agency
    names, case numbers and legends are folded for every message of a batch."""
    if _SMS_SAFE.issuperset(value):
        return " ".join(value.split())
    decomposed = unicodedata.normalize("NFD", value.translate(_PUNCTUATION))
    folded = "".join(
        ch if ch in _SMS_SAFE else ("" if unicodedata.combining(ch) else " ") for ch in decomposed
    )
    return " ".join(folded.split())


def template_fields(template: str) -> list[str]:
    """Placeholder names used by `template`, in order; raises TemplateError on anything unsafe."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"malformed template: {exc}") from exc
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            known = ", ".join(sorted(PLACEHOLDERS))
            raise TemplateError(f"unknown placeholder {{{name}}} (known: {known})")
        if spec or conversion:
            raise TemplateError(f"placeholder {{{name}}} must be plain, without ':' or '!'")
        names.append(name)
    return names


def render_template(template: str, values: Mapping[str, str]) -> str:
    """Substitute `{name}` placeholders from `values`; `{{` and `}}` are literal braces."""
    out: list[str] = []
    for literal, name, _spec, _conversion in string.Formatter().parse(template):
        out.append(literal)
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            raise TemplateError(f"unknown placeholder {{{name}}}")
        if name not in values:
            raise TemplateError(f"no value for placeholder {{{name}}}")
        out.append(values[name])
    return "".join(out)


def fit_sms(template: str, values: Mapping[str, str], limit: int = SMS_LIMIT) -> str:
    """Render an SMS of at most `limit` GSM-7 septets.

    Values are folded with `sms_safe`. If the result is too long, the agency name is abbreviated,
    then cut at a word boundary (never below 10 characters), then the case number keeps its
    distinguishing tail behind "..." (never below 16); the fixed text is never cut, because it
    carries the instructions (how to answer, how to refuse).

    The result depends only on the template and the values it uses, so it is cached on them: a
    question rendered for every citizen of a unit is folded and fitted once.
    """
    used = tuple((name, values[name]) for name in _placeholders(template) if name in values)
    return _fit_sms(template, used, limit)


@lru_cache(maxsize=256)
def _placeholders(template: str) -> tuple[str, ...]:
    """The names `template` substitutes, each once (not checked: render_template refuses)."""
    names = (name for _literal, name, _spec, _conversion in string.Formatter().parse(template))
    return tuple(dict.fromkeys(name for name in names if name is not None))


@lru_cache(maxsize=2048)
def _fit_sms(template: str, values: tuple[tuple[str, str], ...], limit: int) -> str:
    safe = {name: sms_safe(value) for name, value in values}
    text = render_template(template, safe)
    if gsm7_length(text) <= limit:
        return text
    used = template_fields(template)
    for name, floor in _SHRINKABLE:
        occurrences = used.count(name)
        if not occurrences:
            continue
        if name == "agency":
            safe[name] = _abbreviate(safe[name])
            text = render_template(template, safe)
            if gsm7_length(text) <= limit:
                return text
        fixed = gsm7_length(render_template(template, {**safe, name: ""}))
        budget = max((limit - fixed) // occurrences, floor)
        safe[name] = _cut_words(safe[name], budget) if name == "agency" else _keep_tail(safe[name], budget)
        text = render_template(template, safe)
        if gsm7_length(text) <= limit:
            return text
    raise MessageTooLongError(f"message is {gsm7_length(text)} GSM-7 characters, limit {limit}: {text!r}")


def _abbreviate(name: str) -> str:
    for long, short in _ABBREVIATIONS:
        name = re.sub(rf"\b{re.escape(long)}\b", short, name, flags=re.IGNORECASE)
    return name


def _cut_words(value: str, budget: int) -> str:
    """The longest run of leading whole words within `budget` septets (hard cut if none fits)."""
    kept = ""
    for word in value.split(" "):
        candidate = f"{kept} {word}" if kept else word
        if gsm7_length(candidate) > budget:
            break
        kept = candidate
    if not kept:
        kept = value
        while gsm7_length(kept) > budget:
            kept = kept[:-1]
    return kept.rstrip(" ,;:-")


def _keep_tail(value: str, budget: int) -> str:
    if gsm7_length(value) <= budget:
        return value
    tail = value
    while tail and gsm7_length("..." + tail) > budget:
        tail = tail[1:]
    return "..." + tail
