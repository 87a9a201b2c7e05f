"""/inbox: citizens' messages that arrived outside any survey, for the staff of their unit: sender
masked, text masked (flows.inbox); mark read or handled, or forward to the unit's Phản ánh kiến
nghị desk by e-mail (the `desk_email` rule; SMTP_* settings). Every change is audited."""

from __future__ import annotations

import asyncio
import smtplib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from bot.context import CONTEXT, AppContext
from bot.mail import SmtpMailer
from bot.web.access import CONFIGURE, Viewer, require_role, viewer_of
from bot.web.i18n import LANG, translator
from bot.web.render import error_page, render
from bot.web.sessions import redirect
from flows.inbox import forward_email, mask_sender, masked_text
from flows.rules import RuleBook
from storage import audit, inbox
from storage.models import Agency, InboxMessage, InboxStatus

routes = web.RouteTableDef()
_ACTIONS = {"read": InboxStatus.READ, "handled": InboxStatus.HANDLED, "forward": InboxStatus.FORWARDED}
# Shown through the catalogue (bot/web/en.json).
STATUS_LABELS = {"new": "Mới", "read": "Đã đọc", "handled": "Đã xử lý", "forwarded": "Đã chuyển"}


class InboxError(ValueError):
    """An action that cannot be done (Vietnamese text from the catalogue)."""


@dataclass(frozen=True)
class Row:
    id: int
    received_at: datetime
    unit: str
    unit_code: str  # its page (/agencies/CODE) sets the desk_email rule; "" when no unit is known
    sender: str
    text: str
    status: str
    channel: str
    desk: str
    forwarded_to: str
    handled_by: str
    auto_replied: bool


def _rows(ctx: AppContext, viewer: Viewer, status: str) -> dict[str, Any]:
    wanted = [InboxStatus(status)] if status in InboxStatus._value2member_map_ else None
    with ctx.sessions() as session:
        messages = inbox.listing(session, viewer.scope, wanted, unassigned=viewer.scope is None)
        book = RuleBook(session, ctx.settings)
        rows = []
        for m in messages:
            desk = book.for_agency(m.agency).desk_email if m.agency is not None else None
            rows.append(
                Row(
                    id=m.id,
                    received_at=m.received_at.astimezone(ctx.settings.tz),
                    unit=f"{m.agency.code} · {m.agency.name}" if m.agency is not None else "",
                    unit_code=m.agency.code if m.agency is not None else "",
                    sender=mask_sender(ctx.vault.decrypt(m.sender_enc), m.channel),
                    text=masked_text(m),
                    status=m.status.value,
                    channel=m.channel.value,
                    desk=desk or "",
                    forwarded_to=m.forwarded_to or "",
                    handled_by=m.handled_by or "",
                    auto_replied=m.auto_reply_id is not None,
                )
            )
        counts = inbox.counts_by_status(session, viewer.scope)
    return {"rows": rows, "counts": {s.value: counts.get(s, 0) for s in InboxStatus}}


@routes.get("/inbox")
@require_role(*CONFIGURE)
async def inbox_page(request: web.Request) -> web.Response:
    return await _page(request)


async def _page(request: web.Request, *, status: int = 200, error: str | None = None) -> web.Response:
    _ = translator(request[LANG])
    wanted = request.query.get("status", "new")
    data = await asyncio.to_thread(_rows, request.app[CONTEXT], viewer_of(request), wanted)
    return render(
        request,
        "inbox.html",
        status=status,
        title=_("Hộp thư"),
        wanted=wanted,
        statuses=[s.value for s in InboxStatus],
        status_labels=STATUS_LABELS,
        done=request.query.get("done", ""),
        error=_(error) if error else None,
        **data,
    )


def _message_in_scope(session: Session, viewer: Viewer, message_id: int) -> InboxMessage:
    message = session.get(InboxMessage, message_id)
    if message is None or (viewer.scope is not None and not viewer.sees(message.agency_id)):
        raise InboxError("Không có tin nhắn này trong phạm vi của tài khoản.")
    return message


def _act(ctx: AppContext, viewer: Viewer, message_id: int, action: str) -> None:
    """Mark read or handled, or forward by e-mail (sent before the change is committed: a refused
    e-mail leaves the message as it was)."""
    status = _ACTIONS.get(action)
    if status is None:
        raise InboxError("Thao tác không hợp lệ.")
    now = datetime.now(UTC)
    with ctx.sessions() as session, session.begin():
        message = _message_in_scope(session, viewer, message_id)
        forwarded_to = None
        if status is InboxStatus.FORWARDED:
            forwarded_to = _forward(ctx, session, viewer, message)
        before = inbox.set_status(session, message, status, by=viewer.username, now=now,
                                  forwarded_to=forwarded_to)  # fmt: skip
        if before is status and forwarded_to is None:
            return
        after: dict[str, Any] = {"status": status.value}
        if forwarded_to is not None:
            after["forwarded_to"] = forwarded_to
        audit.append(session, viewer.username, f"inbox.{action}", f"inbox:{message.id}",
                     {"status": before.value}, after, agency_id=message.agency_id)  # fmt: skip


def _forward(ctx: AppContext, session: Session, viewer: Viewer, message: InboxMessage) -> str:
    settings = ctx.settings
    agency = session.get(Agency, message.agency_id) if message.agency_id is not None else None
    desk = RuleBook(session, settings).for_agency(agency).desk_email if agency is not None else None
    if not desk:
        raise InboxError("Đơn vị chưa có địa chỉ thư của bộ phận Phản ánh kiến nghị (quy tắc desk_email).")
    if not settings.SMTP_HOST or not settings.SMTP_FROM:
        raise InboxError("Máy chủ thư chưa được cấu hình (SMTP_HOST, SMTP_FROM).")
    mail = forward_email(message, ctx.vault.decrypt(message.sender_enc), agency, to=desk,
                         sender=settings.SMTP_FROM, by=viewer.username, tz=settings.tz)  # fmt: skip
    try:
        SmtpMailer(settings).send(mail)
    except (smtplib.SMTPException, OSError):
        raise InboxError("Máy chủ thư không nhận thư; tin nhắn chưa được chuyển.") from None
    return desk


@routes.post("/inbox/{id}")
@require_role(*CONFIGURE)
async def inbox_action(request: web.Request) -> web.Response:
    text = request.match_info["id"]
    if not text.isdigit() or len(text) > 12:
        return error_page(request, 404, "Không có tin nhắn này trong phạm vi của tài khoản.")
    form = await request.post()
    raw_action = form.get("action")
    action = raw_action if isinstance(raw_action, str) else ""
    try:
        await asyncio.to_thread(_act, request.app[CONTEXT], viewer_of(request), int(text), action)
    except InboxError as exc:
        return await _page(request, status=422, error=str(exc))
    back = form.get("back")
    status = back if isinstance(back, str) and back in InboxStatus._value2member_map_ else "new"
    return redirect(f"/inbox?status={status}&done={action}")
