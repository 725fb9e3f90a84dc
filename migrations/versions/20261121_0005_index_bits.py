"""index bits: each blind-index epoch records how many bits its buckets keep

Changing HELPLINE_INDEX_BITS must not silently move existing entries to other buckets: the width is
part of the epoch, and a new width takes a new epoch (an index rebuild).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every epoch made before this revision used the default width.
    with op.batch_alter_table("index_key") as batch:
        batch.add_column(sa.Column("bits", sa.Integer(), nullable=False, server_default="12"))


def downgrade() -> None:
    with op.batch_alter_table("index_key") as batch:
        batch.drop_column("bits")
