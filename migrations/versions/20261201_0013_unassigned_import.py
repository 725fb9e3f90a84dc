"""unassigned import: a referral imported with no caseworker named is recorded and opened by nobody here

``contact.recorded_by_id``, ``evacuation_case.opened_by_id`` and ``case_transition.actor_id`` may be null:
the contact and case a partner's package creates without ``--assign`` belong to no account until a
coordinator assigns the case (the import itself is in the audit log under whoever ran it).

Downgrade refuses while such rows exist: there is no account to put in them.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("contact", "recorded_by_id"), ("evacuation_case", "opened_by_id"), ("case_transition", "actor_id"))


def _defer_foreign_keys() -> None:
    # SQLite rebuilds a table to change a column; rows elsewhere point at it meanwhile, so the foreign-key
    # check waits for the commit, when the rebuilt table holds every row again.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA defer_foreign_keys = ON")


def upgrade() -> None:
    _defer_foreign_keys()
    for table, column in COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, existing_type=sa.Uuid(), nullable=True)


def downgrade() -> None:
    bind = op.get_bind()
    for table, column in COLUMNS:
        if bind.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {column} IS NULL")).scalar():
            raise RuntimeError(f"{table} has rows with no {column} (unassigned imports); assign them first")
    _defer_foreign_keys()
    for table, column in COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, existing_type=sa.Uuid(), nullable=False)
