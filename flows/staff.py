"""A unit's staff numbers (never surveyed about their own unit): registered, listed masked and
removed the same way by the /agencies pages and `sipas staff`, each change in the audit log.

Numbers are kept as their look-up hash (what intake matches) and encrypted (what lets staff see
the list). Rows registered before the numbers were kept encrypted hold only the hash: they are
listed as HASH_ONLY and can be removed; registering the number again fills its encrypted form in.
The audit log keeps the number masked, never in full.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from flows.inbox import mask_sender
from storage import audit
from storage.agencies import add_staff_phone, remove_staff_phone
from storage.crypto import PhoneVault
from storage.models import Agency, StaffPhone

__all__ = ["HASH_ONLY", "register", "remove", "shown"]

HASH_ONLY = "(số cũ, chỉ có mã băm)"


def shown(vault: PhoneVault, row: StaffPhone) -> str:
    """A staff number as pages, the CLI and the audit log show it: `091••••678`, or HASH_ONLY."""
    return mask_sender(vault.decrypt(row.phone_enc)) if row.phone_enc is not None else HASH_ONLY


def register(session: Session, vault: PhoneVault, agency: Agency, phone: str, *, actor: str) -> bool:
    """Register `phone` (E.164) as a staff number of `agency`; False when it already was."""
    added = add_staff_phone(session, agency.id, vault.lookup_hash(phone), vault.encrypt(phone))
    if added:
        audit.append(session, actor, "staff.add", f"agency:{agency.code}", None,
                     {"phone": mask_sender(phone)}, agency_id=agency.id)  # fmt: skip
    return added


def remove(session: Session, vault: PhoneVault, agency: Agency, row: StaffPhone, *, actor: str) -> str:
    """Unregister one of `agency`'s staff numbers; returns how it was shown."""
    if row.agency_id != agency.id:
        raise ValueError("not a staff number of this unit")
    before = shown(vault, row)
    remove_staff_phone(session, row)
    audit.append(session, actor, "staff.remove", f"agency:{agency.code}", {"phone": before}, None,
                 agency_id=agency.id)  # fmt: skip
    return before
