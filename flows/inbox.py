"""Citizens' messages outside any survey ("Cho hoi ho so cua toi den dau roi?"): kept for the
unit that handled the number's (or Zalo user's) latest case, and answered once a day with where to
ask instead.

The automatic reply is an outbox message keyed by the sender's hash and the local day, so a
citizen who writes ten times in a day gets it once, and a retried job never adds a twin; like every
message it passes the cost caps at send time (workers.caps). It goes back on the channel the
citizen wrote on: an SMS with the unit's `inbox_reply` rule, fitted into one unaccented SMS; a
message to the Zalo Official Account with the unit's `inbox_reply_zalo` rule, in Vietnamese with
its diacritics (Zalo is not SMS). The OA may write only within its interaction window; the user
has just written, so it is open, and the send job checks it again (workers.zalo_window).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings
from flows.rules import DEFAULT_INBOX_REPLY, DEFAULT_INBOX_REPLY_ZALO, RuleBook
from flows.templates import fit_sms, render_template
from flows.understanding.masking import mask_personal_data
from storage import inbox
from storage.crypto import PhoneVault
from storage.models import Agency, Channel, InboxMessage, OptOut, OutboundMessage, Route
from storage.outbox import add_message

__all__ = ["NO_UNIT_NAME", "Received", "forward_email", "mask_sender", "masked_text", "receive"]

# How the reply names the unit when the sender has no case with us (SMS: unaccented).
NO_UNIT_NAME = "co quan giai quyet ho so"
NO_UNIT_NAME_ZALO = "cơ quan giải quyết hồ sơ"


@dataclass(frozen=True)
class Received:
    """What one message did: the inbox row, and the automatic reply's outbox id when one was due."""

    message_id: int
    outbox_ids: tuple[int, ...]


def receive(
    session: Session,
    settings: Settings,
    vault: PhoneVault,
    *,
    inbound_event_id: int,
    sender: str,
    sender_hash: str,
    text: str,
    channel: Channel,
    now: datetime,
) -> Received:
    """Store a message that belongs to no survey and queue the day's automatic reply on the
    channel it came by (an SMS, or a Zalo OA message for a Zalo user), never to a sender who
    refused our messages. Idempotent per inbound event."""
    agency_id = inbox.latest_case_agency(session, sender_hash, channel)
    row, created = inbox.add(
        session,
        inbound_event_id=inbound_event_id,
        agency_id=agency_id,
        channel=channel,
        sender_enc=vault.encrypt(sender),
        sender_hash=sender_hash,
        text=text,
        received_at=now,
    )
    if not created or session.get(OptOut, sender_hash) is not None:
        # A number that refused our messages is not written to, not even this once.
        return Received(row.id, ())
    key = f"inbox-reply:{sender_hash}:{now.astimezone(settings.tz).date().isoformat()}"
    if session.scalar(select(OutboundMessage.id).where(OutboundMessage.dedupe_key == key)) is not None:
        return Received(row.id, ())  # already answered today
    agency = session.get(Agency, agency_id) if agency_id is not None else None
    message = add_message(
        session,
        dedupe_key=key,
        channel=channel,
        route=Route.ZALO_OA if channel is Channel.ZALO else Route.SMS,
        recipient_enc=row.sender_enc,
        text=_reply_text(session, settings, agency, channel),
    )
    row.auto_reply_id = message.id
    session.flush()
    return Received(row.id, (message.id,))


def _reply_text(session: Session, settings: Settings, agency: Agency | None, channel: Channel) -> str:
    rules = RuleBook(session, settings).for_agency(agency) if agency is not None else None
    if channel is Channel.ZALO:
        template = rules.inbox_reply_zalo if rules is not None else DEFAULT_INBOX_REPLY_ZALO
        return render_template(template, {"agency": agency.name if agency is not None else NO_UNIT_NAME_ZALO})
    template = rules.inbox_reply if rules is not None else DEFAULT_INBOX_REPLY
    return fit_sms(template, {"agency": agency.name if agency is not None else NO_UNIT_NAME})


def mask_sender(phone: str, channel: Channel = Channel.SMS) -> str:
    """A sender as staff see it in the inbox: a number's network prefix and last three digits; a
    Zalo user id's last three characters."""
    if channel is Channel.ZALO:
        return "Zalo •••" + phone[-3:] if len(phone) > 6 else "Zalo •••"
    national = "0" + phone[3:] if phone.startswith("+84") else phone
    if len(national) < 7:
        return "•" * len(national)
    return national[:3] + "•" * (len(national) - 6) + national[-3:]


def forward_email(
    message: InboxMessage,
    phone: str,
    agency: Agency | None,
    *,
    to: str,
    sender: str,
    by: str,
    tz: ZoneInfo,
) -> EmailMessage:
    """The e-mail that hands a citizen's message to the unit's Phản ánh kiến nghị desk. It carries
    the number in full: the desk is who answers the citizen. The time is the desk's local time
    (`tz`, the service's SIPAS_TIMEZONE), as the pages show it."""
    unit = agency.name if agency is not None else "(không rõ đơn vị)"
    mail = EmailMessage()
    mail["Subject"] = f"[SIPAS] Tin nhắn của công dân gửi {unit}"
    mail["From"] = sender
    mail["To"] = to
    received = message.received_at.astimezone(tz).strftime("%H:%M ngày %d/%m/%Y")
    mail.set_content(
        "Kính gửi bộ phận Phản ánh kiến nghị,\n\n"
        f"{'Người dùng Zalo (user id)' if message.channel is Channel.ZALO else 'Số điện thoại'} {phone} "
        f"đã nhắn tới tổng đài khảo sát SIPAS lúc {received} "
        "(ngoài khảo sát), nội dung:\n\n"
        f"    {message.text}\n\n"
        f"Đơn vị: {unit}. Người chuyển: {by}.\n"
        "Tổng đài khảo sát chỉ nhận trả lời khảo sát; xin bộ phận trả lời công dân theo quy định.\n"
    )
    return mail


def masked_text(message: InboxMessage) -> str:
    """The message as the inbox shows it: personal numbers and e-mails masked."""
    return mask_personal_data(message.text)
