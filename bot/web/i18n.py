"""Page language: Vietnamese by default, English with `?lang=en` (remembered in a cookie) or for an
account whose language is `en`.

Templates and handlers write the Vietnamese text and wrap it: `{{ _("Đăng nhập") }}`,
`_("Đã tạo tài khoản {name}.", name=...)`. The English text is looked up in bot/web/en.json by
the Vietnamese text; tests/web/test_i18n.py checks that every wrapped text has an entry there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from aiohttp import web

__all__ = ["LANG", "LANGUAGES", "english", "pick_language", "translator"]

LANGUAGES = ("vi", "en")
LANG = web.RequestKey("lang", str)
_CATALOGUE = Path(__file__).with_name("en.json")


class _HasLanguage(Protocol):
    @property
    def language(self) -> str: ...


@lru_cache(maxsize=1)
def english() -> dict[str, str]:
    """Vietnamese text -> English text."""
    with _CATALOGUE.open(encoding="utf-8") as file:
        data: dict[str, str] = json.load(file)
    return data


def pick_language(query: str | None, cookie: str | None, viewer: _HasLanguage | None) -> str:
    """`?lang=` wins, then the remembered choice, then the account's language, then Vietnamese."""
    for choice in (query, cookie, viewer.language if viewer is not None else None):
        if choice in LANGUAGES:
            return choice
    return "vi"


def translator(lang: str) -> Callable[..., str]:
    catalogue = english() if lang == "en" else {}

    def translate(text: str, **values: object) -> str:
        chosen = catalogue.get(text, text)
        return chosen.format(**values) if values else chosen

    return translate
