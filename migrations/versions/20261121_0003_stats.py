"""stats: period counters kept in the writing transaction, and stored noisy releases

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The primary key (grain, period, ...) is the index a summary's range scan uses.
    op.create_table(
        "period_count",
        sa.Column("grain", sa.String(length=8), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("measure", sa.String(length=32), nullable=False),
        sa.Column("dim", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=32), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("grain", "period", "measure", "dim", "value", name=op.f("pk_period_count")),
    )
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


def downgrade() -> None:
    op.drop_table("dp_release")
    op.drop_table("period_count")
