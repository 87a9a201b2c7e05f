"""supervisors (issue 7: api tokens, digests, anomaly flags, agency validity, design weights)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Additive: agencies without dates are open-ended; daily counts computed before this keep
    # w = 0, which the report reads as "each answer weighs 1" (flows.scores.formulas.Tally).
    with op.batch_alter_table("agencies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("valid_from", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("valid_to", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("successor_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_agencies_successor_id_agencies"), "agencies", ["successor_id"], ["id"]
        )
    with op.batch_alter_table("daily_counts", schema=None) as batch_op:
        for column in ("w", "wk", "w2"):
            batch_op.add_column(sa.Column(column, sa.Float(), nullable=False, server_default="0"))
    op.create_table(
        "anomaly_flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_anomaly_flags_agency_id_agencies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anomaly_flags")),
        sa.UniqueConstraint("agency_id", "day", "kind", name=op.f("uq_anomaly_flags_agency_id_day_kind")),
    )
    op.create_index(op.f("ix_anomaly_flags_day"), "anomaly_flags", ["day"], unique=False)
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_api_tokens_agency_id_agencies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "digests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"], name=op.f("fk_digests_agency_id_agencies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digests")),
        sa.UniqueConstraint("day", "username", "channel", name=op.f("uq_digests_day_username_channel")),
    )
    op.create_index(op.f("ix_digests_day"), "digests", ["day"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_digests_day"), table_name="digests")
    op.drop_table("digests")
    op.drop_table("api_tokens")
    op.drop_index(op.f("ix_anomaly_flags_day"), table_name="anomaly_flags")
    op.drop_table("anomaly_flags")
    with op.batch_alter_table("daily_counts", schema=None) as batch_op:
        for column in ("w2", "wk", "w"):
            batch_op.drop_column(column)
    with op.batch_alter_table("agencies", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_agencies_successor_id_agencies"), type_="foreignkey")
        batch_op.drop_column("successor_id")
        batch_op.drop_column("valid_to")
        batch_op.drop_column("valid_from")
