"""core schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "audit_entry",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_entry")),
    )
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_entry_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_entry_target"), ["target"], unique=False)

    op.create_table(
        "blind_index_entry",
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("column", sa.String(length=48), nullable=False),
        sa.Column("epoch", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("subject_id", "column", "epoch", name=op.f("pk_blind_index_entry")),
    )
    with op.batch_alter_table("blind_index_entry", schema=None) as batch_op:
        batch_op.create_index("ix_blind_index_entry_lookup", ["column", "epoch", "bucket"], unique=False)

    op.create_table(
        "data_key",
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("key_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kek_id", sa.BigInteger(), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("subject_id", "key_id", name=op.f("pk_data_key")),
    )
    with op.batch_alter_table("data_key", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_key_kek_id"), ["kek_id"], unique=False)

    op.create_table(
        "flagged_handle",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("handle_ct", sa.LargeBinary(), nullable=False),
        sa.Column("reason_ct", sa.LargeBinary(), nullable=True),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.Column("added_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flagged_handle")),
    )
    op.create_table(
        "index_key",
        sa.Column("epoch", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kek_id", sa.BigInteger(), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("epoch", name=op.f("pk_index_key")),
    )
    with op.batch_alter_table("index_key", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_index_key_kek_id"), ["kek_id"], unique=False)

    op.create_table(
        "user_account",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("totp_secret_ct", sa.LargeBinary(), nullable=False),
        sa.Column("totp_enrolled", sa.Boolean(), nullable=False),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("must_change_password", sa.Boolean(), nullable=False),
        sa.Column("credentials_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_account")),
        sa.UniqueConstraint("username", name=op.f("uq_user_account_username")),
    )
    op.create_table(
        "api_token",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_api_token_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_token_token_hash")),
    )
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_token_user_id"), ["user_id"], unique=False)

    op.create_table(
        "contact",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("risk", sa.String(length=16), nullable=False),
        sa.Column("needs", sa.String(length=128), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("possible_duplicate", sa.Boolean(), nullable=False),
        sa.Column("flagged_handle", sa.Boolean(), nullable=False),
        sa.Column("recorded_by_id", sa.Uuid(), nullable=False),
        sa.Column("alias_ct", sa.LargeBinary(), nullable=True),
        sa.Column("handle_ct", sa.LargeBinary(), nullable=True),
        sa.Column("notes_ct", sa.LargeBinary(), nullable=True),
        sa.Column("last_activity_on", sa.Date(), nullable=False),
        sa.Column("shredded_on", sa.Date(), nullable=True),
        sa.Column("shredded_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"], ["user_account.id"], name=op.f("fk_contact_recorded_by_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact")),
        sa.UniqueConstraint("code", name=op.f("uq_contact_code")),
    )
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contact_received_on"), ["received_on"], unique=False)
        batch_op.create_index(
            "ix_contact_recorded_by_received_on", ["recorded_by_id", "received_on"], unique=False
        )

    op.create_table(
        "web_session",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("csrf_secret", sa.LargeBinary(length=32), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_web_session_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_session")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_session_token_hash")),
    )
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_session_user_id"), ["user_id"], unique=False)

    op.create_table(
        "evacuation_case",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("opened_by_id", sa.Uuid(), nullable=False),
        sa.Column("assigned_to_id", sa.Uuid(), nullable=True),
        sa.Column("verified_by_id", sa.Uuid(), nullable=True),
        sa.Column("verified_on", sa.Date(), nullable=True),
        sa.Column("first_contact_on", sa.Date(), nullable=False),
        sa.Column("evacuated_on", sa.Date(), nullable=True),
        sa.Column("resettled_on", sa.Date(), nullable=True),
        sa.Column("closed_on", sa.Date(), nullable=True),
        sa.Column("status_on", sa.Date(), nullable=False),
        sa.Column("full_name_ct", sa.LargeBinary(), nullable=True),
        sa.Column("handle_ct", sa.LargeBinary(), nullable=True),
        sa.Column("location_ct", sa.LargeBinary(), nullable=True),
        sa.Column("family_situation_ct", sa.LargeBinary(), nullable=True),
        sa.Column("notes_ct", sa.LargeBinary(), nullable=True),
        sa.Column("shredded_on", sa.Date(), nullable=True),
        sa.Column("shredded_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["assigned_to_id"],
            ["user_account.id"],
            name=op.f("fk_evacuation_case_assigned_to_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_evacuation_case_contact_id_contact")
        ),
        sa.ForeignKeyConstraint(
            ["opened_by_id"], ["user_account.id"], name=op.f("fk_evacuation_case_opened_by_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["verified_by_id"],
            ["user_account.id"],
            name=op.f("fk_evacuation_case_verified_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evacuation_case")),
        sa.UniqueConstraint("code", name=op.f("uq_evacuation_case_code")),
    )
    with op.batch_alter_table("evacuation_case", schema=None) as batch_op:
        batch_op.create_index(
            "ix_evacuation_case_assigned_to_status", ["assigned_to_id", "status"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_evacuation_case_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_evacuation_case_opened_on"), ["opened_on"], unique=False)
        batch_op.create_index(batch_op.f("ix_evacuation_case_status"), ["status"], unique=False)

    op.create_table(
        "case_transition",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("on", sa.Date(), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=False),
        sa.Column("note_ct", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["user_account.id"], name=op.f("fk_case_transition_actor_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["evacuation_case.id"],
            name=op.f("fk_case_transition_case_id_evacuation_case"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_transition")),
    )
    with op.batch_alter_table("case_transition", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_transition_case_id"), ["case_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("case_transition", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_transition_case_id"))

    op.drop_table("case_transition")
    with op.batch_alter_table("evacuation_case", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evacuation_case_status"))
        batch_op.drop_index(batch_op.f("ix_evacuation_case_opened_on"))
        batch_op.drop_index(batch_op.f("ix_evacuation_case_contact_id"))
        batch_op.drop_index("ix_evacuation_case_assigned_to_status")

    op.drop_table("evacuation_case")
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_session_user_id"))

    op.drop_table("web_session")
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_recorded_by_received_on")
        batch_op.drop_index(batch_op.f("ix_contact_received_on"))

    op.drop_table("contact")
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_token_user_id"))

    op.drop_table("api_token")
    op.drop_table("user_account")
    with op.batch_alter_table("index_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_index_key_kek_id"))

    op.drop_table("index_key")
    op.drop_table("flagged_handle")
    with op.batch_alter_table("data_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_key_kek_id"))

    op.drop_table("data_key")
    with op.batch_alter_table("blind_index_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_blind_index_entry_lookup")

    op.drop_table("blind_index_entry")
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entry_target"))
        batch_op.drop_index(batch_op.f("ix_audit_entry_action"))

    op.drop_table("audit_entry")
