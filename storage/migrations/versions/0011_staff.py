"""staff workspace (issue 12: agency rules, holidays, inbox)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Additive: per-agency rules (flows.rules) and the inbox of messages outside any survey.
    op.create_table(
        "agency_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_agency_rules_agency_id_agencies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agency_rules")),
        sa.UniqueConstraint("agency_id", "name", name=op.f("uq_agency_rules_agency_id_name")),
    )
    op.create_table(
        "inbox_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inbound_event_id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=True),
        sa.Column(
            "channel",
            sa.Enum("sms", "zalo", name="channel", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("sender_enc", sa.Text(), nullable=False),
        sa.Column("sender_hash", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("new", "read", "handled", "forwarded", name="inboxstatus", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("auto_reply_id", sa.Integer(), nullable=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("handled_by", sa.String(length=128), nullable=True),
        sa.Column("forwarded_to", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["inbound_event_id"],
            ["inbound_events.id"],
            name=op.f("fk_inbox_messages_inbound_event_id_inbound_events"),
        ),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_inbox_messages_agency_id_agencies")
        ),
        sa.ForeignKeyConstraint(
            ["auto_reply_id"],
            ["outbound_messages.id"],
            name=op.f("fk_inbox_messages_auto_reply_id_outbound_messages"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_messages")),
        sa.UniqueConstraint("inbound_event_id", name=op.f("uq_inbox_messages_inbound_event_id")),
    )
    op.create_index("ix_inbox_agency_status", "inbox_messages", ["agency_id", "status"], unique=False)
    op.create_index(op.f("ix_inbox_messages_sender_hash"), "inbox_messages", ["sender_hash"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_inbox_messages_sender_hash"), table_name="inbox_messages")
    op.drop_index("ix_inbox_agency_status", table_name="inbox_messages")
    op.drop_table("inbox_messages")
    op.drop_table("agency_rules")
