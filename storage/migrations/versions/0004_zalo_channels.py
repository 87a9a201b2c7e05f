"""zalo channels: message routes, survey zalo link and start code

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ROUTE = sa.Enum("sms", "zalo_oa", "zalo_bot", "zns", name="route", native_enum=False, length=24)


def upgrade() -> None:
    # Additive: existing rows keep NULL routes, which mean "the channel's usual API".
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("route", _ROUTE, nullable=True))
        batch_op.add_column(sa.Column("payload", sa.JSON(), nullable=True))
    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("zalo_route", _ROUTE, nullable=True))
        batch_op.add_column(sa.Column("zalo_chat_enc", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("zalo_chat_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("start_code", sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f("ix_surveys_zalo_chat_hash"), ["zalo_chat_hash"], unique=False)
        batch_op.create_unique_constraint(batch_op.f("uq_surveys_start_code"), ["start_code"])


def downgrade() -> None:
    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_surveys_start_code"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_surveys_zalo_chat_hash"))
        batch_op.drop_column("start_code")
        batch_op.drop_column("zalo_chat_hash")
        batch_op.drop_column("zalo_chat_enc")
        batch_op.drop_column("zalo_route")
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.drop_column("payload")
        batch_op.drop_column("route")
