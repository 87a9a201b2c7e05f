"""sends in flight (issue 10: a claim whose request never left is sent again by itself)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 19:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Additive. outbound_messages.requested_at: when the current claim's request was about to
    # leave (set, committed, just before the HTTP call). An expired claim without it never reached
    # the gateway and is queued again; with it, its outcome is unknown (storage.outbox).
    with op.batch_alter_table("outbound_messages") as batch:
        batch.add_column(sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbound_messages") as batch:
        batch.drop_column("requested_at")
