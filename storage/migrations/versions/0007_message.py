"""message path (issues 9 and 10: sends, dead letters, batching)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Additive. outbound_messages.status gains the value "unknown" (a non-native enum: no DDL).
    # claim_token: whose claim a settlement belongs to (a late worker changes nothing).
    # inbound_events.dead_at/last_error: poison events set aside after too many failures.
    with op.batch_alter_table("outbound_messages") as batch:
        batch.add_column(sa.Column("claim_token", sa.String(length=32), nullable=True))
    with op.batch_alter_table("inbound_events") as batch:
        batch.add_column(sa.Column("dead_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbound_events") as batch:
        batch.drop_column("last_error")
        batch.drop_column("dead_at")
    with op.batch_alter_table("outbound_messages") as batch:
        batch.drop_column("claim_token")
