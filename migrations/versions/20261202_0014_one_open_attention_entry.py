"""one open attention entry per thing, in the schema

``raise_item`` put an entry in the coordinators' queue only if no open entry named the same thing, by a
look-up before the insert. On PostgreSQL two workers raising the same thing at the same moment could both
find nothing and both insert. ``uq_attention_item_open_thing`` makes it a rule of the database: among open
entries (``resolved_on IS NULL``), one per kind, record code and other record code (a missing code equal to a
missing code), and for an entry about no record, per person who raised it. The service now inserts
``ON CONFLICT DO NOTHING`` against it.

Open entries that already break it are resolved before the index is built: of each thing, the earliest
raised (then the lowest id) stays open and every later one is marked resolved by ``system`` on its own
``raised_on``. Its own day, not the day of the upgrade: a repeat never asked for anything the first entry
did not, so it is closed as of when it appeared; the result does not depend on the server's clock or time
zone; and nothing is lost, since a coordinator still deals with the thing through the entry left open.
No audit entry is written for them (a migration does not extend the audit chain); ``resolved_by = 'system'``
is what tells them apart from a coordinator's resolution.

Downgrade drops the index; the resolved repeats stay resolved.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_THING = (
    "kind",
    "coalesce(record_code, '')",
    "coalesce(other_code, '')",
    # the raiser when both codes are missing, else a code already in the key (so it adds nothing there)
    "coalesce(record_code, other_code, raised_by)",
)


def _resolve_repeats(conn: sa.Connection) -> None:
    rows = conn.execute(
        sa.text(
            "SELECT id, raised_on, kind, record_code, other_code, raised_by FROM attention_item"
            " WHERE resolved_on IS NULL ORDER BY raised_on, id"
        )
    ).all()
    seen: set[tuple[str, str | None, str | None, str | None]] = set()
    for item_id, raised_on, kind, record_code, other_code, raised_by in rows:
        by = raised_by if record_code is None and other_code is None else None
        thing = (kind, record_code, other_code, by)
        if thing not in seen:
            seen.add(thing)
            continue
        conn.execute(
            sa.text("UPDATE attention_item SET resolved_on = :on, resolved_by = 'system' WHERE id = :id"),
            {"on": raised_on, "id": item_id},
        )


def upgrade() -> None:
    _resolve_repeats(op.get_bind())
    where = sa.text("resolved_on IS NULL")
    op.create_index(
        "uq_attention_item_open_thing",
        "attention_item",
        [sa.text(e) for e in _THING],
        unique=True,
        sqlite_where=where,
        postgresql_where=where,
    )


def downgrade() -> None:
    op.drop_index("uq_attention_item_open_thing", table_name="attention_item")
