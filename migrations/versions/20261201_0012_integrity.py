"""integrity: the audit chain keyed by the key provider, seals over security columns

Adds ``audit_entry.key_id`` (the integrity root an entry's HMAC link is under) and ``seal`` on
``user_account`` and ``evacuation_case``. The keyed values themselves need the key provider, which a
schema migration does not hold: ``helpline migrate`` (app.bootstrap.migrate) re-links an existing chain
under the audit key once and seals the rows that existed before, recording it in the chain.

Downgrade puts the chain back on the unkeyed SHA-256 links the older release verifies.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_entry") as batch:
        batch.add_column(sa.Column("key_id", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("user_account") as batch:
        batch.add_column(sa.Column("seal", sa.String(80), nullable=True))
    with op.batch_alter_table("evacuation_case") as batch:
        batch.add_column(sa.Column("seal", sa.String(80), nullable=True))


def downgrade() -> None:
    from app.audit.link import GENESIS, legacy_hash

    conn = op.get_bind()
    entry = sa.table(
        "audit_entry",
        sa.column("at", sa.DateTime(timezone=True)),
        *(sa.column(c) for c in ("seq", "actor", "action", "target", "detail", "prev_hash", "hash")),
    )
    prev = GENESIS
    rows = conn.execute(
        sa.select(entry.c.seq, entry.c.at, entry.c.actor, entry.c.action, entry.c.target, entry.c.detail).order_by(
            entry.c.seq
        )
    ).all()
    for seq, at, actor, action, target, detail in rows:
        value = legacy_hash(seq=seq, at=at, actor=actor, action=action, target=target, detail=detail, prev=prev)
        conn.execute(entry.update().where(entry.c.seq == seq).values(prev_hash=prev, hash=value))
        prev = value
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+): a batch rebuild would drop and re-create
    # user_account and evacuation_case, which rows of other tables reference.
    op.drop_column("evacuation_case", "seal")
    op.drop_column("user_account", "seal")
    op.drop_column("audit_entry", "key_id")
