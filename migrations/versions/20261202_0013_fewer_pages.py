"""fewer pages per intake: no index that another already serves, keys that are the table on SQLite

An intake wrote about 24 pages on SQLite (each one to the WAL, then back into the file). This removes
the ones that bought nothing:

- ``ix_contact_received_on``: ``ix_contact_export_by_day`` begins with ``received_on`` and serves the
  same look-ups (both databases).
- SQLite only: ``audit_entry.seq`` becomes ``INTEGER`` (still 64-bit), the row id itself, so no separate
  index of it; ``blind_index_entry`` and ``period_count`` — small rows always found by their key —
  become ``WITHOUT ROWID`` tables, so the key is the table and no second index of it is written.

No value changes: the rows are copied as they are (the audit chain and its links included). Downgrade
restores the earlier shapes.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEYED = ("blind_index_entry", "period_count")


def upgrade() -> None:
    op.drop_index("ix_contact_received_on", table_name="contact")
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("audit_entry", recreate="always") as batch:
        batch.alter_column("seq", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False)
    for table in _KEYED:
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_with_rowid": False}):
            pass


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in _KEYED:
            with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_with_rowid": True}):
                pass
        with op.batch_alter_table("audit_entry", recreate="always") as batch:
            batch.alter_column("seq", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False)
    op.create_index("ix_contact_received_on", "contact", ["received_on"], unique=False)
