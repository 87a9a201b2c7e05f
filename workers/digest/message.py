"""The digest as a supervisor reads it: the e-mail (HTML with the chart as a CID image, and a
plain-text part) and the three-line Zalo message. Vietnamese, decimal commas, dd/mm/yyyy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from flows.scores.formulas import element_of
from flows.scores.periods import Period
from flows.scores.render import ELEMENT_NAMES, FUNNEL_NAMES, flag_text, rank_text
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


def pct(value: float | None) -> str:
    return NONE if value is None else f"{value:.2f}%".replace(".", ",")


def ci(interval: Sequence[float] | None) -> str:
    if interval is None:
        return NONE
    return f"{interval[0]:.2f}–{interval[1]:.2f}".replace(".", ",")


def points(change: float) -> str:
    return f"{change:+.2f} điểm".replace(".", ",")


def span(period: Period) -> str:
    if period.n_days == 1:
        return f"{period.start:%d/%m/%Y}"
    return f"{period.start:%d/%m}–{period.end:%d/%m/%Y}"


def criterion(code: str) -> str:
    """A criterion code as words: its element's name, and the code when it is a sub-criterion."""
    element = element_of(code)
    if element is None:
        return code
    return ELEMENT_NAMES[element] if code == element else f"{ELEMENT_NAMES[element]} ({code})"


def dashboard_url(public_url: str, content: DigestContent) -> str:
    query = urlencode({"agency": content.agency_code, "period": content.day.isoformat()})
    return f"{public_url}/?{query}"


_environment = Environment(
    loader=FileSystemLoader(_TEMPLATES),
    autoescape=select_autoescape(["html.j2"]),  # citizens' comments must never become markup
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)
_environment.globals.update(
    pct=pct,
    ci=ci,
    points=points,
    span=span,
    criterion=criterion,
    rank=rank_text,
    flag_text=flag_text,
    funnel_names=FUNNEL_NAMES,
    channels=_CHANNELS,
)


def render(content: DigestContent, *, username: str, public_url: str, minimum: int) -> RenderedDigest:
    headline = content.windows[0].row["sipas_index"]
    subject = f"SIPAS {content.agency_name} ngày {content.day:%d/%m/%Y}: chỉ số {pct(headline)}"
    cid = make_msgid(domain="sipas.digest")[1:-1]
    values: Mapping[str, Any] = {
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


def zalo_text(content: DigestContent, public_url: str) -> str:
    """Three short lines and the dashboard link (OA text messages are plain text)."""
    day, week, month = content.windows
    first = (
        f"SIPAS {content.agency_name} {content.day:%d/%m}: chỉ số {pct(day.row['sipas_index'])} "
        f"(KTC {ci(day.row['sipas_ci95'])}), {day.row['n_overall']} phiếu."
    )
    moved = ""
    if week.change is not None and week.significant:
        moved = f" ({points(week.change)}, vượt khoảng tin cậy)"
    second = f"7 ngày: {pct(week.row['sipas_index'])}{moved}; từ đầu tháng: {pct(month.row['sipas_index'])}."
    third = f"Bất thường: {len(content.anomalies)}; ý kiến mới: {len(content.comments)}."
    return "\n".join([first, second, third, f"Xem: {dashboard_url(public_url, content)}"])
