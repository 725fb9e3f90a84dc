"""index epochs: a building epoch beside the active one, per-column widths, sealed normalised values

The blind index widens itself as the data grows: a new epoch is built in the background while
look-ups consult both, so each epoch now says whether it is complete (``state``), how wide each
column's buckets are (``widths``) and who is building it (``builder``, ``lease_until``). Each entry
keeps its subject's normalised handle sealed under the subject's data key (``value_ct``), so a
look-up compares candidates without decrypting and re-normalising every record. Entries made
before this revision get their sealed value when the index is next rebuilt.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("index_key") as batch:
        batch.add_column(sa.Column("state", sa.String(16), nullable=False, server_default="active"))
        batch.add_column(sa.Column("widths", sa.String(512), nullable=True))
        batch.add_column(sa.Column("builder", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("blind_index_entry") as batch:
        batch.add_column(sa.Column("value_ct", sa.LargeBinary(), nullable=True))
    # A rebuild interrupted under the older code left its new epoch partial beside the complete old
    # one: that new epoch is a building one, and finishing the rebuild completes it.
    key = sa.table("index_key", sa.column("epoch"), sa.column("state"))
    oldest = sa.select(sa.func.min(key.c.epoch)).scalar_subquery()
    op.execute(key.update().where(key.c.epoch > oldest).values(state="building"))


def downgrade() -> None:
    # An unfinished epoch means nothing to the older schema: drop it and what was built of it.
    building = sa.select(sa.column("epoch")).select_from(sa.table("index_key")).where(sa.column("state") == "building")
    op.execute(sa.table("blind_index_entry", sa.column("epoch")).delete().where(sa.column("epoch").in_(building)))
    op.execute(sa.table("index_key", sa.column("state")).delete().where(sa.column("state") == "building"))
    with op.batch_alter_table("blind_index_entry") as batch:
        batch.drop_column("value_ct")
    with op.batch_alter_table("index_key") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("builder")
        batch.drop_column("widths")
        batch.drop_column("state")
