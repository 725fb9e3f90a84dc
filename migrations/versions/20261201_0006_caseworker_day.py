"""caseworker's day: notes and corrections on records, the attention queue, forms held across a sign-in

The hourly limits count one person's recent audit entries: an index on (actor, action, at) keeps that
flat as the log grows. Notes and previous values are sealed under the record's own data key, so a shred of the record makes
them unreadable with it. Held forms are sealed under a key of their own and live for minutes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_audit_entry_actor_action_at", "audit_entry", ["actor", "action", "at"])
    op.create_table(
        "record_note",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("written_on", sa.Date(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("text_ct", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["author_id"], ["user_account.id"], name=op.f("fk_record_note_author_id_user_account")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_note")),
        # Append-only, in order: two notes written at once cannot take the same place.
        sa.UniqueConstraint("subject_id", "position", name=op.f("uq_record_note_subject_id")),
    )
    op.create_table(
        "field_correction",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(32), nullable=False),
        sa.Column("corrected_on", sa.Date(), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=False),
        sa.Column("previous_ct", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["user_account.id"], name=op.f("fk_field_correction_actor_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_field_correction")),
        sa.UniqueConstraint("subject_id", "position", name=op.f("uq_field_correction_subject_id")),
    )
    op.create_table(
        "attention_item",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("raised_on", sa.Date(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column("record_code", sa.String(16), nullable=True),
        sa.Column("other_code", sa.String(16), nullable=True),
        sa.Column("raised_by", sa.String(64), nullable=False),
        sa.Column("resolved_on", sa.Date(), nullable=True),
        sa.Column("resolved_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attention_item")),
    )
    op.create_index("ix_attention_item_open", "attention_item", ["resolved_on", "kind"])
    op.create_table(
        "held_form",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("payload_ct", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_held_form_user_id_user_account"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_held_form")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_held_form_token_hash")),
    )


def downgrade() -> None:
    op.drop_index("ix_audit_entry_actor_action_at", table_name="audit_entry")
    op.drop_table("held_form")
    op.drop_index("ix_attention_item_open", table_name="attention_item")
    op.drop_table("attention_item")
    op.drop_table("field_correction")
    op.drop_table("record_note")
