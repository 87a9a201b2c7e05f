"""hardening (issue 10: edge defects, keys, retention)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Always empty: /readyz writes a row and rolls back to prove the database takes writes.
    op.create_table(
        "readiness_probes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("probed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_readiness_probes")),
    )


def downgrade() -> None:
    op.drop_table("readiness_probes")
