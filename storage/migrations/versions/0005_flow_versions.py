"""flow versions and live assignments

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Additive: published flows (immutable, numbered per name) and which one is live per
    # (agency or default, channel). Existing surveys keep flow_name/flow_version; version 1 of a
    # shipped flow is stored the first time it is used (flows.versions).
    op.create_table(
        "flow_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_versions")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_flow_versions_name_version")),
        sa.UniqueConstraint("name", "checksum", name=op.f("uq_flow_versions_name_checksum")),
    )
    op.create_table(
        "flow_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=True),
        sa.Column(
            "channel",
            sa.Enum("sms", "zalo", name="channel", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("flow_version_id", sa.Integer(), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("assigned_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_flow_assignments_agency_id_agencies")
        ),
        sa.ForeignKeyConstraint(
            ["flow_version_id"],
            ["flow_versions.id"],
            name=op.f("fk_flow_assignments_flow_version_id_flow_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_assignments")),
    )
    op.create_index("ix_flow_assignments_scope", "flow_assignments", ["agency_id", "channel"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_flow_assignments_scope", table_name="flow_assignments")
    op.drop_table("flow_assignments")
    op.drop_table("flow_versions")
