"""release ledger: frozen monthly, quarterly and yearly tables, and a privacy budget per month

The noisy-summary cache (dp_release) goes: published figures now come only from the ledger.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stats_release",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("first_on", sa.Date(), nullable=False),
        sa.Column("last_on", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=True),
        sa.Column("published", sa.Text(), nullable=False),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stats_release")),
        sa.UniqueConstraint("period", name=op.f("uq_stats_release_period")),
    )
    op.create_table(
        "stats_budget",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("epsilon_spent", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("month", name=op.f("pk_stats_budget")),
    )
    op.drop_table("dp_release")


def downgrade() -> None:
    op.create_table(
        "dp_release",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("released_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dp_release")),
        sa.UniqueConstraint("key", name=op.f("uq_dp_release_key")),
    )
    op.drop_table("stats_budget")
    op.drop_table("stats_release")
