"""invariants: one case per contact and one history entry per (case, position), in the schema

Two requests that open a case from the same contact, or move a case at the same moment, are told
apart by the database, not by a Python check that both pass before either commits:

- ``uq_evacuation_case_contact_id``: one case per contact;
- ``uq_case_transition_case_id_position``: one history entry per position of a case, so two moves
  decided on the same read cannot both land (status moves are also a compare-and-set on the status
  they were checked against, in the service).

One verification and one assignment per case need no constraint of their own: each is one column of
the case row (``verified_by_id``, ``assigned_to_id``), written under the case's row lock.

It also adds ``idempotency_key`` (the API's remembered answers) and ``form_token`` (the web forms'
spent one-time tokens), both written in the same transaction as the write they guard
(``app/idempotency``).

Rows that already break them:
- a case's history with two entries at one position is renumbered, every entry kept, in its recorded
  order (position, then day, then id), so nothing of the history is lost;
- two cases opened from one contact cannot be merged by a migration (both may hold sealed fields and
  their own data keys): the upgrade stops, naming the case codes, and changes nothing. Decide which
  case is the real one, move what it needs by hand, ``helpline case shred`` the other and remove its row
  (or re-point its contact), then migrate again.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _refuse_duplicate_cases(conn: sa.Connection) -> None:
    rows = conn.execute(
        sa.text(
            "SELECT c.code FROM evacuation_case c WHERE c.contact_id IN ("
            " SELECT contact_id FROM evacuation_case GROUP BY contact_id HAVING COUNT(*) > 1"
            ") ORDER BY c.contact_id, c.opened_on, c.code"
        )
    ).all()
    if rows:
        codes = ", ".join(r[0] for r in rows)
        raise RuntimeError(
            f"cases opened twice from one contact: {codes}; keep one case of each contact, then migrate again"
        )


def _renumber_duplicate_positions(conn: sa.Connection) -> None:
    cases = conn.execute(
        sa.text("SELECT case_id FROM case_transition GROUP BY case_id, position HAVING COUNT(*) > 1")
    ).all()
    for case_id in {r[0] for r in cases}:
        steps = conn.execute(
            sa.text('SELECT id FROM case_transition WHERE case_id = :c ORDER BY position, "on", id'),
            {"c": case_id},
        ).all()
        # Two passes: move every entry out of the way first, so no step meets the new index midway.
        offset = len(steps) + 1_000_000
        for n, (step_id,) in enumerate(steps):
            conn.execute(
                sa.text("UPDATE case_transition SET position = :p WHERE id = :i"), {"p": offset + n, "i": step_id}
            )
        for n, (step_id,) in enumerate(steps):
            conn.execute(sa.text("UPDATE case_transition SET position = :p WHERE id = :i"), {"p": n, "i": step_id})


def upgrade() -> None:
    conn = op.get_bind()
    _refuse_duplicate_cases(conn)
    _renumber_duplicate_positions(conn)
    op.create_index("uq_evacuation_case_contact_id", "evacuation_case", ["contact_id"], unique=True)
    op.create_index("uq_case_transition_case_id_position", "case_transition", ["case_id", "position"], unique=True)
    op.create_table(
        "idempotency_key",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("answer_id", sa.String(64), nullable=True),
        sa.Column("answer_code", sa.String(32), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name="fk_idempotency_key_user_id_user_account", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "key_hash", name="pk_idempotency_key"),
    )
    op.create_index("ix_idempotency_key_created_at", "idempotency_key", ["created_at"])
    op.create_table(
        "form_token",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("spent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_form_token"),
    )
    op.create_index("ix_form_token_spent_at", "form_token", ["spent_at"])


def downgrade() -> None:
    op.drop_index("ix_form_token_spent_at", table_name="form_token")
    op.drop_table("form_token")
    op.drop_index("ix_idempotency_key_created_at", table_name="idempotency_key")
    op.drop_table("idempotency_key")
    op.drop_index("uq_case_transition_case_id_position", table_name="case_transition")
    op.drop_index("uq_evacuation_case_contact_id", table_name="evacuation_case")
