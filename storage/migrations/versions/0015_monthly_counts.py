"""monthly counts and units' trend points (issue 8: a cold province view under 200 ms)

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 22:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_VALUES = ("n", "k", "w", "wk", "w2")


def _columns(procedure: bool) -> list[sa.Column[object]]:
    return [
        *([sa.Column("procedure_code", sa.String(length=64), nullable=False)] if procedure else []),
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
    ]


def upgrade() -> None:
    # Additive: the daily rows summed per calendar month (`day` = the month's first day), filled
    # here from the days already counted; from now on the nightly job keeps them in step. The
    # units' trend points need the score formulas: the first nightly run after this upgrade
    # computes them for every day already counted (workers.scores.tasks), or `sipas scores
    # rollup` at once.
    op.create_table(
        "monthly_counts",
        *_columns(procedure=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_monthly_counts_agency_id_agencies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monthly_counts")),
        sa.UniqueConstraint("agency_id", "day", "channel", "metric", name="uq_monthly_counts_key"),
    )
    op.create_index(op.f("ix_monthly_counts_day"), "monthly_counts", ["day"], unique=False)
    op.create_table(
        "monthly_procedure_counts",
        *_columns(procedure=True),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_monthly_procedure_counts_agency_id_agencies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monthly_procedure_counts")),
        sa.UniqueConstraint(
            "procedure_code", "day", "agency_id", "channel", "metric", name="uq_monthly_procedure_counts_key"
        ),
    )
    op.create_index(
        op.f("ix_monthly_procedure_counts_day"), "monthly_procedure_counts", ["day"], unique=False
    )
    op.create_table(
        "unit_points",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("procedure_code", sa.String(length=64), nullable=False),
        sa.Column("span", sa.String(length=8), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("sipas", sa.Float(), nullable=True),
        sa.Column("sipas_n", sa.Integer(), nullable=False),
        sa.Column("sipas_n_eff", sa.Float(), nullable=False),
        sa.Column("overall", sa.Float(), nullable=True),
        sa.Column("overall_n", sa.Integer(), nullable=False),
        sa.Column("overall_n_eff", sa.Float(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_unit_points_agency_id_agencies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unit_points")),
        sa.UniqueConstraint(
            "procedure_code", "span", "channel", "day", "agency_id", name="uq_unit_points_key"
        ),
    )
    op.create_index(op.f("ix_unit_points_day"), "unit_points", ["day"], unique=False)
    month = (
        "date_trunc('month', day)::date"
        if op.get_bind().dialect.name == "postgresql"
        else "date(day, 'start of month')"
    )
    sums = ", ".join(f"sum({value})" for value in _VALUES)
    for target, source, key in (
        ("monthly_counts", "daily_counts", ""),
        ("monthly_procedure_counts", "daily_procedure_counts", "procedure_code, "),
    ):
        # Names and expressions below are this file's constants.
        op.execute(
            f"INSERT INTO {target} ({key}agency_id, day, channel, metric, {', '.join(_VALUES)}, computed_at) "  # noqa: S608
            f"SELECT {key}agency_id, {month}, channel, metric, {sums}, max(computed_at) FROM {source} "
            f"GROUP BY {key}agency_id, {month}, channel, metric"
        )


def downgrade() -> None:
    op.drop_index(op.f("ix_unit_points_day"), table_name="unit_points")
    op.drop_table("unit_points")
    op.drop_index(op.f("ix_monthly_procedure_counts_day"), table_name="monthly_procedure_counts")
    op.drop_table("monthly_procedure_counts")
    op.drop_index(op.f("ix_monthly_counts_day"), table_name="monthly_counts")
    op.drop_table("monthly_counts")
