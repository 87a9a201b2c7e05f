"""The Zalo OA token row: read it, replace it (callers encrypt; see bot.channels.zalo.token_store)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import ZaloOAToken, utcnow


def load_oa_token(session: Session, app_id: str) -> ZaloOAToken | None:
    return session.scalar(select(ZaloOAToken).where(ZaloOAToken.app_id == app_id))


def save_oa_token(
    session: Session,
    app_id: str,
    *,
    access_token_enc: str,
    refresh_token_enc: str,
    expires_at: datetime,
    now: datetime | None = None,
) -> ZaloOAToken:
    """Insert the app's first pair or replace the current one (the generation counts refreshes)."""
    row = session.scalar(select(ZaloOAToken).where(ZaloOAToken.app_id == app_id).with_for_update())
    if row is None:
        row = ZaloOAToken(app_id=app_id, generation=0)
        session.add(row)
    row.access_token_enc = access_token_enc
    row.refresh_token_enc = refresh_token_enc
    row.expires_at = expires_at
    row.refreshed_at = now or utcnow()
    row.generation = (row.generation or 0) + 1
    session.flush()
    return row
