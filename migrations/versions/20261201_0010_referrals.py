"""referrals: partner organisations, consents, referrals made and received

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "partner",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("age_recipient", sa.String(128), nullable=False),
        sa.Column("verify_key", sa.String(64), nullable=False),
        sa.Column("inbox_url", sa.String(256), nullable=True),
        sa.Column("added_on", sa.Date(), nullable=False),
        sa.Column("removed_on", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner")),
        sa.UniqueConstraint("name", name=op.f("uq_partner_name")),
    )
    op.create_index(op.f("ix_partner_verify_key"), "partner", ["verify_key"])
    op.create_table(
        "referral_consent",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("terms_ct", sa.LargeBinary(), nullable=True),
        sa.Column("recorded_on", sa.Date(), nullable=False),
        sa.Column("recorded_by_id", sa.Uuid(), nullable=False),
        sa.Column("withdrawn_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["evacuation_case.id"],
            name=op.f("fk_referral_consent_case_id_evacuation_case"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"], name=op.f("fk_referral_consent_partner_id_partner")),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"], ["user_account.id"], name=op.f("fk_referral_consent_recorded_by_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_consent")),
    )
    op.create_index(op.f("ix_referral_consent_case_id"), "referral_consent", ["case_id"])
    op.create_table(
        "referral",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("consent_id", sa.Uuid(), nullable=False),
        sa.Column("recipient", sa.String(128), nullable=False),
        sa.Column("partner_verify_key", sa.String(64), nullable=False),
        sa.Column("fields", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sent_on", sa.Date(), nullable=False),
        sa.Column("status_on", sa.Date(), nullable=False),
        sa.Column("created_by_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["evacuation_case.id"], name=op.f("fk_referral_case_id_evacuation_case"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"], name=op.f("fk_referral_partner_id_partner")),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["referral_consent.id"], name=op.f("fk_referral_consent_id_referral_consent")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["user_account.id"], name=op.f("fk_referral_created_by_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral")),
        sa.UniqueConstraint("code", name=op.f("uq_referral_code")),
    )
    op.create_index(op.f("ix_referral_case_id"), "referral", ["case_id"])
    op.create_index(op.f("ix_referral_partner_id"), "referral", ["partner_id"])
    op.create_index(op.f("ix_referral_status"), "referral", ["status"])
    op.create_index(op.f("ix_referral_sent_on"), "referral", ["sent_on"])
    op.create_table(
        "referral_step",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("on", sa.Date(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referral.id"], name=op.f("fk_referral_step_referral_id_referral"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_step")),
    )
    op.create_index(op.f("ix_referral_step_referral_id"), "referral_step", ["referral_id"])
    op.create_table(
        "received_referral",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("imported_on", sa.Date(), nullable=False),
        sa.Column("imported_by", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partner.id"], name=op.f("fk_received_referral_partner_id_partner")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["evacuation_case.id"],
            name=op.f("fk_received_referral_case_id_evacuation_case"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_received_referral")),
        sa.UniqueConstraint("partner_id", "code", name="uq_received_referral_partner_code"),
        sa.UniqueConstraint("digest", name=op.f("uq_received_referral_digest")),
    )


    op.create_table(
        "referral_inbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("imported_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"], name=op.f("fk_referral_inbox_partner_id_partner")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_inbox")),
        sa.UniqueConstraint("digest", name=op.f("uq_referral_inbox_digest")),
    )
    op.create_index(op.f("ix_referral_inbox_partner_id"), "referral_inbox", ["partner_id"])
    op.create_index(op.f("ix_referral_inbox_received_on"), "referral_inbox", ["received_on"])


def downgrade() -> None:
    op.drop_index(op.f("ix_referral_inbox_received_on"), table_name="referral_inbox")
    op.drop_index(op.f("ix_referral_inbox_partner_id"), table_name="referral_inbox")
    op.drop_table("referral_inbox")
    op.drop_table("received_referral")
    op.drop_index(op.f("ix_referral_step_referral_id"), table_name="referral_step")
    op.drop_table("referral_step")
    for name in ("sent_on", "status", "partner_id", "case_id"):
        op.drop_index(op.f(f"ix_referral_{name}"), table_name="referral")
    op.drop_table("referral")
    op.drop_index(op.f("ix_referral_consent_case_id"), table_name="referral_consent")
    op.drop_table("referral_consent")
    op.drop_index(op.f("ix_partner_verify_key"), table_name="partner")
    op.drop_table("partner")
