"""domain: covering indexes for the record-level export's counts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

The export counts contacts by (month, region, channel, risk) and cases by status without reading the
contact table itself (its rows carry the sealed columns): one index in date order for the contact counts,
one in id order for the join from cases, and one (contact_id, status) on cases.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUASI = ["region", "channel", "risk", "shredded_on"]


def upgrade() -> None:
    op.create_index("ix_contact_export_by_day", "contact", ["received_on", *QUASI])
    op.create_index("ix_contact_export_by_id", "contact", ["id", "received_on", *QUASI])
    op.create_index("ix_evacuation_case_contact_status", "evacuation_case", ["contact_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_evacuation_case_contact_status", table_name="evacuation_case")
    op.drop_index("ix_contact_export_by_id", table_name="contact")
    op.drop_index("ix_contact_export_by_day", table_name="contact")
