"""accounts: sign-in throttle by name, spent TOTP steps, failure decay, duress password

- ``sign_in_throttle``: wrong passwords are counted per keyed digest of the typed name (known or not),
  so they slow that name down alike for real and made-up accounts and never lock anyone out.
- ``totp_spent``: one row per (user, time step); its primary key makes a code usable once even when
  several workers check it at the same moment.
- ``user_account.last_failure_at``: wrong codes after a correct password decay after a quiet period.
- ``user_account.duress_hash`` and the ``duress`` flag of sessions and tokens: a second password that
  opens an empty caseload.

Rows already present: nothing to convert; every existing session and token is a real one.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sign_in_throttle",
        sa.Column("name_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name_digest", name=op.f("pk_sign_in_throttle")),
    )
    op.create_index(op.f("ix_sign_in_throttle_last_failure_at"), "sign_in_throttle", ["last_failure_at"])
    op.create_table(
        "totp_spent",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_totp_spent_user_id_user_account"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "step", name=op.f("pk_totp_spent")),
    )
    with op.batch_alter_table("user_account") as batch:
        batch.add_column(sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("duress_hash", sa.String(length=255), nullable=True))
    for table in ("web_session", "api_token"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("duress", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    for table in ("web_session", "api_token"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("duress")
    with op.batch_alter_table("user_account") as batch:
        batch.drop_column("duress_hash")
        batch.drop_column("last_failure_at")
    op.drop_table("totp_spent")
    op.drop_index(op.f("ix_sign_in_throttle_last_failure_at"), table_name="sign_in_throttle")
    op.drop_table("sign_in_throttle")
