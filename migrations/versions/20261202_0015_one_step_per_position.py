"""one referral step per position, in the schema

A referral's steps are numbered ``max(position) + 1`` by whoever steps it. On PostgreSQL two writers
stepping one referral at once (two moves, a move and a partner's answer, a move and a consent
withdrawal) could both read the same maximum and both insert at it. The services now lock the
referral row before they step it; ``uq_referral_step_referral_id_position`` makes the numbering a rule
of the database as well, as ``uq_case_transition_case_id_position`` (0011) does for a case's history,
so a step that would share a position fails instead of landing beside another.

Steps that already share a position are renumbered, every step kept, in their recorded order (position,
then day, then id), so nothing of a referral's timeline is lost.

Downgrade drops the index; the renumbered steps stay as they are.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _renumber_shared_positions(conn: sa.Connection) -> None:
    shared = conn.execute(
        sa.text("SELECT referral_id FROM referral_step GROUP BY referral_id, position HAVING COUNT(*) > 1")
    ).all()
    for referral_id in {r[0] for r in shared}:
        steps = conn.execute(
            sa.text('SELECT id FROM referral_step WHERE referral_id = :r ORDER BY position, "on", id'),
            {"r": referral_id},
        ).all()
        # First every step out of the way, then into place: no step meets another on its way.
        for offset in (len(steps) + 1_000_000, 0):
            for n, (step_id,) in enumerate(steps):
                conn.execute(
                    sa.text("UPDATE referral_step SET position = :p WHERE id = :i"), {"p": offset + n, "i": step_id}
                )


def upgrade() -> None:
    _renumber_shared_positions(op.get_bind())
    op.create_index(
        "uq_referral_step_referral_id_position", "referral_step", ["referral_id", "position"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_referral_step_referral_id_position", table_name="referral_step")
