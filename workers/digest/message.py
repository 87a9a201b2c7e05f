"""The digest as a supervisor reads it: the e-mail (HTML with the chart as a CID image, and a
plain-text part) and the three-line Zalo message, in the account's language (`users.language`):
Vietnamese with decimal commas, or English with decimal points; dates dd/mm/yyyy in both.

The texts are written in Vietnamese and looked up in the pages' catalogue (bot/web/en.json,
bot.web.i18n), one way for pages and digests; tests check every text has its English entry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from bot.web.i18n import translator
from flows.scores.formulas import element_of
from flows.scores.periods import Period
from flows.scores.render import (
    ELEMENT_NAMES,
    FUNNEL_NAMES,
    criterion_name,
    flag_text,
    format_number,
    rank_text,
)
from workers.digest.content import DigestContent

_TEMPLATES = Path(__file__).resolve().parent / "templates"
_CHANNELS = (("all", "Tất cả"), ("sms", "SMS"), ("zalo", "Zalo"))
NONE = "—"


@dataclass(frozen=True)
class RenderedDigest:
    subject: str
    html: str
    text: str
    chart_cid: str  # without angle brackets, as the HTML's cid: URL names it


def pct(value: float | None, lang: str = "vi") -> str:
    return NONE if value is None else format_number(float(value), 2, lang) + "%"


def ci(interval: Sequence[float] | None, lang: str = "vi") -> str:
    if interval is None:
        return NONE
    return f"{format_number(float(interval[0]), 2, lang)}–{format_number(float(interval[1]), 2, lang)}"


def points(change: float, lang: str = "vi") -> str:
    return translator(lang)("{change} điểm", change=format_number(float(change), 2, lang, signed=True))


def span(period: Period) -> str:
    if period.n_days == 1:
        return f"{period.start:%d/%m/%Y}"
    return f"{period.start:%d/%m}–{period.end:%d/%m/%Y}"


def criterion(code: str, lang: str = "vi") -> str:
    """A criterion code as words: its element's name, and the code when it is a sub-criterion;
    the overall question by its name (flows.scores.render.criterion_name)."""
    element = element_of(code)
    if element is None:
        return translator(lang)(criterion_name(code))
    name = translator(lang)(ELEMENT_NAMES[element])
    return name if code == element else f"{name} ({code})"


def dashboard_url(public_url: str, content: DigestContent) -> str:
    query = urlencode({"agency": content.agency_code, "period": content.day.isoformat()})
    return f"{public_url}/?{query}"


_environment = Environment(
    loader=FileSystemLoader(_TEMPLATES),
    autoescape=select_autoescape(["html.j2"]),  # citizens' comments must never become markup
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)
_environment.globals.update(span=span, rank=rank_text, funnel_names=FUNNEL_NAMES, channels=_CHANNELS)


def _in_language(lang: str) -> dict[str, Any]:
    """The template functions that depend on the language."""
    _ = translator(lang)
    return {
        "lang": lang,
        "_": _,
        "pct": lambda value: pct(value, lang),
        "ci": lambda interval: ci(interval, lang),
        "points": lambda change: points(change, lang),
        "criterion": lambda code: criterion(code, lang),
        "flag_text": lambda flag: flag_text(flag, _, decimal_comma=lang == "vi"),
    }


def render(
    content: DigestContent, *, username: str, public_url: str, minimum: int, lang: str = "vi"
) -> RenderedDigest:
    _ = translator(lang)
    headline = content.windows[0].row["sipas_index"]
    subject = _(
        "SIPAS {agency} ngày {day}: chỉ số {index}",
        agency=content.agency_name,
        day=f"{content.day:%d/%m/%Y}",
        index=pct(headline, lang),
    )
    cid = make_msgid(domain="sipas.digest")[1:-1]
    values: Mapping[str, Any] = {
        **_in_language(lang),
        "c": content,
        "subject": subject,
        "day": f"{content.day:%d/%m/%Y}",
        "username": username,
        "minimum": minimum,
        "chart_cid": cid,
        "dashboard_url": dashboard_url(public_url, content),
    }
    html = _environment.get_template("digest.html.j2").render(values)
    text = _environment.get_template("digest.txt.j2").render(values)
    return RenderedDigest(subject=subject, html=html, text=text, chart_cid=cid)


def email_message(rendered: RenderedDigest, chart: bytes, *, sender: str, recipient: str) -> EmailMessage:
    """multipart/alternative (text, then multipart/related: HTML + the PNG by Content-ID)."""
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = formataddr(("SIPAS", sender))
    message["To"] = recipient
    message["Message-ID"] = make_msgid(domain="sipas.digest")
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    html_part = next(part for part in message.iter_parts() if part.get_content_type() == "text/html")
    assert isinstance(html_part, EmailMessage)
    html_part.add_related(
        chart, maintype="image", subtype="png", cid=f"<{rendered.chart_cid}>", filename="sipas.png"
    )
    return message


def zalo_text(content: DigestContent, public_url: str, lang: str = "vi") -> str:
    """Three short lines and the dashboard link (OA text messages are plain text)."""
    _ = translator(lang)
    day, week, month = content.windows
    first = _(
        "SIPAS {agency} {day}: chỉ số {index} (KTC {ci}), {n} phiếu.",
        agency=content.agency_name,
        day=f"{content.day:%d/%m}",
        index=pct(day.row["sipas_index"], lang),
        ci=ci(day.row["sipas_ci95"], lang),
        n=day.row["n_overall"],
    )
    moved = ""
    if week.change is not None and week.significant:
        moved = f" ({points(week.change, lang)}, {_('vượt khoảng tin cậy')})"
    second = _(
        "7 ngày: {week}{moved}; từ đầu tháng: {month}.",
        week=pct(week.row["sipas_index"], lang),
        moved=moved,
        month=pct(month.row["sipas_index"], lang),
    )
    third = _(
        "Bất thường: {flags}; ý kiến mới: {comments}.",
        flags=len(content.anomalies),
        comments=len(content.comments),
    )
    return "\n".join([first, second, third, _("Xem: {url}", url=dashboard_url(public_url, content))])
