"""procedure counts (issue 8: the dashboard's procedure filter)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 19:15:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Additive: the daily counts split by procedure, and the procedures seen. Days computed
    # before this have no procedure rows until they are recomputed (`sipas scores compute`).
    op.create_table(
        "daily_procedure_counts",
        sa.Column("procedure_code", sa.String(length=64), nullable=False),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("w", sa.Float(), nullable=False),
        sa.Column("wk", sa.Float(), nullable=False),
        sa.Column("w2", sa.Float(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_daily_procedure_counts_agency_id_agencies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daily_procedure_counts")),
        sa.UniqueConstraint(
            "procedure_code", "day", "agency_id", "channel", "metric", name="uq_daily_procedure_counts_key"
        ),
    )
    op.create_index(op.f("ix_daily_procedure_counts_day"), "daily_procedure_counts", ["day"], unique=False)
    op.create_table(
        "procedures",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=True),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_procedures")),
    )


def downgrade() -> None:
    op.drop_table("procedures")
    op.drop_index(op.f("ix_daily_procedure_counts_day"), table_name="daily_procedure_counts")
    op.drop_table("daily_procedure_counts")
