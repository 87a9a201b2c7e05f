"""Every Vietnamese text the pages wrap in _() has an English entry in bot/web/en.json."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from bot.web.access import ROLE_NAMES
from bot.web.dashboard import BAD_CHANNEL, BAD_PERIOD, _presets
from bot.web.i18n import english, pick_language, translator
from bot.web.render import NAVIGATION
from flows.scores.render import CHANNEL_NAMES, ELEMENT_NAMES, FUNNEL_NAMES

WEB = Path(__file__).resolve().parents[2] / "bot" / "web"
_WRAPPED = re.compile(r"""\b_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")
# Texts passed to error_page(): translated when shown.
_MESSAGES = re.compile(r"""error_page\([^"]*"([^"]+)"\)""")


def _texts() -> set[str]:
    found: set[str] = {label for _, label in NAVIGATION} | set(ROLE_NAMES.values())
    found |= {label for label, _ in _presets(date(2026, 11, 30))} | {BAD_PERIOD, BAD_CHANNEL}
    # Names from flows.scores shown on the pages.
    found |= {*ELEMENT_NAMES.values(), *FUNNEL_NAMES.values(), *CHANNEL_NAMES.values()}
    for path in [*WEB.rglob("*.py"), *(WEB / "templates").glob("*.html")]:
        source = path.read_text(encoding="utf-8")
        found |= {a or b for a, b in _WRAPPED.findall(source)}
        found |= set(_MESSAGES.findall(source))
    return found


def test_every_text_has_an_english_entry() -> None:
    texts = _texts()
    assert len(texts) > 40
    missing = sorted(texts - set(english()))
    assert missing == []


def test_placeholders_match() -> None:
    for vietnamese, translated in english().items():
        assert set(re.findall(r"\{\w+\}", vietnamese)) == set(re.findall(r"\{\w+\}", translated)), vietnamese


def test_language_choice() -> None:
    class Account:
        language = "en"

    assert pick_language(None, None, None) == "vi"
    assert pick_language(None, None, Account()) == "en"
    assert pick_language("vi", None, Account()) == "vi"
    assert pick_language("fr", "en", None) == "en"
    assert translator("en")("Đăng nhập") == "Log in"
    assert translator("vi")("Đăng nhập") == "Đăng nhập"
    assert translator("en")("Điện thoại {phone}", phone="0912") == "Phone 0912"
