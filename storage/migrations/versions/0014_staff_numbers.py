"""staff numbers kept encrypted (issue 12: list and remove a unit's staff numbers)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 19:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Additive: the number encrypted (storage.crypto.PhoneVault) beside its look-up hash, so the
    # pages and `sipas staff list` can show it masked. Rows registered before hold only the hash
    # (shown as such, still removable); re-registering a number fills it in.
    with op.batch_alter_table("staff_phones") as batch:
        batch.add_column(sa.Column("phone_enc", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("staff_phones") as batch:
        batch.drop_column("phone_enc")
