"""Opting back in: a citizen who refused the surveys (TC) may ask for them again by SMS.

A refusal is honoured at once and kept (flows.survey.record_opt_out); lifting it takes two
messages, so that a mistyped keyword or someone else's phone does not undo it by accident:

1. the citizen sends `DK` (`dang ky`, `START`, ... Keyword.OPT_IN) from the refused number: the
   service asks them to confirm (`rejoin_requested_at` is set on the OptOut);
2. within CONFIRM_WITHIN the citizen sends `DK` again or `CO` / `YES`: the OptOut is deleted and
   the lift is written to the audit log. Surveys then come again with the citizen's next closed
   case (the usual frequency cap still applies).

Nothing else is ever lifted this way: a number that has not refused gets a short notice, and any
other text from a refused number is left alone. Staff lift a refusal with `sipas opt-outs remove
PHONE`, also audited. Replies go in unaccented Vietnamese, or in English when the keyword was
English (`START`, `SUBSCRIBE`); each fits in one GSM-7 SMS (tests/flows/test_opt_in.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.orm import Session

from flows.understanding import Keyword, ReplyKind, parse_reply
from flows.understanding.normalize import fold
from storage import audit
from storage.crypto import PhoneVault
from storage.models import Channel, OptOut
from storage.outbox import add_message

__all__ = ["CONFIRM_WITHIN", "TEXTS", "OptIn", "OptInStep", "handle_opt_in", "lift_opt_out"]

CONFIRM_WITHIN = timedelta(hours=24)
# English keywords get an English reply; everything else is answered in Vietnamese.
_ENGLISH = frozenset({"start", "subscribe", "unstop", "resume", "opt", "yes", "y"})


class OptInStep(StrEnum):
    """What one message did to an opt-in."""

    NOT_OPTED_OUT = "not opted out"
    CONFIRM_ASKED = "opt-in asked for confirmation"
    REJOINED = "opt-in confirmed, refusal lifted"


TEXTS: Mapping[OptInStep, Mapping[str, str]] = {
    OptInStep.CONFIRM_ASKED: {
        "vi": "Ong/Ba muon nhan lai tin khao sat sau khi giai quyet ho so? De xac nhan, trong 24 gio "
        "tra loi DK mot lan nua (hoac CO). Neu khong, xin bo qua tin nay.",
        "en": "Do you want survey messages about your cases again? To confirm, reply DK again (or YES) "
        "within 24 hours. Otherwise, please ignore this message.",
    },
    OptInStep.REJOINED: {
        "vi": "Da dang ky lai: Ong/Ba se nhan tin khao sat khi co ho so moi duoc giai quyet. "
        "Tu choi bat cu luc nao: tra loi TC. Xin cam on Ong/Ba.",
        "en": "You are back: we will send you a survey when your next case is handled. "
        "To refuse at any time, reply TC. Thank you.",
    },
    OptInStep.NOT_OPTED_OUT: {
        "vi": "So nay van nhan tin khao sat sau khi giai quyet ho so, khong can dang ky. "
        "Tu choi: tra loi TC.",
        "en": "This number already receives survey messages about its cases; nothing to do. "
        "To refuse, reply TC.",
    },
}


@dataclass(frozen=True)
class OptIn:
    """The outcome of a message about opting in: what happened and the outbox ids to send."""

    step: OptInStep
    outbox_ids: tuple[int, ...]


def handle_opt_in(
    session: Session,
    vault: PhoneVault,
    sender: str,
    sender_hash: str,
    text: str,
    dedupe_prefix: str,
    now: datetime,
) -> OptIn | None:
    """Apply an SMS from `sender` (E.164) that reached no active survey; None when it is not
    about opting in (the caller goes on as before). The reply is queued in the outbox keyed
    `<dedupe_prefix>0`, so a retried job finds it instead of adding a twin."""
    if not sender_hash:
        return None
    parsed = parse_reply(text, ReplyKind.TEXT)
    asked = parsed.keyword is Keyword.OPT_IN
    refusal = session.get(OptOut, sender_hash, with_for_update=True)
    pending = refusal is not None and _pending(refusal, now)
    if not asked and not (pending and _confirms(text)):
        return None
    if refusal is None:
        step = OptInStep.NOT_OPTED_OUT
    elif pending:
        lift_opt_out(session, refusal, actor="citizen:sms", action="opt_outs.rejoin")
        step = OptInStep.REJOINED
    else:
        refusal.rejoin_requested_at = now
        step = OptInStep.CONFIRM_ASKED
    language = "en" if _is_english(text) else "vi"
    message = add_message(
        session,
        dedupe_key=f"{dedupe_prefix}0",
        channel=Channel.SMS,
        recipient_enc=vault.encrypt(sender),
        text=TEXTS[step][language],
    )
    session.flush()
    return OptIn(step, (message.id,))


def lift_opt_out(session: Session, refusal: OptOut, *, actor: str, action: str) -> None:
    """Delete a refusal and write it to the audit log (the phone itself is never written: the
    target names the first characters of its look-up hash)."""
    before = {"source": refusal.source, "created_at": refusal.created_at.isoformat()}
    audit.append(session, actor, action, f"opt_out:{refusal.phone_hash[:12]}", before, None)
    session.delete(refusal)
    session.flush()


def _pending(refusal: OptOut, now: datetime) -> bool:
    requested = refusal.rejoin_requested_at
    return requested is not None and now - requested <= CONFIRM_WITHIN


def _confirms(text: str) -> bool:
    """ "CO", "yes", "dong y": a plain yes confirms a pending opt-in (a yes with words does not)."""
    reply = parse_reply(text, ReplyKind.YESNO)
    return reply.understood and reply.value == 1 and reply.comment is None


def _is_english(text: str) -> bool:
    words = fold(text).split()
    return bool(words) and words[0] in _ENGLISH
